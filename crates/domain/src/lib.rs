//! The pure domain of ca-notify.
//!
//! Everything here is plain data and pure functions: no IO, no async runtime, no clock
//! reads (callers pass "today" and "now" in). The four ports, the pipeline and every
//! adapter speak in these types, so the rules that keep a person from being texted twice
//! or a record from being lost are written, and tested, exactly once.
//!
//! * [`phone`]: [`PhoneNumber`], normalised to E.164 and masked in `Debug`/`Display`.
//! * [`recipient`]: [`RecipientRecord`] (raw, as a store holds it) and [`Recipient`] (parsed).
//! * [`outcome`]: [`Outcome`], what happened to one record, and the seed's sent flag.
//! * [`attempt`]: [`AttemptAnswer`] and [`KeyHistory`], what earlier attempts of a uuid proved.
//! * [`dedup`]: [`DedupKey`], the verification server's `uuid`, derived with a keyed HMAC.
//! * [`error_code`]: [`ErrorCode`], the verification server's `errorCode`s, read once.
//! * [`evaluate`]: [`evaluate_response`], the judgement of one batch-issue answer.
//! * [`backoff`]: [`Backoff`], the one retry policy (full-jitter backoff, attempt budget,
//!   `Retry-After`, deadline), shared by every retry.
//! * [`date_window`]: [`DateWindow`], the server's accepted test/symptom date range.
//! * [`scrub`]: [`scrub_phone_numbers`], removes phone numbers from outside error text.

pub mod attempt;
pub mod backoff;
pub mod date_window;
pub mod dedup;
pub mod error_code;
pub mod evaluate;
pub mod outcome;
pub mod phone;
pub mod recipient;
pub mod scrub;

pub use attempt::{AttemptAnswer, KeyHistory, UnknownAttemptAnswer};
pub use backoff::{Backoff, GiveUp};
pub use date_window::{DateField, DateWindow};
pub use dedup::{DedupKey, DedupSecret};
pub use error_code::ErrorCode;
pub use evaluate::{
    evaluate_response, Evaluation, ItemAnswer, RealmFault, RetryBudget, StopSignal,
};
pub use outcome::{DeferReason, NotSentKind, NotSentReason, Outcome, RecordOutcome};
pub use phone::{PhoneError, PhoneNumber, PhoneParser, RawPhone};
pub use recipient::{
    ClaimToken, DateError, LocallyChecked, Recipient, RecipientRecord, RecordId, TestType,
};
pub use scrub::scrub_phone_numbers;
