//! Validates a configuration and reaches every system it names, without sending
//! anything: the work behind `ca-notify check`.

use ca_notify_adapter_twilio::TwilioValidator;

use crate::compose::Store;
use crate::config::JobConfig;

/// What one check looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checked {
    /// The values a run needs.
    Configuration,
    /// The store: reachable, tables and columns present.
    Store,
    /// The phone validator's credentials.
    PhoneValidator,
    /// The verification server: reachable, API key accepted.
    VerificationServer,
}

impl Checked {
    /// How an operator calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Configuration => "configuration",
            Self::Store => "store",
            Self::PhoneValidator => "phone validator",
            Self::VerificationServer => "verification server",
        }
    }
}

/// One check's outcome: what was found, or what failed, as one line.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// What was checked.
    pub what: Checked,
    /// What was found, or why not.
    pub result: Result<String, String>,
}

/// Runs every check, in the order an operator reads them.
pub async fn run_checks(config: &JobConfig) -> Vec<CheckResult> {
    let configuration = config
        .validate_for_run()
        .map(|()| "valid".to_owned())
        .map_err(|e| format!("configuration: {e}"));
    vec![
        CheckResult {
            what: Checked::Configuration,
            result: configuration,
        },
        CheckResult {
            what: Checked::Store,
            result: check_store(config).await,
        },
        CheckResult {
            what: Checked::PhoneValidator,
            result: check_validator(config).await,
        },
        CheckResult {
            what: Checked::VerificationServer,
            result: check_verification(config).await,
        },
    ]
}

async fn check_store(config: &JobConfig) -> Result<String, String> {
    let store = Store::open(config).await.map_err(|e| e.to_string())?;
    store.check().await
}

async fn check_validator(config: &JobConfig) -> Result<String, String> {
    match config
        .twilio_config()
        .map_err(|e| format!("configuration: {e}"))?
    {
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

async fn check_verification(config: &JobConfig) -> Result<String, String> {
    let client = config
        .verification
        .client(config.workers)
        .map_err(|e| format!("configuration: {e}"))?;
    client.check_reachable().await
}
