//! What `check` and `migrate` found, for the operator.

use std::fmt;

/// One configured source column as Snowflake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnReport {
    /// What the store uses it for (`id`, `phone`, `test_date`, …).
    pub role: &'static str,
    /// The column's name as Snowflake stores it.
    pub name: String,
    /// Snowflake's type name (`fixed`, `text`, `date`, …).
    pub snowflake_type: String,
}

/// The result of [`SnowflakeStore::check`](crate::SnowflakeStore::check): the session
/// works, and the configured tables and columns exist and are readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The fully qualified source table.
    pub source_table: String,
    /// The configured source columns, all present.
    pub source_columns: Vec<ColumnReport>,
    /// The fully qualified state table.
    pub state_table: String,
    /// The state table's schema version; `None` when it has not been created yet.
    pub schema_version: Option<u32>,
    /// The schema version this build writes.
    pub latest_schema_version: u32,
    /// Records a claim would take now; `None` without a state table.
    pub pending_records: Option<u64>,
}

impl CheckReport {
    /// Whether `migrate` has work to do before the store can run.
    pub fn needs_migration(&self) -> bool {
        self.schema_version
            .is_none_or(|version| version < self.latest_schema_version)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Snowflake session: ok")?;
        writeln!(f, "Source table {}: ok", self.source_table)?;
        for c in &self.source_columns {
            writeln!(f, "  {:<13} {} ({})", c.role, c.name, c.snowflake_type)?;
        }
        match self.schema_version {
            None => writeln!(
                f,
                "State table {}: not created yet (run the migration)",
                self.state_table
            )?,
            Some(v) if v < self.latest_schema_version => writeln!(
                f,
                "State table {}: schema version {v}, {} available (run the migration)",
                self.state_table, self.latest_schema_version
            )?,
            Some(v) => writeln!(f, "State table {}: schema version {v}", self.state_table)?,
        }
        if let Some(pending) = self.pending_records {
            writeln!(f, "Records waiting: {pending}")?;
        }
        Ok(())
    }
}

/// The result of [`SnowflakeStore::migrate`](crate::SnowflakeStore::migrate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version before.
    pub from_version: u32,
    /// The schema version now.
    pub to_version: u32,
}

impl MigrationReport {
    /// Whether anything was applied.
    pub fn applied_any(&self) -> bool {
        self.to_version > self.from_version
    }
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied_any() {
            write!(
                f,
                "state table migrated from schema version {} to {}",
                self.from_version, self.to_version
            )
        } else {
            write!(
                f,
                "state table already at schema version {}",
                self.to_version
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_whether_a_migration_is_due() {
        let mut report = CheckReport {
            source_table: "\"DB\".\"S\".\"T\"".into(),
            source_columns: vec![ColumnReport {
                role: "id",
                name: "ID".into(),
                snowflake_type: "fixed".into(),
            }],
            state_table: "\"DB\".\"S\".\"CA_NOTIFY_STATE\"".into(),
            schema_version: None,
            latest_schema_version: 1,
            pending_records: None,
        };
        assert!(report.needs_migration());
        assert!(report.to_string().contains("not created yet"));
        report.schema_version = Some(1);
        report.pending_records = Some(42);
        assert!(!report.needs_migration());
        let shown = report.to_string();
        assert!(shown.contains("schema version 1"), "{shown}");
        assert!(shown.contains("Records waiting: 42"), "{shown}");
    }
}
