//! Twilio answers that say our account cannot do the lookup: a misconfiguration, never a
//! fact about the number, so never a verdict and never retried.
//!
//! Twilio reports them two ways: as the code of an error body (`{code, message, more_info,
//! status}`, any HTTP status), or, for a data package, as the `error_code` of the package's
//! object in an otherwise good `200` answer (the Line Type Intelligence docs: "Querying a
//! Canadian phone number without access will return a 60601 error"). Both become
//! [`ValidationError::Misconfigured`], whose text names the Twilio code, what it means and
//! the setting or Twilio Console switch that fixes it, and holds no phone number.
//!
//! The codes, from Twilio's error catalogue (`https://www.twilio.com/docs/api/errors/<code>`):
//!
//! | code | Twilio's title | scope |
//! |---|---|---|
//! | 60606 | Lookup Package is Not Enabled | every number |
//! | 60611 | Lookup Package Quota Reached | every number |
//! | 60619 | Lookup Request Cannot be Completed in Twilio Region | every number |
//! | 20403 | 403 Forbidden ("typically … the account has been suspended or closed") | every number |
//! | 20005 | Account not active | every number |
//! | 10001 | Account is not active | every number |
//! | 60601 | Authorization required for Canada lookups | the numbers of one country |
//! | 60614 | Lookup Request Must Be Completed in Different Twilio Region | the numbers of one country |
//!
//! The last two concern only the numbers of a country the account has no access to. When
//! the policy texts undetermined numbers anyway (`accept_undetermined`), they stay what
//! they were, an undetermined line type the policy accepts; otherwise they stop the run
//! too, since the record would be marked "not SMS-capable" for a reason of the account's.
//!
//! 20003 (credentials) is not here: it stays [`ValidationError::Unauthorized`].

use ca_notify_ports::ValidationError;

use crate::policy::LineTypePolicy;

/// An account-level refusal Twilio documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountFault {
    code: i64,
    /// What the code means, in a few words.
    meaning: &'static str,
    /// What an operator changes to fix it.
    fix: &'static str,
    /// Whether it concerns only the numbers of one country (see the module docs).
    one_country: bool,
}

const FAULTS: &[AccountFault] = &[
    AccountFault {
        code: 60606,
        meaning: "Line Type Intelligence is not enabled for this account",
        fix: "enable the Line Type Intelligence package of Lookup for the account of \
              twilio.account_sid in the Twilio Console (completing Twilio's Account Security \
              Registration form if the package asks for it), or check that twilio.account_sid \
              names the intended account",
        one_country: false,
    },
    AccountFault {
        code: 60611,
        meaning: "the account's Line Type Intelligence quota is used up",
        fix: "ask Twilio Support to raise the package's quota for the account of \
              twilio.account_sid",
        one_country: false,
    },
    AccountFault {
        code: 60619,
        meaning: "Line Type Intelligence is not available in the Twilio region of twilio.base_url",
        fix: "point twilio.base_url at a region that offers the package, with an API key of \
              that region",
        one_country: false,
    },
    AccountFault {
        code: 20403,
        meaning: "the Twilio account is suspended or closed",
        fix: "reactivate the account of twilio.account_sid in the Twilio Console or through \
              Twilio Support",
        one_country: false,
    },
    AccountFault {
        code: 20005,
        meaning: "the Twilio account is not active",
        fix: "activate the account of twilio.account_sid or add funds in the Twilio Console",
        one_country: false,
    },
    AccountFault {
        code: 10001,
        meaning: "the Twilio account is not active",
        fix: "add funds to or reactivate the account of twilio.account_sid in the Twilio \
              Console",
        one_country: false,
    },
    AccountFault {
        code: 60601,
        meaning: "the account is not authorised for Line Type Intelligence on Canadian numbers",
        fix: "apply to Twilio for Canadian (CLNPC) lookup access for the account of \
              twilio.account_sid, or set twilio.unknown_sms_capable = true to text numbers of \
              undetermined line type",
        one_country: true,
    },
    AccountFault {
        code: 60614,
        meaning: "numbers of this country must be looked up in another Twilio region",
        fix: "point twilio.base_url at the region Twilio requires for the country (for \
              example IE1 for EU and GB numbers), or set twilio.unknown_sms_capable = true to \
              text numbers of undetermined line type",
        one_country: true,
    },
];

/// The fault of a Twilio code in an error body, whatever the policy: an error body is
/// never a verdict.
pub(crate) fn of_error_code(code: i64) -> Option<AccountFault> {
    FAULTS.iter().copied().find(|f| f.code == code)
}

/// The fault of a Line Type Intelligence `error_code` under `policy`, or `None` if the
/// policy may judge the number by it.
pub(crate) fn of_lookup_error(code: i64, policy: &LineTypePolicy) -> Option<AccountFault> {
    of_error_code(code).filter(|f| !(f.one_country && policy.accept_undetermined))
}

impl AccountFault {
    /// The fatal error, with what Twilio said (already scrubbed) if it said anything.
    pub(crate) fn error(self, twilio_said: Option<&str>) -> ValidationError {
        let mut text = format!(
            "Twilio code {} ({}); to fix: {}",
            self.code, self.meaning, self.fix
        );
        if let Some(said) = twilio_said {
            text.push_str("; Twilio said: ");
            text.push_str(said);
        }
        ValidationError::Misconfigured(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_names_a_setting_or_console_switch() {
        for (i, fault) in FAULTS.iter().enumerate() {
            assert!(
                FAULTS[i + 1..].iter().all(|other| other.code != fault.code),
                "{} twice",
                fault.code
            );
            assert!(
                fault.fix.contains("twilio.") || fault.fix.contains("Twilio Console"),
                "{}",
                fault.code
            );
        }
        assert_eq!(of_error_code(20003), None, "credentials stay Unauthorized");
        assert_eq!(
            of_error_code(60607),
            None,
            "a country not covered is the number's"
        );
    }

    #[test]
    fn one_country_faults_yield_to_a_policy_that_accepts_undetermined_numbers() {
        let strict = LineTypePolicy::default();
        let open = LineTypePolicy {
            accept_undetermined: true,
            ..LineTypePolicy::default()
        };
        for code in [60601, 60614] {
            assert!(of_lookup_error(code, &strict).is_some(), "{code}");
            assert_eq!(of_lookup_error(code, &open), None, "{code}");
        }
        assert!(of_lookup_error(60606, &open).is_some());
        assert_eq!(of_lookup_error(60610, &strict), None);
    }

    #[test]
    fn the_error_names_the_code_the_meaning_and_the_fix() {
        let fault = of_error_code(60606).expect("listed");
        let ValidationError::Misconfigured(text) = fault.error(Some("HTTP 403, Twilio code 60606"))
        else {
            panic!("misconfigured")
        };
        assert!(text.starts_with("Twilio code 60606 (Line Type Intelligence is not enabled"));
        assert!(text.contains("Twilio Console"), "{text}");
        assert!(
            text.ends_with("Twilio said: HTTP 403, Twilio code 60606"),
            "{text}"
        );
    }
}
