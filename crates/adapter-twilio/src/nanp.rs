//! libphonenumber's verdict on North American numbers (`+1` and ten digits), from its own
//! metadata compiled once instead of looked up per call.
//!
//! The `phonenumber` crate keeps its patterns in a regex cache keyed by pattern text: every
//! match hashes a pattern of up to a kilobyte, and validating one `+1` number walks up to 25
//! regions (the US, Canada and the Caribbean share the code) and re-types it twice. That
//! cost about 25 µs a number and was the largest single item of a run's CPU. Here the same
//! patterns are compiled once into [`regex::Regex`]es anchored at the start, and the crate's
//! own steps are replayed: pick the region (`validator::source_for`: its leading digits,
//! else the first region that types the number), then type the number in it
//! (`validator::number_type`: general pattern, then premium rate, toll free, shared cost,
//! VoIP, personal, pager, UAN, voicemail, fixed line (or fixed line or mobile), mobile).
//!
//! Only national numbers whose first digit is 2–9 are taken: for them the crate's national
//! number is the ten digits as written (no national prefix to strip, no leading zero to
//! keep). [`classify`] answers `None` for anything else and the caller asks the crate.
//! A test holds this module to the crate's answer over every area code.
//!
//! These are range metadata, and they go stale: a verdict from here is never final on its
//! own (see the `structure` module). The offline validator asks it only about numbers whose
//! structure is sound.

use std::sync::LazyLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use phonenumber::Type;
use regex::{Regex, RegexBuilder};

/// libphonenumber's verdict on a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeVerdict {
    /// No region of `+1` has the number in a range of its.
    Invalid,
    /// Valid, of this type.
    Valid(Type),
}

/// The verdict for `e164` when it is `+1` and ten digits starting 2–9; `None` otherwise.
pub fn classify(e164: &str) -> Option<RangeVerdict> {
    let national = e164.strip_prefix("+1")?;
    let bytes = national.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) || bytes[0] < b'2' {
        return None;
    }
    let plan = PLAN.as_ref()?;
    Some(plan.verdict(national))
}

/// The `phonenumber` crate's own answer (`parse`, `is_valid_with`, `number_type`): the
/// reference [`classify`] replays. `None` when the crate cannot parse `e164`.
pub fn crate_verdict(e164: &str) -> Option<RangeVerdict> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    Some(crate_range(&parsed))
}

/// The crate's answer on a number it parsed: the offline validator's answer for numbers
/// outside [`classify`].
pub fn crate_range(parsed: &phonenumber::PhoneNumber) -> RangeVerdict {
    if phonenumber::is_valid_with(&DATABASE, parsed) {
        RangeVerdict::Valid(parsed.number_type(&DATABASE))
    } else {
        RangeVerdict::Invalid
    }
}

/// The compiled regions of `+1`, in the crate's order; `None` if its metadata has none (a
/// metadata problem the caller survives by asking the crate).
static PLAN: LazyLock<Option<Plan>> = LazyLock::new(Plan::compile);

struct Plan {
    regions: Vec<Region>,
}

impl Plan {
    fn compile() -> Option<Self> {
        let mut regions = Vec::new();
        for id in DATABASE.region(&1)? {
            regions.push(Region::compile(DATABASE.by_id(id)?).ok()?);
        }
        (!regions.is_empty()).then_some(Self { regions })
    }

    /// `validator::source_for`, then `validator::number_type` in the region found.
    fn verdict(&self, national: &str) -> RangeVerdict {
        for region in &self.regions {
            // The crate types the number once to choose a region without leading
            // digits and again to judge it there; the second answer is the first.
            let kind = match &region.leading_digits {
                Some(leading) if leading.is_match(national) => region.number_type(national),
                Some(_) => continue,
                None => match region.number_type(national) {
                    Type::Unknown => continue,
                    kind => kind,
                },
            };
            return match kind {
                Type::Unknown => RangeVerdict::Invalid,
                kind => RangeVerdict::Valid(kind),
            };
        }
        RangeVerdict::Invalid
    }
}

/// One region's patterns.
struct Region {
    leading_digits: Option<Regex>,
    general: Range,
    /// The types tried before fixed line, in the crate's order.
    special: Vec<(Type, Range)>,
    fixed_line: Option<Range>,
    mobile: Option<Range>,
    /// The crate calls a fixed-line match `FixedLineOrMobile` outright when the two
    /// patterns are the same text.
    fixed_line_is_mobile: bool,
}

impl Region {
    fn compile(meta: &Metadata) -> Result<Self, regex::Error> {
        let d = meta.descriptors();
        let range = |desc: Option<&Descriptor>| desc.map(Range::compile).transpose();
        let special = [
            (Type::PremiumRate, d.premium_rate()),
            (Type::TollFree, d.toll_free()),
            (Type::SharedCost, d.shared_cost()),
            (Type::Voip, d.voip()),
            (Type::PersonalNumber, d.personal_number()),
            (Type::Pager, d.pager()),
            (Type::Uan, d.uan()),
            (Type::Voicemail, d.voicemail()),
        ]
        .into_iter()
        .filter_map(|(kind, desc)| desc.map(|desc| Range::compile(desc).map(|r| (kind, r))))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            leading_digits: meta
                .leading_digits()
                .map(|r| anchored(r.as_str()))
                .transpose()?,
            general: Range::compile(d.general())?,
            special,
            fixed_line: range(d.fixed_line())?,
            mobile: range(d.mobile())?,
            fixed_line_is_mobile: pattern_text(d.fixed_line()) == pattern_text(d.mobile()),
        })
    }

    /// `validator::number_type`.
    fn number_type(&self, national: &str) -> Type {
        if !self.general.matches(national) {
            return Type::Unknown;
        }
        if let Some((kind, _)) = self.special.iter().find(|(_, r)| r.matches(national)) {
            return *kind;
        }
        let mobile = |n: &str| self.mobile.as_ref().is_some_and(|r| r.matches(n));
        if self
            .fixed_line
            .as_ref()
            .is_some_and(|r| r.matches(national))
        {
            return if self.fixed_line_is_mobile || mobile(national) {
                Type::FixedLineOrMobile
            } else {
                Type::FixedLine
            };
        }
        if mobile(national) {
            Type::Mobile
        } else {
            Type::Unknown
        }
    }
}

