//! `ca-notify simulate`: the Twilio Lookup and verification-server simulators as servers
//! on 127.0.0.1, for trying the command by hand.

use ca_notify_simulators::twilio::{TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{SimConfig, VerificationSimulator};

use crate::exit::{self, Failure};

/// Runs both simulators until Ctrl-C.
///
/// # Errors
/// When a port cannot be bound.
pub async fn execute(twilio_port: u16, verification_port: u16) -> Result<(), Failure> {
    let bind_failed = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(
            exit::INTERNAL,
            format!("cannot start the {what} simulator: {e}"),
        )
    };
    let twilio = TwilioSimulator::start(TwilioSimConfig {
        port: twilio_port,
        ..TwilioSimConfig::default()
    })
    .await
    .map_err(|e| bind_failed("Twilio", &e))?;
    let verification = VerificationSimulator::start_on(
        SimConfig::default(),
        ([127, 0, 0, 1], verification_port).into(),
    )
    .await
    .map_err(|e| bind_failed("verification server", &e))?;
    println!("Simulators running on 127.0.0.1 (Ctrl-C stops them). To use them:");
    println!("  export CA_NOTIFY__TWILIO__BASE_URL={}", twilio.base_url());
    println!(
        "  export CA_NOTIFY__TWILIO__ACCOUNT_SID={}",
        twilio.account_sid()
    );
    println!(
        "  export CA_NOTIFY__TWILIO__AUTH_TOKEN=<the simulator's token: {}>",
        twilio.auth_token()
    );
    println!(
        "  export CA_NOTIFY__VERIFICATION__BASE_URL={}",
        verification.base_url()
    );
    println!(
        "  export CA_NOTIFY__VERIFICATION__API_KEY=<the simulator's key: {}>",
        verification.api_key()
    );
    println!("Twilio line types by last digit: 0-4 mobile, 5 landline, 6 nonFixedVoip, 7 fixedVoip, 8 unknown, 9 invalid.");
    let _ = tokio::signal::ctrl_c().await;
    twilio.shutdown().await;
    verification
        .shutdown()
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
    Ok(())
}
