//! The store contract suite, run against the SQLite store, one test per promise.

mod support;

use support::Harness;

macro_rules! contract {
    ($($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            ca_notify_store_contract::$check(&Harness::new()).await;
        }
    )+};
}

contract!(
    claim_returns_at_most_max,
    claim_reads_back_exactly_the_claimed_set,
    claimed_records_are_not_claimable_while_the_lease_holds,
    concurrent_claimers_never_overlap,
    write_back_records_the_outcome,
    write_back_is_idempotent,
    write_back_applies_only_where_the_token_holds,
    deferred_records_are_released_with_an_attempt_counted,
    release_returns_records_untouched,
    expired_leases_return_records,
    final_records_are_never_claimed_again,
    bad_rows_are_ordinary_records,
    peek_does_not_claim,
);

/// Four handles, each with its own connection to one file, as four workers would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_connections_never_overlap_and_drain_everything() {
    ca_notify_store_contract::concurrent_claimers_never_overlap_with(&Harness::new(), 4, 2_000, 10)
        .await;
}
