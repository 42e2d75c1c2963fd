//! Settings of the Snowflake store: the account and how to log in to it, the recipients'
//! table, and the store's own state table.
//!
//! Secrets (the password, the private key and its passphrase) are `SecretString`s and
//! `Debug` shows them as `[REDACTED]`. [`SnowflakeConfig::validate`] checks everything
//! that can be checked without a network, and names the offending key in each error so an
//! operator can find it in the configuration file (`snowflake.table.phone_column: …`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use ca_notify_ports::config::{ConfigError, SourceTable};

use crate::ident::{Ident, ObjectName};

/// The state table's default name, created in the configured database and schema.
pub const DEFAULT_STATE_TABLE: &str = "CA_NOTIFY_STATE";
/// Default seconds a statement waits for a table lock before failing (Snowflake's own
/// default is 43200, twelve hours).
pub const DEFAULT_LOCK_TIMEOUT_SECS: u32 = 60;
/// Default seconds a statement may run before Snowflake cancels it.
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u32 = 300;
/// Snowflake's largest `LOCK_TIMEOUT` (docs: Parameters, LOCK_TIMEOUT).
const MAX_LOCK_TIMEOUT_SECS: u32 = 43_200;
/// Snowflake's largest `STATEMENT_TIMEOUT_IN_SECONDS` (seven days).
const MAX_STATEMENT_TIMEOUT_SECS: u32 = 604_800;

/// How the store logs in.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnowflakeAuth {
    /// User and password (unattended use may need an MFA exemption; prefer key pairs).
    Password(SecretString),
    /// A programmatic access token, sent where a password would be (Snowflake docs: "Using
    /// programmatic access tokens for authentication": a token can replace a password in
    /// Snowflake drivers).
    ProgrammaticAccessToken(SecretString),
    /// Key-pair authentication: a JWT signed with this RSA key (Snowflake docs: "Key-pair
    /// authentication and key-pair rotation").
    KeyPair {
        /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, or
        /// `-----BEGIN ENCRYPTED PRIVATE KEY-----` with a passphrase).
        private_key_pem: SecretString,
        /// The passphrase of an encrypted key.
        #[serde(default)]
        passphrase: Option<SecretString>,
    },
}

impl fmt::Debug for SnowflakeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password([REDACTED])"),
            Self::ProgrammaticAccessToken(_) => f.write_str("ProgrammaticAccessToken([REDACTED])"),
            Self::KeyPair { passphrase, .. } => f
                .debug_struct("KeyPair")
                .field("private_key_pem", &format_args!("[REDACTED]"))
                .field(
                    "passphrase",
                    &format_args!(
                        "{}",
                        if passphrase.is_some() {
                            "Some([REDACTED])"
                        } else {
                            "None"
                        }
                    ),
                )
                .finish(),
        }
    }
}

/// Everything the Snowflake store needs.
#[derive(Clone, Deserialize)]
pub struct SnowflakeConfig {
    /// The account identifier (`myorg-myaccount`, or a legacy locator such as
    /// `xy12345.us-east-1`).
    pub account: String,
    /// The login name.
    pub user: String,
    /// How to log in.
    pub auth: SnowflakeAuth,
    /// The warehouse that runs our statements; the user's default when absent.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database of the source and state tables (unless a name is qualified).
    pub database: String,
    /// The schema of the source and state tables (unless a name is qualified).
    pub schema: String,
    /// The role to use; the user's default when absent.
    #[serde(default)]
    pub role: Option<String>,
    /// Overrides `https://<account>.snowflakecomputing.com` (PrivateLink, or a local test
    /// server). Must be `https` unless it points at a loopback address.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The recipients' table. Names follow Snowflake's rules: unquoted names are
    /// case-insensitive (stored upper-case), `"Quoted"` names keep their case; the table may
    /// be qualified (`SCHEMA.TABLE`, `DATABASE.SCHEMA.TABLE`).
    pub table: SourceTable,
    /// The pipeline's state table, created and migrated by the store.
    #[serde(default = "default_state_table")]
    pub state_table: String,
    /// This worker's name, written next to each claim for operators.
    pub worker_id: String,
    /// Seconds a statement waits for a table lock before failing (and being retried).
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_secs: u32,
    /// Seconds a statement may run before Snowflake cancels it.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_secs: u32,
    /// The run this store handle works for, carried in every statement's `QUERY_TAG`;
    /// a fresh id per handle when absent.
    #[serde(default)]
    pub run_id: Option<String>,
}

