//! One module per subcommand.

pub mod check;
pub mod demo;
pub mod dry_run;
pub mod export;
pub mod import;
pub mod run;
pub mod simulate;
