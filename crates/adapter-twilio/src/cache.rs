//! One lookup per distinct number per run: verdicts cached by number, and concurrent
//! checks of the same number coalesced onto one request.
//!
//! Several records often carry the same phone (a household, a re-test), and each Line Type
//! Intelligence request is paid for. The first check of a number does the lookup; checks
//! that arrive while it is in flight wait for it; later ones read the cached verdict. Only
//! verdicts are cached. An error (`Unavailable`, `Unauthorized`) is not: the next check of
//! that number tries again.
//!
//! Keys are the E.164 digits packed into a `u64` (E.164 has at most 15 digits and never a
//! leading zero, so the packing is exact), which keeps an entry small and keeps the numbers
//! themselves out of the map. The cache has no `Debug` that shows entries and is never
//! logged.
//!
//! Memory is bounded for runs that drain millions of records: verdicts live in two
//! generations of at most [`GENERATION`] numbers each. When the new generation is full it
//! becomes the old one and the one before is forgotten; a number checked while in the old
//! generation moves back into the new one. Repeats close together (the ones that matter:
//! a household, a re-test, a retried claim) are answered from memory however long the run.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use ca_notify_domain::PhoneNumber;
use ca_notify_ports::{PhoneVerdict, ValidationError};
use tokio::sync::OnceCell;

enum Slot {
    Ready(PhoneVerdict),
    InFlight(Arc<OnceCell<PhoneVerdict>>),
}

/// Numbers one generation holds; the cache remembers at most twice this many (a few tens
/// of bytes each).
pub(crate) const GENERATION: usize = 100_000;

/// Verdicts by number, for the life of one validator (one run).
pub(crate) struct VerdictCache {
    slots: Mutex<Generations>,
    /// Numbers per generation.
    capacity: usize,
}

impl Default for VerdictCache {
    fn default() -> Self {
        Self::with_generation(GENERATION)
    }
}

#[derive(Default)]
struct Generations {
    current: HashMap<u64, Slot>,
    previous: HashMap<u64, PhoneVerdict>,
}

impl Generations {
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Room for one more entry in the new generation: when it is full, its verdicts become
    /// the old generation (the one before is forgotten) and its lookups in flight stay.
    fn make_room(&mut self, capacity: usize) {
        if self.current.len() < capacity {
            return;
        }
        let full = std::mem::take(&mut self.current);
        self.previous = HashMap::with_capacity(full.len());
        for (key, slot) in full {
            match slot {
                Slot::Ready(verdict) => {
                    self.previous.insert(key, verdict);
                }
                in_flight @ Slot::InFlight(_) => {
                    self.current.insert(key, in_flight);
                }
            }
        }
    }
}

