//! Structural faults: what no update of the numbering plans' range metadata can ever make
//! a valid number. Only these may settle a number offline for good.
//!
//! Range metadata goes stale. New area codes open every year (357 in California in March
//! 2025 and 624 in New York in 2023 are in no range of this build's metadata; 274, 472 and
//! 983 only in part of their exchanges), and the copy of libphonenumber's ranges compiled
//! into this binary never changes while it runs for years.
//! A verdict that rests on it ("no region has this number", "this range is a landline") is
//! only an opinion: it goes to Twilio, the authority, or with no Twilio it lets the number
//! through (the `offline` module). Faults of the plan's fixed structure are facts:
//!
//! * North American numbers (`+1`): exactly ten digits, NPA-NXX-XXXX; the area code (NPA)
//!   and the exchange (NXX) start with 2–9; no N11 area code (211, 311, …, 911 are service
//!   codes); no N11 exchange in a geographic area code ("the central office code must not
//!   be in the form N11"; only non-geographic codes such as toll-free ones may use N11
//!   exchanges, since their area code is always dialled).
//! * Other countries: the lengths libphonenumber calls possible for the country code (its
//!   `isPossibleNumber`: the possible lengths of the country's number types, local-only
//!   lengths included), over every region that shares the code. A country's number lengths
//!   are part of its plan's structure and change far more rarely than its ranges.
//!
//! libphonenumber also knows Canada's seven-digit `310-xxxx` numbers (a UAN dialled without
//! an area code, inside Canada only); as `+1` and seven digits they are too short here. Its
//! range patterns are looser than the NANP structure about exchanges: they accept N11
//! exchanges in many geographic area codes, and the Dominican Republic's patterns type some
//! 0/1 exchanges (800-14x, 809/829/849-0xx and -1xx) as toll-free. Either way the number
//! is no textable phone; the structure wins, and the `nanp` test and bench measure both.

use phonenumber::metadata::DATABASE;
use phonenumber::Type;

/// A fault in the structure of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructuralFault {
    /// Something other than ASCII digits after the `+`.
    NotADigit,
    /// Fewer digits than the plan's numbers have.
    TooShort,
    /// More digits than the plan's numbers have.
    TooLong,
    /// A length between the plan's shortest and longest that none of its numbers has.
    InvalidLength,
    /// A North American area code starting with 0 or 1, or of the form N11.
    AreaCode,
    /// A North American exchange starting with 0 or 1, or of the form N11 in a geographic
    /// area code.
    Exchange,
    /// libphonenumber cannot read it as a number at all.
    Unparsable,
}

impl StructuralFault {
    /// The stable code written into the reason column, after `offline:`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotADigit => "not_a_number",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidLength => "invalid_length",
            Self::AreaCode => "invalid_area_code",
            Self::Exchange => "invalid_exchange",
            Self::Unparsable => "unparsable",
        }
    }
}

/// The fault in `national`, the digits after `+1`, if its structure is not NPA-NXX-XXXX.
pub fn nanp_fault(national: &str) -> Option<StructuralFault> {
    let b = national.as_bytes();
    if !b.iter().all(u8::is_ascii_digit) {
        return Some(StructuralFault::NotADigit);
    }
    match b.len() {
        0..=9 => return Some(StructuralFault::TooShort),
        10 => {}
        _ => return Some(StructuralFault::TooLong),
    }
    let (npa, nxx) = (&b[..3], &b[3..6]);
    if npa[0] < b'2' || is_n11(npa) {
        return Some(StructuralFault::AreaCode);
    }
    if nxx[0] < b'2' || (is_n11(nxx) && is_geographic(npa)) {
        return Some(StructuralFault::Exchange);
    }
    None
}

fn is_n11(code: &[u8]) -> bool {
    code[1] == b'1' && code[2] == b'1'
}

/// Whether an area code may be geographic. The non-geographic ones are NANPA's service
/// access codes: the "easily recognizable codes" (second and third digits equal: 500, 533,
/// 600, 700, 800, 833, …, 900), 52X (personal communications), 710 (US government) and
/// 88X (toll-free, 880–887 and 889 reserved).
fn is_geographic(npa: &[u8]) -> bool {
    let recognizable = npa[1] == npa[2];
    let service = matches!(npa, [b'5', b'2', _] | [b'8', b'8', _] | b"710");
    !(recognizable || service)
}

/// The types whose lengths are a country's number lengths (not its short codes).
const NUMBER_TYPES: [Type; 12] = [
    Type::Unknown, // the general descriptor, in case a build fills it
    Type::FixedLine,
    Type::Mobile,
    Type::TollFree,
    Type::PremiumRate,
    Type::SharedCost,
    Type::PersonalNumber,
    Type::Voip,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
    Type::NoInternational,
];

