//! One Snowflake session per store handle: logged in on connect, used by one statement
//! at a time, and logged in again when Snowflake says it expired.
//!
//! A session's state (its transaction, its statement sequence) belongs to one caller at a
//! time (Snowflake docs: "Do not share a session between concurrent tasks"), so the session
//! sits behind a mutex. Workers that want parallel statements open several handles.
//!
//! The login pins the session parameters every statement relies on, on the login request
//! itself (`SESSION_PARAMETERS`), so pinning costs no statement: `AUTOCOMMIT = TRUE` (a
//! statement outside the claim's explicit transaction commits alone); `LOCK_TIMEOUT`, so a
//! statement queued behind another worker's lock fails within seconds instead of
//! Snowflake's default of twelve hours; `STATEMENT_TIMEOUT_IN_SECONDS`; `TIMEZONE = UTC`;
//! and a `QUERY_TAG` naming the run and the worker, so a DBA can attribute every statement
//! and its cost in `QUERY_HISTORY`. Sessions expire after some idle hours (the connector
//! renews no token); every statement the store sends alone is idempotent, so an expired
//! session is replaced and the statement sent again. A transaction is never resumed on a
//! new session: it is sent again whole, from `BEGIN`.

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
use crate::sql::{self, Sql, Value};

/// The start of the tag on every statement, for Snowflake's query history.
pub(crate) const QUERY_TAG_PREFIX: &str = "ca-notify";
/// Snowflake's longest `QUERY_TAG` (docs: Parameters, QUERY_TAG: up to 2000 characters).
const MAX_QUERY_TAG_CHARS: usize = 2000;
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
    /// A transaction of this session failed and its `ROLLBACK` did not get through: the
    /// next use of the session sends `ROLLBACK` first, so the claim lock is not held
    /// until Snowflake ends the session.
    rollback_owed: std::sync::atomic::AtomicBool,
    account: String,
    user: String,
    query_tag: String,
}

