//! Snowflake identifiers from configuration, validated once and always emitted quoted.
//!
//! Table and column names are the only configuration that ends up inside SQL text (values
//! are always bound), so they are checked here and nowhere else. The rules follow
//! Snowflake's own (docs: "Identifier requirements"): an unquoted name is letters, digits,
//! `_` and `$`, starting with a letter or `_`, and Snowflake stores it upper-cased; a name
//! written in double quotes keeps its case and may hold any printable character, with `""`
//! standing for one `"`. We emit every identifier quoted, upper-casing the unquoted ones
//! exactly as Snowflake would, so `phones` and `"PHONES"` name the same table and nothing
//! a configuration says can change the shape of a statement.

use std::fmt;

/// Longest identifier Snowflake accepts.
const MAX_LEN: usize = 255;

/// One validated identifier (a table, schema, database or column name).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name as Snowflake stores it (unquoted input upper-cased).
    name: String,
}

impl Ident {
    /// Parses one identifier as written in configuration: `phones`, `PHONE_NUMBER` or
    /// `"Mixed Case"`.
    ///
    /// # Errors
    /// A sentence saying what is wrong, without repeating the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let name = if let Some(inner) = text.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or("has an opening double quote without a closing one")?;
            unescape_quoted(inner)?
        } else {
            check_unquoted(text)?;
            text.to_ascii_uppercase()
        };
        if name.chars().count() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        Ok(Self { name })
    }

    /// The stored name (`PHONES` for `phones`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quoted SQL form (`"PHONES"`), safe to place in a statement.
    pub fn sql(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ident({})", self.sql())
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

fn check_unquoted(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    let first = chars.next().expect("not empty");
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(
            "must start with a letter or '_' (write it in double quotes to use other characters)"
                .to_owned(),
        );
    }
    if chars.any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')) {
        return Err("may only contain letters, digits, '_' and '$' (write it in double quotes to use other characters)".to_owned());
    }
    Ok(())
}

fn unescape_quoted(inner: &str) -> Result<String, String> {
    if inner.is_empty() {
        return Err("must not be an empty quoted name".to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() {
            return Err("must not contain control characters".to_owned());
        }
        if c == '"' && chars.next_if_eq(&'"').is_none() {
            return Err(
                "has a lone double quote inside a quoted name (write it as \"\")".to_owned(),
            );
        }
        out.push(c);
    }
    Ok(out)
}

/// A table name with one to three parts (`TABLE`, `SCHEMA.TABLE`, `DATABASE.SCHEMA.TABLE`),
/// always emitted fully qualified so that a session without a current database or schema
/// still reaches the right table.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectName {
    database: Ident,
    schema: Ident,
    table: Ident,
}

impl ObjectName {
    /// Parses a possibly qualified name and fills the missing parts from the configured
    /// database and schema.
    ///
    /// # Errors
    /// A sentence saying which part is wrong.
    pub fn parse(text: &str, database: &Ident, schema: &Ident) -> Result<Self, String> {
        let parts = split_dotted(text)?;
        let mut idents = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let ident = Ident::parse(part).map_err(|e| {
                if parts.len() == 1 {
                    e
                } else {
                    format!("part {} {e}", i + 1)
                }
            })?;
            idents.push(ident);
        }
        let mut idents = idents.into_iter();
        let (database, schema, table) = match parts.len() {
            1 => (
                database.clone(),
                schema.clone(),
                idents.next().expect("one"),
            ),
            2 => (
                database.clone(),
                idents.next().expect("two"),
                idents.next().expect("two"),
            ),
            3 => (
                idents.next().expect("three"),
                idents.next().expect("three"),
                idents.next().expect("three"),
            ),
            _ => return Err("has more than three dot-separated parts".to_owned()),
        };
        Ok(Self {
            database,
            schema,
            table,
        })
    }

    /// The same database and schema, with `suffix` appended to the table name (for the
    /// state table's companion tables).
    pub fn with_suffix(&self, suffix: &str) -> Self {
        Self {
            database: self.database.clone(),
            schema: self.schema.clone(),
            table: Ident {
                name: format!("{}{suffix}", self.table.name),
            },
        }
    }

    /// `("DATABASE", "SCHEMA")`, quoted, for grants on the containers.
    pub fn database_and_schema(&self) -> (String, String) {
        (self.database.sql(), self.schema.sql())
    }

    /// The table part.
    pub fn table(&self) -> &Ident {
        &self.table
    }

    /// `"DATABASE"."SCHEMA"."TABLE"`.
    pub fn sql(&self) -> String {
        format!(
            "{}.{}.{}",
            self.database.sql(),
            self.schema.sql(),
            self.table.sql()
        )
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectName({})", self.sql())
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// Splits on dots outside double quotes.
fn split_dotted(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        return Err("has an opening double quote without a closing one".to_owned());
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(text: &str) -> Ident {
        Ident::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn unquoted_names_are_upper_cased_and_quoted() {
        assert_eq!(ident("phones").sql(), "\"PHONES\"");
        assert_eq!(ident(" Phone_Number$2 ").sql(), "\"PHONE_NUMBER$2\"");
        assert_eq!(ident("_x").name(), "_X");
    }

    #[test]
    fn quoted_names_keep_their_case_and_escape_quotes() {
        assert_eq!(ident("\"Mixed Case\"").sql(), "\"Mixed Case\"");
        assert_eq!(ident("\"say \"\"hi\"\"\"").name(), "say \"hi\"");
        assert_eq!(ident("\"say \"\"hi\"\"\"").sql(), "\"say \"\"hi\"\"\"");
        assert_eq!(ident("\"a.b\"").sql(), "\"a.b\"");
    }

    #[test]
    fn rejects_what_could_change_a_statement() {
        for bad in [
            "",
            "   ",
            "1phones",
            "phones; DROP TABLE x",
            "phones--",
            "a b",
            "\"unterminated",
            "\"lone \" quote\"",
            "\"\"",
            "\"tab\there\"",
            "phönes",
            "a.b",
        ] {
            assert!(Ident::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Ident::parse(&"a".repeat(256)).is_err());
        assert!(Ident::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn object_names_are_qualified_from_the_configured_database_and_schema() {
        let (db, schema) = (ident("analytics"), ident("public"));
        let one = ObjectName::parse("phones", &db, &schema).expect("valid");
        assert_eq!(one.sql(), "\"ANALYTICS\".\"PUBLIC\".\"PHONES\"");
        let two = ObjectName::parse("covid.phones", &db, &schema).expect("valid");
        assert_eq!(two.sql(), "\"ANALYTICS\".\"COVID\".\"PHONES\"");
        let three = ObjectName::parse("\"Other DB\".\"s.x\".t", &db, &schema).expect("valid");
        assert_eq!(three.sql(), "\"Other DB\".\"s.x\".\"T\"");
        assert_eq!(
            one.with_suffix("_MIGRATIONS").sql(),
            "\"ANALYTICS\".\"PUBLIC\".\"PHONES_MIGRATIONS\""
        );
        for bad in ["a.b.c.d", "a..b", ".a", "a.", "a.\"b", "a.b c"] {
            assert!(
                ObjectName::parse(bad, &db, &schema).is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
