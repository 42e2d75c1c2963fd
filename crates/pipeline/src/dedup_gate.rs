//! Keeps two records with the same dedup key from being issued at the same time.
//!
//! The verification server would answer the second `uuid_already_exists` anyway, but two
//! concurrent requests with one uuid race inside the server, and the second record would
//! cost a request. So the first record to reach issuing owns the key until its answer is
//! known; any other record with that key waits for the answer and is resolved from it
//! (delivered → `AlreadySent`, deferred → deferred), or, if the owner ended not sent, is
//! issued itself. Only keys in flight are held, so memory stays flat over any run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ca_notify_domain::{DedupKey, DeferReason, Outcome};
use tokio::sync::watch;

/// What the owner of a key learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The server holds the code (sent now or before).
    Delivered,
    /// The owner was handed back undecided.
    Deferred(DeferReason),
    /// The owner was not sent for a reason of its own; a waiter tries itself.
    NotSent,
}

impl Resolution {
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Sent | Outcome::AlreadySent => Self::Delivered,
            Outcome::Deferred { reason } => Self::Deferred(*reason),
            Outcome::NotSent { .. } => Self::NotSent,
        }
    }
}

type Waiters = Option<watch::Sender<Option<Resolution>>>;

/// The keys in flight in one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct DedupGate {
    // The channel is made only when a second record shows up, so the common case of a
    // unique key costs one map insert and one remove.
    keys: Arc<Mutex<HashMap<DedupKey, Waiters>>>,
}

/// The result of asking for a key.
pub(crate) enum Entry {
    Owner(Ownership),
    Waiter(watch::Receiver<Option<Resolution>>),
}

impl DedupGate {
    pub fn enter(&self, key: DedupKey) -> Entry {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get_mut(&key) {
            None => {
                keys.insert(key, None);
                Entry::Owner(Ownership {
                    key,
                    gate: self.clone(),
                    done: false,
                })
            }
            Some(waiters) => {
                let rx = match waiters {
                    Some(tx) => tx.subscribe(),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        *waiters = Some(tx);
                        rx
                    }
                };
                Entry::Waiter(rx)
            }
        }
    }

    fn leave(&self, key: &DedupKey, resolution: Resolution) {
        let waiters = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(Some(tx)) = waiters {
            // Nobody listening is fine: the waiter may have been dropped.
            let _ = tx.send(Some(resolution));
        }
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or_default()
    }
}

/// Ownership of a key in flight. Publishing (or dropping, e.g. in a panic) frees the key.
pub(crate) struct Ownership {
    key: DedupKey,
    gate: DedupGate,
    done: bool,
}

impl Ownership {
    pub fn publish(mut self, resolution: Resolution) {
        self.done = true;
        self.gate.leave(&self.key, resolution);
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if !self.done {
            self.gate
                .leave(&self.key, Resolution::Deferred(DeferReason::Shutdown));
        }
    }
}

/// Waits for the owner's answer. A vanished owner counts as deferred.
pub(crate) async fn wait(mut rx: watch::Receiver<Option<Resolution>>) -> Resolution {
    match rx.wait_for(Option::is_some).await {
        Ok(value) => value.unwrap_or(Resolution::Deferred(DeferReason::Shutdown)),
        Err(_) => Resolution::Deferred(DeferReason::Shutdown),
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::{DedupSecret, PhoneParser};

    use super::*;

    fn key(n: u8) -> DedupKey {
        let secret = DedupSecret::new("sixteen bytes or more".to_owned().into()).expect("long");
        let phone = PhoneParser::default()
            .parse(&format!("+1415555010{n}"))
            .expect("valid");
        DedupKey::derive(&secret, &phone, None, &"r".into())
    }

    #[tokio::test]
    async fn a_second_entrant_waits_for_the_owners_answer() {
        let gate = DedupGate::default();
        let Entry::Owner(owner) = gate.enter(key(1)) else {
            panic!("first is the owner")
        };
        let Entry::Waiter(rx) = gate.enter(key(1)) else {
            panic!("second waits")
        };
        assert!(matches!(gate.enter(key(2)), Entry::Owner(_)));
        let waiting = tokio::spawn(wait(rx));
        owner.publish(Resolution::Delivered);
        assert_eq!(waiting.await.expect("joins"), Resolution::Delivered);
        assert_eq!(gate.in_flight(), 0, "keys are freed once answered");
        assert!(matches!(gate.enter(key(1)), Entry::Owner(_)));
    }

    #[tokio::test]
    async fn a_dropped_owner_defers_its_waiters() {
        let gate = DedupGate::default();
        let owner = gate.enter(key(3));
        let Entry::Waiter(rx) = gate.enter(key(3)) else {
            panic!("second waits")
        };
        drop(owner);
        assert_eq!(wait(rx).await, Resolution::Deferred(DeferReason::Shutdown));
    }
}
