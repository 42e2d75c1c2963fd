//! The checks, one public function per promise, each on fresh stores from the harness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ca_notify_domain::{
    AttemptAnswer, DeferReason, KeyHistory, NotSentReason, Outcome, RecipientRecord, RecordId,
    RecordOutcome,
};
use ca_notify_ports::{Claim, WriteReceipt};

use crate::fixtures::{
    self, bad_rows, dedup_key, deferred, invalid_number, keyed, records, sent, unanswered,
    OutcomeExt,
};
use crate::harness::{RecordState, StoreHarness};
use crate::support::{self, claim, histories, ids, peek, release, sorted, write, LONG_LEASE};

/// A claim returns at most `max` distinct records, all from the source; `max = 0` claims
/// nothing; successive claims drain the rest and then come back empty.
pub async fn claim_returns_at_most_max<H: StoreHarness>(h: &H) {
    let seeded = records(1001, 25);
    let store = h.fresh(seeded.clone()).await;

    let none = claim(&store, 0, LONG_LEASE).await;
    assert!(none.records.is_empty(), "claim(0) returned records");

    let first = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        first.records.len(),
        10,
        "claim(10) of 25 returned a different count"
    );
    assert_distinct(&first.records, "claim(10)");
    let rest = claim(&store, 100, LONG_LEASE).await;
    assert_eq!(
        rest.records.len(),
        15,
        "claim(100) did not return the 15 left"
    );
    assert_distinct(&rest.records, "claim(100)");
    assert_ne!(first.token, rest.token, "two claims share a token");

    let mut all: Vec<RecipientRecord> = first.records.into_iter().chain(rest.records).collect();
    all = sorted(all);
    assert_eq!(
        all,
        sorted(seeded),
        "claims did not return the source rows verbatim"
    );
    assert!(
        claim(&store, 100, LONG_LEASE).await.records.is_empty(),
        "a drained store still returned records"
    );
}

/// The records a claim returns are exactly the records it stamped: every returned record
/// carries the claim's token and no other record does.
pub async fn claim_reads_back_exactly_the_claimed_set<H: StoreHarness>(h: &H) {
    let seeded = records(2001, 20);
    let store = h.fresh(seeded.clone()).await;
    let c = claim(&store, 7, LONG_LEASE).await;
    assert_eq!(c.records.len(), 7);
    let returned: BTreeSet<RecordId> = ids(&c.records).into_iter().collect();
    for record in &seeded {
        let state = h.inspect(&store, &record.id).await;
        let ours = state.claim_token.as_ref() == Some(&c.token);
        assert_eq!(
            ours,
            returned.contains(&record.id),
            "record {} claimed-by-token {ours} but returned {}",
            record.id,
            returned.contains(&record.id)
        );
        assert_eq!(
            state.outcome, None,
            "a claim wrote an outcome on {}",
            record.id
        );
        assert_eq!(
            state.attempts, 0,
            "a claim counted an attempt on {}",
            record.id
        );
    }
}

/// While a lease holds, no other worker claims or peeks the record.
pub async fn claimed_records_are_not_claimable_while_the_lease_holds<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(3001, 10)).await;
    let other = h.second_handle(&store).await;
    let c = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(c.records.len(), 10);
    let stolen = claim(&other, 10, LONG_LEASE).await;
    assert!(
        stolen.records.is_empty(),
        "a second worker claimed {} records under a live lease",
        stolen.records.len()
    );
    assert!(
        peek(&other, 10).await.is_empty(),
        "peek showed records under a live lease"
    );
}

/// Two workers on separate handles, claiming and writing back at the same time, never
/// hold the same record and together drain everything.
pub async fn concurrent_claimers_never_overlap<H: StoreHarness>(h: &H) {
    concurrent_claimers_never_overlap_with(h, 2, 120, 7).await;
}

