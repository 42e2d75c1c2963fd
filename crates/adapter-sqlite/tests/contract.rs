//! The store contract suite, run against the SQLite store, one test per promise.

mod support;

use support::Harness;

ca_notify_store_contract::store_contract_tests!(Harness::new());

/// Four handles, each with its own connection to one file, as four workers would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_connections_never_overlap_and_drain_everything() {
    ca_notify_store_contract::concurrent_claimers_never_overlap_with(&Harness::new(), 4, 2_000, 10)
        .await;
}