fn default_state_table() -> String {
    DEFAULT_STATE_TABLE.to_owned()
}

fn default_lock_timeout() -> u32 {
    DEFAULT_LOCK_TIMEOUT_SECS
}

fn default_statement_timeout() -> u32 {
    DEFAULT_STATEMENT_TIMEOUT_SECS
}

impl fmt::Debug for SnowflakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeConfig")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("auth", &self.auth)
            .field("warehouse", &self.warehouse)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("role", &self.role)
            .field("base_url", &self.base_url)
            .field("table", &self.table)
            .field("state_table", &self.state_table)
            .field("worker_id", &self.worker_id)
            .field("lock_timeout_secs", &self.lock_timeout_secs)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// The source table's names, validated.
#[derive(Debug, Clone)]
pub(crate) struct SourceNames {
    pub table: ObjectName,
    pub id: Ident,
    pub phone: Ident,
    pub test_date: Option<Ident>,
    pub symptom_date: Option<Ident>,
    pub test_type: Option<Ident>,
    pub tz_offset: Option<Ident>,
    /// When each record arrived: dates the backlog's oldest record.
    pub arrived_at: Option<Ident>,
}

/// Every name the store puts in SQL, validated once.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub source: SourceNames,
    pub state: ObjectName,
    pub migrations: ObjectName,
    pub meta: ObjectName,
    /// The attempt log: every issue attempt's answer, per dedup uuid.
    pub attempts: ObjectName,
    /// The claim lock: one row every claim transaction updates first (version 3).
    pub lock: ObjectName,
    /// The runs table: one row per run (start, end, counts, stop reason).
    pub runs: ObjectName,
}

