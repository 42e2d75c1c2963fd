//! `ca-notify run --dry-run`: what the next run would do, from a sample read without
//! claiming, judged offline. Writes nothing, texts no one, spends no paid lookup.

use ca_notify_job::{JobConfig, ValidatorKind};

use crate::exit::Failure;

/// Peeks at the next run's records and prints what would happen to them.
///
/// # Errors
/// A configuration or store failure.
pub async fn execute(config: &JobConfig) -> Result<(), Failure> {
    let preview = ca_notify_job::preview::preview(config).await?;
    println!(
        "Dry run: {} records the next run would take (nothing claimed, written or sent).",
        preview.total()
    );
    let width = preview.counts.keys().map(String::len).max().unwrap_or(0);
    for (what, n) in &preview.counts {
        println!("{what:<width$}  {n:>8}");
    }
    println!(
        "Offline validation cannot tell US landlines from mobiles; the real run asks {}.",
        match config.validator_kind() {
            ValidatorKind::Twilio => "Twilio Lookup",
            ValidatorKind::Offline => "nothing more (validator.kind = offline)",
        }
    );
    Ok(())
}
