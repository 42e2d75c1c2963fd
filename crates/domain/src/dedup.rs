//! The dedup key: the verification server's `uuid` for one notification.
//!
//! The server answers `409 uuid_already_exists` to a second request with the same uuid,
//! so a key that is the same every time we meet the same person and test makes a double
//! text impossible, across retries, crashes, runs, releases and machines.
//!
//! **Architecture invariant: this derivation never changes.** The key is
//! `HMAC-SHA256(secret, "ca-notify/dedup/v1" 0x00 E.164 0x00 business-key)`, where the
//! business key is `date:YYYY-MM-DD` (the test date) or `id:<record id>` when there is
//! none; the first 16 bytes become an RFC 9562 version-8 UUID. Changing any byte of this
//! would let a retry after an upgrade text the same person again. A new scheme would need
//! a new label (`v2`) and a migration plan, not an edit.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use crate::phone::PhoneNumber;
use crate::recipient::RecordId;

const DOMAIN_LABEL: &[u8] = b"ca-notify/dedup/v1";

/// The secret behind every dedup key. Without it nobody can tell from a uuid whose phone
/// it was; with a new one every uuid changes, so it must be kept as long as the ledger.
#[derive(Clone)]
pub struct DedupSecret {
    // HMAC keyed once: setting the key costs two of the four SHA-256 blocks a key needs,
    // and the engine derives one key per recipient.
    keyed: Hmac<Sha256>,
}

impl DedupSecret {
    /// Wraps a configured secret.
    ///
    /// # Errors
    /// A message when the secret is shorter than 16 bytes: too weak to keep phone
    /// numbers from being guessed back out of the uuids.
    pub fn new(secret: SecretString) -> Result<Self, &'static str> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < 16 {
            return Err("the dedup secret must be at least 16 bytes long");
        }
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes a key of any length");
        Ok(Self { keyed })
    }
}

impl fmt::Debug for DedupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DedupSecret([REDACTED])")
    }
}

/// The verification server's `uuid` for one (phone, test) pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(Uuid);

impl DedupKey {
    /// Derives the key for a recipient. Two records with the same phone and test date get
    /// the same key, and so at most one SMS between them.
    pub fn derive(
        secret: &DedupSecret,
        phone: &PhoneNumber,
        test_date: Option<NaiveDate>,
        record_id: &RecordId,
    ) -> Self {
        let mut mac = secret.keyed.clone();
        mac.update(DOMAIN_LABEL);
        mac.update(&[0]);
        mac.update(phone.expose_e164().as_bytes());
        mac.update(&[0]);
        match test_date {
            Some(date) => {
                mac.update(b"date:");
                mac.update(iso_date(date).as_bytes());
            }
            None => {
                mac.update(b"id:");
                mac.update(record_id.as_str().as_bytes());
            }
        }
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Parses a key read back from a store.
    ///
    /// # Errors
    /// When the text is not a UUID.
    pub fn parse(text: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(text).map(Self)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// `YYYY-MM-DD`, exactly as chrono's `%Y-%m-%d` writes it, without parsing a format
/// string for every key.
fn iso_date(date: NaiveDate) -> String {
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return date.format("%Y-%m-%d").to_string();
    }
    let mut out = String::with_capacity(10);
    for (value, width) in [(year as u32, 4), (date.month(), 2), (date.day(), 2)] {
        if !out.is_empty() {
            out.push('-');
        }
        for shift in (0..width).rev() {
            let digit = value / 10u32.pow(shift) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    out
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DedupKey({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::PhoneParser;

    fn secret() -> DedupSecret {
        DedupSecret::new("a test secret of enough length".to_owned().into()).expect("long")
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneParser::default().parse(raw).expect("valid")
    }

    #[test]
    fn is_a_valid_version_8_uuid() {
        let key = DedupKey::derive(&secret(), &phone("4155550123"), None, &"r1".into());
        assert_eq!(key.as_uuid().get_version_num(), 8);
        assert_eq!(key.as_uuid().get_variant(), uuid::Variant::RFC4122);
        assert_eq!(DedupKey::parse(&key.to_string()).expect("round trip"), key);
    }

    #[test]
    fn is_stable_across_releases() {
        // Pinned: if this changes, people already texted would be texted again.
        let date = NaiveDate::from_ymd_opt(2021, 6, 1);
        let key = DedupKey::derive(&secret(), &phone("+14155550123"), date, &"r1".into());
        assert_eq!(key.to_string(), "4a12dd2b-d067-84f0-92b1-906252ff6182");
    }

    #[test]
    fn same_phone_and_test_date_share_a_key_whatever_the_format_or_record() {
        let date = NaiveDate::from_ymd_opt(2021, 6, 1);
        let a = DedupKey::derive(&secret(), &phone("(415) 555-0123"), date, &"a".into());
        let b = DedupKey::derive(&secret(), &phone("14155550123"), date, &"b".into());
        assert_eq!(a, b);
        let later = NaiveDate::from_ymd_opt(2021, 6, 2);
        let c = DedupKey::derive(&secret(), &phone("4155550123"), later, &"a".into());
        assert_ne!(a, c, "a new test is a new notification");
    }

    #[test]
    fn the_date_is_written_as_chrono_writes_it() {
        for (y, m, d) in [
            (2021, 6, 1),
            (1, 1, 1),
            (999, 12, 31),
            (9999, 12, 31),
            (10000, 1, 1),
            (-5, 3, 4),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).expect("date");
            assert_eq!(iso_date(date), date.format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn without_a_test_date_the_record_id_is_the_business_key() {
        let p = phone("4155550123");
        let a = DedupKey::derive(&secret(), &p, None, &"a".into());
        let b = DedupKey::derive(&secret(), &p, None, &"b".into());
        assert_ne!(a, b);
    }

    #[test]
    fn depends_on_the_secret_and_hides_it() {
        let other = DedupSecret::new("another secret, also long".to_owned().into()).expect("ok");
        let p = phone("4155550123");
        assert_ne!(
            DedupKey::derive(&secret(), &p, None, &"a".into()),
            DedupKey::derive(&other, &p, None, &"a".into())
        );
        assert!(!format!("{:?}", secret()).contains("secret of"));
        assert!(DedupSecret::new("short".to_owned().into()).is_err());
    }
}
