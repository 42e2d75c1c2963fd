//! One module per subcommand.

pub mod check;
pub mod completions;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dry_run;
pub mod export;
pub mod import;
pub mod migrate;
pub mod operator;
pub mod purge;
pub mod reconcile;
pub mod report;
pub mod requeue;
pub mod run;
pub mod serve_functions;
#[cfg(feature = "demo")]
pub mod simulate;
pub mod status;