impl fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl VerdictCache {
    /// A cache whose generations hold `capacity` numbers each.
    pub(crate) fn with_generation(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(Generations::default()),
            capacity: capacity.max(1),
        }
    }

    /// The cached verdict of `phone`, or the result of `lookup` (run at most once at a time
    /// per number; waiters share its verdict).
    pub(crate) async fn get_or_lookup<F, Fut>(
        &self,
        phone: &PhoneNumber,
        lookup: F,
    ) -> Result<PhoneVerdict, ValidationError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PhoneVerdict, ValidationError>>,
    {
        let Some(key) = pack(phone.expose_e164()) else {
            // Not E.164 digits (cannot happen for a parsed PhoneNumber): just look it up.
            return lookup().await;
        };
        let cell = {
            let mut slots = self.lock();
            match slots.current.get(&key) {
                Some(Slot::Ready(verdict)) => return Ok(verdict.clone()),
                Some(Slot::InFlight(cell)) => cell.clone(),
                None => {
                    // Taken from the old generation before room is made: making room
                    // may replace the old generation, and would drop this verdict.
                    let remembered = slots.previous.remove(&key);
                    slots.make_room(self.capacity);
                    if let Some(verdict) = remembered {
                        slots.current.insert(key, Slot::Ready(verdict.clone()));
                        return Ok(verdict);
                    }
                    let cell = Arc::new(OnceCell::new());
                    slots.current.insert(key, Slot::InFlight(cell.clone()));
                    cell
                }
            }
        };
        // If the caller running `lookup` fails or is cancelled, the cell stays empty and the
        // next waiter runs its own lookup.
        let verdict = cell.get_or_try_init(lookup).await?.clone();
        self.lock()
            .current
            .insert(key, Slot::Ready(verdict.clone()));
        Ok(verdict)
    }

    /// How many numbers have an entry.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Forgets every verdict (for a long-lived process starting a new run).
    pub(crate) fn clear(&self) {
        *self.lock() = Generations::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the maps inconsistent: a number is
        // at worst in neither generation, and is then looked up again.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `+` and 1–15 digits, the first not zero, as an integer.
fn pack(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 15 || digits.starts_with('0') {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ca_notify_domain::PhoneParser;

    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneParser::default()
            .parse(raw)
            .expect("valid test number")
    }

    fn mobile() -> PhoneVerdict {
        PhoneVerdict::SmsCapable {
            line_type: "mobile".into(),
        }
    }

    #[test]
    fn packing_is_exact_and_refuses_non_e164() {
        assert_eq!(pack("+14155550123"), Some(14_155_550_123));
        assert_eq!(pack("+999999999999999"), Some(999_999_999_999_999));
        assert_ne!(pack("+14155550123"), pack("+141555501230"));
        for bad in [
            "14155550123",
            "+",
            "+0123",
            "+1415555012a",
            "+1234567890123456",
        ] {
            assert_eq!(pack(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_checks_of_one_number_share_one_lookup() {
        let cache = Arc::new(VerdictCache::default());
        let lookups = Arc::new(AtomicUsize::new(0));
        let number = phone("+14155550123");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, lookups, number) = (cache.clone(), lookups.clone(), number.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_lookup(&number, || async {
                            lookups.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(mobile())
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("joins").expect("verdict"), mobile());
        }
        let again = cache
            .get_or_lookup(&number, || async { panic!("must come from the cache") })
            .await;
        assert_eq!(again.expect("cached"), mobile());
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = VerdictCache::default();
        let number = phone("+14155550123");
        let first = cache
            .get_or_lookup(&number, || async {
                Err(ValidationError::Unavailable("HTTP 503".into()))
            })
            .await;
        assert!(matches!(first, Err(ValidationError::Unavailable(_))));
        let second = cache
            .get_or_lookup(&number, || async { Ok(mobile()) })
            .await;
        assert_eq!(second.expect("retried"), mobile());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn memory_is_bounded_and_recent_numbers_stay() {
        let cache = VerdictCache::with_generation(10);
        let lookups = AtomicUsize::new(0);
        let check = |n: usize| {
            let number = phone(&format!("+1415555{n:04}"));
            let lookups = &lookups;
            let cache = &cache;
            async move {
                cache
                    .get_or_lookup(&number, || async {
                        lookups.fetch_add(1, Ordering::SeqCst);
                        Ok(mobile())
                    })
                    .await
                    .expect("verdict")
            }
        };
        for n in 0..100 {
            check(n).await;
            // The first number is checked again every few numbers: it stays remembered.
            if n % 5 == 0 {
                check(0).await;
            }
            assert!(cache.len() <= 20, "{} entries after {n}", cache.len());
        }
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            100,
            "number 0 looked up once"
        );
        // Number 50 is two generations old: forgotten, so looked up again.
        check(50).await;
        assert_eq!(lookups.load(Ordering::SeqCst), 101);
        // Number 95 is in the old or the new generation: answered from memory.
        check(95).await;
        assert_eq!(lookups.load(Ordering::SeqCst), 101);
    }

    #[tokio::test]
    async fn a_number_found_in_the_old_generation_survives_the_turnover_it_causes() {
        let cache = VerdictCache::with_generation(2);
        let lookups = AtomicUsize::new(0);
        let check = |n: usize| {
            let number = phone(&format!("+1415555{n:04}"));
            let lookups = &lookups;
            let cache = &cache;
            async move {
                cache
                    .get_or_lookup(&number, || async {
                        lookups.fetch_add(1, Ordering::SeqCst);
                        Ok(mobile())
                    })
                    .await
                    .expect("verdict")
            }
        };
        // 0 and 1 fill a generation; 2 turns it over (0 and 1 are now old), 3 fills the
        // new one. Checking 0 then turns the generation over again, at the moment 0 is
        // taken from the old one: it must still be answered from memory.
        for n in 0..4 {
            check(n).await;
        }
        check(0).await;
        assert_eq!(lookups.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn debug_shows_no_entries() {
        let cache = VerdictCache::default();
        cache
            .lock()
            .current
            .insert(14_155_550_123, Slot::Ready(mobile()));
        let shown = format!("{cache:?}");
        assert_eq!(shown, "VerdictCache { entries: 1 }");
    }
}
