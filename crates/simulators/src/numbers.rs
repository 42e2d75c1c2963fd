//! Ten-digit North American numbers for synthetic people (tests, benches, the demo),
//! which the Twilio simulator judges by their last digit (0–4 mobile, 5 landline, 9
//! invalid).
//!
//! Every number is one the job's offline pre-filter accepts as a valid number: area code
//! 415, a thousand people per exchange from 200 upward, skipping the N11 service codes
//! (211 community services … 911 emergency), which are never a subscriber's exchange.

/// The area code of every synthetic number.
const AREA: &str = "415";
/// The first exchange handed out.
const FIRST_EXCHANGE: usize = 200;
/// The N11 service codes at or above [`FIRST_EXCHANGE`], in order.
const N11_EXCHANGES: [usize; 8] = [211, 311, 411, 511, 611, 711, 811, 911];
/// People per exchange: the line number's first three digits are the serial's last three.
const PER_EXCHANGE: usize = 1000;
/// How many serials get distinct numbers; `national` starts over after them.
pub const DISTINCT: usize = (1000 - FIRST_EXCHANGE - N11_EXCHANGES.len()) * PER_EXCHANGE;

/// The national number of the `serial`-th synthetic person, ending in `last` (one digit).
/// Serials below [`DISTINCT`] give distinct numbers (for a given `last`); larger ones
/// start over.
///
/// # Panics
/// When `last` is not one digit.
pub fn national(serial: usize, last: usize) -> String {
    assert!(
        last < 10,
        "the last digit of a number is one digit, not {last}"
    );
    let serial = serial % DISTINCT;
    let mut exchange = FIRST_EXCHANGE + serial / PER_EXCHANGE;
    for n11 in N11_EXCHANGES {
        if exchange >= n11 {
            exchange += 1;
        }
    }
    format!("{AREA}{exchange:03}{:03}{last}", serial % PER_EXCHANGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_ten_digits_in_area_415() {
        assert_eq!(national(0, 1), "4152000001");
        assert_eq!(national(10_999, 5), "4152109995");
        assert_eq!(national(DISTINCT - 1, 9), "4159999999");
    }

    #[test]
    fn no_number_is_in_an_n11_exchange() {
        // Person 11,000 would have been in 211: a number the pre-filter rightly refuses,
        // for someone the world calls a mobile.
        assert_eq!(national(11_000, 1), "4152120001");
        for serial in (0..DISTINCT).step_by(PER_EXCHANGE) {
            let exchange: usize = national(serial, 1)[3..6].parse().expect("digits");
            assert_ne!(
                exchange % 100,
                11,
                "serial {serial} got exchange {exchange}"
            );
            assert!((200..=999).contains(&exchange), "exchange {exchange}");
        }
    }

    #[test]
    fn serials_below_distinct_get_distinct_numbers_and_then_start_over() {
        let numbers: std::collections::HashSet<String> =
            (0..DISTINCT).map(|serial| national(serial, 1)).collect();
        assert_eq!(numbers.len(), DISTINCT);
        assert_eq!(national(DISTINCT, 1), national(0, 1));
    }

    #[test]
    #[should_panic(expected = "one digit")]
    fn a_last_digit_of_two_digits_is_refused() {
        let _ = national(0, 10);
    }
}
