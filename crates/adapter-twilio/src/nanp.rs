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
//! The patterns come from the generated [`ranges`] module, the `+1` regions of the
//! crate's metadata written out as text, not from the crate's `DATABASE`: loading that
//! parses every pattern of every country (about 575 million instructions, 0.1–0.15 s of
//! CPU at each start, most of a small scheduled run's; `docs/benchmarks.md`). A test
//! renders the module again from `DATABASE` and fails when the two differ (a `phonenumber`
//! update): `CA_NOTIFY_WRITE_NANP_RANGES=1 cargo test -p ca-notify-adapter-twilio nanp`
//! rewrites it.
//!
//! These are range metadata, and they go stale: a verdict from here is never final on its
//! own (see the `structure` module). The offline validator asks it only about numbers whose
//! structure is sound.

use std::sync::LazyLock;

use phonenumber::metadata::DATABASE;
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

#[rustfmt::skip]
mod ranges;

/// One region of `+1` as the crate's metadata describes it (the generated [`ranges`],
/// where a comment names the region).
struct RegionText {
    leading_digits: Option<&'static str>,
    general: RangeText,
    /// The types tried before fixed line, in the crate's order.
    special: &'static [(Type, RangeText)],
    fixed_line: Option<RangeText>,
    mobile: Option<RangeText>,
}

/// A descriptor as text: its national-number pattern and the lengths it allows.
struct RangeText {
    pattern: &'static str,
    possible_lengths: &'static [u16],
}

/// The compiled regions of `+1`, in the crate's order; `None` if a pattern does not
/// compile (which a test rules out; the caller would survive it by asking the crate).
static PLAN: LazyLock<Option<Plan>> = LazyLock::new(Plan::compile);

struct Plan {
    regions: Vec<Region>,
}

impl Plan {
    fn compile() -> Option<Self> {
        let regions = ranges::REGIONS
            .iter()
            .map(Region::compile)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
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
    fn compile(text: &RegionText) -> Result<Self, regex::Error> {
        let range = |r: Option<&RangeText>| r.map(Range::compile).transpose();
        let special = text
            .special
            .iter()
            .map(|(kind, r)| Range::compile(r).map(|r| (*kind, r)))
            .collect::<Result<Vec<_>, _>>()?;
        let pattern = |r: Option<&RangeText>| r.map(|r| r.pattern);
        Ok(Self {
            leading_digits: text.leading_digits.map(anchored).transpose()?,
            general: Range::compile(&text.general)?,
            special,
            fixed_line: range(text.fixed_line.as_ref())?,
            mobile: range(text.mobile.as_ref())?,
            fixed_line_is_mobile: pattern(text.fixed_line.as_ref())
                == pattern(text.mobile.as_ref()),
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

/// A descriptor: its pattern and the lengths it allows (`Descriptor::is_match`).
struct Range {
    pattern: Regex,
    possible_lengths: &'static [u16],
}

impl Range {
    fn compile(text: &RangeText) -> Result<Self, regex::Error> {
        Ok(Self {
            pattern: anchored(text.pattern)?,
            possible_lengths: text.possible_lengths,
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

    /// The offline rule over every area code: a number with a structural fault is settled
    /// by the structure alone; every other number is judged by these compiled ranges, which
    /// give exactly the crate's answer. The metadata agrees with every length and area-code
    /// fault; it is looser than the plan only about exchanges: it accepts N11 exchanges in
    /// many geographic area codes, and its Dominican Republic patterns type some 0/1
    /// exchanges (of 800, 809, 829, 849) as toll-free.
    #[test]
    fn agrees_with_the_crate_on_every_area_code() {
        use crate::structure::{nanp_fault, StructuralFault};
        use rand::{rngs::StdRng, Rng, SeedableRng};

        // Seeded, so a failure names a number that reproduces.
        let mut rng = StdRng::seed_from_u64(7);
        let mut kinds = std::collections::BTreeSet::new();
        let mut structural = 0;
        let mut looser_metadata = 0;
        for npa in 200..1000 {
            // Each area code with exchanges across the range, including the N11 and 555
            // and the 0/1 exchanges the plan forbids.
            for _ in 0..6 {
                let nxx: u32 = rng.random_range(0..1000);
                let line: u32 = rng.random_range(0..10_000);
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

    /// The generated [`ranges`] module as the crate's metadata gives it now.
    fn render_ranges() -> String {
        use phonenumber::metadata::Descriptor;
        let range = |d: &Descriptor| {
            format!(
                "RangeText {{ pattern: {:?}, possible_lengths: &{:?} }}",
                d.national_number().as_str(),
                d.possible_length()
            )
        };
        let optional = |d: Option<&Descriptor>| {
            d.map_or_else(|| "None".to_owned(), |d| format!("Some({})", range(d)))
        };
        let mut out = String::from(
            "//! The `+1` regions of libphonenumber's metadata (the `phonenumber` crate), in the\n\
             //! crate's order. Generated from `phonenumber::metadata::DATABASE` by `nanp`'s tests;\n\
             //! do not edit: `CA_NOTIFY_WRITE_NANP_RANGES=1 cargo test -p\n\
             //! ca-notify-adapter-twilio nanp` writes it again.\n\n\
             use phonenumber::Type;\n\n\
             use super::{RangeText, RegionText};\n\n\
             pub(super) static REGIONS: &[RegionText] = &[\n",
        );
        for id in DATABASE.region(&1).expect("+1 has regions") {
            let meta = DATABASE.by_id(id).expect("a region of +1 has metadata");
            let d = meta.descriptors();
            // The crate's order of the types tried before fixed line (validator::number_type).
            let special: Vec<String> = [
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
            .filter_map(|(kind, desc)| {
                desc.map(|desc| format!("(Type::{kind:?}, {})", range(desc)))
            })
            .collect();
            out.push_str(&format!(
                "    // {id}\n    RegionText {{\n        leading_digits: {:?},\n        \
                 general: {},\n        special: &[{}],\n        fixed_line: {},\n        \
                 mobile: {},\n    }},\n",
                meta.leading_digits().map(|r| r.as_str()),
                range(d.general()),
                special.join(", "),
                optional(d.fixed_line()),
                optional(d.mobile()),
            ));
        }
        out.push_str("];\n");
        out
    }

    /// The generated ranges are the crate's metadata: a `phonenumber` update that changes
    /// them fails here until the module is written again.
    #[test]
    fn the_generated_ranges_are_the_crates_metadata() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/nanp/ranges.rs");
        let rendered = render_ranges();
        if std::env::var_os("CA_NOTIFY_WRITE_NANP_RANGES").is_some() {
            std::fs::write(path, &rendered).expect("src/nanp/ranges.rs written");
        }
        let on_disk = std::fs::read_to_string(path).expect("src/nanp/ranges.rs read");
        assert!(
            on_disk == rendered,
            "src/nanp/ranges.rs is not phonenumber's metadata of today; \
             CA_NOTIFY_WRITE_NANP_RANGES=1 cargo test -p ca-notify-adapter-twilio nanp writes it again"
        );
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
