//! The state table's schema and its versioned migrations.
//!
//! The store keeps its own state (claims, outcomes, attempts) in a table it creates
//! next to the source table, and every issue attempt's answer per dedup uuid in an
//! attempt log beside it; it never writes to the source table itself, and phone numbers
//! are not copied. Each migration is a list of idempotent statements (`IF NOT EXISTS`),
//! recorded in a companion `<STATE>_MIGRATIONS` table once applied, so running `migrate`
//! twice, or from two workers at once, is harmless. A migration is never edited once
//! released; a change is a new version.

use crate::config::Names;
use crate::sql::{Sql, Value};

/// One schema version.
pub(crate) struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub statements: fn(&Names) -> Vec<String>,
}

/// Every migration, oldest first. Versions are consecutive from 1.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "create the state table and its meta table",
        statements: v1_create_state_table,
    },
    Migration {
        version: 2,
        description: "create the attempt log",
        statements: v2_create_attempt_log,
    },
    // Version 3 is reserved for the claim protocol's change (issue 15), developed beside
    // this one; it lands before 4 when both are merged.
    Migration {
        version: 4,
        description: "the run id on each state row; the runs table",
        statements: v4_runs,
    },
];

/// The meta key naming the source table (and id column) a state table belongs to.
pub(crate) const SOURCE_TABLE_KEY: &str = "source_table";

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The state table's columns, in the order `check` verifies them.
pub(crate) const STATE_COLUMNS: &[&str] = &[
    "RECORD_ID",
    "SENT",
    "OUTCOME",
    "REASON",
    "DEDUP_UUID",
    "ATTEMPTS",
    "LAST_DEFERRAL",
    "PROCESSED_AT",
    "PROCESSED_BY",
    "CLAIM_TOKEN",
    "CLAIMED_BY",
    "LEASE_UNTIL",
    "LAST_TOKEN",
    "UPDATED_AT",
];

/// The attempt log's columns, in the order `check` verifies them.
pub(crate) const ATTEMPT_COLUMNS: &[&str] = &[
    "DEDUP_UUID",
    "CLAIM_TOKEN",
    "RECORD_ID",
    "ATTEMPT_INDEX",
    "ANSWER",
    "RECORDED_AT",
];

fn v1_create_state_table(names: &Names) -> Vec<String> {
    let pk = names.state.with_suffix("_PK");
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {state} (\
           RECORD_ID VARCHAR NOT NULL COMMENT 'The source row id, as text', \
           SENT NUMBER(1,0) COMMENT '1 sent or already sent, 0 not sent, NULL not decided yet', \
           OUTCOME VARCHAR COMMENT 'sent, already_sent or not_sent; NULL until decided', \
           REASON VARCHAR COMMENT 'Stable reason code of the outcome', \
           DEDUP_UUID VARCHAR COMMENT 'The uuid sent to the verification server', \
           ATTEMPTS NUMBER(10,0) NOT NULL DEFAULT 0 COMMENT 'Write-backs that reached this record (deferrals and the final one)', \
           LAST_DEFERRAL VARCHAR COMMENT 'Why the last run deferred it', \
           PROCESSED_AT TIMESTAMP_NTZ COMMENT 'When the outcome was written (UTC)', \
           PROCESSED_BY VARCHAR COMMENT 'Worker that wrote the outcome', \
           CLAIM_TOKEN VARCHAR COMMENT 'Token of the current claim, NULL when unclaimed', \
           CLAIMED_BY VARCHAR COMMENT 'Worker holding the current claim', \
           LEASE_UNTIL TIMESTAMP_NTZ COMMENT 'When the current claim lapses (UTC)', \
           LAST_TOKEN VARCHAR COMMENT 'Claim token of the last write-back', \
           UPDATED_AT TIMESTAMP_NTZ COMMENT 'Last change (UTC)', \
           CONSTRAINT {pk} PRIMARY KEY (RECORD_ID)\
         ) COMMENT = 'ca-notify pipeline state per recipient record; created and migrated by ca-notify'",
        state = names.state.sql(),
        pk = pk.table().sql(),
    ),
    format!(
        "CREATE TABLE IF NOT EXISTS {meta} (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL) \
         COMMENT = 'Facts about the ca-notify state table, such as the source table it belongs to'",
        meta = names.meta.sql(),
    )]
}