/// The fault in the length of a number outside `+1`: `country_code` and the digits of its
/// E.164 text after the `+`. The length is counted on the E.164 text, not on the
/// `phonenumber` crate's national number, which can lose digits (it strips what looks like
/// a national prefix: `+7 800…` becomes `00…`).
pub fn length_fault(country_code: u16, e164_digits: usize) -> Option<StructuralFault> {
    let regions = DATABASE.by_code(&country_code)?;
    // libphonenumber's build tool makes the general descriptor's possible lengths the union
    // of its number types' (BuildMetadataFromXml); the `phonenumber` crate leaves them
    // empty, so the union is taken here.
    let mut lengths: Vec<u16> = regions
        .iter()
        .flat_map(|meta| {
            NUMBER_TYPES
                .iter()
                .filter_map(|t| meta.descriptors().get(*t))
        })
        .flat_map(|desc| {
            desc.possible_length()
                .iter()
                .chain(desc.possible_local_length())
                .copied()
        })
        .collect();
    if lengths.is_empty() {
        // No lengths to judge by: the metadata, not the number, is lacking.
        return None;
    }
    lengths.sort_unstable();
    let code_digits = country_code.to_string().len();
    let length = u16::try_from(e164_digits.saturating_sub(code_digits)).unwrap_or(u16::MAX);
    if lengths.binary_search(&length).is_ok() {
        None
    } else if length < lengths[0] {
        Some(StructuralFault::TooShort)
    } else if lengths.last().is_some_and(|&longest| length > longest) {
        Some(StructuralFault::TooLong)
    } else {
        Some(StructuralFault::InvalidLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nanp_structure() {
        for (national, want) in [
            ("4155550123", None),
            ("2745550123", None), // a 2020s area code: structurally fine
            ("3575550123", None),
            ("8004111234", None), // N11 exchange in a toll-free code
            ("9002111234", None),
            ("5214111234", None),
            ("8854111234", None),
            ("7104111234", None),
            ("415555012", Some(StructuralFault::TooShort)),
            ("", Some(StructuralFault::TooShort)),
            ("41555501234", Some(StructuralFault::TooLong)),
            ("415555O123", Some(StructuralFault::NotADigit)),
            ("0155550123", Some(StructuralFault::AreaCode)),
            ("1155550123", Some(StructuralFault::AreaCode)),
            ("2115550123", Some(StructuralFault::AreaCode)),
            ("9115550123", Some(StructuralFault::AreaCode)),
            ("4150550123", Some(StructuralFault::Exchange)),
            ("4151550123", Some(StructuralFault::Exchange)),
            ("4152110123", Some(StructuralFault::Exchange)),
            ("4159110123", Some(StructuralFault::Exchange)),
            ("8001550123", Some(StructuralFault::Exchange)),
        ] {
            assert_eq!(nanp_fault(national), want, "{national}");
        }
    }

    #[test]
    fn the_possible_lengths_of_other_countries() {
        let fault = |e164: &str| {
            let parsed = phonenumber::parse(None, e164).expect("parses");
            length_fault(parsed.code().value(), e164.len() - 1)
        };
        assert_eq!(fault("+447912345678"), None, "GB mobile");
        assert_eq!(
            fault("+447700900123"),
            None,
            "a drama number: possible, not valid"
        );
        assert_eq!(fault("+4915112345678"), None, "DE mobile");
        assert_eq!(fault("+390236618300"), None, "IT fixed, leading zero kept");
        assert_eq!(
            fault("+78001234567"),
            None,
            "the crate's national number loses the 8"
        );
        // Six digits is a GB local-only length: possible, as libphonenumber says.
        assert_eq!(fault("+44791234"), None);
        assert_eq!(fault("+4479123456789012"), Some(StructuralFault::TooLong));
        // France: nine digits after +33, nothing else.
        assert_eq!(fault("+33612345678"), None);
        assert_eq!(fault("+3361234567"), Some(StructuralFault::TooShort));
        assert_eq!(fault("+336123456789"), Some(StructuralFault::TooLong));
    }

    /// libphonenumber's example number of every type of every region is a real number:
    /// no structural rule may reject one, except Canada's seven-digit UAN (`310-xxxx`,
    /// dialled without an area code inside Canada only), which is no NANP phone number.
    #[test]
    fn no_example_number_of_any_region_has_a_structural_fault() {
        let mut checked = 0;
        for meta in DATABASE.iter() {
            for kind in NUMBER_TYPES {
                let Some(example) = meta.descriptors().get(kind).and_then(|d| d.example()) else {
                    continue;
                };
                let e164 = format!("+{}{example}", meta.country_code());
                if meta.id() == "CA" && kind == Type::Uan {
                    assert_eq!(
                        nanp_fault(example),
                        Some(StructuralFault::TooShort),
                        "{e164}"
                    );
                    continue;
                }
                let fault = match e164.strip_prefix("+1") {
                    Some(national) => nanp_fault(national),
                    None => length_fault(meta.country_code(), e164.len() - 1),
                };
                assert_eq!(fault, None, "{} {kind:?} {e164}", meta.id());
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked} examples");
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            StructuralFault::NotADigit,
            StructuralFault::TooShort,
            StructuralFault::TooLong,
            StructuralFault::InvalidLength,
            StructuralFault::AreaCode,
            StructuralFault::Exchange,
            StructuralFault::Unparsable,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|f| f.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
