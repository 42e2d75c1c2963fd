//! The `[snowflake]` section an operator writes, its defaults and its checks.
//!
//! The recipients' table comes from the shared `[source]` section
//! ([`SourceTable`]); this section holds the connection, the login and the store's own
//! state table. [`SnowflakeSection::config`] picks the one login configured — a key pair
//! (the documented default: the private key from a file, `private_key_path`, or inline),
//! a programmatic access token, or a password (still accepted, with a warning at login:
//! Snowflake is retiring password-only sign-in for service users) — and names the key of
//! any value it cannot use. Secrets are taken exactly as written and never shown.

use std::path::PathBuf;

use ca_notify_ports::config::{secret, ConfigError, DurationRange, SourceTable};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::{SnowflakeAuth, SnowflakeConfig, DEFAULT_STATE_TABLE};

/// The section's duration settings and their ranges: Snowflake's own limits of
/// `LOCK_TIMEOUT` and `STATEMENT_TIMEOUT_IN_SECONDS`, without their 0 (wait forever).
pub const DURATIONS: [DurationRange; 2] = [
    DurationRange::seconds("snowflake.lock_timeout_secs", 1, 43_200),
    DurationRange::seconds("snowflake.statement_timeout_secs", 1, 604_800),
];

/// `[snowflake]`: the connection, when `store.kind = "snowflake"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnowflakeSection {
    /// Account identifier (`orgname-account` or a locator).
    pub account: String,
    /// Login name.
    pub user: String,
    /// Password authentication.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub password: Option<SecretString>,
    /// Key-pair authentication: the PKCS#8 PEM private key.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub private_key: Option<SecretString>,
    /// Key-pair authentication: a file holding the PEM private key.
    pub private_key_path: Option<PathBuf>,
    /// Passphrase of an encrypted private key.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub private_key_passphrase: Option<SecretString>,
    /// A programmatic access token (sent in place of a password).
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub programmatic_access_token: Option<SecretString>,
    /// Warehouse.
    pub warehouse: Option<String>,
    /// Database.
    pub database: String,
    /// Schema.
    pub schema: String,
    /// Role.
    pub role: Option<String>,
    /// Base URL override (fakesnow in tests, private link in production).
    pub base_url: Option<String>,
    /// The pipeline's own state table.
    pub state_table: String,
    /// `LOCK_TIMEOUT` for the session, so a stuck lock fails fast.
    pub lock_timeout_secs: u32,
    /// `STATEMENT_TIMEOUT_IN_SECONDS` for the session.
    pub statement_timeout_secs: u32,
    /// Whether `run` creates or upgrades the state tables itself when they are missing or
    /// behind; off, it stops and names `ca-notify migrate`.
    pub auto_migrate: bool,
}

impl Default for SnowflakeSection {
    fn default() -> Self {
        Self {
            account: String::new(),
            user: String::new(),
            password: None,
            private_key: None,
            private_key_path: None,
            private_key_passphrase: None,
            programmatic_access_token: None,
            warehouse: None,
            database: String::new(),
            schema: String::new(),
            role: None,
            base_url: None,
            state_table: DEFAULT_STATE_TABLE.to_owned(),
            lock_timeout_secs: 60,
            statement_timeout_secs: 120,
            auto_migrate: true,
        }
    }
}

impl SnowflakeSection {
    /// The store's settings for the recipients in `table`, claimed as `worker_id`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming its key: no login configured, an unreadable key file, or
    /// what [`SnowflakeConfig::validate`] refuses.
    pub fn config(
        &self,
        table: SourceTable,
        worker_id: String,
    ) -> Result<SnowflakeConfig, ConfigError> {
        let built = SnowflakeConfig {
            account: self.account.clone(),
            user: self.user.clone(),
            auth: self.auth()?,
            warehouse: self.warehouse.clone(),
            database: self.database.clone(),
            schema: self.schema.clone(),
            role: self.role.clone(),
            base_url: self.base_url.clone(),
            table,
            state_table: self.state_table.clone(),
            worker_id,
            lock_timeout_secs: self.lock_timeout_secs,
            statement_timeout_secs: self.statement_timeout_secs,
            run_id: None,
        };
        built.validate().map_err(operator_key)?;
        Ok(built)
    }