/// Version 2 (issue 12): the attempt log. The state table needs no change: Snowflake
/// enforces no `CHECK`, so `OUTCOME = 'unconfirmed'` and `REASON = 'texted_before'` are
/// stored like any other value (the column comment of version 1 still lists the old three
/// outcomes; released migrations are never edited).
fn v2_create_attempt_log(names: &Names) -> Vec<String> {
    let pk = names.attempts.with_suffix("_PK");
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {log} (\
           DEDUP_UUID VARCHAR NOT NULL COMMENT 'The uuid the attempt sent to the verification server', \
           CLAIM_TOKEN VARCHAR NOT NULL COMMENT 'Claim token of the write-back that kept it', \
           RECORD_ID VARCHAR NOT NULL COMMENT 'The record the attempt was for', \
           ATTEMPT_INDEX NUMBER(10,0) NOT NULL COMMENT 'Its place among the attempts of the record in that write-back', \
           ANSWER VARCHAR NOT NULL COMMENT 'issued, already_exists, failed_after_commit, refused or no_answer', \
           RECORDED_AT TIMESTAMP_NTZ COMMENT 'When it was kept (UTC)', \
           CONSTRAINT {pk} PRIMARY KEY (DEDUP_UUID, CLAIM_TOKEN, RECORD_ID, ATTEMPT_INDEX)\
         ) COMMENT = 'ca-notify attempt log: every issue attempt answer per dedup uuid; append-only'",
        log = names.attempts.sql(),
        pk = pk.table().sql(),
    )]
}

/// Version 4 (issue 16): the run whose write-back last reached a record, and the runs
/// table, so "when did this last succeed" has an answer without a metrics system.
fn v4_runs(names: &Names) -> Vec<String> {
    let pk = names.runs.with_suffix("_PK");
    vec![
        format!(
            "ALTER TABLE {state} ADD COLUMN IF NOT EXISTS \
               RUN_ID VARCHAR COMMENT 'The run whose write-back last reached the record'",
            state = names.state.sql(),
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {runs} (\
               RUN_ID VARCHAR NOT NULL COMMENT 'Made by the job (a UUID v7)', \
               WORKER VARCHAR NOT NULL COMMENT 'The worker that ran it', \
               STARTED_AT TIMESTAMP_NTZ NOT NULL COMMENT 'When it started (UTC)', \
               ENDED_AT TIMESTAMP_NTZ COMMENT 'When it ended (UTC); NULL while running or after a crash', \
               SUCCEEDED NUMBER(1,0) COMMENT '1 when the command exited 0, 0 when not, NULL until ended', \
               STOP VARCHAR COMMENT 'The stop reason code: deadline, drained, shutdown, misconfigured, ...', \
               CLAIMED NUMBER(19,0) COMMENT 'Records claimed', \
               SENT NUMBER(19,0) COMMENT 'Codes issued and texted', \
               ALREADY_SENT NUMBER(19,0) COMMENT 'Records already texted before', \
               NOT_SENT NUMBER(19,0) COMMENT 'Records not texted for good, unconfirmed included', \
               UNCONFIRMED NUMBER(19,0) COMMENT 'Records whose text nobody can confirm', \
               DEFERRED NUMBER(19,0) COMMENT 'Records handed back undecided', \
               CONSTRAINT {pk} PRIMARY KEY (RUN_ID)\
             ) COMMENT = 'ca-notify runs: one row per run, its start, end, counts and stop reason'",
            runs = names.runs.sql(),
            pk = pk.table().sql(),
        ),
    ]
}

/// The runs table's columns, in the order the store reads them.
pub(crate) const RUN_COLUMNS: &[&str] = &[
    "RUN_ID",
    "WORKER",
    "STARTED_AT",
    "ENDED_AT",
    "SUCCEEDED",
    "STOP",
    "CLAIMED",
    "SENT",
    "ALREADY_SENT",
    "NOT_SENT",
    "UNCONFIRMED",
    "DEFERRED",
];

/// The source table the state table belongs to, as recorded.
pub(crate) fn read_binding(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT VALUE FROM {meta} WHERE KEY = ? ORDER BY VALUE",
            meta = names.meta.sql()
        ),
        binds: vec![Value::Text(Some(SOURCE_TABLE_KEY.to_owned()))],
    }
}

/// Records the source table the state table belongs to, unless one is recorded.
pub(crate) fn record_binding(names: &Names) -> Sql {
    Sql {
        text: format!(
            "INSERT INTO {meta} (KEY, VALUE) SELECT ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM {meta} WHERE KEY = ?)",
            meta = names.meta.sql()
        ),
        binds: vec![
            Value::Text(Some(SOURCE_TABLE_KEY.to_owned())),
            Value::Text(Some(binding(names))),
            Value::Text(Some(SOURCE_TABLE_KEY.to_owned())),
        ],
    }
}

/// How a source table is named in the meta table: the table and its id column.
pub(crate) fn binding(names: &Names) -> String {
    format!("{}({})", names.source.table.sql(), names.source.id.sql())
}

