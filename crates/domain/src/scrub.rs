//! Removes phone numbers from text that comes from outside, and bounds it.
//!
//! The verification server passes Twilio's error text through, and Twilio's text can
//! carry the destination number (`The 'To' number +1… is not a valid phone number.`; the
//! verification server's `send_sms.go:33-65`). Every error text we log or store goes
//! through [`scrub_phone_numbers`] first. It is deliberately greedy: any run of seven or
//! more digits, however punctuated, becomes `[phone]`. Digits are those of any script
//! (fullwidth `４`, Arabic-Indic `٤`, …), punctuation includes the Unicode dashes, spaces
//! and fullwidth brackets, and a leading `+` or `(` goes with the number. Three shapes are
//! known not to be phones and are kept: ISO dates (`2021-06-01`, `2021/06/01`), uuids,
//! and decimals with one point (`250.812345`, the seconds of a timestamp).
//!
//! Text that is also cut to a length is scrubbed first and cut after
//! ([`scrub_then_truncate`]): cut first, the tail of a number could fall under seven
//! digits and pass. [`bounded_reason`] is that, on one line, for every reason column.

/// Digits a run must have before it counts as a phone number.
const MIN_DIGITS: usize = 7;

/// Longest reason a store keeps, in characters (the ellipsis included).
pub const MAX_REASON_CHARS: usize = 200;

/// What marks a cut.
const ELLIPSIS: char = '\u{2026}';

/// Replaces every phone-like run (digits with `+ ( ) - . /`, spaces and their Unicode
/// look-alikes between them, seven digits or more) with `[phone]`.
pub fn scrub_phone_numbers(text: &str) -> String {
    scrub(text, usize::MAX)
}

/// [`scrub_phone_numbers`], then at most `max_chars` characters, cut on a character
/// boundary.
pub fn scrub_then_truncate(text: &str, max_chars: usize) -> String {
    scrub(text, max_chars).chars().take(max_chars).collect()
}

/// A reason as every store writes it: one line (control characters become spaces), no
/// phone numbers, at most [`MAX_REASON_CHARS`] characters, the last an `…` when cut.
pub fn bounded_reason(text: &str) -> String {
    if is_plain(text) {
        return text.to_owned();
    }
    flatten_scrub_and_bound(text)
}

/// Text [`bounded_reason`] would give back unchanged, known without scrubbing it: our own
/// reason codes (`not_sms_capable:landline`), which are most of what is written, one a
/// record. Printable ASCII (no control character, no digit or separator of another
/// script), within the bound, and fewer than seven digits in all, so no run of it is a
/// phone number.
fn is_plain(text: &str) -> bool {
    text.len() <= MAX_REASON_CHARS
        && text.bytes().all(|b| (b' '..=b'~').contains(&b))
        && text.bytes().filter(u8::is_ascii_digit).count() < MIN_DIGITS
}

/// [`bounded_reason`] the long way: flattened, scrubbed, then cut.
fn flatten_scrub_and_bound(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    // One character more than fits tells whether anything was cut.
    let bounded = scrub_then_truncate(&flat, MAX_REASON_CHARS + 1);
    if bounded.chars().count() <= MAX_REASON_CHARS {
        return bounded;
    }
    let mut cut: String = bounded.chars().take(MAX_REASON_CHARS - 1).collect();
    cut.push(ELLIPSIS);
    cut
}

/// What a phone-like run becomes.
const PHONE: &str = "[phone]";

/// Scrubs `text`, stopping once the output holds `limit` characters.
fn scrub(text: &str, limit: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(limit));
    let mut written = 0usize;
    let mut i = 0;
    while i < chars.len() && written < limit {
        let (end, phone) = match date_at(&chars, i).or_else(|| uuid_at(&chars, i)) {
            Some(len) => (i + len, false),
            None => match number_start(&chars, i) {
                Some(first_digit) => {
                    let (end, digits) = phone_like_run(&chars, i, first_digit);
                    (end, digits >= MIN_DIGITS && !is_decimal(&chars[i..end]))
                }
                None => (i + 1, false),
            },
        };
        if phone {
            out.push_str(PHONE);
            written += PHONE.len();
        } else {
            out.extend(&chars[i..end]);
            written += end - i;
        }
        i = end;
    }
    out
}

/// A digit of any script. Greedy on purpose: the numeric letters and fractions this also
/// takes in never make seven in a row in real error text.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// What may stand between the digits of one number.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '+' | '(' | ')' | '-' | '.' | '/' | ' '
            | '\u{a0}' // no-break space
            | '\u{2007}' | '\u{2009}' | '\u{202f}' | '\u{3000}' // figure, thin, narrow, ideographic spaces
            | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' // zero-width characters
            | '\u{2010}'..='\u{2015}' | '\u{2212}' // hyphens, dashes, minus
            | '\u{ff08}' | '\u{ff09}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff0e}' | '\u{ff0f}' // fullwidth ( ) + - . /
    )
}

