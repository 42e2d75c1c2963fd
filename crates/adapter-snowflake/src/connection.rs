//! One Snowflake session per store handle: logged in on connect, used by one statement
//! at a time, and logged in again when Snowflake says it expired.
//!
//! A session's state (its transaction, its statement sequence) belongs to one caller at a
//! time (Snowflake docs: "Do not share a session between concurrent tasks"), so the session
//! sits behind a mutex. Workers that want parallel statements open several handles.
//!
//! The login sets the session parameters every statement relies on: `LOCK_TIMEOUT`, so a
//! statement queued behind another worker's lock fails within seconds instead of Snowflake's
//! default of twelve hours; `STATEMENT_TIMEOUT_IN_SECONDS`; `TIMEZONE = UTC`; and a
//! `QUERY_TAG` that finds our statements in the query history. Sessions expire after some
//! idle hours (the connector renews no token); every statement the store sends is
//! idempotent, so an expired session is replaced and the statement sent again.

use std::fmt;
use std::time::Duration;

use secrecy::ExposeSecret;
use snowflake_connector_rs::{
    AuthConfig, Client, ClientConfig, ColumnType, DynamicRow, EndpointConfig, KeyPairConfig,
    QueryConfig, Session, SessionConfig, Statement,
};
use tokio::sync::Mutex;

use crate::config::{SnowflakeAuth, SnowflakeConfig};
use crate::error::{classify, safe_text, store_error, Class, StoreError};
use crate::sql::{Sql, Value};

/// The tag on every statement, for Snowflake's query history.
pub(crate) const QUERY_TAG: &str = "ca-notify";
/// How long a login may take before it counts as unavailable.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Client-side margin over the server's statement timeout, so the server's answer (with
/// its error code) normally arrives first.
const RESPONSE_MARGIN: Duration = Duration::from_secs(30);

/// What a statement returned.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Column names and Snowflake types.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<DynamicRow>,
}

/// A logged-in (or about to be) Snowflake session.
pub(crate) struct Connection {
    client: Client,
    session: Mutex<Option<Session>>,
    account: String,
    user: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("account", &self.account)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Builds the client from a validated configuration; does not log in.
    pub(crate) fn new(config: &SnowflakeConfig) -> Result<Self, StoreError> {
        let auth = match &config.auth {
            SnowflakeAuth::Password(password) => {
                AuthConfig::password(password.expose_secret().to_owned())
            }
            SnowflakeAuth::KeyPair {
                private_key_pem,
                passphrase,
            } => {
                let pem = private_key_pem.expose_secret().to_owned();
                AuthConfig::key_pair(match passphrase {
                    Some(p) => KeyPairConfig::from_encrypted_pem(
                        pem,
                        p.expose_secret().as_bytes().to_vec(),
                    ),
                    None => KeyPairConfig::from_pem(pem),
                })
            }
        };
        let mut session = SessionConfig::new()
            .with_database(config.database.trim())
            .with_schema(config.schema.trim())
            .with_session_parameter("LOCK_TIMEOUT", config.lock_timeout_secs.into())
            .with_session_parameter(
                "STATEMENT_TIMEOUT_IN_SECONDS",
                config.statement_timeout_secs.into(),
            )
            .with_session_parameter("TIMEZONE", "UTC".into())
            .with_session_parameter("QUERY_TAG", QUERY_TAG.into());
        if let Some(warehouse) = &config.warehouse {
            session = session.with_warehouse(warehouse.trim());
        }
        if let Some(role) = &config.role {
            session = session.with_role(role.trim());
        }
        let response_timeout =
            Duration::from_secs(u64::from(config.statement_timeout_secs)) + RESPONSE_MARGIN;
        let mut client_config = ClientConfig::new(config.user.trim(), config.account.trim(), auth)
            .with_session(session)
            .with_query(QueryConfig::new().with_query_response_timeout(response_timeout));
        let base_url = config
            .base_url()
            .map_err(|e| StoreError::Misconfigured(e.to_string()))?;
        if let Some(url) = base_url {
            client_config = client_config.with_endpoint(EndpointConfig::custom_base_url(url));
        }
        let client = Client::new(client_config)
            .map_err(|e| store_error("building the Snowflake client", &e))?;
        Ok(Self {
            client,
            session: Mutex::new(None),
            account: config.account.clone(),
            user: config.user.clone(),
        })
    }

    /// Logs in now unless a session is already open.
    pub(crate) async fn ensure_session(&self) -> Result<(), StoreError> {
        let mut slot = self.session.lock().await;
        if slot.is_none() {
            *slot = Some(self.login().await?);
        }
        Ok(())
    }

    async fn login(&self) -> Result<Session, StoreError> {
        match tokio::time::timeout(LOGIN_TIMEOUT, self.client.create_session()).await {
            Ok(Ok(session)) => {
                tracing::info!(
                    account = %self.account,
                    user = %self.user,
                    "Logged in to Snowflake."
                );
                Ok(session)
            }
            Ok(Err(e)) => Err(store_error("logging in to Snowflake", &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "logging in to Snowflake took longer than {} s",
                LOGIN_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Runs one statement, logging in again once if the session expired.
    pub(crate) async fn run(&self, what: &str, sql: &Sql) -> Result<Answer, StoreError> {
        let mut slot = self.session.lock().await;
        let mut relogged = false;
        loop {
            if slot.is_none() {
                *slot = Some(self.login().await?);
            }
            let session = slot.as_ref().expect("logged in above");
            match execute(session, sql).await {
                Ok(answer) => return Ok(answer),
                Err(e) if classify(&e) == Class::SessionGone => {
                    *slot = None;
                    if relogged {
                        return Err(store_error(what, &e));
                    }
                    tracing::info!(
                        step = what,
                        error = %safe_text(&e.to_string()),
                        "Snowflake session expired; logging in again."
                    );
                    relogged = true;
                }
                Err(e) => return Err(store_error(what, &e)),
            }
        }
    }
}

async fn execute(session: &Session, sql: &Sql) -> Result<Answer, snowflake_connector_rs::Error> {
    let cursor = if sql.binds.is_empty() {
        session.query(Statement::new(sql.text.clone())).await?
    } else {
        let mut statement = Statement::new_positional(sql.text.clone());
        for value in &sql.binds {
            statement = match value {
                Value::Text(text) => statement.bind(text.clone()),
                Value::Int(n) => statement.bind(*n),
            };
        }
        session.query(statement).await?
    };
    let columns = cursor
        .schema()
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), type_name(c.ty())))
        .collect();
    let rows = cursor.collect::<Vec<DynamicRow>>().await?;
    Ok(Answer { columns, rows })
}

fn type_name(ty: &ColumnType) -> String {
    ty.as_str().to_owned()
}