/// [`concurrent_claimers_never_overlap`] with `workers` handles over `n` records, claiming
/// `batch` at a time.
pub async fn concurrent_claimers_never_overlap_with<H: StoreHarness>(
    h: &H,
    workers: usize,
    n: usize,
    batch: usize,
) {
    assert!(workers >= 1);
    let seeded = records(100_001, n);
    let first = h.fresh(seeded.clone()).await;
    let mut handles = Vec::with_capacity(workers);
    for _ in 1..workers {
        handles.push(Arc::new(h.second_handle(&first).await));
    }
    let first = Arc::new(first);
    handles.insert(0, Arc::clone(&first));

    let mut tasks = tokio::task::JoinSet::new();
    for handle in handles {
        tasks.spawn(async move {
            let mut taken: Vec<RecordId> = Vec::new();
            let mut written = 0;
            loop {
                let c = claim(handle.as_ref(), batch, LONG_LEASE).await;
                if c.records.is_empty() {
                    break;
                }
                assert!(c.records.len() <= batch, "claim returned more than asked");
                let outcomes: Vec<RecordOutcome> = c.records.iter().map(|r| sent(&r.id)).collect();
                let receipt = write(handle.as_ref(), &c.token, &outcomes).await;
                assert_eq!(
                    receipt.not_owned, 0,
                    "a worker lost records it had just claimed under a long lease"
                );
                written += receipt.written;
                taken.extend(c.records.into_iter().map(|r| r.id));
            }
            (taken, written)
        });
    }
    let mut owner: BTreeMap<RecordId, usize> = BTreeMap::new();
    let mut total_written = 0;
    let mut worker = 0;
    while let Some(joined) = tasks.join_next().await {
        let (taken, written) = joined.expect("a claiming worker panicked");
        total_written += written;
        for id in taken {
            if let Some(previous) = owner.insert(id.clone(), worker) {
                panic!("record {id} was claimed by worker {previous} and worker {worker}");
            }
        }
        worker += 1;
    }
    let expected: BTreeSet<RecordId> = ids(&seeded).into_iter().collect();
    let got: BTreeSet<RecordId> = owner.keys().cloned().collect();
    assert_eq!(
        got, expected,
        "the workers together did not drain every record"
    );
    assert_eq!(
        total_written, n,
        "write-back receipts do not add up to the records"
    );
    assert!(
        claim(first.as_ref(), n + 1, LONG_LEASE)
            .await
            .records
            .is_empty(),
        "records remained claimable after a full drain"
    );
}

/// A final outcome stores the sent flag, outcome, reason, dedup uuid and processed time,
/// and clears the claim; every final outcome the domain has is accepted (`unconfirmed`
/// with sent = 0, `already_sent` for a key the ledger says was texted before).
pub async fn write_back_records_the_outcome<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(4001, 6)).await;
    let c = claim(&store, 6, LONG_LEASE).await;
    let ids = ids(&c.records);
    let outcomes = vec![
        sent(&ids[0]),
        fixtures::outcome(&ids[1], Outcome::AlreadySent),
        invalid_number(&ids[2]),
        fixtures::outcome(
            &ids[3],
            Outcome::not_sent(NotSentReason::NotSmsCapable {
                line_type: "landline".to_owned(),
            }),
        ),
        fixtures::outcome(&ids[4], Outcome::Unconfirmed),
        fixtures::outcome(&ids[5], Outcome::TextedBefore),
    ];
    let receipt = write(&store, &c.token, &outcomes).await;
    assert_eq!(
        receipt,
        WriteReceipt {
            written: 6,
            released: 0,
            not_owned: 0
        }
    );
    for o in &outcomes {
        let state = h.inspect(&store, &o.id).await;
        let want_flag = o.outcome.sent_flag();
        assert_eq!(state.sent, want_flag, "sent flag of {}", o.id);
        assert_eq!(
            state.outcome.as_deref(),
            Some(o.outcome.label()),
            "outcome of {}",
            o.id
        );
        assert_eq!(
            normalised(&state.reason),
            o.outcome.reason_code(),
            "reason of {}",
            o.id
        );
        assert_eq!(
            state.dedup_key,
            o.dedup_key.map(|k| k.to_string()),
            "dedup uuid of {}",
            o.id
        );
        assert!(state.processed, "no processed time on {}", o.id);
        assert_eq!(state.claim_token, None, "claim not cleared on {}", o.id);
    }
}