/// What may open a number: `+` and `(` (also fullwidth).
fn is_opener(c: char) -> bool {
    matches!(c, '+' | '(' | '\u{ff0b}' | '\u{ff08}')
}

/// Where the number starting at `i` has its first digit: `i` itself for a digit, or just
/// after one or two openers (`+`, `(`, `+(`). `None` when no number starts here, or when
/// the digit begins a date (`(2021-06-01)` keeps its bracket).
fn number_start(chars: &[char], i: usize) -> Option<usize> {
    let first = (i..chars.len().min(i + 3)).find(|&j| !is_opener(chars[j]))?;
    let digit = is_digit(chars[first]);
    (digit && (first == i || date_at(chars, first).is_none())).then_some(first)
}

/// The end of the run starting at `start` (whose first digit is at `first_digit`) and
/// how many digits it holds. Separators count only when a digit follows them, so
/// "call 555-0100." keeps its final period; a date after a separator ends the run. A
/// closing bracket right after the last digit goes with the run when it opened one.
fn phone_like_run(chars: &[char], start: usize, first_digit: usize) -> (usize, usize) {
    let mut end = first_digit;
    let mut digits = 0;
    let mut i = first_digit;
    while i < chars.len() {
        let c = chars[i];
        if is_digit(c) {
            if i > end && date_at(chars, i).is_some() {
                break;
            }
            digits += 1;
            i += 1;
            end = i;
        } else if is_separator(c) {
            i += 1;
        } else {
            break;
        }
    }
    let run = &chars[start..end];
    let opened = run.iter().filter(|c| matches!(c, '(' | '\u{ff08}')).count();
    let closed = run.iter().filter(|c| matches!(c, ')' | '\u{ff09}')).count();
    if opened > closed && matches!(chars.get(end), Some(')' | '\u{ff09}')) {
        end += 1;
    }
    (end, digits)
}

/// `YYYY-MM-DD` or `YYYY/MM/DD` with a month 01–12 and a day 01–31 at `i`, not inside a
/// longer number: dates appear in the server's `invalid_date` messages and are no PII.
/// Its length.
fn date_at(chars: &[char], i: usize) -> Option<usize> {
    const LEN: usize = 10;
    let date = chars.get(i..i + LEN)?;
    let sep = date[4];
    let shaped = matches!(sep, '-' | '/')
        && date.iter().enumerate().all(|(k, c)| match k {
            4 | 7 => *c == sep,
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let two =
        |k: usize| date[k].to_digit(10).unwrap_or(0) * 10 + date[k + 1].to_digit(10).unwrap_or(0);
    let calendar = (1..=12).contains(&two(5)) && (1..=31).contains(&two(8));
    let before = i.checked_sub(1).map(|b| chars[b]);
    let after = chars.get(i + LEN).copied();
    let inside = before.is_some_and(char::is_alphanumeric)
        || after.is_some_and(|c| {
            is_digit(c) || (c == sep && chars.get(i + LEN + 1).is_some_and(|d| is_digit(*d)))
        });
    (calendar && !inside).then_some(LEN)
}

/// A uuid (`8-4-4-4-12` hex digits) at `i`, standing alone. Its length.
fn uuid_at(chars: &[char], i: usize) -> Option<usize> {
    const LEN: usize = 36;
    let uuid = chars.get(i..i + LEN)?;
    let shaped = uuid.iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == '-',
        _ => c.is_ascii_hexdigit(),
    });
    let alone = i.checked_sub(1).is_none_or(|b| !chars[b].is_alphanumeric())
        && chars.get(i + LEN).is_none_or(|c| !c.is_alphanumeric());
    (shaped && alone).then_some(LEN)
}

