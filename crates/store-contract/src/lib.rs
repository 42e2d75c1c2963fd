//! The store contract suite: the semantics every ca-notify store must keep, written once.
//!
//! A store is both the source of recipients ([`PhoneSource`]) and the lasting ledger of
//! what was sent ([`ResultSink`]). The in-memory, SQLite and Snowflake stores all promise
//! the same things — claims never overlap, a crashed worker's records come back, write-back
//! applies only under the claim token and is idempotent, `Deferred` releases with an
//! attempt counted (or, for an unanswered request, holds the record until its lease ends),
//! bad rows are ordinary data, and the ledger answers by dedup key (texted under any
//! record id, and the attempt answers kept per key), and each keeps a table of runs whose
//! id every outcome written carries ([`RunLog`]) — and this crate checks each promise
//! through the ports, plus a read-only [`StoreHarness::inspect`] of the state row.
//!
//! A store crate implements [`StoreHarness`] and either calls [`run_all`] from one test
//! or, better, each check from its own `#[tokio::test]` so a failure names the promise:
//!
//! ```ignore
//! #[tokio::test]
//! async fn write_back_is_idempotent() {
//!     ca_notify_store_contract::write_back_is_idempotent(&MyHarness::new()).await;
//! }
//! ```
//!
//! Checks panic with a message naming the broken promise. They wait out leases with
//! [`StoreHarness::pass`]: a harness whose stores take an injected clock (the in-memory
//! and SQLite stores do, moved by a [`ClockOffset`]) moves it forward at once; one whose
//! store reads a clock nobody can move (Snowflake's `SYSDATE()`) sleeps in real time. The
//! stores' own clocks keep running either way, so run the checks on a runtime without
//! `tokio::time::pause()`.
//!
//! [`PhoneSource`]: ca_notify_ports::PhoneSource
//! [`ResultSink`]: ca_notify_ports::ResultSink
//! [`RunLog`]: ca_notify_ports::RunLog

pub mod checks;
pub mod fixtures;
pub mod harness;
pub mod runs;
mod support;

pub use checks::*;
pub use harness::{ClockOffset, RecordState, StoreHarness};
pub use runs::*;

/// Declares one `#[tokio::test]` per check of the suite, so a failure names the promise it
/// broke. `$harness` is an expression evaluated inside each (async) test, so it may
/// `.await`: `store_contract_tests!(Harness::new().await);`. The calling crate needs
/// `tokio` with its `macros` and multi-thread runtime features.
#[macro_export]
macro_rules! store_contract_tests {
    ($harness:expr) => {
        $crate::store_contract_tests!(@each $harness;
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
            key_histories_report_texted_under_any_record_id,
            attempts_are_summed_per_key_across_write_backs_and_records,
            a_repeated_write_back_does_not_double_the_attempt_log,
            a_no_answer_deferral_holds_the_claim_until_the_lease_ends,
            an_unknown_key_has_the_default_history,
            runs_are_listed_newest_first_with_their_end,
            outcomes_carry_the_run_that_wrote_them,
            the_backlog_is_what_a_claim_could_take,
        );
    };
    (@each $harness:expr; $($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let harness = $harness;
            $crate::$check(&harness).await;
        }
    )+};
}

/// Runs every check, in a fixed order, each on fresh stores from `h`.
pub async fn run_all<H: StoreHarness>(h: &H) {
    claim_returns_at_most_max(h).await;
    claim_reads_back_exactly_the_claimed_set(h).await;
    claimed_records_are_not_claimable_while_the_lease_holds(h).await;
    concurrent_claimers_never_overlap(h).await;
    write_back_records_the_outcome(h).await;
    write_back_is_idempotent(h).await;
    write_back_applies_only_where_the_token_holds(h).await;
    deferred_records_are_released_with_an_attempt_counted(h).await;
    release_returns_records_untouched(h).await;
    expired_leases_return_records(h).await;
    final_records_are_never_claimed_again(h).await;
    bad_rows_are_ordinary_records(h).await;
    peek_does_not_claim(h).await;
    key_histories_report_texted_under_any_record_id(h).await;
    attempts_are_summed_per_key_across_write_backs_and_records(h).await;
    a_repeated_write_back_does_not_double_the_attempt_log(h).await;
    a_no_answer_deferral_holds_the_claim_until_the_lease_ends(h).await;
    an_unknown_key_has_the_default_history(h).await;
    runs_are_listed_newest_first_with_their_end(h).await;
    outcomes_carry_the_run_that_wrote_them(h).await;
    the_backlog_is_what_a_claim_could_take(h).await;
}