impl SnowflakeConfig {
    /// Checks every setting that can be checked offline.
    ///
    /// # Errors
    /// The first [`ConfigError`] found, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_account(&self.account)?;
        validate_text("snowflake.user", &self.user, 255)?;
        self.validate_auth()?;
        if let Some(warehouse) = &self.warehouse {
            ident("snowflake.warehouse", warehouse)?;
        }
        if let Some(role) = &self.role {
            ident("snowflake.role", role)?;
        }
        if let Some(base_url) = &self.base_url {
            parse_base_url(base_url)?;
        }
        validate_text("snowflake.worker_id", &self.worker_id, 256)?;
        if let Some(run_id) = &self.run_id {
            validate_text("snowflake.run_id", run_id, 256)?;
        }
        if !(1..=MAX_LOCK_TIMEOUT_SECS).contains(&self.lock_timeout_secs) {
            return Err(ConfigError::new(
                "snowflake.lock_timeout_secs",
                format!("must be between 1 and {MAX_LOCK_TIMEOUT_SECS} seconds"),
            ));
        }
        if !(1..=MAX_STATEMENT_TIMEOUT_SECS).contains(&self.statement_timeout_secs) {
            return Err(ConfigError::new(
                "snowflake.statement_timeout_secs",
                format!("must be between 1 and {MAX_STATEMENT_TIMEOUT_SECS} seconds"),
            ));
        }
        self.names().map(|_| ())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        match &self.auth {
            SnowflakeAuth::Password(password) => {
                if password.expose_secret().is_empty() {
                    return Err(ConfigError::new(
                        "snowflake.auth.password",
                        "must not be empty",
                    ));
                }
            }
            SnowflakeAuth::ProgrammaticAccessToken(token) => {
                if token.expose_secret().trim().is_empty() {
                    return Err(ConfigError::new(
                        "snowflake.auth.programmatic_access_token",
                        "must not be empty",
                    ));
                }
            }
            SnowflakeAuth::KeyPair {
                private_key_pem,
                passphrase,
            } => {
                let pem = private_key_pem.expose_secret();
                let key = "snowflake.auth.key_pair.private_key_pem";
                if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
                    return Err(ConfigError::new(
                        key,
                        "is a PKCS#1 key; convert it to PKCS#8 (openssl pkcs8 -topk8 -in key.pem -out key.p8)",
                    ));
                }
                let encrypted = pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----");
                if !encrypted && !pem.contains("-----BEGIN PRIVATE KEY-----") {
                    return Err(ConfigError::new(
                        key,
                        "must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)",
                    ));
                }
                let passphrase_key = "snowflake.auth.key_pair.passphrase";
                match passphrase {
                    None if encrypted => {
                        return Err(ConfigError::new(
                            passphrase_key,
                            "is required: the private key is encrypted",
                        ))
                    }
                    Some(_) if !encrypted => {
                        return Err(ConfigError::new(
                            passphrase_key,
                            "is set, but the private key is not encrypted",
                        ))
                    }
                    Some(p) if p.expose_secret().is_empty() => {
                        return Err(ConfigError::new(passphrase_key, "must not be empty"))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The validated names of every table and column the store uses.
    pub(crate) fn names(&self) -> Result<Names, ConfigError> {
        let database = ident("snowflake.database", &self.database)?;
        let schema = ident("snowflake.schema", &self.schema)?;
        let table = ObjectName::parse(&self.table.name, &database, &schema)
            .map_err(|e| ConfigError::new("snowflake.table.name", e))?;
        let column = |key: &str, name: &str| ident(&format!("snowflake.table.{key}"), name);
        let optional =
            |key: &str, name: &Option<String>| name.as_deref().map(|n| column(key, n)).transpose();
        let source = SourceNames {
            table,
            id: column("id_column", &self.table.id_column)?,
            phone: column("phone_column", &self.table.phone_column)?,
            test_date: optional("test_date_column", &self.table.test_date_column)?,
            symptom_date: optional("symptom_date_column", &self.table.symptom_date_column)?,
            test_type: optional("test_type_column", &self.table.test_type_column)?,
            tz_offset: optional("tz_offset_column", &self.table.tz_offset_column)?,
            arrived_at: optional("arrived_at_column", &self.table.arrived_at_column)?,
        };
        let mut seen: Vec<(&str, &Ident)> = vec![("id_column", &source.id)];
        let others = [
            ("phone_column", Some(&source.phone)),
            ("test_date_column", source.test_date.as_ref()),
            ("symptom_date_column", source.symptom_date.as_ref()),
            ("test_type_column", source.test_type.as_ref()),
            ("tz_offset_column", source.tz_offset.as_ref()),
            ("arrived_at_column", source.arrived_at.as_ref()),
        ];
        for (key, name) in others {
            let Some(name) = name else { continue };
            if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
                return Err(ConfigError::new(
                    format!("snowflake.table.{key}"),
                    format!("names the same column as snowflake.table.{other}"),
                ));
            }
            seen.push((key, name));
        }
        let state = ObjectName::parse(&self.state_table, &database, &schema)
            .map_err(|e| ConfigError::new("snowflake.state_table", e))?;
        if state == source.table {
            return Err(ConfigError::new(
                "snowflake.state_table",
                "must differ from snowflake.table.name: the store never writes to the source table",
            ));
        }
        let migrations = state.with_suffix("_MIGRATIONS");
        let meta = state.with_suffix("_META");
        let attempts = state.with_suffix("_ATTEMPTS");
        let lock = state.with_suffix("_LOCK");
        let runs = state.with_suffix("_RUNS");
        Ok(Names {
            source,
            state,
            migrations,
            meta,
            attempts,
            lock,
            runs,
        })
    }

    /// The script a DBA runs instead of the store's own migration (`ca-notify migrate
    /// --print`): every statement the migration runs on a new schema, in order, with the
    /// records it keeps, then the GRANTs the configured role needs to run without
    /// `CREATE TABLE`.
    ///
    /// # Errors
    /// As [`SnowflakeConfig::validate`] for the database, schema and table names.
    pub fn migration_sql(&self) -> Result<String, ConfigError> {
        Ok(crate::schema::dba_script(
            &self.names()?,
            self.role.as_deref(),
            self.warehouse.as_deref(),
        ))
    }

    /// The validated base URL, if one is configured.
    pub(crate) fn base_url(&self) -> Result<Option<Url>, ConfigError> {
        self.base_url.as_deref().map(parse_base_url).transpose()
    }
}

fn ident(key: &str, text: &str) -> Result<Ident, ConfigError> {
    Ident::parse(text).map_err(|e| ConfigError::new(key.to_owned(), e))
}

fn validate_account(account: &str) -> Result<(), ConfigError> {
    let key = "snowflake.account";
    if account.trim().is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    if !account
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new(
            key,
            "must be an account identifier such as myorg-myaccount or xy12345.us-east-1 (letters, digits, '-', '_', '.')",
        ));
    }
    Ok(())
}