fn pattern_text(desc: Option<&Descriptor>) -> Option<&str> {
    desc.map(|d| d.national_number().as_str())
}

/// A descriptor: its pattern and the lengths it allows (`Descriptor::is_match`).
struct Range {
    pattern: Regex,
    possible_lengths: Vec<u16>,
}

impl Range {
    fn compile(desc: &Descriptor) -> Result<Self, regex::Error> {
        Ok(Self {
            pattern: anchored(desc.national_number().as_str())?,
            possible_lengths: desc.possible_length().to_vec(),
        })
    }

    fn matches(&self, national: &str) -> bool {
        let length_allowed = self.possible_lengths.is_empty()
            || u16::try_from(national.len()).is_ok_and(|n| self.possible_lengths.contains(&n));
        length_allowed && self.pattern.is_match(national)
    }
}

/// `pattern` matched from the start only, as the crate's `find(..).start() == 0` is (a
/// match at 0 exists exactly when the leftmost one is there). Compiled like the crate's,
/// whitespace ignored, but without Unicode classes: [`classify`] only ever matches ASCII
/// digits, on which `\d` means the same either way, and the Unicode tables made the
/// compiled patterns take 8 MiB instead of under 1. The closing parenthesis sits on its
/// own line so a `#` comment in the pattern cannot swallow it.
fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern}\n)"))
        .ignore_whitespace(true)
        .unicode(false)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so a failure names a number that reproduces.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// The offline rule over every area code: a number with a structural fault is settled
    /// by the structure alone; every other number is judged by these compiled ranges, which
    /// give exactly the crate's answer. The metadata agrees with every length and area-code
    /// fault; it is looser than the plan only about exchanges: it accepts N11 exchanges in
    /// many geographic area codes, and its Dominican Republic patterns type some 0/1
    /// exchanges (of 800, 809, 829, 849) as toll-free.
    #[test]
    fn agrees_with_the_crate_on_every_area_code() {
        use crate::structure::{nanp_fault, StructuralFault};

        let mut state = 7;
        let mut kinds = std::collections::BTreeSet::new();
        let mut structural = 0;
        let mut looser_metadata = 0;
        for npa in 200..1000 {
            // Each area code with exchanges across the range, including the N11 and 555
            // and the 0/1 exchanges the plan forbids.
            for _ in 0..6 {
                let nxx = lcg(&mut state) % 1000;
                let line = lcg(&mut state) % 10_000;
                let national = format!("{npa:03}{nxx:03}{line:04}");
                let e164 = format!("+1{national}");
                let reference = crate_verdict(&e164).expect("the crate parses it");
                match nanp_fault(&national) {
                    Some(fault) => {
                        structural += 1;
                        if reference != RangeVerdict::Invalid {
                            let n11 = nxx % 100 == 11;
                            let toll_free = reference == RangeVerdict::Valid(Type::TollFree);
                            assert!(fault == StructuralFault::Exchange, "{e164}");
                            assert!(n11 || toll_free, "{e164}: {reference:?}");
                            looser_metadata += 1;
                        }
                    }
                    None => {
                        let fast = classify(&e164).expect("in scope");
                        assert_eq!(fast, reference, "{e164}");
                        kinds.insert(format!("{fast:?}"));
                    }
                }
            }
        }
        // The sample reached every kind of answer: the comparison is not vacuous.
        assert!(kinds.len() >= 4, "{kinds:?}");
        assert!(kinds.contains("Invalid"), "{kinds:?}");
        assert!(structural > 400, "{structural}");
        assert!(looser_metadata > 0, "N11 exchanges the metadata accepts");
    }

    #[test]
    fn agrees_with_the_crate_on_the_caribbean_and_special_ranges() {
        for e164 in [
            "+12425550123", // Bahamas
            "+12463331234", // Barbados
            "+16715551234", // Guam
            "+17875550123", // Puerto Rico
            "+18092345678", // Dominican Republic
            "+18685550123", // Trinidad and Tobago
            "+14165550123", // Toronto
            "+16045550123", // Vancouver
            "+18005551212", // toll free
            "+19005551234", // premium
            "+15005550006", // personal
            "+15555550123", // unassigned area code
            "+14159929960",
            "+12127363100",
        ] {
            assert_eq!(classify(e164), crate_verdict(e164), "{e164}");
        }
    }

    #[test]
    fn leaves_what_it_cannot_answer_exactly_to_the_crate() {
        for e164 in [
            "+441234567890",
            "+1415555012",
            "+141555501234",
            "+10155550123",
            "+11555501234",
            "+1415555012a",
            "4155550123",
            "",
        ] {
            assert_eq!(classify(e164), None, "{e164}");
        }
    }
}