/// `250.812345` or the seconds of `16:13:45.123456Z`: one decimal point and nothing else
/// between the digits is a measurement, not a phone (those have two dots, or none).
fn is_decimal(run: &[char]) -> bool {
    run.iter().filter(|c| **c == '.').count() == 1
        && run.iter().all(|c| c.is_ascii_digit() || *c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the plain-text shortcut skips changes nothing: over random text of digits,
    /// letters and separators (lengths around the bound, digit counts around seven), the
    /// long way gives back every text the shortcut takes, and the sample holds texts at
    /// both edges.
    #[test]
    fn plain_text_is_what_scrubbing_leaves_unchanged() {
        use rand::{rngs::StdRng, Rng, SeedableRng};

        const ALPHABET: &[u8] = b"0123456789abcXYZ_:- +()./";
        let mut rng = StdRng::seed_from_u64(11);
        let mut next = |n: usize| rng.random_range(0..n);
        let (mut plain, mut six_digits, mut at_bound, mut scrubbed) = (0, 0, 0, 0);
        for _ in 0..20_000 {
            let len = if next(4) == 0 {
                195 + next(10)
            } else {
                next(40)
            };
            // A fifth of the texts hold no digit; the rest one in two to one in five.
            let digit_share = next(5);
            let text: String = (0..len)
                .map(|_| {
                    let i = if digit_share == 0 || next(digit_share + 1) == 0 {
                        10 + next(ALPHABET.len() - 10)
                    } else {
                        next(10)
                    };
                    char::from(ALPHABET[i])
                })
                .collect();
            // One text in eight carries a tab, which only the long way flattens.
            let text = if len > 0 && next(8) == 0 {
                let at = next(len);
                format!("{}\t{}", &text[..at], &text[at + 1..])
            } else {
                text
            };
            let long_way = flatten_scrub_and_bound(&text);
            if is_plain(&text) {
                assert_eq!(long_way, text);
                plain += 1;
                six_digits += usize::from(text.bytes().filter(u8::is_ascii_digit).count() == 6);
                at_bound += usize::from(text.len() == MAX_REASON_CHARS);
            } else if long_way != text {
                scrubbed += 1;
            }
            assert_eq!(bounded_reason(&text), long_way);
        }
        assert!(plain > 1_000, "{plain}");
        assert!(
            six_digits > 0 && scrubbed > 1_000,
            "{six_digits} {scrubbed}"
        );
        assert!(at_bound > 0, "{at_bound}");
    }

    #[test]
    fn removes_numbers_in_any_format() {
        let text =
            "failed to send sms: The 'To' number +1 (415) 555-0123 is not a valid phone number.";
        let scrubbed = scrub_phone_numbers(text);
        assert_eq!(
            scrubbed,
            "failed to send sms: The 'To' number [phone] is not a valid phone number."
        );
        assert_eq!(scrub_phone_numbers("to +14155550123."), "to [phone].");
        assert_eq!(scrub_phone_numbers("415.555.0123"), "[phone]");
    }

    #[test]
    fn keeps_decimals_and_timestamps() {
        let text = "2026-11-28T16:13:45.123456Z records_per_sec=250.8123456789";
        assert_eq!(scrub_phone_numbers(text), text);
        assert_eq!(scrub_phone_numbers("at 415.555.0123."), "at [phone].");
    }

    #[test]
    fn keeps_short_numbers_and_codes() {
        let text =
            "Failed to issue 2 codes. Issued 8 codes successfully. error 21611 at 2021-06-15";
        assert_eq!(scrub_phone_numbers(text), text);
    }
    #[test]
    fn catches_the_usual_spellings_whole() {
        for text in [
            "415.555.0123",
            "(415) 555-0123",
            "+1 415 555 0123",
            "+1 (415) 555-0123",
            "1-415-555-0123",
            "+14155550123",
            "415\u{a0}555\u{a0}0123",
            "415\u{2013}555\u{2013}0123",
            "\u{ff08}415\u{ff09}555\u{ff0d}0123",
        ] {
            assert_eq!(scrub_phone_numbers(text), "[phone]", "{text:?}");
            assert_eq!(
                scrub_phone_numbers(&format!("to {text}, then")),
                "to [phone], then",
                "{text:?}"
            );
        }
    }

    #[test]
    fn catches_non_ascii_digits() {
        for text in [
            "\u{ff14}\u{ff11}\u{ff15}\u{ff15}\u{ff15}\u{ff15}\u{ff10}\u{ff11}\u{ff12}\u{ff13}",
            "\u{664}\u{661}\u{665}\u{667}\u{660}\u{660}\u{662}\u{660}\u{660}\u{663}",
            "\u{6f4}\u{6f1}\u{6f5}-\u{6f5}\u{6f5}\u{6f5}-\u{6f0}\u{6f1}\u{6f2}\u{6f3}",
            "\u{96a}\u{967}\u{96b} \u{96b}\u{96b}\u{96b} \u{966}\u{967}\u{968}\u{969}",
            "415 \u{ff15}\u{ff15}\u{ff15} 0123",
        ] {
            assert_eq!(
                scrub_phone_numbers(&format!("number {text} is invalid")),
                "number [phone] is invalid",
                "{text:?}"
            );
        }
    }

    /// The spellings of `tests/fixtures/hostile/rows.csv`, each scrubbed to no digit run
    /// that could name the person.
    #[test]
    fn catches_the_hostile_corpus_spellings() {
        for (text, want) in [
            ("4157002011", "[phone]"),
            ("(415) 700-2011", "[phone]"),
            ("+1 415.700.2011", "[phone]"),
            ("1-415-700-2011", "[phone]"),
            ("  +1 (415) 7002011 ", "  [phone] "),
            ("+44 7911 123451", "[phone]"),
            ("447700900123", "[phone]"),
            ("(415) 700-2001 ext. 12", "[phone] ext. 12"),
            ("415-700-2002x7", "[phone]x7"),
            (
                "\u{664}\u{661}\u{665}\u{667}\u{660}\u{660}\u{662}\u{660}\u{660}\u{663}",
                "[phone]",
            ),
            (
                "\u{ff14}\u{ff11}\u{ff15}\u{ff17}\u{ff10}\u{ff10}\u{ff12}\u{ff10}\u{ff10}\u{ff14}",
                "[phone]",
            ),
            ("415700200O", "[phone]O"),
            ("123456789012345678901234567890", "[phone]"),
        ] {
            assert_eq!(scrub_phone_numbers(text), want, "{text:?}");
        }
    }

    #[test]
    fn keeps_dates_uuids_and_counts() {
        for text in [
            "2021-06-01",
            "test date 2021-06-01 12:30:45 is too old",
            "between 2021-06-01 and 2021/06/28",
            "(2021-06-01)",
            "error 21611 2021-06-15",
            "uuid 0f8c3e4a-1234-5678-9abc-def012345678 already exists",
            "3a6f0f4e-9d1b-4c43-8b7e-123456789012",
            "issued 10 of 250 codes, 3 failed, 1.5 s",
        ] {
            assert_eq!(scrub_phone_numbers(text), text, "{text:?}");
        }
    }

    #[test]
    fn a_number_shaped_like_a_date_without_a_calendar_date_is_caught() {
        assert_eq!(scrub_phone_numbers("0123-45-67"), "[phone]");
        assert_eq!(scrub_phone_numbers("2021-06-01-55"), "[phone]");
    }

    #[test]
    fn a_number_beside_a_date_is_still_caught() {
        assert_eq!(
            scrub_phone_numbers("4155550123 on 2021-06-01"),
            "[phone] on 2021-06-01"
        );
        assert_eq!(
            scrub_phone_numbers("2021-06-01 +1 415 555 0123"),
            "2021-06-01 [phone]"
        );
    }

    #[test]
    fn scrubs_before_it_truncates() {
        // Cut first, the tail of this number would be six digits and pass.
        let text = format!("{}+1 415 555 0123", "x".repeat(190));
        let bounded = bounded_reason(&text);
        assert!(!bounded.contains("415"), "{bounded}");
        assert!(bounded.chars().count() <= MAX_REASON_CHARS, "{bounded}");
        assert_eq!(scrub_then_truncate("abcdef", 4), "abcd");
        assert_eq!(scrub_then_truncate("abc", 4), "abc");
        for width in 1..40 {
            let cut = scrub_then_truncate("ab +1 415 555 0123 cd", width);
            assert!(cut.chars().count() <= width, "{width}: {cut}");
            assert!(
                "ab [phone] cd".starts_with(cut.trim_end_matches('\u{2026}')),
                "{width}: {cut}"
            );
        }
    }

    #[test]
    fn reasons_are_bounded_on_a_char_boundary_and_one_line() {
        let long = "\u{e9}".repeat(500);
        let bounded = bounded_reason(&long);
        assert_eq!(bounded.chars().count(), MAX_REASON_CHARS);
        assert!(bounded.ends_with('\u{2026}'), "{bounded}");
        assert_eq!(
            bounded_reason("rejected:phone_number_invalid"),
            "rejected:phone_number_invalid"
        );
        assert_eq!(bounded_reason(""), "");
        assert_eq!(bounded_reason("gave_up:a\nb\r\tc\u{0}"), "gave_up:a b  c ");
        assert_eq!(bounded_reason("a\u{2028}b"), "a b");
        // A number split over lines is one number once the text is one line.
        assert_eq!(bounded_reason("to 415\n555\n0123"), "to [phone]");
        let exact = "y".repeat(MAX_REASON_CHARS);
        assert_eq!(bounded_reason(&exact), exact);
    }

    #[test]
    fn every_reason_code_is_bounded_and_scrubbed() {
        use crate::outcome::{NotSentReason, Outcome};
        let outside = format!("call +1 (415) 555-0123\n{}", "z".repeat(1_000));
        for outcome in [
            Outcome::not_sent(NotSentReason::Rejected {
                error_code: outside.clone(),
            }),
            Outcome::not_sent(NotSentReason::NotSmsCapable {
                line_type: outside.clone(),
            }),
            Outcome::not_sent(NotSentReason::InvalidNumber {
                detail: outside.clone(),
            }),
        ] {
            let code = outcome.reason_code();
            assert!(code.chars().count() <= MAX_REASON_CHARS, "{code}");
            assert!(code.contains("call [phone] zzz"), "{code}");
            assert!(!code.contains('\n'), "{code}");
        }
    }
}