/// Writing the same batch twice changes nothing: the second receipt says not owned, and
/// no state (outcome, attempts, processed time) moves.
pub async fn write_back_is_idempotent<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(5001, 6)).await;
    let c = claim(&store, 6, LONG_LEASE).await;
    let ids = ids(&c.records);
    let outcomes: Vec<RecordOutcome> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| match i % 3 {
            0 => sent(id),
            1 => invalid_number(id),
            _ => deferred(id),
        })
        .collect();
    let first = write(&store, &c.token, &outcomes).await;
    assert_eq!(
        first,
        WriteReceipt {
            written: 4,
            released: 2,
            not_owned: 0
        }
    );
    let before = states(h, &store, &ids).await;
    let second = write(&store, &c.token, &outcomes).await;
    let repeat = if h.repeats_report_as_first_written() {
        first
    } else {
        WriteReceipt {
            written: 0,
            released: 0,
            not_owned: 6,
        }
    };
    assert_eq!(second, repeat, "a repeated write-back was applied again");
    assert_eq!(
        states(h, &store, &ids).await,
        before,
        "a repeated write-back changed state"
    );
}

/// A worker whose lease expired and whose records were reclaimed cannot write or release
/// them with its old token; the new owner can. A made-up token owns nothing.
pub async fn write_back_applies_only_where_the_token_holds<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(6001, 3)).await;
    let other = h.second_handle(&store).await;
    let old = claim(&store, 3, h.short_lease()).await;
    assert_eq!(old.records.len(), 3);
    let new = claim_after_expiry(h, &other, 3).await;
    assert_ne!(old.token, new.token);

    let ids = ids(&old.records);
    let stale: Vec<RecordOutcome> = ids.iter().map(sent).collect();
    let receipt = write(&store, &old.token, &stale).await;
    assert_eq!(
        receipt,
        WriteReceipt {
            written: 0,
            released: 0,
            not_owned: 3
        },
        "an expired token wrote over a reclaimed record"
    );
    let stale_defer: Vec<RecordOutcome> = ids.iter().map(deferred).collect();
    let receipt = write(&store, &old.token, &stale_defer).await;
    assert_eq!(
        receipt.not_owned, 3,
        "an expired token released by write-back"
    );
    release(&store, &old.token, &ids).await;
    let made_up = support::stranger_token();
    let receipt = write(&store, &made_up, &stale).await;
    assert_eq!(receipt.not_owned, 3, "a made-up token wrote");
    for id in &ids {
        let state = h.inspect(&store, id).await;
        assert_eq!(state.outcome, None, "stale write reached {id}");
        assert_eq!(state.attempts, 0, "stale deferral counted on {id}");
        assert_eq!(
            state.claim_token.as_ref(),
            Some(&new.token),
            "stale call moved the claim on {id}"
        );
    }

    let fresh: Vec<RecordOutcome> = ids.iter().map(invalid_number).collect();
    let receipt = write(&other, &new.token, &fresh).await;
    assert_eq!(receipt.written, 3, "the new owner could not write");
    for id in &ids {
        assert_eq!(h.inspect(&store, id).await.sent, Some(0));
    }
}

