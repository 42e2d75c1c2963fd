//! The offline validator: the numbering plans' structure and libphonenumber's metadata
//! (the `phonenumber` crate), no network.
//!
//! What it knows comes in two kinds ([`Finding`]):
//!
//! * a structural fault (the `structure` module: wrong length, not digits, a North American
//!   area code or exchange starting with 0 or 1 or of the form N11, a length no number of
//!   the country has): final, `Invalid { "offline:<fault>" }`;
//! * libphonenumber's range metadata: an opinion that goes stale as new area codes open,
//!   never final on its own. In front of Twilio (the `prefilter` module) it is not used at
//!   all: Twilio judges. Alone, this validator still trusts a range the metadata types
//!   (libphonenumber calls the number valid), and rejects those certainly not a person's
//!   mobile (toll-free, premium rate, shared cost, UAN, voicemail, pager, fixed line, and the
//!   short-number kinds); it passes `mobile`, `fixedLineOrMobile`, `voip` and `personal`
//!   (VoIP and personal "follow-me" numbers may well reach a phone that takes texts) and
//!   `unknown`. A number in no range it knows, which is what a number of a newly opened
//!   area code looks like, passes as `unverified`: with no authority to ask, the
//!   verification server and its SMS provider are the judges, and a number that does not
//!   exist ends as a failed send there, never as a permanent "invalid" here.
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
use crate::structure::{self, StructuralFault};

/// The line type of a number the metadata has in no range, passed on unverified.
pub const UNVERIFIED: &str = "unverified";

/// What offline knowledge says about a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A fault in the number's structure: no plan update can make it valid. Final.
    Structural(StructuralFault),
    /// libphonenumber's range metadata: may be stale, never final on its own.
    Range(RangeVerdict),
}

/// The finding for an E.164 text: about 1 µs for a North American number (its structure,
/// then [`crate::nanp`]), 20–30 µs for others (libphonenumber's parse, the possible
/// lengths, validation and typing).
pub fn finding_of(e164: &str) -> Finding {
    if let Some(national) = e164.strip_prefix("+1") {
        if let Some(fault) = structure::nanp_fault(national) {
            return Finding::Structural(fault);
        }
        if let Some(verdict) = nanp::classify(e164) {
            return Finding::Range(verdict);
        }
    }
    let Ok(parsed) = phonenumber::parse(None, e164) else {
        return Finding::Structural(StructuralFault::Unparsable);
    };
    let digits = e164.bytes().filter(u8::is_ascii_digit).count();
    if let Some(fault) = structure::length_fault(parsed.code().value(), digits) {
        return Finding::Structural(fault);
    }
    Finding::Range(nanp::crate_range(&parsed))
}

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

    /// What offline knowledge says about `phone` ([`finding_of`]).
    pub fn finding(&self, phone: &PhoneNumber) -> Finding {
        finding_of(phone.expose_e164())
    }

    /// The verdict for `phone` when no other validator is asked: a structural fault is
    /// `Invalid`, a typed range is judged by its type, and a number in no known range is
    /// SMS-capable as [`UNVERIFIED`].
    pub fn judge(&self, phone: &PhoneNumber) -> PhoneVerdict {
        match self.finding(phone) {
            Finding::Structural(fault) => structural_verdict(fault),
            Finding::Range(RangeVerdict::Valid(kind)) => verdict(kind),
            Finding::Range(RangeVerdict::Invalid) => PhoneVerdict::SmsCapable {
                line_type: UNVERIFIED.to_owned(),
            },
        }
    }
}

/// The final verdict on a number with a structural fault.
pub(crate) fn structural_verdict(fault: StructuralFault) -> PhoneVerdict {
    PhoneVerdict::Invalid {
        detail: format!("offline:{}", fault.code()),
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
        // In no range today, but a range can open: not final offline.
        assert_eq!(
            judge("+447700900123"),
            capable(UNVERIFIED),
            "Ofcom drama range"
        );
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

    /// Area codes opened after this build's metadata (357: California, March 2025; 624:
    /// New York, 2023; 274, 472 and 983 only partly in the metadata) and one not assigned
    /// yet (555): none may be marked invalid for good.
    #[test]
    fn numbers_in_no_known_range_are_never_final() {
        for raw in [
            "+12745550123",
            "+14725550123",
            "+19835550123",
            "+13575550123",
            "+16245550123",
            "+15555550123",
        ] {
            let phone = PhoneParser::default().parse(raw).expect("parses");
            let validator = OfflineValidator::new();
            assert_eq!(
                validator.finding(&phone),
                Finding::Range(RangeVerdict::Invalid),
                "{raw}: the metadata has no range for it"
            );
            assert_eq!(validator.judge(&phone), capable(UNVERIFIED), "{raw}");
        }
    }

    #[test]
    fn structural_faults_are_final() {
        for (e164, detail) in [
            ("+1415555012", "offline:too_short"),
            ("+141555501234", "offline:too_long"),
            ("+1415555O123", "offline:not_a_number"),
            ("+10155550123", "offline:invalid_area_code"),
            ("+12115550123", "offline:invalid_area_code"),
            ("+14151550123", "offline:invalid_exchange"),
            ("+14159110123", "offline:invalid_exchange"),
            ("+3361234567", "offline:too_short"),
            ("+336123456789", "offline:too_long"),
            ("+", "offline:unparsable"),
        ] {
            let want = PhoneVerdict::Invalid {
                detail: detail.into(),
            };
            let Finding::Structural(fault) = finding_of(e164) else {
                panic!("{e164}: structural")
            };
            assert_eq!(structural_verdict(fault), want, "{e164}");
        }
        // The parser's own output reaches the same rule.
        assert_eq!(
            judge("+1 415 211 0123"),
            PhoneVerdict::Invalid {
                detail: "offline:invalid_exchange".into()
            }
        );
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
