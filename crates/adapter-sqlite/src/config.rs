//! Settings of the SQLite store: the file, the source table's names (the workspace's one
//! [`SourceTable`], checked here by SQLite's rules), the worker's name.

use std::path::PathBuf;
use std::time::Duration;

pub use ca_notify_ports::config::SourceTable;

use crate::identifier::{Identifier, InvalidIdentifier};

/// The source table with every name validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidTable {
    pub name: Identifier,
    pub id: Identifier,
    pub phone: Identifier,
    pub test_date: Option<Identifier>,
    pub symptom_date: Option<Identifier>,
    pub test_type: Option<Identifier>,
}

/// Checks every name of `table` as SQLite sees it (its time-zone column, which SQLite
/// records do not carry, is not read).
///
/// # Errors
/// [`InvalidIdentifier`] for the first name that is not a plain identifier, or a table
/// qualified with a schema other than `main`.
pub fn validate_table(table: &SourceTable) -> Result<(), InvalidIdentifier> {
    ValidTable::new(table).map(drop)
}

impl ValidTable {
    pub(crate) fn new(table: &SourceTable) -> Result<Self, InvalidIdentifier> {
        let name = match table.name.split_once('.') {
            Some((schema, table)) if schema.eq_ignore_ascii_case("main") => table,
            Some(_) => {
                return Err(InvalidIdentifier {
                    what: "table (only the schema `main` exists in a single SQLite file)",
                    name: table.name.clone(),
                })
            }
            None => table.name.as_str(),
        };
        let optional = |what, column: &Option<String>| {
            column
                .as_deref()
                .map(|c| Identifier::new(what, c))
                .transpose()
        };
        let valid = ValidTable {
            name: Identifier::new("table", name)?,
            id: Identifier::new("id column", &table.id_column)?,
            phone: Identifier::new("phone column", &table.phone_column)?,
            test_date: optional("test date column", &table.test_date_column)?,
            symptom_date: optional("symptom date column", &table.symptom_date_column)?,
            test_type: optional("test type column", &table.test_type_column)?,
        };
        if valid
            .name
            .as_str()
            .to_ascii_lowercase()
            .starts_with("ca_notify_")
        {
            return Err(InvalidIdentifier {
                what: "table (names starting with ca_notify_ are the pipeline's own)",
                name: table.name.clone(),
            });
        }
        Ok(valid)
    }
    /// The configured columns in record order, `None` where a column is absent.
    pub fn columns(&self) -> [Option<&Identifier>; 5] {
        [
            Some(&self.id),
            Some(&self.phone),
            self.test_date.as_ref(),
            self.symptom_date.as_ref(),
            self.test_type.as_ref(),
        ]
    }
}

/// Settings of one SQLite store handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file, created on first use.
    pub path: PathBuf,
    /// The recipients' source table.
    pub table: SourceTable,
    /// This worker's name, stamped next to each claim so an operator can see who holds
    /// what. Not used for ownership (the claim token is).
    pub worker_id: String,
    /// How long a statement waits for another process's write lock before the store
    /// reports itself unavailable.
    pub busy_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("ca-notify.db"),
            table: SourceTable::default(),
            worker_id: format!("pid-{}", std::process::id()),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteConfig {
    /// The defaults with another file.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        validate_table(&SourceTable::default()).expect("defaults");
        let t = SourceTable {
            name: "main.people".into(),
            test_date_column: None,
            ..SourceTable::default()
        };
        let t = ValidTable::new(&t).expect("main-qualified");
        assert_eq!(t.name.as_str(), "people");
        assert!(t.test_date.is_none());
    }

    #[test]
    fn every_name_is_checked() {
        let bad = "x\"; DROP TABLE recipients; --";
        let cases: Vec<SourceTable> = vec![
            SourceTable {
                name: bad.into(),
                ..SourceTable::default()
            },
            SourceTable {
                id_column: bad.into(),
                ..SourceTable::default()
            },
            SourceTable {
                phone_column: bad.into(),
                ..SourceTable::default()
            },
            SourceTable {
                test_date_column: Some(bad.into()),
                ..SourceTable::default()
            },
            SourceTable {
                symptom_date_column: Some(bad.into()),
                ..SourceTable::default()
            },
            SourceTable {
                test_type_column: Some(bad.into()),
                ..SourceTable::default()
            },
            SourceTable {
                name: "other.recipients".into(),
                ..SourceTable::default()
            },
            SourceTable {
                name: "ca_notify_state".into(),
                ..SourceTable::default()
            },
        ];
        for table in cases {
            assert!(validate_table(&table).is_err(), "{table:?}");
        }
    }
}