/// `Deferred` releases the record with an attempt counted and no outcome; it is claimable
/// again at once, and a second deferral counts a second attempt.
pub async fn deferred_records_are_released_with_an_attempt_counted<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(7001, 3)).await;
    let c = claim(&store, 3, LONG_LEASE).await;
    let ids = ids(&c.records);
    let outcomes = vec![deferred(&ids[0]), deferred(&ids[1]), sent(&ids[2])];
    let receipt = write(&store, &c.token, &outcomes).await;
    assert_eq!(
        receipt,
        WriteReceipt {
            written: 1,
            released: 2,
            not_owned: 0
        }
    );
    for id in &ids[..2] {
        let state = h.inspect(&store, id).await;
        assert_eq!(state.attempts, 1, "deferral of {id} not counted");
        assert_eq!(state.outcome, None, "deferral of {id} wrote an outcome");
        assert_eq!(state.sent, None, "deferral of {id} set the sent flag");
        assert_eq!(state.claim_token, None, "deferral of {id} kept the claim");
    }
    let again = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        support::ids(&again.records),
        ids[..2].to_vec(),
        "deferred records not claimable again"
    );
    let receipt = write(&store, &again.token, &[deferred(&ids[0])]).await;
    assert_eq!(receipt.released, 1);
    assert_eq!(
        h.inspect(&store, &ids[0]).await.attempts,
        2,
        "second deferral not counted"
    );
}

/// A release hands records back untouched (no outcome, attempts unchanged), only for the
/// token that holds them; releasing twice or releasing unknown ids changes nothing.
pub async fn release_returns_records_untouched<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(8001, 5)).await;
    let c = claim(&store, 5, LONG_LEASE).await;
    let ids = ids(&c.records);
    release(&store, &support::stranger_token(), &ids).await;
    for id in &ids {
        assert_eq!(
            h.inspect(&store, id).await.claim_token.as_ref(),
            Some(&c.token),
            "a foreign token released {id}"
        );
    }
    let released = &ids[..3];
    release(&store, &c.token, released).await;
    release(&store, &c.token, released).await;
    release(&store, &c.token, &[RecordId::new("424242424")]).await;
    release(&store, &c.token, &[]).await;
    for id in released {
        let state = h.inspect(&store, id).await;
        assert_eq!(state.claim_token, None, "release kept the claim on {id}");
        assert_eq!(state.attempts, 0, "release counted an attempt on {id}");
        assert_eq!(state.outcome, None, "release wrote an outcome on {id}");
    }
    for id in &ids[3..] {
        assert_eq!(
            h.inspect(&store, id).await.claim_token.as_ref(),
            Some(&c.token),
            "release touched {id}, which it was not given"
        );
    }
    let again = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        support::ids(&again.records),
        released.to_vec(),
        "released records not claimable"
    );
}

/// A crashed worker's records come back to another worker once the lease ends.
pub async fn expired_leases_return_records<H: StoreHarness>(h: &H) {
    let seeded = records(10_001, 5);
    let store = h.fresh(seeded.clone()).await;
    let other = h.second_handle(&store).await;
    let crashed = claim(&store, 5, h.short_lease()).await;
    assert_eq!(crashed.records.len(), 5);
    drop(crashed);
    let back = claim_after_expiry(h, &other, 5).await;
    assert_eq!(
        sorted(back.records),
        sorted(seeded),
        "expired records came back changed"
    );
}

/// Records with a final outcome are never claimed, peeked or reclaimed after a lease ends.
pub async fn final_records_are_never_claimed_again<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(11_001, 10)).await;
    let c = claim(&store, 10, h.short_lease()).await;
    let ids = ids(&c.records);
    let outcomes: Vec<RecordOutcome> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| match i {
            0..=3 => sent(id),
            4 | 5 => invalid_number(id),
            6 => fixtures::outcome(id, Outcome::Unconfirmed),
            7 => fixtures::outcome(id, Outcome::AlreadySent),
            _ => deferred(id),
        })
        .collect();
    let receipt = write(&store, &c.token, &outcomes).await;
    assert_eq!(receipt.written, 8);
    assert_eq!(receipt.released, 2);
    let deferred_ids = ids[8..].to_vec();
    assert_eq!(
        support::ids(&peek(&store, 100).await),
        deferred_ids,
        "peek showed final records"
    );
    let short = claim(&store, 100, h.short_lease()).await;
    assert_eq!(
        support::ids(&short.records),
        deferred_ids,
        "a claim returned final records"
    );
    h.pass(h.short_lease() * 2).await;
    let after = claim_after_expiry(h, &store, 2).await;
    assert_eq!(
        support::ids(&after.records),
        deferred_ids,
        "final records came back after a lease ended"
    );
}