fn validate_text(key: &str, text: &str, max: usize) -> Result<(), ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(key.to_owned(), "must not be empty"));
    }
    if text.chars().any(char::is_control) {
        return Err(ConfigError::new(
            key.to_owned(),
            "must not contain control characters",
        ));
    }
    if text.chars().count() > max {
        return Err(ConfigError::new(
            key.to_owned(),
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn parse_base_url(text: &str) -> Result<Url, ConfigError> {
    let key = "snowflake.base_url";
    let url = Url::parse(text.trim())
        .map_err(|e| ConfigError::new(key, format!("is not a URL ({e})")))?;
    let host = url
        .host_str()
        .ok_or_else(|| ConfigError::new(key, "has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if ca_notify_http::is_loopback_host(host) => {}
        "http" => {
            return Err(ConfigError::new(
                key,
                "must use https unless it points at a loopback address (127.0.0.1, ::1, localhost)",
            ))
        }
        other => {
            return Err(ConfigError::new(
                key,
                format!("has scheme {other:?}; only https (or http to a loopback address) works"),
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(key, "must not have a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n";
    const ENCRYPTED_PEM: &str =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHz\n-----END ENCRYPTED PRIVATE KEY-----\n";

    pub(crate) fn config() -> SnowflakeConfig {
        SnowflakeConfig {
            account: "myorg-myaccount".to_owned(),
            user: "CA_NOTIFY".to_owned(),
            auth: SnowflakeAuth::Password("hunter2-password".to_owned().into()),
            warehouse: Some("notify_wh".to_owned()),
            database: "covid".to_owned(),
            schema: "public".to_owned(),
            role: Some("NOTIFIER".to_owned()),
            base_url: None,
            table: SourceTable {
                test_date_column: Some("test_date".to_owned()),
                ..SourceTable::new("positives", "id", "phone")
            },
            state_table: DEFAULT_STATE_TABLE.to_owned(),
            worker_id: "worker-1".to_owned(),
            lock_timeout_secs: DEFAULT_LOCK_TIMEOUT_SECS,
            statement_timeout_secs: DEFAULT_STATEMENT_TIMEOUT_SECS,
            run_id: None,
        }
    }

    fn error_key(config: &SnowflakeConfig) -> String {
        config.validate().expect_err("invalid").key.into_owned()
    }

    #[test]
    fn a_complete_configuration_is_valid() {
        config().validate().expect("valid");
        let names = config().names().expect("valid");
        assert_eq!(
            names.source.table.sql(),
            "\"COVID\".\"PUBLIC\".\"POSITIVES\""
        );
        assert_eq!(
            names.state.sql(),
            "\"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE\""
        );
        assert_eq!(
            names.migrations.sql(),
            "\"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE_MIGRATIONS\""
        );
    }

    #[test]
    fn each_bad_setting_names_its_key() {
        type Change = Box<dyn Fn(&mut SnowflakeConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("snowflake.account", Box::new(|c| c.account = " ".into())),
            (
                "snowflake.account",
                Box::new(|c| c.account = "acct/../x".into()),
            ),
            ("snowflake.user", Box::new(|c| c.user = String::new())),
            (
                "snowflake.auth.password",
                Box::new(|c| c.auth = SnowflakeAuth::Password(String::new().into())),
            ),
            (
                "snowflake.database",
                Box::new(|c| c.database = "a b".into()),
            ),
            ("snowflake.schema", Box::new(|c| c.schema = "\"x".into())),
            (
                "snowflake.warehouse",
                Box::new(|c| c.warehouse = Some("w;h".into())),
            ),
            ("snowflake.role", Box::new(|c| c.role = Some(String::new()))),
            (
                "snowflake.table.name",
                Box::new(|c| c.table.name = "t; DROP TABLE t".into()),
            ),
            (
                "snowflake.table.id_column",
                Box::new(|c| c.table.id_column = "1d".into()),
            ),
            (
                "snowflake.table.phone_column",
                Box::new(|c| c.table.phone_column = "ID".into()),
            ),
            (
                "snowflake.table.symptom_date_column",
                Box::new(|c| c.table.symptom_date_column = Some("x--".into())),
            ),
            (
                "snowflake.state_table",
                Box::new(|c| c.state_table = "positives".into()),
            ),
            (
                "snowflake.state_table",
                Box::new(|c| c.state_table = "a.b.c.d".into()),
            ),
            (
                "snowflake.worker_id",
                Box::new(|c| c.worker_id = "  ".into()),
            ),
            (
                "snowflake.lock_timeout_secs",
                Box::new(|c| c.lock_timeout_secs = 0),
            ),
            (
                "snowflake.lock_timeout_secs",
                Box::new(|c| c.lock_timeout_secs = 43_201),
            ),
            (
                "snowflake.statement_timeout_secs",
                Box::new(|c| c.statement_timeout_secs = 0),
            ),
            (
                "snowflake.base_url",
                Box::new(|c| c.base_url = Some("http://10.0.0.5:8080".into())),
            ),
            (
                "snowflake.base_url",
                Box::new(|c| c.base_url = Some("ftp://localhost".into())),
            ),
            (
                "snowflake.base_url",
                Box::new(|c| c.base_url = Some("not a url".into())),
            ),
        ];
        for (key, change) in cases {
            let mut c = config();
            change(&mut c);
            assert_eq!(error_key(&c), key);
        }
    }

    #[test]
    fn base_url_is_https_or_loopback_http() {
        for ok in [
            "https://acct.privatelink.snowflakecomputing.com",
            "http://127.0.0.1:8765",
            "http://localhost:8765/",
            "http://[::1]:8765",
        ] {
            let mut c = config();
            c.base_url = Some(ok.to_owned());
            c.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn key_pair_needs_a_pkcs8_key_and_a_matching_passphrase() {
        let key_pair = |pem: &str, passphrase: Option<&str>| SnowflakeAuth::KeyPair {
            private_key_pem: pem.to_owned().into(),
            passphrase: passphrase.map(|p| p.to_owned().into()),
        };
        let mut c = config();
        c.auth = key_pair(PEM, None);
        c.validate().expect("unencrypted key without passphrase");
        c.auth = key_pair(ENCRYPTED_PEM, Some("pass phrase"));
        c.validate().expect("encrypted key with passphrase");
        for (auth, key) in [
            (
                key_pair(ENCRYPTED_PEM, None),
                "snowflake.auth.key_pair.passphrase",
            ),
            (
                key_pair(PEM, Some("x")),
                "snowflake.auth.key_pair.passphrase",
            ),
            (
                key_pair("-----BEGIN RSA PRIVATE KEY-----\n", None),
                "snowflake.auth.key_pair.private_key_pem",
            ),
            (
                key_pair("not a key", None),
                "snowflake.auth.key_pair.private_key_pem",
            ),
        ] {
            c.auth = auth;
            assert_eq!(error_key(&c), key);
        }
    }

    #[test]
    fn debug_redacts_every_secret() {
        let mut c = config();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(shown.contains("myorg-myaccount"), "{shown}");
        c.auth = SnowflakeAuth::KeyPair {
            private_key_pem: PEM.to_owned().into(),
            passphrase: Some("open sesame".to_owned().into()),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("MIIEvQ"), "{shown}");
        assert!(!shown.contains("sesame"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn migration_sql_names_the_configured_tables() {
        let sql = config().migration_sql().expect("valid");
        assert!(
            sql.contains("CREATE TABLE IF NOT EXISTS \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE\" (")
        );
        assert!(sql.contains(
            "CREATE TABLE IF NOT EXISTS \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE_ATTEMPTS\" ("
        ));
        assert!(sql.contains(
            "CREATE TABLE IF NOT EXISTS \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE_RUNS\" ("
        ));
        assert!(sql.contains("GRANT SELECT, UPDATE ON TABLE \"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE_LOCK\" TO ROLE \"NOTIFIER\";"), "{sql}");
        // The migrations table, four tables, the lock row, the run column, four versions,
        // the binding; then usage on the database, schema and warehouse and seven tables.
        assert_eq!(
            sql.lines().filter(|l| l.ends_with(';')).count(),
            13 + 10,
            "{sql}"
        );
    }

    #[test]
    fn deserializes_with_defaults() {
        let json = serde_json::json!({
            "account": "acct",
            "user": "u",
            "auth": { "key_pair": { "private_key_pem": PEM } },
            "database": "db",
            "schema": "sc",
            "table": { "name": "t", "id_column": "id", "phone_column": "phone" },
            "worker_id": "w"
        });
        let c: SnowflakeConfig = serde_json::from_value(json).expect("deserializes");
        assert_eq!(c.state_table, DEFAULT_STATE_TABLE);
        assert_eq!(c.lock_timeout_secs, DEFAULT_LOCK_TIMEOUT_SECS);
        assert_eq!(c.statement_timeout_secs, DEFAULT_STATEMENT_TIMEOUT_SECS);
        assert!(matches!(
            c.auth,
            SnowflakeAuth::KeyPair {
                passphrase: None,
                ..
            }
        ));
        c.validate().expect("valid");
        let password: SnowflakeAuth =
            serde_json::from_value(serde_json::json!({ "password": "pw" })).expect("password");
        assert!(matches!(password, SnowflakeAuth::Password(_)));
    }
}
