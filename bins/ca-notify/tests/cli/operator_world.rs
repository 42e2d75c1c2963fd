//! The operator's world on either store, seeded the same way: the recipients of
//! [`people`] (all tested today) in the store's source table with its state tables ready,
//! the two simulators, and a TOML configuration naming the store, which every command of
//! the world is run with. On SQLite the records come in through `ca-notify import`; on
//! Snowflake (fakesnow) they are inserted into a `RECIPIENTS` table of a database of the
//! test's own, stamped with their arrival (`source.arrived_at_column = "ARRIVED_AT"`, as
//! a loading job stamps them), and the state tables are made by `ca-notify migrate`, as
//! an operator makes them. The `[source]` defaults (`recipients (id, phone, test_date,
//! …)`) name the rest on both.
//!
//! A test looks at and arranges the store through [`OperatorWorld::query`] and
//! [`OperatorWorld::execute`]: one statement text for both stores, with `{state}`,
//! `{source}` and `{runs}` standing for the store's tables (Snowflake upper-cases the
//! unquoted column names, so they are the same words) and `?` for text bound as a
//! parameter.
//!
//! fakesnow runs behind the Snowflake adapter's shim, started once per test binary by
//! `crates/adapter-snowflake/tests/support/fakesnow.rs`; without it the Snowflake tests
//! fail (never skip), naming how to install it (`scripts/start-fakesnow.sh
//! --install-only`).

#[path = "../../../../crates/adapter-snowflake/tests/support/fakesnow.rs"]
#[allow(dead_code)]
mod fakesnow;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ca_notify_integration_tests::{people, CliOutput};
use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::SimConfig;
use chrono::{DateTime, Utc};
use snowflake_connector_rs::{
    AuthConfig, CellValue, Client, ClientConfig, EndpointConfig, Session, SessionConfig, Statement,
};

use crate::harness::World;

/// Which store a world runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The SQLite file (`store.kind = "sqlite"`).
    Sqlite,
    /// Snowflake, here fakesnow (`store.kind = "snowflake"`).
    Snowflake,
}

enum Backend {
    Sqlite,
    Snowflake { session: Session, database: String },
}

/// Every row of the state, source and runs tables, as text, by table.
pub type Snapshot = BTreeMap<&'static str, Vec<Vec<Option<String>>>>;

/// A [`World`] whose store is either kind, with the configuration file naming it.
pub struct OperatorWorld {
    /// The simulators, the directory and the recipients.
    pub world: World,
    /// The store the commands use.
    pub kind: StoreKind,
    backend: Backend,
    config: PathBuf,
}

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

impl OperatorWorld {
    /// `count` recipients (see [`people`]), all tested today, in a fresh store of `kind`,
    /// nothing claimed yet.
    pub async fn start(kind: StoreKind, count: usize) -> Self {
        match kind {
            StoreKind::Sqlite => {
                let world =
                    World::start(count, TwilioSimConfig::default(), SimConfig::default()).await;
                let config = world.dir.path().join("ca-notify.toml");
                std::fs::write(
                    &config,
                    format!(
                        "[store]\nkind = \"sqlite\"\npath = {:?}\n",
                        world.db().display().to_string()
                    ),
                )
                .expect("config written");
                Self {
                    world,
                    kind,
                    backend: Backend::Sqlite,
                    config,
                }
            }
            StoreKind::Snowflake => {
                let world = Self::start_on_snowflake(count).await;
                let migrate = world.run(&["migrate"]);
                assert_eq!(migrate.code, Some(0), "{}", migrate.all());
                world
            }
        }
    }

    /// On Snowflake, the source table filled and no state table made yet: what a new
    /// operator meets before `ca-notify migrate`.
    pub async fn start_without_state_tables(count: usize) -> Self {
        Self::start_on_snowflake(count).await
    }