/// Creates the migrations table if needed.
pub(crate) fn create_migrations_table(names: &Names) -> Sql {
    Sql {
        text: format!(
            "CREATE TABLE IF NOT EXISTS {migrations} (\
               VERSION NUMBER(10,0) NOT NULL, DESCRIPTION VARCHAR, APPLIED_AT TIMESTAMP_NTZ, APPLIED_BY VARCHAR\
             ) COMMENT = 'Schema versions of the ca-notify state table'",
            migrations = names.migrations.sql(),
        ),
        binds: Vec::new(),
    }
}

/// The applied schema version (0 when none is recorded).
pub(crate) fn current_version(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT COALESCE(MAX(VERSION), 0) AS VERSION FROM {migrations}",
            migrations = names.migrations.sql(),
        ),
        binds: Vec::new(),
    }
}

/// Records `migration` as applied, once.
pub(crate) fn record_version(names: &Names, migration: &Migration, worker: &str) -> Sql {
    Sql {
        text: format!(
            "INSERT INTO {migrations} (VERSION, DESCRIPTION, APPLIED_AT, APPLIED_BY) \
             SELECT ?, ?, SYSDATE(), ? WHERE NOT EXISTS (SELECT 1 FROM {migrations} WHERE VERSION = ?)",
            migrations = names.migrations.sql(),
        ),
        binds: vec![
            Value::Int(Some(i64::from(migration.version))),
            Value::Text(Some(migration.description.to_owned())),
            Value::Text(Some(worker.to_owned())),
            Value::Int(Some(i64::from(migration.version))),
        ],
    }
}

/// Every statement `migrate` runs on a new schema, as a DBA reviews them.
pub(crate) fn ddl_for_review(names: &Names) -> String {
    let mut statements = vec![create_migrations_table(names).text];
    for m in MIGRATIONS {
        statements.extend((m.statements)(names));
    }
    statements
        .iter()
        .map(|s| format!("{s};"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn words(text: &str) -> String {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
            .replace(" )", ")")
    }

    #[test]
    fn the_ddl_in_the_docs_is_the_ddl_migrate_runs() {
        let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/store-snowflake.md");
        let doc = std::fs::read_to_string(doc_path).expect("docs/store-snowflake.md");
        let (_, rest) = doc
            .split_once("<!-- ddl:begin -->")
            .expect("a ddl:begin marker");
        let (block, _) = rest
            .split_once("<!-- ddl:end -->")
            .expect("a ddl:end marker");
        let documented: String = block
            .lines()
            .filter(|l| !l.starts_with("```") && !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut c = config();
        c.database = "COVID".into();
        c.schema = "PUBLIC".into();
        let names = c.names().expect("valid");
        assert_eq!(
            words(&documented),
            words(&ddl_for_review(&names)),
            "docs/store-snowflake.md shows DDL that differs from what migrate runs"
        );
    }

    /// Consecutive from one, except version 3, reserved for issue 15's claim protocol
    /// (developed beside version 4); once both are merged every version is present.
    #[test]
    fn versions_are_consecutive_from_one() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut expected: Vec<u32> = (1..=latest_version()).collect();
        if !versions.contains(&3) {
            expected.retain(|&v| v != 3);
        }
        assert_eq!(versions, expected);
    }

    #[test]
    fn every_statement_is_idempotent_and_names_only_our_tables() {
        let names = config().names().expect("valid");
        for m in MIGRATIONS {
            for statement in (m.statements)(&names) {
                assert!(
                    statement.contains("IF NOT EXISTS"),
                    "v{} is not idempotent: {statement}",
                    m.version
                );
                assert!(
                    statement.contains(&names.state.sql())
                        || statement.contains(&names.meta.sql())
                        || statement.contains(&names.attempts.sql())
                        || statement.contains(&names.runs.sql())
                );
                assert!(!statement.contains(&names.source.table.sql()));
            }
        }
    }

    #[test]
    fn the_table_has_every_column_the_store_uses() {
        let names = config().names().expect("valid");
        let ddl = (MIGRATIONS[0].statements)(&names).join(" ");
        for column in STATE_COLUMNS {
            assert!(ddl.contains(&format!("{column} ")), "{column} missing");
        }
        let log = (MIGRATIONS[1].statements)(&names).join(" ");
        for column in ATTEMPT_COLUMNS {
            assert!(log.contains(&format!("{column} ")), "{column} missing");
        }
        let runs = v4_runs(&names).join(" ");
        assert!(runs.contains("ADD COLUMN IF NOT EXISTS RUN_ID "));
        for column in RUN_COLUMNS {
            assert!(runs.contains(&format!("{column} ")), "{column} missing");
        }
    }
}