/// NULL, empty, garbage, unicode, over-long and SQL-looking phones, duplicate rows, NULL
/// dates and odd test types come back verbatim as ordinary records, and are written back
/// like any other (`NotSent { InvalidNumber }`).
pub async fn bad_rows_are_ordinary_records<H: StoreHarness>(h: &H) {
    let seeded = bad_rows();
    let store = h.fresh(seeded.clone()).await;
    let c = claim(&store, 100, LONG_LEASE).await;
    let got = sorted(c.records.clone());
    let want = sorted(seeded.clone());
    assert_eq!(got.len(), want.len(), "bad rows were dropped or duplicated");
    for (g, w) in got.iter().zip(&want) {
        // Compared field by field so a mismatch names the field, not the masked phone.
        assert_eq!(g.id, w.id);
        assert!(
            g.phone == w.phone,
            "phone of {} did not round-trip verbatim",
            w.id
        );
        assert_eq!(g.test_date, w.test_date, "test date of {}", w.id);
        assert_eq!(g.symptom_date, w.symptom_date, "symptom date of {}", w.id);
        assert_eq!(g.test_type, w.test_type, "test type of {}", w.id);
    }
    let outcomes: Vec<RecordOutcome> = c.records.iter().map(|r| invalid_number(&r.id)).collect();
    let receipt = write(&store, &c.token, &outcomes).await;
    assert_eq!(receipt.written, seeded.len());
    for r in &seeded {
        let state = h.inspect(&store, &r.id).await;
        assert_eq!(
            state.sent,
            Some(0),
            "bad row {} not written as not sent",
            r.id
        );
        assert_eq!(normalised(&state.reason), "invalid_number:not_a_number");
    }
    assert!(claim(&store, 100, LONG_LEASE).await.records.is_empty());
}

/// Peek returns at most `max` records a claim would take, and claims none of them.
pub async fn peek_does_not_claim<H: StoreHarness>(h: &H) {
    let seeded = records(12_001, 10);
    let store = h.fresh(seeded.clone()).await;
    let peeked = peek(&store, 4).await;
    assert_eq!(peeked.len(), 4, "peek(4) of 10 returned a different count");
    let all: BTreeSet<RecordId> = ids(&seeded).into_iter().collect();
    for r in &peeked {
        assert!(all.contains(&r.id), "peek returned an unknown record");
        let state = h.inspect(&store, &r.id).await;
        assert_eq!(state.claim_token, None, "peek claimed {}", r.id);
    }
    let c = claim(&store, 100, LONG_LEASE).await;
    assert_eq!(c.records.len(), 10, "peeked records were not claimable");
    assert!(
        peek(&store, 10).await.is_empty(),
        "peek showed claimed records"
    );
}