/// The `QUERY_TAG` of every statement of a store handle: `ca-notify run=<run> worker=<worker>`.
pub(crate) fn query_tag(run_id: &str, worker_id: &str) -> String {
    format!(
        "{QUERY_TAG_PREFIX} run={} worker={}",
        run_id.trim(),
        worker_id.trim()
    )
    .chars()
    .take(MAX_QUERY_TAG_CHARS)
    .collect()
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
    pub(crate) fn new(config: &SnowflakeConfig, run_id: &str) -> Result<Self, StoreError> {
        let auth = match &config.auth {
            SnowflakeAuth::Password(password) => {
                tracing::warn!(
                    user = %config.user,
                    "Signing in to Snowflake with a password. Snowflake is retiring password-only sign-in for service users; configure snowflake.private_key_path (key pair) or snowflake.programmatic_access_token."
                );
                AuthConfig::password(password.expose_secret().to_owned())
            }
            // Snowflake's drivers send a programmatic access token where a password goes
            // ("Using programmatic access tokens for authentication").
            SnowflakeAuth::ProgrammaticAccessToken(token) => {
                AuthConfig::password(token.expose_secret().trim().to_owned())
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
        let query_tag = query_tag(run_id, &config.worker_id);
        let mut session = SessionConfig::new()
            .with_database(config.database.trim())
            .with_schema(config.schema.trim())
            .with_session_parameter("AUTOCOMMIT", true.into())
            .with_session_parameter("LOCK_TIMEOUT", config.lock_timeout_secs.into())
            .with_session_parameter(
                "STATEMENT_TIMEOUT_IN_SECONDS",
                config.statement_timeout_secs.into(),
            )
            .with_session_parameter("TIMEZONE", "UTC".into())
            .with_session_parameter("QUERY_TAG", query_tag.clone().into());
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
            rollback_owed: std::sync::atomic::AtomicBool::new(false),
            account: config.account.clone(),
            user: config.user.clone(),
            query_tag,
        })
    }

    /// The `QUERY_TAG` this handle's session carries.
    pub(crate) fn query_tag(&self) -> &str {
        &self.query_tag
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
            self.settle_rollback(session).await;
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

impl Connection {
    /// Runs `statements` in one explicit transaction on one session: `BEGIN TRANSACTION`,
    /// each statement in order, `COMMIT`; the answers of `statements`, in order. When a
    /// statement fails, the transaction is rolled back (and if even that fails, the
    /// session is given up: Snowflake rolls back a closed session's open transaction), and
    /// the error returned. An expired session found at `BEGIN` is replaced and the whole
    /// transaction sent again; found later, the transaction was never committed and the
    /// error is returned as retryable.
    pub(crate) async fn transaction(
        &self,
        what: &str,
        statements: &[Sql],
    ) -> Result<Vec<Answer>, StoreError> {
        let mut slot = self.session.lock().await;
        let mut relogged = false;
        loop {
            if slot.is_none() {
                *slot = Some(self.login().await?);
            }
            let session = slot.as_ref().expect("logged in above");
            self.settle_rollback(session).await;
            match execute(session, &sql::begin()).await {
                Ok(_) => {}
                Err(e) if classify(&e) == Class::SessionGone && !relogged => {
                    *slot = None;
                    relogged = true;
                    continue;
                }
                Err(e) => {
                    if classify(&e) == Class::SessionGone {
                        *slot = None;
                    }
                    return Err(store_error(what, &e));
                }
            }
            let mut answers = Vec::with_capacity(statements.len());
            for statement in statements {
                match execute(session, statement).await {
                    Ok(answer) => answers.push(answer),
                    Err(e) => {
                        if classify(&e) == Class::SessionGone {
                            *slot = None;
                        } else if execute(session, &sql::rollback()).await.is_err() {
                            tracing::warn!(
                                step = what,
                                "A Snowflake transaction could not be rolled back; the next statement of this session rolls it back first."
                            );
                            self.rollback_owed
                                .store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        return Err(transaction_error(what, &e));
                    }
                }
            }
            return match execute(session, &sql::commit()).await {
                Ok(_) => Ok(answers),
                Err(e) => {
                    // Committed or not, a ROLLBACK next is harmless and ends it if not.
                    self.rollback_owed
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(transaction_error(what, &e))
                }
            };
        }
    }
}

impl Connection {
    /// Sends the `ROLLBACK` a failed transaction still owes, once; a failure leaves it owed.
    async fn settle_rollback(&self, session: &Session) {
        use std::sync::atomic::Ordering;
        if self.rollback_owed.swap(false, Ordering::SeqCst)
            && execute(session, &sql::rollback()).await.is_err()
        {
            self.rollback_owed.store(true, Ordering::SeqCst);
        }
    }
}

/// A failure inside a transaction: an expired session there lost the transaction, which
/// the caller may send again whole.
fn transaction_error(what: &str, e: &snowflake_connector_rs::Error) -> StoreError {
    if classify(e) == Class::SessionGone {
        StoreError::Unavailable(format!(
            "{what}: the Snowflake session expired during the transaction, which was not committed ({})",
            safe_text(&e.to_string())
        ))
    } else {
        store_error(what, e)
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::tests::config;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged_building(auth: SnowflakeAuth) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let mut c = config();
        c.auth = auth;
        tracing::subscriber::with_default(subscriber, || {
            Connection::new(&c, "run-1").expect("client");
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        text
    }

    #[test]
    fn a_password_login_warns_and_names_the_alternatives_without_the_secret() {
        let logged = logged_building(SnowflakeAuth::Password(
            "hunter2-password".to_owned().into(),
        ));
        assert!(logged.contains("WARN"), "{logged}");
        assert!(logged.contains("snowflake.private_key_path"), "{logged}");
        assert!(!logged.contains("hunter2"), "{logged}");
        let token = logged_building(SnowflakeAuth::ProgrammaticAccessToken(
            "pat-value".to_owned().into(),
        ));
        assert!(!token.contains("WARN"), "{token}");
    }

    #[test]
    fn the_query_tag_names_the_run_and_the_worker_within_snowflakes_limit() {
        assert_eq!(query_tag(" r1 ", "w-1"), "ca-notify run=r1 worker=w-1");
        assert_eq!(
            query_tag("r", &"w".repeat(5000)).chars().count(),
            MAX_QUERY_TAG_CHARS
        );
    }
}
