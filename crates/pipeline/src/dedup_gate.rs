//! Keeps two records with the same dedup key from being issued at the same time.
//!
//! The verification server would answer the second `uuid_already_exists` anyway, but two
//! concurrent requests with one uuid race inside the server, and the second record would
//! cost a request. So the first record to reach issuing owns the key until its answer is
//! known; any other record with that key waits for the answer and is resolved from it
//! (delivered → `AlreadySent`, unconfirmed → `Unconfirmed`, deferred → deferred), or, if
//! the owner ended not sent, is issued itself, knowing what the owner's attempts proved. A delivered key is remembered until its epoch is finished, so a later
//! duplicate in the same claim costs no request either. Only keys of unfinished epochs are
//! held, so memory stays flat over any run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ca_notify_domain::{DedupKey, DeferReason, KeyHistory, Outcome};
use tokio::sync::watch;

/// What the owner of a key learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The server holds the code (sent now or before).
    Delivered,
    /// The server holds a code row, but whether a text went out cannot be known.
    Unconfirmed,
    /// The owner was handed back undecided.
    Deferred(DeferReason),
    /// The owner was not sent for a reason of its own; a waiter tries itself, with the
    /// key's history as the owner left it (the ledger's and the owner's attempts).
    NotSent(KeyHistory),
}

impl Resolution {
    /// What `outcome`, reached with the key's `history`, tells the other holders.
    pub fn of(outcome: &Outcome, history: KeyHistory) -> Self {
        match outcome {
            Outcome::Sent | Outcome::AlreadySent | Outcome::TextedBefore => Self::Delivered,
            Outcome::Unconfirmed => Self::Unconfirmed,
            Outcome::Deferred { reason } => Self::Deferred(*reason),
            Outcome::NotSent { .. } => Self::NotSent(history),
        }
    }
}

#[derive(Debug)]
enum Slot {
    /// Owned; the channel is made only when a second record shows up, so the common
    /// case of a unique key costs one map insert and one remove.
    InFlight(Option<watch::Sender<Option<Resolution>>>),
    /// The server holds this key; remembered until `epoch` is finished.
    Delivered { epoch: u32 },
}

/// The keys in flight in one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct DedupGate {
    keys: Arc<Mutex<HashMap<DedupKey, Slot>>>,
}

/// The result of asking for a key.
pub(crate) enum Entry {
    Owner(Ownership),
    Waiter(watch::Receiver<Option<Resolution>>),
    Delivered,
}

impl DedupGate {
    pub fn enter(&self, key: DedupKey, epoch: u32) -> Entry {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get_mut(&key) {
            None => {
                keys.insert(key, Slot::InFlight(None));
                Entry::Owner(Ownership {
                    key,
                    epoch,
                    gate: self.clone(),
                    done: false,
                })
            }
            Some(Slot::Delivered { .. }) => Entry::Delivered,
            Some(Slot::InFlight(waiters)) => {
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

    /// Forgets the delivered keys of a finished epoch.
    pub fn forget_epoch(&self, epoch: u32) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, slot| !matches!(slot, Slot::Delivered { epoch: e } if *e == epoch));
    }

    fn leave(&self, key: &DedupKey, epoch: u32, resolution: Resolution) {
        let slot = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if resolution == Resolution::Delivered {
                keys.insert(*key, Slot::Delivered { epoch })
            } else {
                keys.remove(key)
            }
        };
        if let Some(Slot::InFlight(Some(tx))) = slot {
            // Nobody listening is fine: the waiter may have been dropped.
            let _ = tx.send(Some(resolution));
        }
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or_default()
    }
}

/// Ownership of a key in flight. Publishing (or dropping, e.g. in a panic) frees the key.
pub(crate) struct Ownership {
    key: DedupKey,
    epoch: u32,
    gate: DedupGate,
    done: bool,
}

impl Ownership {
    pub fn publish(mut self, resolution: Resolution) {
        self.done = true;
        self.gate.leave(&self.key, self.epoch, resolution);
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if !self.done {
            self.gate.leave(
                &self.key,
                self.epoch,
                Resolution::Deferred(DeferReason::Shutdown),
            );
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
        let Entry::Owner(owner) = gate.enter(key(1), 1) else {
            panic!("first is the owner")
        };
        let Entry::Waiter(rx) = gate.enter(key(1), 1) else {
            panic!("second waits")
        };
        let Entry::Owner(other) = gate.enter(key(2), 1) else {
            panic!("another key is free")
        };
        let waiting = tokio::spawn(wait(rx));
        owner.publish(Resolution::Delivered);
        assert_eq!(waiting.await.expect("joins"), Resolution::Delivered);
        assert!(matches!(gate.enter(key(1), 1), Entry::Delivered));
        other.publish(Resolution::NotSent(KeyHistory::default()));
        assert_eq!(gate.held(), 1, "only the delivered key is remembered");
        gate.forget_epoch(2);
        assert_eq!(gate.held(), 1);
        gate.forget_epoch(1);
        assert_eq!(gate.held(), 0, "and forgotten with its epoch");
        assert!(matches!(gate.enter(key(1), 2), Entry::Owner(_)));
    }

    #[tokio::test]
    async fn a_dropped_owner_defers_its_waiters() {
        let gate = DedupGate::default();
        let owner = gate.enter(key(3), 1);
        let Entry::Waiter(rx) = gate.enter(key(3), 1) else {
            panic!("second waits")
        };
        drop(owner);
        assert_eq!(wait(rx).await, Resolution::Deferred(DeferReason::Shutdown));
    }
}