/// The ledger answers by dedup key, under any record id, one history per key asked, in
/// order: a key is texted once any record carrying it was written with sent = 1 (`sent`,
/// `already_sent`, texted before), whatever other records with the same key say, and not
/// when its records were only written not sent, unconfirmed or deferred.
pub async fn key_histories_report_texted_under_any_record_id<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(13_001, 7)).await;
    let c = claim(&store, 7, LONG_LEASE).await;
    let ids = ids(&c.records);
    let [sent_key, not_sent_key, unconfirmed_key, deferred_key, before_key, already_key] =
        [1, 2, 3, 4, 5, 6].map(|n| dedup_key(13_000 + n));
    let rejected = Outcome::not_sent(NotSentReason::Rejected {
        error_code: "phone_number_invalid".to_owned(),
    });
    let outcomes = vec![
        keyed(&ids[0], sent_key, Outcome::Sent),
        keyed(&ids[1], not_sent_key, rejected.clone()),
        keyed(&ids[2], unconfirmed_key, Outcome::Unconfirmed),
        keyed(
            &ids[3],
            deferred_key,
            Outcome::deferred(DeferReason::Deadline),
        ),
        keyed(&ids[4], before_key, Outcome::TextedBefore),
        keyed(&ids[5], already_key, Outcome::AlreadySent),
        // Another record of the person texted as ids[0]: its own outcome says not sent.
        keyed(&ids[6], sent_key, rejected),
    ];
    let receipt = write(&store, &c.token, &outcomes).await;
    assert_eq!((receipt.written, receipt.released), (6, 1));
    let unknown = dedup_key(13_999);
    let asked = [
        not_sent_key,
        sent_key,
        unconfirmed_key,
        deferred_key,
        before_key,
        already_key,
        unknown,
        sent_key,
    ];
    let texted: Vec<bool> = histories(&store, &asked)
        .await
        .iter()
        .map(|k| k.texted)
        .collect();
    assert_eq!(
        texted,
        vec![false, true, false, false, true, true, false, true],
        "texted per key (not sent, sent, unconfirmed, deferred, texted before, already sent, \
         unknown, sent again) is wrong"
    );
    let other = h.second_handle(&store).await;
    assert_eq!(
        histories(&other, &[sent_key]).await[0],
        KeyHistory {
            texted: true,
            ..KeyHistory::default()
        },
        "another worker does not see the ledger"
    );
}

/// Every write-back appends its outcomes' attempt answers to the log of their dedup key,
/// whatever the outcome (final, deferred, held), and the ledger sums them per key across
/// write-backs, claims and records. A write whose records are no longer its own still
/// appends its attempts: they are facts about the uuid (a request was made), and a later
/// 409 must be judged against them.
pub async fn attempts_are_summed_per_key_across_write_backs_and_records<H: StoreHarness>(h: &H) {
    use AttemptAnswer::{AlreadyExists, FailedAfterCommit, Issued, NoAnswer, Refused};
    let store = h.fresh(records(14_001, 4)).await;
    let c = claim(&store, 4, LONG_LEASE).await;
    let ids = ids(&c.records);
    let person = dedup_key(14_001);
    let other_person = dedup_key(14_002);
    let first = [keyed(
        &ids[0],
        person,
        Outcome::deferred(DeferReason::IssuerUnavailable),
    )
    .with_attempts(&[FailedAfterCommit, NoAnswer])];
    write(&store, &c.token, &first).await;
    let second = [
        keyed(&ids[1], person, Outcome::Unconfirmed).with_attempts(&[AlreadyExists]),
        keyed(
            &ids[3],
            other_person,
            Outcome::not_sent(NotSentReason::Rejected {
                error_code: "phone_number_invalid".to_owned(),
            }),
        )
        .with_attempts(&[Refused]),
    ];
    write(&store, &c.token, &second).await;
    assert_eq!(
        histories(&store, &[person, other_person]).await,
        vec![
            KeyHistory::default().with(&[FailedAfterCommit, NoAnswer, AlreadyExists]),
            KeyHistory::default(),
        ],
        "the attempts of two write-backs were not summed per key"
    );

    let again = claim(&store, 4, LONG_LEASE).await;
    assert_eq!(support::ids(&again.records), vec![ids[0].clone()]);
    let third = [keyed(&ids[0], person, Outcome::Sent).with_attempts(&[NoAnswer, Issued])];
    write(&store, &again.token, &third).await;
    let fourth = [
        keyed(&ids[2], person, Outcome::deferred(DeferReason::NoAnswer)).with_attempts(&[NoAnswer]),
    ];
    write(&store, &c.token, &fourth).await;
    let late = [keyed(&ids[1], person, Outcome::Sent).with_attempts(&[FailedAfterCommit])];
    let receipt = write(&store, &support::stranger_token(), &late).await;
    assert_eq!(receipt.not_owned, 1);
    assert_eq!(
        h.inspect(&store, &ids[1]).await.outcome.as_deref(),
        Some("unconfirmed"),
        "a write without the claim changed a record"
    );
    let mut want = KeyHistory::default().with(&[
        FailedAfterCommit,
        NoAnswer,
        AlreadyExists,
        NoAnswer,
        Issued,
        NoAnswer,
        FailedAfterCommit,
    ]);
    want.texted = true;
    assert_eq!(
        histories(&store, &[person]).await,
        vec![want],
        "attempts across claims, records and a write without the claim were not summed"
    );
}

