//! Removes phone numbers from text that comes from outside.
//!
//! The verification server passes Twilio's error text through, and Twilio's text can
//! carry the destination number (`The 'To' number +1… is not a valid phone number.`; the
//! verification server's `send_sms.go:33-65`). Every error text we log or store goes
//! through [`scrub_phone_numbers`] first. It is deliberately greedy: any run of seven or
//! more digits, however punctuated, becomes `[phone]`.

/// Digits a run must have before it counts as a phone number.
const MIN_DIGITS: usize = 7;

/// Replaces every phone-like run (digits with `+ ( ) - . /` and spaces between them,
/// seven digits or more) with `[phone]`.
pub fn scrub_phone_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || (chars[i] == '+' && next_is_digit(&chars, i)) {
            let (end, digits) = phone_like_run(&chars, i);
            let run = &chars[i..end];
            if digits >= MIN_DIGITS && !is_iso_date(run) && !is_decimal(run) {
                out.push_str("[phone]");
            } else {
                out.extend(&chars[i..end]);
            }
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `YYYY-MM-DD`: dates appear in the server's `invalid_date` messages and are no PII.
fn is_iso_date(run: &[char]) -> bool {
    run.len() == 10
        && run.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == '-',
            _ => c.is_ascii_digit(),
        })
}

/// `250.812345` or the seconds of `16:13:45.123456Z`: one decimal point and nothing else
/// between the digits is a measurement, not a phone (those have two dots, or none).
fn is_decimal(run: &[char]) -> bool {
    run.iter().filter(|c| **c == '.').count() == 1
        && run.iter().all(|c| c.is_ascii_digit() || *c == '.')
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

/// The end of the run starting at `start` and how many digits it holds. Separators count
/// only when a digit follows them, so "call 555-0100." keeps its final period.
fn phone_like_run(chars: &[char], start: usize) -> (usize, usize) {
    let mut end = start;
    let mut digits = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            digits += 1;
            i += 1;
            end = i;
        } else if matches!(c, '+' | '(' | ')' | '-' | '.' | '/' | ' ') {
            i += 1;
        } else {
            break;
        }
    }
    (end, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
