//! `ca-notify check`: validates the configuration and reaches every configured system
//! without sending anything, then prints a table of what is OK.

use std::collections::HashMap;
use std::path::Path;

use ca_notify_adapter_twilio::TwilioValidator;

use crate::compose;
use crate::exit::{self, Failure};
use crate::settings::AppConfig;

struct Row {
    what: &'static str,
    ok: bool,
    detail: String,
    code: u8,
}

/// Runs every check and prints the table.
///
/// # Errors
/// The exit code of the first failed check.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    print_config: bool,
) -> Result<(), Failure> {
    let config = AppConfig::load(config_path, env)?;
    if print_config {
        println!("# Effective configuration (secrets redacted)");
        println!("{}", config.redacted_toml());
    }
    let mut rows = Vec::new();
    rows.push(match config.validate_for_run() {
        Ok(()) => row("configuration", Ok("valid".to_owned()), exit::CONFIG),
        Err(e) => row("configuration", Err(e.to_string()), exit::CONFIG),
    });
    rows.push(row("store", check_store(&config).await, exit::STORE));
    rows.push(row(
        "phone validator",
        check_validator(&config).await,
        exit::UNAUTHORIZED,
    ));
    rows.push(row(
        "verification server",
        check_verification(&config).await,
        exit::UNAUTHORIZED,
    ));
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    for r in &rows {
        let status = if r.ok { "OK" } else { "FAIL" };
        println!("{:<width$}  {status:<4}  {}", r.what, r.detail);
    }
    match rows.iter().find(|r| !r.ok) {
        None => Ok(()),
        Some(failed) => Err(Failure::new(
            failed.code,
            format!("check failed: {}: {}", failed.what, failed.detail),
        )),
    }
}

fn row(what: &'static str, result: Result<String, String>, code: u8) -> Row {
    let ok = result.is_ok();
    Row {
        what,
        ok,
        detail: result.unwrap_or_else(|e| e),
        code,
    }
}

async fn check_store(config: &AppConfig) -> Result<String, String> {
    let store = compose::open_store(config).await.map_err(|e| e.message)?;
    store.check().await
}

async fn check_validator(config: &AppConfig) -> Result<String, String> {
    match compose::twilio_config(config).map_err(|e| e.message)? {
        None => Ok("offline (libphonenumber; cannot tell US landlines from mobiles)".to_owned()),
        Some(twilio) => {
            let validator = TwilioValidator::new(twilio).map_err(|e| e.to_string())?;
            validator
                .check_credentials()
                .await
                .map(|()| "Twilio Lookup credentials accepted".to_owned())
        }
    }
}

async fn check_verification(config: &AppConfig) -> Result<String, String> {
    let client = compose::verification_client(config).map_err(|e| e.message)?;
    client.check_reachable().await
}