/// Writing the same batch again appends no attempt twice, whether the first write
/// applied (final, deferred and held records) or found its records no longer its own.
pub async fn a_repeated_write_back_does_not_double_the_attempt_log<H: StoreHarness>(h: &H) {
    use AttemptAnswer::{FailedAfterCommit, Issued, NoAnswer};
    let store = h.fresh(records(15_001, 3)).await;
    let c = claim(&store, 3, LONG_LEASE).await;
    let ids = ids(&c.records);
    let keys: Vec<_> = (1..=3).map(|n| dedup_key(15_000 + n)).collect();
    let batch = [
        keyed(&ids[0], keys[0], Outcome::Sent).with_attempts(&[FailedAfterCommit, Issued]),
        keyed(
            &ids[1],
            keys[1],
            Outcome::deferred(DeferReason::IssuerUnavailable),
        )
        .with_attempts(&[FailedAfterCommit]),
        keyed(&ids[2], keys[2], Outcome::deferred(DeferReason::NoAnswer))
            .with_attempts(&[NoAnswer]),
    ];
    let first = write(&store, &c.token, &batch).await;
    assert_eq!((first.written, first.released), (1, 2));
    let logged = histories(&store, &keys).await;
    assert_eq!(
        logged,
        vec![
            KeyHistory {
                texted: true,
                ..KeyHistory::default().with(&[FailedAfterCommit, Issued])
            },
            KeyHistory::default().with(&[FailedAfterCommit]),
            KeyHistory::default().with(&[NoAnswer]),
        ]
    );
    let before = states(h, &store, &ids).await;
    let second = write(&store, &c.token, &batch).await;
    let repeat = if h.repeats_report_as_first_written() {
        first
    } else {
        WriteReceipt {
            written: 0,
            released: 0,
            not_owned: 3,
        }
    };
    assert_eq!(second, repeat, "a repeated write-back was applied again");
    assert_eq!(
        histories(&store, &keys).await,
        logged,
        "a repeated write-back appended its attempts again"
    );
    assert_eq!(states(h, &store, &ids).await, before);

    let stranger = support::stranger_token();
    let foreign = [keyed(&ids[0], keys[0], Outcome::Sent).with_attempts(&[NoAnswer])];
    for _ in 0..2 {
        assert_eq!(write(&store, &stranger, &foreign).await.not_owned, 1);
    }
    assert_eq!(
        histories(&store, &keys[..1]).await[0].unanswered,
        1,
        "a repeated write without the claim appended its attempts twice"
    );
}

