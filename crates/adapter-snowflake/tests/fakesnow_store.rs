//! The Snowflake store against fakesnow: the shared store contract suite, then what only
//! this store promises (bound values, login settings, session expiry, lock timeouts,
//! `check` and `migrate`).
//!
//! Needs Python with fakesnow (see `tests/support/fakesnow.rs`); fails, never skips, when
//! it cannot start.

mod support;

mod contract {
    //! Every check of `ca-notify-store-contract`, each its own test so a failure names the
    //! promise it broke.

    use super::support::Harness;

    macro_rules! contract_checks {
        ($($check:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    ca_notify_store_contract::$check(&Harness::new().await).await;
                }
            )*
        };
    }

    contract_checks!(
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_workers_claiming_at_once_never_overlap() {
        ca_notify_store_contract::concurrent_claimers_never_overlap_with(
            &Harness::new().await,
            4,
            200,
            10,
        )
        .await;
    }
}