    async fn start_on_snowflake(count: usize) -> Self {
        let world = World::start_without_store(
            people(count),
            TwilioSimConfig::default(),
            SimConfig::default(),
        )
        .await;
        let base_url = tokio::task::spawn_blocking(|| fakesnow::fakesnow().base_url.clone())
            .await
            .expect("fakesnow starts");
        let user = unique("operator");
        let client = Client::new(
            ClientConfig::new(&user, "fake", AuthConfig::password("fake"))
                .with_session(SessionConfig::new().with_session_parameter("TIMEZONE", "UTC".into()))
                .with_endpoint(EndpointConfig::custom_base_url(
                    base_url.parse().expect("a URL"),
                )),
        )
        .expect("admin client");
        let session = client.create_session().await.expect("admin login");
        let database = unique("OPERATOR");
        let config = world.dir.path().join("ca-notify.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nkind = \"snowflake\"\n\n[snowflake]\naccount = \"fake\"\n\
                 user = {user:?}\npassword = \"not-checked-by-fakesnow\"\n\
                 warehouse = \"test_wh\"\ndatabase = {database:?}\nschema = \"PUBLIC\"\n\
                 base_url = {base_url:?}\nauto_migrate = false\n\n\
                 [source]\narrived_at_column = \"ARRIVED_AT\"\n"
            ),
        )
        .expect("config written");
        let this = Self {
            world,
            kind: StoreKind::Snowflake,
            backend: Backend::Snowflake {
                session,
                database: database.clone(),
            },
            config,
        };
        for ddl in [
            format!("CREATE DATABASE \"{database}\""),
            format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"PUBLIC\""),
            this.sql(
                "CREATE TABLE {source} (ID VARCHAR, PHONE VARCHAR, TEST_DATE DATE, \
                 SYMPTOM_DATE VARCHAR, TEST_TYPE VARCHAR, ARRIVED_AT TIMESTAMP_NTZ)",
            ),
        ] {
            this.execute(&ddl, &[]).await;
        }
        let today = Utc::now().date_naive().to_string();
        for p in &this.world.people {
            this.execute(
                "INSERT INTO {source} (ID, PHONE, TEST_DATE, ARRIVED_AT) \
                 VALUES (?, ?, ?, SYSDATE())",
                &[&p.id, &p.national, &today],
            )
            .await;
        }
        this
    }

    /// The command pointed at this world's simulators, without the configuration file
    /// (see [`OperatorWorld::run_cli`]).
    pub fn cli(&self) -> ca_notify_integration_tests::Cli {
        self.world.cli()
    }

    /// Runs the command with this world's configuration file.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        self.run_cli(&self.cli(), args)
    }

    /// Runs `cli` (this world's, changed by the test) with the configuration file.
    pub fn run_cli(&self, cli: &ca_notify_integration_tests::Cli, args: &[&str]) -> CliOutput {
        Self::run_with(cli, &self.config, args)
    }

    fn run_with(cli: &ca_notify_integration_tests::Cli, config: &Path, args: &[&str]) -> CliOutput {
        let config = config.display().to_string();
        let mut all = vec!["--config", &config];
        all.extend_from_slice(args);
        cli.run(&all)
    }

    /// Runs the command with this world's configuration less `source.arrived_at_column`
    /// (an environment variable cannot unset it: empty values are ignored).
    pub fn run_without_arrival_column(&self, args: &[&str]) -> CliOutput {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let config = self.world.dir.path().join("without-arrival.toml");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("arrived_at_column"))
            .collect();
        std::fs::write(&config, kept.join("\n")).expect("config written");
        Self::run_with(&self.cli(), &config, args)
    }

    /// `statement` with the store's table names in place of `{state}`, `{source}` and
    /// `{runs}`.
    pub fn sql(&self, statement: &str) -> String {
        let (state, source, runs) = match &self.backend {
            Backend::Sqlite => (
                "ca_notify_state".to_owned(),
                "recipients".to_owned(),
                "ca_notify_runs".to_owned(),
            ),
            Backend::Snowflake { database, .. } => {
                let table = |name: &str| format!("\"{database}\".\"PUBLIC\".\"{name}\"");
                (
                    table("CA_NOTIFY_STATE"),
                    table("RECIPIENTS"),
                    table("CA_NOTIFY_STATE_RUNS"),
                )
            }
        };
        statement
            .replace("{state}", &state)
            .replace("{source}", &source)
            .replace("{runs}", &runs)
    }

    /// The rows `statement` returns, every cell as text (`None` for NULL).
    pub async fn query(&self, statement: &str, binds: &[&str]) -> Vec<Vec<Option<String>>> {
        let statement = self.sql(statement);
        match &self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(self.world.db()).expect("store opens");
                conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
                let mut stmt = conn
                    .prepare(&statement)
                    .unwrap_or_else(|e| panic!("{e}: {statement}"));
                let columns = stmt.column_count();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(binds), |row| {
                        (0..columns)
                            .map(|i| row.get::<_, rusqlite::types::Value>(i).map(sqlite_text))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap_or_else(|e| panic!("{e}: {statement}"));
                rows.map(|r| r.expect("row")).collect()
            }
            Backend::Snowflake { session, .. } => {
                let mut bound = Statement::new_positional(statement.clone());
                for b in binds {
                    bound = bound.bind(Some((*b).to_owned()));
                }
                let rows: Vec<snowflake_connector_rs::DynamicRow> = session
                    .query(bound)
                    .await
                    .unwrap_or_else(|e| panic!("{e}: {statement}"))
                    .collect()
                    .await
                    .expect("rows");
                rows.iter()
                    .map(|row| row.values().iter().map(snowflake_text).collect())
                    .collect()
            }
        }
    }

    /// Runs a statement that changes rows; the number it changed.
    pub async fn execute(&self, statement: &str, binds: &[&str]) -> u64 {
        match &self.backend {
            Backend::Sqlite => {
                let statement = self.sql(statement);
                let conn = rusqlite::Connection::open(self.world.db()).expect("store opens");
                conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
                let changed = conn
                    .execute(&statement, rusqlite::params_from_iter(binds))
                    .unwrap_or_else(|e| panic!("{e}: {statement}"));
                u64::try_from(changed).expect("a count")
            }
            // Snowflake answers a DML statement with one row whose first cell is the
            // number of rows it inserted, updated or deleted (DDL: a status text).
            Backend::Snowflake { .. } => self
                .query(statement, binds)
                .await
                .first()
                .and_then(|row| row.first().cloned().flatten())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }

    /// A timestamp as the store's `processed_at` column takes it from text.
    pub fn timestamp(&self, at: DateTime<Utc>) -> String {
        match self.kind {
            StoreKind::Sqlite => at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            StoreKind::Snowflake => at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        }
    }

    /// A lease end as the store's `lease_until` column takes it from text (SQLite: Unix
    /// milliseconds; Snowflake: a UTC timestamp).
    pub fn lease_until(&self, at: DateTime<Utc>) -> String {
        match self.kind {
            StoreKind::Sqlite => at.timestamp_millis().to_string(),
            StoreKind::Snowflake => self.timestamp(at),
        }
    }

    /// Every row of the state, source and runs tables.
    pub async fn snapshot(&self) -> Snapshot {
        let mut out = Snapshot::new();
        for (name, table) in [
            ("state", "{state}"),
            ("source", "{source}"),
            ("runs", "{runs}"),
        ] {
            let rows = self
                .query(&format!("SELECT * FROM {table} ORDER BY 1"), &[])
                .await;
            out.insert(name, rows);
        }
        out
    }

    /// Panics, naming the tables and the first column (ids, never phones) of the rows
    /// that differ, unless the store is as `before`.
    pub async fn assert_unchanged(&self, before: &Snapshot, what: &str) {
        let now = self.snapshot().await;
        let mut changed = Vec::new();
        for (table, rows) in before {
            let after = &now[table];
            if after != rows {
                let ids: Vec<String> = rows
                    .iter()
                    .filter(|r| !after.contains(r))
                    .chain(after.iter().filter(|r| !rows.contains(r)))
                    .map(|r| r.first().cloned().flatten().unwrap_or_default())
                    .collect();
                changed.push(format!("{table} (rows {ids:?})"));
            }
        }
        assert!(
            changed.is_empty(),
            "{what} changed the {:?} store: {}",
            self.kind,
            changed.join(", ")
        );
    }

    /// Outcome and reason of every record with a state row, by record id.
    pub async fn outcomes(&self) -> BTreeMap<String, (Option<String>, Option<String>)> {
        self.query("SELECT record_id, outcome, reason FROM {state}", &[])
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap_or_default(),
                    (r[1].clone(), r[2].clone()),
                )
            })
            .collect()
    }

    /// Writes `id` finished and not texted (`sent = 0`) with `outcome` and `reason`, as
    /// a run would have; its state row is made when it has none (Snowflake makes one at
    /// the first claim).
    pub async fn write_not_sent(&self, id: &str, outcome: &str, reason: &str) {
        let at = self.timestamp(Utc::now());
        let updated = self
            .execute(
                "UPDATE {state} SET sent = 0, outcome = ?, reason = ?, processed_at = ? \
                 WHERE record_id = ?",
                &[outcome, reason, &at, id],
            )
            .await;
        if updated == 0 {
            let inserted = self
                .execute(
                    "INSERT INTO {state} (record_id, sent, outcome, reason, processed_at) \
                     VALUES (?, 0, ?, ?, ?)",
                    &[id, outcome, reason, &at],
                )
                .await;
            assert_eq!(inserted, 1, "a state row for {id}");
        }
    }

    /// The dedup uuid the store keeps for `id`.
    pub async fn uuid_of(&self, id: &str) -> String {
        self.query("SELECT dedup_uuid FROM {state} WHERE record_id = ?", &[id])
            .await
            .first()
            .and_then(|r| r[0].clone())
            .unwrap_or_else(|| panic!("no dedup uuid for {id}"))
    }

    /// Source records whose phone is still there.
    pub async fn phones_left(&self) -> u64 {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM {source} WHERE phone IS NOT NULL AND phone <> ''",
                &[],
            )
            .await;
        rows[0][0]
            .as_deref()
            .unwrap_or("0")
            .parse()
            .expect("a count")
    }
}

fn sqlite_text(value: rusqlite::types::Value) -> Option<String> {
    use rusqlite::types::Value;
    match value {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        Value::Text(t) => Some(t),
        Value::Blob(b) => Some(format!("{b:02x?}")),
    }
}

fn snowflake_text(cell: &CellValue) -> Option<String> {
    match cell {
        CellValue::Null => None,
        CellValue::String(s) => Some(s.clone()),
        CellValue::Integer(i) => Some(i.to_string()),
        CellValue::Decimal(d) => Some(d.raw().to_owned()),
        CellValue::Date(d) => Some(d.to_string()),
        CellValue::TimestampNtz(t) => Some(t.to_string()),
        other => Some(format!("{other:?}")),
    }
}