/// `Deferred { NoAnswer }` (a request for the record may still be running) counts an
/// attempt but keeps the record out of every claim and peek until its lease ends: a
/// release or a repeated write by the same token does not cut the hold short. Other
/// deferrals in the same batch are released at once.
pub async fn a_no_answer_deferral_holds_the_claim_until_the_lease_ends<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(16_001, 3)).await;
    let other = h.second_handle(&store).await;
    let lease = h.short_lease() * 2;
    let started = std::time::Instant::now();
    let c = claim(&store, 3, lease).await;
    let ids = ids(&c.records);
    let batch = [unanswered(&ids[0]), deferred(&ids[1]), sent(&ids[2])];
    let receipt = write(&store, &c.token, &batch).await;
    assert_eq!(
        receipt,
        WriteReceipt {
            written: 1,
            released: 2,
            not_owned: 0
        }
    );
    let held = h.inspect(&store, &ids[0]).await;
    assert_eq!(held.attempts, 1, "the held deferral counted no attempt");
    assert_eq!((held.sent, held.outcome), (None, None));
    release(&store, &c.token, &ids[..1]).await;
    let repeated = write(&store, &c.token, &batch[..1]).await;
    if h.repeats_report_as_first_written() {
        assert_eq!((repeated.released, repeated.not_owned), (1, 0));
    } else {
        assert_eq!(repeated.not_owned, 1);
    }
    let peeked = support::ids(&peek(&other, 10).await);
    let taken = claim(&other, 10, LONG_LEASE).await;
    assert!(
        started.elapsed() < lease,
        "the check ran longer than its lease of {lease:?}; lengthen the harness's short lease"
    );
    assert_eq!(peeked, vec![ids[1].clone()], "peek showed a held record");
    assert_eq!(
        support::ids(&taken.records),
        vec![ids[1].clone()],
        "another worker claimed a record held after an unanswered request"
    );
    let back = claim_after_expiry(h, &other, 1).await;
    assert_eq!(
        support::ids(&back.records),
        vec![ids[0].clone()],
        "the held record did not come back when its lease ended"
    );
    assert_eq!(h.inspect(&store, &ids[0]).await.attempts, 1);
}

/// A key the ledger has never seen, or whose record was only claimed, has the default
/// history; no keys ask nothing; a long list (more than one statement's worth) answers
/// one history per key, in order.
pub async fn an_unknown_key_has_the_default_history<H: StoreHarness>(h: &H) {
    let store = h.fresh(records(17_001, 2)).await;
    let c = claim(&store, 2, LONG_LEASE).await;
    let ids = ids(&c.records);
    let texted = dedup_key(17_001);
    write(&store, &c.token, &[keyed(&ids[0], texted, Outcome::Sent)]).await;
    assert!(
        histories(&store, &[]).await.is_empty(),
        "no keys, no histories"
    );
    let claimed_only = fixtures::key_of(&ids[1]);
    assert_eq!(
        histories(&store, &[dedup_key(17_900), claimed_only]).await,
        vec![KeyHistory::default(); 2],
        "an unknown key has a history"
    );
    let many: Vec<_> = (0..2_500u64)
        .map(|i| {
            if i % 1_000 == 999 {
                texted
            } else {
                dedup_key(18_000 + i)
            }
        })
        .collect();
    let answers = histories(&store, &many).await;
    assert_eq!(answers.len(), many.len(), "not one history per key asked");
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(
            answer.texted,
            i % 1_000 == 999,
            "history {i} of a long list"
        );
    }
}

/// Waits out the lease of an earlier claim, then claims on `store` until `want` records
/// came back, for at most 20 more leases (a quarter lease apart) on the stores' clock.
async fn claim_after_expiry<H: StoreHarness>(h: &H, store: &H::Store, want: usize) -> Claim {
    let lease = h.short_lease();
    h.pass(lease).await;
    for _ in 0..80 {
        let c = claim(store, want, LONG_LEASE).await;
        if c.records.len() == want {
            return c;
        }
        assert!(
            c.records.is_empty(),
            "an expired claim came back in pieces ({} of {want})",
            c.records.len()
        );
        h.pass(lease / 4).await;
    }
    panic!("records did not come back within 20 leases of expiry");
}

async fn states<H: StoreHarness>(h: &H, store: &H::Store, ids: &[RecordId]) -> Vec<RecordState> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(h.inspect(store, id).await);
    }
    out
}

fn assert_distinct(records: &[RecipientRecord], what: &str) {
    let unique: BTreeSet<&RecordId> = records.iter().map(|r| &r.id).collect();
    assert_eq!(
        unique.len(),
        records.len(),
        "{what} returned a record twice"
    );
}

fn normalised(reason: &Option<String>) -> String {
    reason.clone().unwrap_or_default()
}
