//! Settings of the SQLite store: the file, the source table's names, the worker's name.

use std::path::PathBuf;
use std::time::Duration;

use crate::identifier::{Identifier, InvalidIdentifier};

/// The recipients' source table and its column names. `test_date`, `symptom_date` and
/// `test_type` may be absent (`None`): the records then carry `None` for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// The table, optionally qualified as `main.<name>` (the only schema a single file has).
    pub name: String,
    /// The record id column: opaque, unique per record.
    pub id: String,
    /// The phone column.
    pub phone: String,
    /// The test date column (`YYYY-MM-DD` text).
    pub test_date: Option<String>,
    /// The symptom onset date column.
    pub symptom_date: Option<String>,
    /// The test type column (`confirmed`, `likely`, `negative`, `user-report`).
    pub test_type: Option<String>,
}

impl Default for SourceTable {
    fn default() -> Self {
        Self {
            name: "recipients".to_owned(),
            id: "id".to_owned(),
            phone: "phone".to_owned(),
            test_date: Some("test_date".to_owned()),
            symptom_date: Some("symptom_date".to_owned()),
            test_type: Some("test_type".to_owned()),
        }
    }
}

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

impl SourceTable {
    /// Checks every name.
    ///
    /// # Errors
    /// [`InvalidIdentifier`] for the first name that is not a plain identifier, or a
    /// table qualified with a schema other than `main`.
    pub fn validate(&self) -> Result<(), InvalidIdentifier> {
        self.validated().map(drop)
    }

    pub(crate) fn validated(&self) -> Result<ValidTable, InvalidIdentifier> {
        let name = match self.name.split_once('.') {
            Some((schema, table)) if schema.eq_ignore_ascii_case("main") => table,
            Some(_) => {
                return Err(InvalidIdentifier {
                    what: "table (only the schema `main` exists in a single SQLite file)",
                    name: self.name.clone(),
                })
            }
            None => self.name.as_str(),
        };
        let optional = |what, column: &Option<String>| {
            column
                .as_deref()
                .map(|c| Identifier::new(what, c))
                .transpose()
        };
        let table = ValidTable {
            name: Identifier::new("table", name)?,
            id: Identifier::new("id column", &self.id)?,
            phone: Identifier::new("phone column", &self.phone)?,
            test_date: optional("test date column", &self.test_date)?,
            symptom_date: optional("symptom date column", &self.symptom_date)?,
            test_type: optional("test type column", &self.test_type)?,
        };
        if table
            .name
            .as_str()
            .to_ascii_lowercase()
            .starts_with("ca_notify_")
        {
            return Err(InvalidIdentifier {
                what: "table (names starting with ca_notify_ are the pipeline's own)",
                name: self.name.clone(),
            });
        }
        Ok(table)
    }
}

impl ValidTable {
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
        SourceTable::default().validate().expect("defaults");
        let t = SourceTable {
            name: "main.people".into(),
            test_date: None,
            ..SourceTable::default()
        }
        .validated()
        .expect("main-qualified");
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
                id: bad.into(),
                ..SourceTable::default()
            },
            SourceTable {
                phone: bad.into(),
                ..SourceTable::default()
            },
            SourceTable {
                test_date: Some(bad.into()),
                ..SourceTable::default()
            },
            SourceTable {
                symptom_date: Some(bad.into()),
                ..SourceTable::default()
            },
            SourceTable {
                test_type: Some(bad.into()),
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
            assert!(table.validate().is_err(), "{table:?}");
        }
    }
}
