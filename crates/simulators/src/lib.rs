//! Local, faithful stand-ins for the two outside HTTP services ca-notify calls.
//!
//! * [`twilio`]: Twilio Lookup v2 (`GET /v2/PhoneNumbers/{phone}`).
//! * [`verification`]: the Exposure Notifications Verification Server
//!   (`POST /api/batch-issue`).
//!
//! [`numbers`] makes the synthetic people's phone numbers the Twilio simulator judges, and
//! [`cpu`] and [`process`] read CPU time, peak memory and system calls, for the benchmarks
//! that run against them.
//!
//! Both are axum servers that tests start in-process on an ephemeral loopback port, and
//! that `ca-notify simulate` runs as standalone servers. They never reach the network.

pub mod cpu;
pub mod numbers;
pub mod process;
pub mod twilio;
pub mod verification;
