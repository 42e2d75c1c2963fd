//! A world for runs of the built `ca-notify` binary against the in-process simulators on a
//! SQLite file: the recipients (from `ca_notify_integration_tests::people`), the
//! simulators, the environment that points the command at them, the state table as the
//! store left it, and the exactly-once invariants checked against the simulator's SMS
//! ledger. Whoever includes it provides `crate::ca_notify()`, the command to run (the
//! tests get it from cargo, the end-to-end benchmark builds it).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ca_notify_integration_tests::Cli;
pub use ca_notify_integration_tests::{people, Kind, Person, SECRET};
use ca_notify_simulators::twilio::{RunningTwilioSim, TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{RunningSim, SimConfig, VerificationSimulator};
use tempfile::TempDir;

/// One row of the state table.
#[derive(Debug, Clone)]
pub struct StateRow {
    /// `sent`, `already_sent`, `not_sent`, `unconfirmed`, or `None` while undecided.
    pub outcome: Option<String>,
    /// The reason code (or the last deferral while undecided).
    pub reason: Option<String>,
    /// Whether a claim token is set.
    pub claimed: bool,
    /// The lease's end, Unix milliseconds (0 when unclaimed).
    pub lease_until: i64,
}

/// Two simulators, a temporary directory with a SQLite store, and its recipients.
pub struct World {
    /// The Twilio Lookup simulator.
    pub twilio: RunningTwilioSim,
    /// The verification server simulator.
    pub verification: RunningSim,
    /// Holds the store, the CSV files and the logs.
    pub dir: TempDir,
    /// The recipients imported into the store.
    pub people: Vec<Person>,
}

impl World {
    /// Starts both simulators and imports `count` recipients (see [`people`]), all tested
    /// today, into a fresh store.
    pub async fn start(count: usize, twilio: TwilioSimConfig, verification: SimConfig) -> Self {
        Self::start_with(people(count), twilio, verification).await
    }

    /// Like [`World::start`], with these recipients.
    pub async fn start_with(
        people: Vec<Person>,
        twilio: TwilioSimConfig,
        verification: SimConfig,
    ) -> Self {
        let world = Self::start_without_store(people, twilio, verification).await;
        let today = chrono::Utc::now().date_naive().to_string();
        let mut csv = String::from("id,phone,test_date\n");
        for p in &world.people {
            csv.push_str(&format!("{},{},{today}\n", p.id, p.national));
        }
        let path = world.dir.path().join("recipients.csv");
        std::fs::write(&path, csv).expect("csv written");
        let import = world.cli().run(&["import", &path.display().to_string()]);
        assert_eq!(import.code, Some(0), "{}", import.all());
        world
    }

    /// The simulators and the directory, with `people` imported nowhere: for a world
    /// whose store is filled another way (a Snowflake source table, `operator_world.rs`).
    pub async fn start_without_store(
        people: Vec<Person>,
        twilio: TwilioSimConfig,
        verification: SimConfig,
    ) -> Self {
        let twilio = TwilioSimulator::start(twilio)
            .await
            .expect("twilio simulator");
        let verification = VerificationSimulator::start(verification)
            .await
            .expect("verification simulator");
        Self {
            twilio,
            verification,
            dir: tempfile::tempdir().expect("tempdir"),
            people,
        }
    }

    /// The SQLite file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    /// The command, pointed at this world's store and simulators.
    pub fn cli(&self) -> Cli {
        [
            ("CA_NOTIFY__STORE__PATH", self.db().display().to_string()),
            ("CA_NOTIFY__TWILIO__BASE_URL", self.twilio.base_url()),
            (
                "CA_NOTIFY__TWILIO__ACCOUNT_SID",
                self.twilio.account_sid().to_owned(),
            ),
            (
                "CA_NOTIFY__TWILIO__AUTH_TOKEN",
                self.twilio.auth_token().to_owned(),
            ),
            ("CA_NOTIFY__TWILIO__REQUESTS_PER_SECOND", "1000".to_owned()),
            (
                "CA_NOTIFY__VERIFICATION__BASE_URL",
                self.verification.base_url(),
            ),
            (
                "CA_NOTIFY__VERIFICATION__API_KEY",
                self.verification.api_key(),
            ),
            (
                "CA_NOTIFY__VERIFICATION__REQUESTS_PER_MINUTE",
                "60000".to_owned(),
            ),
            // No batch-issue starts unless it can finish before the deadline: the
            // simulators answer in well under this, and the tests' deadlines are short.
            (
                "CA_NOTIFY__VERIFICATION__REQUEST_TIMEOUT_SECS",
                "2".to_owned(),
            ),
            ("CA_NOTIFY__DEDUP__SECRET", SECRET.to_owned()),
        ]
        .into_iter()
        .fold(crate::ca_notify(), |cli, (k, v)| cli.env(k, v))
    }

    /// The command with nothing but what it must be told: where the store and the two
    /// servers are, their credentials and the dedup secret. Every other setting is the
    /// default an operator gets (the benchmark's `defaults` column).
    #[allow(dead_code)] // The e2e bench's; the command's tests pin their settings.
    pub fn defaults_cli(&self) -> Cli {
        self.defaults_env()
            .into_iter()
            .fold(crate::ca_notify(), |cli, (k, v)| cli.env(k, v))
    }

    /// The environment of [`World::defaults_cli`].
    #[allow(dead_code)] // The e2e bench's.
    pub fn defaults_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CA_NOTIFY__STORE__PATH", self.db().display().to_string()),
            ("CA_NOTIFY__TWILIO__BASE_URL", self.twilio.base_url()),
            (
                "CA_NOTIFY__TWILIO__ACCOUNT_SID",
                self.twilio.account_sid().to_owned(),
            ),
            (
                "CA_NOTIFY__TWILIO__AUTH_TOKEN",
                self.twilio.auth_token().to_owned(),
            ),
            (
                "CA_NOTIFY__VERIFICATION__BASE_URL",
                self.verification.base_url(),
            ),
            (
                "CA_NOTIFY__VERIFICATION__API_KEY",
                self.verification.api_key(),
            ),
            ("CA_NOTIFY__DEDUP__SECRET", SECRET.to_owned()),
        ]
    }

    /// A log file in the world's directory, for a spawned command's stderr (a pipe
    /// nobody reads would stall it).
    pub fn log(&self, name: &str) -> Stdio {
        Stdio::from(File::create(self.dir.path().join(name)).expect("log file"))
    }

    /// The last lines of a log written through [`World::log`], for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The state table, by record id, read directly from the file.
    pub fn state(&self) -> BTreeMap<String, StateRow> {
        let conn = rusqlite::Connection::open(self.db()).expect("store opens");
        conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
        let mut stmt = conn
            .prepare(
                "SELECT record_id, outcome, reason, last_deferral, claim_token IS NOT NULL, lease_until
                 FROM ca_notify_state",
            )
            .expect("state table");
        let rows = stmt
            .query_map([], |row| {
                let outcome: Option<String> = row.get(1)?;
                let reason: Option<String> = row.get(2)?;
                let deferral: Option<String> = row.get(3)?;
                Ok((
                    row.get::<_, String>(0)?,
                    StateRow {
                        reason: if outcome.is_some() { reason } else { deferral },
                        outcome,
                        claimed: row.get(4)?,
                        lease_until: row.get(5)?,
                    },
                ))
            })
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    /// `None` when every record has a final outcome; otherwise how long until one of the
    /// undecided records can be claimed (zero when one can be now).
    pub fn next_claimable_in(&self) -> Option<Duration> {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("millis");
        self.state()
            .values()
            .filter(|row| row.outcome.is_none())
            .map(|row| Duration::from_millis(u64::try_from(row.lease_until - now).unwrap_or(0)))
            .min()
    }

    /// Records with a final outcome.
    pub fn written(&self) -> usize {
        self.state()
            .values()
            .filter(|r| r.outcome.is_some())
            .count()
    }

    /// The invariants of a world whose server may keep a code row without texting (a failed
    /// delete): like [`World::assert_exactly_once`], except that a mobile may end
    /// `unconfirmed` — and then it must hold no text at all, since an unconfirmed record
    /// is one the server answered 409 for after an explicit failure of the same uuid.
    /// Returns how many phones (a person listed twice shares one uuid) ended unconfirmed.
    pub fn assert_truthful(&self) -> usize {
        let state = self.state();
        let ledger = self.verification.ledger();
        let mut unconfirmed = HashSet::new();
        for p in &self.people {
            let row = &state[&p.id];
            let outcome = row.outcome.as_deref().unwrap_or("pending");
            let live = ledger.live_texts_to(&p.e164());
            assert!(!row.claimed, "{} is left claimed ({outcome})", p.id);
            assert!(live <= 1, "{} holds {live} usable texts", p.id);
            match (p.kind, outcome) {
                (Kind::Mobile | Kind::Duplicate, "sent" | "already_sent") => {
                    assert_eq!(live, 1, "{} is {outcome} without a usable text", p.id);
                }
                (Kind::Mobile | Kind::Duplicate, "unconfirmed") => {
                    unconfirmed.insert(p.e164());
                    assert_eq!(
                        ledger.texts_to(&p.e164()),
                        0,
                        "{} is unconfirmed but was texted: the 409 came after an explicit failure here",
                        p.id
                    );
                }
                (Kind::Landline | Kind::Invalid, "not_sent") => {
                    assert_eq!(ledger.texts_to(&p.e164()), 0, "{} texted", p.id);
                }
                (kind, outcome) => panic!("{} ({kind:?}) ends {outcome}", p.id),
            }
        }
        assert_eq!(
            ledger.phones_with_more_than_one_live_text(),
            0,
            "{ledger:?}"
        );
        unconfirmed.len()
    }

    /// The invariants every world must end with:
    /// * every recipient has exactly one final outcome, and nothing is left claimed;
    /// * every valid mobile (phone and test date) holds exactly one text with a usable
    ///   code, and its records say sent or already sent (a worker killed in the middle of
    ///   a send can leave a text whose code the server deleted: the person needs, and
    ///   gets, another);
    /// * landlines and invalid numbers were never texted and say why;
    /// * nothing is marked sent that was not texted, and nothing gave up;
    /// * the ledger holds no phone twice and no text beyond the mobiles';
    /// * the export agrees: one row per recipient, none pending.
    pub fn assert_exactly_once(&self) {
        let state = self.state();
        assert_eq!(
            state.len(),
            self.people.len(),
            "one state row per recipient"
        );
        let ledger = self.verification.ledger();
        for p in &self.people {
            let row = &state[&p.id];
            let outcome = row.outcome.as_deref().unwrap_or("pending");
            let reason = row.reason.as_deref().unwrap_or("");
            let texts = ledger.live_texts_to(&p.e164());
            assert!(!row.claimed, "{} is left claimed ({outcome})", p.id);
            assert!(
                !reason.starts_with("gave_up"),
                "{} gave up ({reason}) although the deadline allowed retries",
                p.id
            );
            match p.kind {
                Kind::Mobile | Kind::Duplicate => {
                    assert!(
                        outcome == "sent" || outcome == "already_sent",
                        "{} ({:?}) ends {outcome} {reason}",
                        p.id,
                        p.kind
                    );
                    assert_eq!(texts, 1, "{} ({:?}) texted {texts} times", p.id, p.kind);
                }
                Kind::Landline => {
                    assert_eq!(outcome, "not_sent", "{}", p.id);
                    assert!(reason.starts_with("not_sms_capable:"), "{}: {reason}", p.id);
                    assert_eq!(texts, 0, "landline {} texted", p.id);
                }
                Kind::Invalid => {
                    assert_eq!(outcome, "not_sent", "{}", p.id);
                    assert!(reason.starts_with("invalid_number:"), "{}: {reason}", p.id);
                    assert_eq!(texts, 0, "invalid {} texted", p.id);
                }
            }
        }
        assert_eq!(
            ledger.phones_with_more_than_one_live_text(),
            0,
            "{ledger:?}"
        );
        let mobiles: HashSet<String> = self
            .people
            .iter()
            .filter(|p| matches!(p.kind, Kind::Mobile | Kind::Duplicate))
            .map(Person::e164)
            .collect();
        assert_eq!(
            ledger.total() - ledger.dead_total(),
            mobiles.len() as u64,
            "exactly one usable text per mobile, none to anyone else"
        );

        let export = self.dir.path().join("export.csv");
        let out = self.cli().run(&["export", &export.display().to_string()]);
        assert_eq!(out.code, Some(0), "{}", out.all());
        let text = std::fs::read_to_string(&export).expect("export");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows.len(),
            self.people.len(),
            "one export row per recipient"
        );
        assert!(
            rows.iter().all(|r| !r.contains(",pending,")),
            "nothing pending in the export"
        );
    }
}
