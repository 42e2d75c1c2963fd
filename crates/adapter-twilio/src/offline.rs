//! The offline validator: libphonenumber's metadata (the `phonenumber` crate), no network.
//!
//! It rejects what is certainly not a textable phone: numbers that are not valid
//! (`offline:invalid`) and numbers whose range is certainly not a person's mobile
//! (toll-free, premium rate, shared cost, UAN, voicemail, pager, fixed line, and the
//! short-number kinds). Everything else passes as SMS-capable, naming the type libphonenumber
//! saw: `mobile`, `fixedLineOrMobile`, `voip` and `personal` (VoIP and personal "follow-me"
//! numbers may well reach a phone that takes texts), and `unknown`.
//!
//! **Limitation:** in the US and the rest of the North American Numbering Plan, landline
//! and mobile numbers share the same ranges, so libphonenumber calls almost every US number
//! `FixedLineOrMobile`. Offline validation therefore cannot filter US landlines; only a
//! carrier lookup (Twilio Line Type Intelligence) can. It is the fallback when no Twilio
//! credentials are configured, and the free pre-filter in front of Twilio otherwise.
//!
//! The metadata differs in version from Twilio's data; where they could disagree (is this
//! VoIP range textable?) this validator passes the number on and lets Twilio decide.

use async_trait::async_trait;
use ca_notify_domain::PhoneNumber;
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use phonenumber::Type;
use tokio::time::Instant;

use crate::nanp::{self, RangeVerdict};

/// A [`PhoneValidator`] that needs no network and no credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineValidator {
    _private: (),
}

impl OfflineValidator {
    /// A validator over the metadata compiled into the `phonenumber` crate.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verdict for `phone`: about 1 µs for a North American number ([`crate::nanp`]),
    /// 20–30 µs for others (libphonenumber's parse, validation and typing).
    pub fn judge(&self, phone: &PhoneNumber) -> PhoneVerdict {
        let e164 = phone.expose_e164();
        match nanp::classify(e164).or_else(|| nanp::crate_verdict(e164)) {
            Some(RangeVerdict::Valid(kind)) => verdict(kind),
            Some(RangeVerdict::Invalid) => PhoneVerdict::Invalid {
                detail: "offline:invalid".to_owned(),
            },
            None => PhoneVerdict::Invalid {
                detail: "offline:unparsable".to_owned(),
            },
        }
    }
}

/// The verdict on a valid number of this type.
fn verdict(number_type: Type) -> PhoneVerdict {
    let (capable, line_type) = classify(number_type);
    let line_type = line_type.to_owned();
    if capable {
        PhoneVerdict::SmsCapable { line_type }
    } else {
        PhoneVerdict::NotSmsCapable { line_type }
    }
}

/// Whether a libphonenumber type may receive a text, and its name in Twilio's vocabulary
/// where Twilio has one.
fn classify(number_type: Type) -> (bool, &'static str) {
    match number_type {
        Type::Mobile => (true, "mobile"),
        Type::FixedLineOrMobile => (true, "fixedLineOrMobile"),
        Type::Voip => (true, "voip"),
        Type::PersonalNumber => (true, "personal"),
        // A valid number whose range the metadata does not type: let someone else decide.
        Type::Unknown => (true, "unknown"),
        Type::FixedLine => (false, "landline"),
        Type::TollFree => (false, "tollFree"),
        Type::PremiumRate => (false, "premium"),
        Type::SharedCost => (false, "sharedCost"),
        Type::Uan => (false, "uan"),
        Type::Voicemail => (false, "voicemail"),
        Type::Pager => (false, "pager"),
        Type::Emergency => (false, "emergency"),
        Type::ShortCode => (false, "shortCode"),
        Type::StandardRate => (false, "standardRate"),
        Type::Carrier => (false, "carrierSpecific"),
        Type::NoInternational => (false, "noInternational"),
    }
}

#[async_trait]
impl PhoneValidator for OfflineValidator {
    async fn check(
        &self,
        phone: &PhoneNumber,
        _deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError> {
        Ok(self.judge(phone))
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::PhoneParser;

    use super::*;

    fn judge(raw: &str) -> PhoneVerdict {
        let phone = PhoneParser::default().parse(raw).expect("parses");
        OfflineValidator::new().judge(&phone)
    }

    fn capable(line_type: &str) -> PhoneVerdict {
        PhoneVerdict::SmsCapable {
            line_type: line_type.into(),
        }
    }

    fn not_capable(line_type: &str) -> PhoneVerdict {
        PhoneVerdict::NotSmsCapable {
            line_type: line_type.into(),
        }
    }

    #[test]
    fn classifies_the_contracts_reference_numbers() {
        // The table in the Twilio contract, §6, measured against this crate.
        assert_eq!(judge("+14159929960"), capable("fixedLineOrMobile"));
        assert_eq!(judge("+12127363100"), capable("fixedLineOrMobile"));
        assert_eq!(judge("+18005551212"), not_capable("tollFree"));
        assert_eq!(judge("+15005550006"), capable("personal"));
        assert_eq!(judge("+442077651182"), not_capable("landline"));
        // The contract's German mobile (+49 151…) is not used: the domain parser, given a
        // default region of US, drops its leading 1 (a `phonenumber` quirk, reported).
        assert_eq!(judge("+393123456789"), capable("mobile"));
        let invalid = PhoneVerdict::Invalid {
            detail: "offline:invalid".into(),
        };
        assert_eq!(judge("+447700900123"), invalid, "Ofcom drama range");
    }

    #[test]
    fn rejects_non_sms_ranges() {
        assert_eq!(judge("+19005551234"), not_capable("premium"));
        assert_eq!(judge("+18885550123"), not_capable("tollFree"));
        assert_eq!(judge("+448001234567"), not_capable("tollFree"));
        assert_eq!(judge("+449090901234"), not_capable("premium"));
    }

    #[test]
    fn a_valid_number_the_metadata_cannot_type_passes_as_unknown() {
        // An Italian fixed line: valid, but `number_type` drops its leading zero.
        assert_eq!(judge("+390236618300"), capable("unknown"));
    }

    #[test]
    fn invalid_us_area_codes_are_invalid() {
        // 555 is not an assigned area code.
        assert!(matches!(
            judge("+15555550123"),
            PhoneVerdict::Invalid { .. }
        ));
    }

    #[test]
    fn every_type_has_a_stable_name() {
        let all = [
            Type::FixedLine,
            Type::Mobile,
            Type::FixedLineOrMobile,
            Type::TollFree,
            Type::PremiumRate,
            Type::SharedCost,
            Type::PersonalNumber,
            Type::Voip,
            Type::Pager,
            Type::Uan,
            Type::Emergency,
            Type::Voicemail,
            Type::ShortCode,
            Type::StandardRate,
            Type::Carrier,
            Type::NoInternational,
            Type::Unknown,
        ];
        let mut names: Vec<_> = all.iter().map(|t| classify(*t).1).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "names are distinct");
        let passing: Vec<_> = all.iter().filter(|t| classify(**t).0).collect();
        assert_eq!(
            passing,
            [
                &Type::Mobile,
                &Type::FixedLineOrMobile,
                &Type::PersonalNumber,
                &Type::Voip,
                &Type::Unknown
            ]
        );
    }
}