    fn auth(&self) -> Result<SnowflakeAuth, ConfigError> {
        let key_pair = self.private_key.is_some() || self.private_key_path.is_some();
        let given: Vec<&str> = [
            (key_pair, "snowflake.private_key_path"),
            (
                self.programmatic_access_token.is_some(),
                "snowflake.programmatic_access_token",
            ),
            (self.password.is_some(), "snowflake.password"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        if given.len() > 1 {
            return Err(ConfigError::new(
                given[1],
                format!("is set together with {}; configure one login", given[0]),
            ));
        }
        if let Some(token) = &self.programmatic_access_token {
            return Ok(SnowflakeAuth::ProgrammaticAccessToken(token.clone()));
        }
        if let Some(password) = &self.password {
            return Ok(SnowflakeAuth::Password(password.clone()));
        }
        if self.private_key.is_some() && self.private_key_path.is_some() {
            return Err(ConfigError::new(
                "snowflake.private_key",
                "is set together with snowflake.private_key_path; configure one",
            ));
        }
        let pem = match (&self.private_key, &self.private_key_path) {
            (Some(pem), _) => pem.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(SecretString::from)
                .map_err(|e| {
                    ConfigError::new(
                        "snowflake.private_key_path",
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    )
                })?,
            (None, None) => {
                return Err(ConfigError::missing(
                    "snowflake.private_key_path",
                    "a login for store.kind = snowflake: a key pair (snowflake.private_key_path, or snowflake.private_key), snowflake.programmatic_access_token, or snowflake.password",
                ))
            }
        };
        Ok(SnowflakeAuth::KeyPair {
            private_key_pem: pem,
            passphrase: self.private_key_passphrase.clone(),
        })
    }
}

/// The adapter names the table's settings `snowflake.table.*`; the operator writes them
/// in `[source]`.
fn operator_key(e: ConfigError) -> ConfigError {
    let key = match e.key() {
        "snowflake.table.name" => "source.table".to_owned(),
        "snowflake.auth.password" => "snowflake.password".to_owned(),
        "snowflake.auth.programmatic_access_token" => {
            "snowflake.programmatic_access_token".to_owned()
        }
        "snowflake.auth.key_pair.private_key_pem" => "snowflake.private_key_path".to_owned(),
        "snowflake.auth.key_pair.passphrase" => "snowflake.private_key_passphrase".to_owned(),
        other => match other.strip_prefix("snowflake.table.") {
            Some(column) => format!("source.{column}"),
            None => return e,
        },
    };
    e.with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> SnowflakeSection {
        SnowflakeSection {
            account: "myorg-myaccount".to_owned(),
            user: "CA_NOTIFY".to_owned(),
            password: Some(SecretString::from("pa55word-value")),
            database: "HEALTH".to_owned(),
            schema: "PUBLIC".to_owned(),
            ..SnowflakeSection::default()
        }
    }

    #[test]
    fn a_login_is_required_and_named() {
        let err = SnowflakeSection {
            password: None,
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect_err("no login");
        assert!(err.to_string().contains("snowflake.private_key"), "{err}");
        let config = section()
            .config(SourceTable::default(), "w".to_owned())
            .expect("valid");
        assert_eq!(config.state_table, "CA_NOTIFY_STATE");
        assert_eq!(config.statement_timeout_secs, 120);
    }

    #[test]
    fn one_login_only_and_key_pair_or_token_when_asked() {
        let both = SnowflakeSection {
            programmatic_access_token: Some(SecretString::from("pat-value")),
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect_err("two logins");
        assert_eq!(both.key(), "snowflake.password");
        assert!(
            both.to_string()
                .contains("snowflake.programmatic_access_token"),
            "{both}"
        );
        let token = SnowflakeSection {
            password: None,
            programmatic_access_token: Some(SecretString::from("pat-value")),
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect("a token");
        assert!(matches!(
            token.auth,
            SnowflakeAuth::ProgrammaticAccessToken(_)
        ));
        assert!(!format!("{token:?}").contains("pat-value"));
        let missing = SnowflakeSection {
            password: None,
            private_key_path: Some("/nonexistent/key.p8".into()),
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect_err("no such file");
        assert_eq!(missing.key(), "snowflake.private_key_path");
        let empty = SnowflakeSection {
            password: Some(SecretString::from("")),
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect_err("empty");
        assert_eq!(
            empty.key(),
            "snowflake.password",
            "named as the operator writes it"
        );
    }

    #[test]
    fn a_bad_column_is_named_by_its_source_key() {
        let err = section()
            .config(
                SourceTable::new("RECIPIENTS", "ID", "PHONE; DROP"),
                "w".to_owned(),
            )
            .expect_err("bad column");
        assert_eq!(err.key(), "source.phone_column");
    }

    #[test]
    fn a_timeout_out_of_range_names_its_key() {
        let err = SnowflakeSection {
            lock_timeout_secs: 0,
            ..section()
        }
        .config(SourceTable::default(), "w".to_owned())
        .expect_err("zero");
        assert_eq!(err.key(), "snowflake.lock_timeout_secs");
    }

    #[test]
    fn unknown_keys_are_refused_and_secrets_never_shown() {
        let err = toml::from_str::<SnowflakeSection>("pasword = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("pasword"), "{err}");
        let shown = format!(
            "{}{:?}",
            toml::to_string(&section()).expect("toml"),
            section()
        );
        assert!(!shown.contains("pa55word"), "{shown}");
    }
}
