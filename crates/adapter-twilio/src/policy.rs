//! Which Twilio line types count as able to receive an SMS: the one configurable decision
//! between a Lookup answer and a [`PhoneVerdict`].
//!
//! The defaults follow Twilio's own guidance: error 30006 ("the destination number is a
//! `landline` number, which generally cannot receive SMS messages") and the Line Type
//! Intelligence docs ("filter out landline numbers … before sending SMS messages").
//!
//! | Lookup said | default verdict | setting |
//! |---|---|---|
//! | `mobile` | SMS-capable | — |
//! | `nonFixedVoip` (Google Voice, Twilio numbers) | SMS-capable | `accept_non_fixed_voip` |
//! | `fixedVoip` (cable or office VoIP) | not SMS-capable | `accept_fixed_voip` |
//! | `landline`, `tollFree`, `premium`, `sharedCost`, `uan`, `voicemail`, `pager`, `personal` | not SMS-capable | — |
//! | `unknown`, a type this build does not know, no type, a Line Type Intelligence error | not SMS-capable | `accept_undetermined` |
//!
//! The verdict always names what Lookup said, so the reason written back tells an operator
//! a landline from an undetermined line (`not_sms_capable:landline`,
//! `not_sms_capable:lookup_error_60607`, …).
//!
//! Only readings about the number reach the policy. A Lookup error about our account
//! (60606 package not enabled, …; 60601 and 60614 unless `accept_undetermined`) stops the
//! run before any verdict, and 60616 (the package's rate limit) is retried: the client's
//! `judge_answer` and the `account` module decide that first.

use ca_notify_ports::PhoneVerdict;
use serde::{Deserialize, Serialize};

/// A Line Type Intelligence `type`. Twilio's spec gives no enum for it; the twelve values
/// are those of `OverridesRequest.line_type` in the Lookup v2 spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LineType {
    /// A mobile phone.
    Mobile,
    /// A fixed line.
    Landline,
    /// VoIP tied to a physical line or address.
    FixedVoip,
    /// Internet-obtained virtual numbers (Google Voice, Twilio numbers).
    NonFixedVoip,
    /// A personal (follow-me) number.
    Personal,
    /// A toll-free number.
    TollFree,
    /// A premium-rate number.
    Premium,
    /// A shared-cost number.
    SharedCost,
    /// A universal access number.
    Uan,
    /// A voicemail-only number.
    Voicemail,
    /// A pager.
    Pager,
    /// A valid number whose type Twilio could not determine.
    Unknown,
    /// A type Twilio added after this build.
    #[serde(other)]
    Unrecognized,
}

impl LineType {
    /// Twilio's name for the type; `unrecognized` for one this build does not know.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Landline => "landline",
            Self::FixedVoip => "fixedVoip",
            Self::NonFixedVoip => "nonFixedVoip",
            Self::Personal => "personal",
            Self::TollFree => "tollFree",
            Self::Premium => "premium",
            Self::SharedCost => "sharedCost",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Pager => "pager",
            Self::Unknown => "unknown",
            Self::Unrecognized => "unrecognized",
        }
    }
}

/// What Line Type Intelligence said about a valid number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineReading {
    /// A line type.
    Type(LineType),
    /// No type, but a Lookup error code about the number (60607 country not supported,
    /// 60610 outside coverage, …; 60601 and 60614, about the account's access to the
    /// number's country, when `accept_undetermined` is set).
    LookupError(i64),
    /// No `line_type_intelligence` object, or one without a type or error.
    Missing,
}

/// The configurable part of the SMS-capability decision. See the module docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineTypePolicy {
    /// Whether `nonFixedVoip` numbers may be texted. Default `true`: they are usually
    /// SMS-capable, though some senders block them as a fraud measure.
    pub accept_non_fixed_voip: bool,
    /// Whether `fixedVoip` numbers may be texted. Default `false`: Twilio says they "may or
    /// may not" receive SMS, and a text that cannot arrive still burns a code.
    pub accept_fixed_voip: bool,
    /// Whether numbers of undetermined type (`unknown`, an unrecognised type, no type, a
    /// Lookup error code) may be texted. Default `false` (fail closed).
    pub accept_undetermined: bool,
}

impl Default for LineTypePolicy {
    fn default() -> Self {
        Self {
            accept_non_fixed_voip: true,
            accept_fixed_voip: false,
            accept_undetermined: false,
        }
    }
}

