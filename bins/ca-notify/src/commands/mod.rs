//! One module per subcommand.

pub mod check;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dry_run;
pub mod export;
pub mod import;
pub mod run;
pub mod serve_functions;
#[cfg(feature = "demo")]
pub mod simulate;
