//! SQL identifiers from configuration: validated, then quoted.
//!
//! Table and column names cannot be bound parameters, so they are the one thing spliced
//! into SQL text. Only plain names pass (`^[A-Za-z_][A-Za-z0-9_$]*$`, at most 128
//! characters), and they are double-quoted anyway, so a name can neither inject SQL nor
//! collide with a keyword. Every value is a bound parameter.

use std::fmt;

/// Longest identifier accepted; far above any real name, far below SQLite's limits.
const MAX_LEN: usize = 128;

/// A validated identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

/// A configured name that is not a plain SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is not a plain SQL identifier (letters, digits, _ and $, not starting with a digit, at most 128 characters)")]
pub struct InvalidIdentifier {
    /// Which setting (`table`, `phone column`, …).
    pub what: &'static str,
    /// The rejected text.
    pub name: String,
}

impl Identifier {
    /// Validates `name`, the value of the setting `what`.
    ///
    /// # Errors
    /// [`InvalidIdentifier`] unless `name` matches `^[A-Za-z_][A-Za-z0-9_$]*$` and is at
    /// most 128 characters long.
    pub fn new(what: &'static str, name: &str) -> Result<Self, InvalidIdentifier> {
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if valid_start && valid_rest && name.len() <= MAX_LEN {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidIdentifier {
                what,
                name: name.to_owned(),
            })
        }
    }

    /// The name as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL text. Validation already excludes `"`.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["recipients", "_x", "Phone_Number", "col$1", "a"] {
            let id = Identifier::new("column", name).expect(name);
            assert_eq!(id.quoted(), format!("\"{name}\""));
        }
    }

    #[test]
    fn rejects_anything_that_could_carry_sql() {
        for name in [
            "",
            "1abc",
            "phone\"; DROP TABLE recipients; --",
            "a b",
            "a.b",
            "a-b",
            "x'",
            "[x]",
            "`x`",
            "naïve",
            "a;b",
            "a\0b",
        ] {
            let err = Identifier::new("column", name).expect_err(name);
            assert_eq!(err.name, name);
        }
        assert!(Identifier::new("table", &"a".repeat(129)).is_err());
        assert!(Identifier::new("table", &"a".repeat(128)).is_ok());
    }
}