impl LineTypePolicy {
    /// The verdict for a valid number.
    pub fn decide(&self, reading: LineReading) -> PhoneVerdict {
        let (capable, line_type) = match reading {
            LineReading::Type(t) => {
                let capable = match t {
                    LineType::Mobile => true,
                    LineType::NonFixedVoip => self.accept_non_fixed_voip,
                    LineType::FixedVoip => self.accept_fixed_voip,
                    LineType::Unknown | LineType::Unrecognized => self.accept_undetermined,
                    LineType::Landline
                    | LineType::Personal
                    | LineType::TollFree
                    | LineType::Premium
                    | LineType::SharedCost
                    | LineType::Uan
                    | LineType::Voicemail
                    | LineType::Pager => false,
                };
                (capable, t.as_str().to_owned())
            }
            LineReading::LookupError(code) => {
                (self.accept_undetermined, format!("lookup_error_{code}"))
            }
            LineReading::Missing => (self.accept_undetermined, "missing".to_owned()),
        };
        if capable {
            PhoneVerdict::SmsCapable { line_type }
        } else {
            PhoneVerdict::NotSmsCapable { line_type }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capable(v: &PhoneVerdict) -> bool {
        matches!(v, PhoneVerdict::SmsCapable { .. })
    }

    fn line_type(v: &PhoneVerdict) -> &str {
        match v {
            PhoneVerdict::SmsCapable { line_type } | PhoneVerdict::NotSmsCapable { line_type } => {
                line_type
            }
            PhoneVerdict::Invalid { .. } => panic!("a policy never says invalid"),
        }
    }

    #[test]
    fn default_table() {
        let policy = LineTypePolicy::default();
        let table = [
            (LineType::Mobile, true),
            (LineType::NonFixedVoip, true),
            (LineType::FixedVoip, false),
            (LineType::Landline, false),
            (LineType::Personal, false),
            (LineType::TollFree, false),
            (LineType::Premium, false),
            (LineType::SharedCost, false),
            (LineType::Uan, false),
            (LineType::Voicemail, false),
            (LineType::Pager, false),
            (LineType::Unknown, false),
            (LineType::Unrecognized, false),
        ];
        for (t, want) in table {
            let v = policy.decide(LineReading::Type(t));
            assert_eq!(capable(&v), want, "{t:?}");
            assert_eq!(line_type(&v), t.as_str(), "the reason names the type");
        }
        let v = policy.decide(LineReading::Missing);
        assert_eq!(
            v,
            PhoneVerdict::NotSmsCapable {
                line_type: "missing".into()
            }
        );
        let v = policy.decide(LineReading::LookupError(60607));
        assert_eq!(
            v,
            PhoneVerdict::NotSmsCapable {
                line_type: "lookup_error_60607".into()
            }
        );
    }

    #[test]
    fn each_setting_moves_only_its_own_types() {
        let open = LineTypePolicy {
            accept_non_fixed_voip: false,
            accept_fixed_voip: true,
            accept_undetermined: true,
        };
        assert!(!capable(
            &open.decide(LineReading::Type(LineType::NonFixedVoip))
        ));
        assert!(capable(
            &open.decide(LineReading::Type(LineType::FixedVoip))
        ));
        for reading in [
            LineReading::Type(LineType::Unknown),
            LineReading::Type(LineType::Unrecognized),
            LineReading::Missing,
            LineReading::LookupError(60601),
        ] {
            assert!(capable(&open.decide(reading)), "{reading:?}");
        }
        // Types that are never SMS-capable stay so whatever the settings.
        for t in [LineType::Landline, LineType::TollFree, LineType::Pager] {
            assert!(!capable(&open.decide(LineReading::Type(t))), "{t:?}");
        }
        assert!(capable(&open.decide(LineReading::Type(LineType::Mobile))));
    }

    #[test]
    fn line_types_decode_from_twilio_names_and_tolerate_new_ones() {
        let names = [
            "mobile",
            "landline",
            "fixedVoip",
            "nonFixedVoip",
            "personal",
            "tollFree",
            "premium",
            "sharedCost",
            "uan",
            "voicemail",
            "pager",
            "unknown",
        ];
        for name in names {
            let t: LineType = serde_json::from_str(&format!("\"{name}\"")).expect(name);
            assert_eq!(t.as_str(), name);
        }
        let t: LineType = serde_json::from_str("\"satellite\"").expect("tolerated");
        assert_eq!(t, LineType::Unrecognized);
    }

    #[test]
    fn policy_settings_deserialize_with_defaults_and_reject_typos() {
        let p: LineTypePolicy =
            serde_json::from_str(r#"{"accept_fixed_voip": true}"#).expect("partial");
        assert!(p.accept_fixed_voip && p.accept_non_fixed_voip && !p.accept_undetermined);
        assert!(serde_json::from_str::<LineTypePolicy>(r#"{"accept_fixed_vop": true}"#).is_err());
    }
}
