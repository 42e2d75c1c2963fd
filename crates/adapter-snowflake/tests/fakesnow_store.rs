//! The Snowflake store against fakesnow: the shared store contract suite, then what only
//! this store promises (bound values, login settings, session expiry, lock timeouts,
//! `check` and `migrate`).
//!
//! Needs Python with fakesnow (see `tests/support/fakesnow.rs`); fails, never skips, when
//! it cannot start.

mod support;

mod contract {
    //! Every check of `ca-notify-store-contract`, each its own test so a failure names the
    //! promise it broke.

    use super::support::Harness;

    ca_notify_store_contract::store_contract_tests!(Harness::new().await);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_workers_claiming_at_once_never_overlap() {
        ca_notify_store_contract::concurrent_claimers_never_overlap_with(
            &Harness::new().await,
            4,
            120,
            10,
        )
        .await;
    }
}

mod store {
    //! What the Snowflake store promises beyond the shared contract.

    use std::time::Duration;

    use ca_notify_adapter_snowflake::{RunReadiness, SnowflakeAuth, SnowflakeStore, StoreError};
    use ca_notify_domain::{
        ClaimToken, KeyHistory, NotSentReason, Outcome, RawPhone, RecipientRecord, RecordId,
        RecordOutcome,
    };
    use ca_notify_ports::{
        PhoneSource, ResultSink, RunEnd, RunId, RunLog, RunStart, SinkError, SourceError,
    };
    use ca_notify_store_contract::fixtures::records;
    use serde_json::json;

    use super::support::{fakesnow, unique, TestDb, TestStore};

    const LEASE: Duration = Duration::from_secs(600);

    /// A migrated store over a new source table holding `records`.
    async fn store_with(db: &TestDb, user: &str, records: &[RecipientRecord]) -> TestStore {
        let source = unique("SRC");
        db.create_source(&source, records).await;
        TestStore::open(db.config(user, &source, &unique("STATE"))).await
    }

    fn invalid(id: &RecordId) -> RecordOutcome {
        RecordOutcome::new(
            id.clone(),
            None,
            Outcome::not_sent(NotSentReason::InvalidNumber {
                detail: "unexpected_character".into(),
            }),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_looking_ids_and_values_are_bound_and_round_trip_verbatim() {
        const INJECTION: &str = "x'); DROP TABLE RECIPIENTS; --";
        let db = TestDb::new().await;
        let source = unique("SRC_TEXT_IDS");
        let name = db.qualified(&source);
        db.exec(
            &format!("CREATE TABLE {name} (ID VARCHAR, PHONE VARCHAR, TEST_DATE DATE, SYMPTOM_DATE VARCHAR, TEST_TYPE VARCHAR, TZ_OFFSET NUMBER)"),
            Vec::new(),
        )
        .await;
        let ids = [INJECTION, "it's", "\"quoted\"", "?", "plain"];
        for id in ids {
            db.exec(
                &format!("INSERT INTO {name} (ID, PHONE, TEST_TYPE) VALUES (?, ?, ?)"),
                vec![
                    Some(id.to_owned()),
                    Some(INJECTION.to_owned()),
                    Some(INJECTION.to_owned()),
                ],
            )
            .await;
        }
        let user = unique("injection");
        let store = TestStore::open(db.config(&user, &source, &unique("STATE"))).await;

        let claim = store.claim(10, LEASE).await.expect("claim");
        let mut got: Vec<&str> = claim.records.iter().map(|r| r.id.as_str()).collect();
        got.sort_unstable();
        let mut want = ids.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "ids did not round-trip verbatim");
        for r in &claim.records {
            assert!(
                r.phone == Some(RawPhone::new(INJECTION)),
                "phone of {} changed",
                r.id
            );
            assert_eq!(r.test_type.as_deref(), Some(INJECTION));
        }
        let ids: Vec<RecordId> = claim.records.iter().map(|r| r.id.clone()).collect();
        store
            .release(&claim.token, &ids[..2])
            .await
            .expect("release");
        let outcomes: Vec<RecordOutcome> = ids[2..].iter().map(invalid).collect();
        let receipt = store
            .write_back(&claim.token, &outcomes)
            .await
            .expect("write");
        assert_eq!(receipt.written, 3);
        for id in &ids[2..] {
            assert_eq!(
                db.inspect(&store.config.state_table, id).await.sent,
                Some(0),
                "{id}"
            );
        }
        let again = store.claim(10, LEASE).await.expect("claim");
        assert_eq!(again.records.len(), 2, "released records did not come back");

        for statement in fakesnow().statements() {
            assert!(
                !statement.contains("DROP TABLE RECIPIENTS"),
                "a value reached SQL text: {statement}"
            );
            assert!(
                !statement.contains("it's"),
                "a value reached SQL text: {statement}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_sets_the_lock_and_statement_timeouts_and_the_context() {
        let db = TestDb::new().await;
        let user = unique("login");
        let store = store_with(&db, &user, &records(1, 1)).await;
        let logins = fakesnow().logins_of(&user);
        assert_eq!(logins.len(), 1, "{logins:?}");
        let login = &logins[0];
        let params = &login["session_parameters"];
        assert_eq!(
            params["LOCK_TIMEOUT"],
            json!(store.config.lock_timeout_secs)
        );
        assert_eq!(
            params["STATEMENT_TIMEOUT_IN_SECONDS"],
            json!(store.config.statement_timeout_secs)
        );
        assert_eq!(params["TIMEZONE"], json!("UTC"));
        assert_eq!(params["AUTOCOMMIT"], json!(true));
        assert_eq!(
            params["QUERY_TAG"],
            json!(format!(
                "ca-notify run={} worker={}",
                store.store.run_id(),
                store.config.worker_id
            ))
        );
        assert_eq!(params["QUERY_TAG"], json!(store.store.query_tag()));
        assert_eq!(login["database"], json!(db.database));
        assert_eq!(login["schema"], json!(db.schema));
        assert_eq!(login["warehouse"], json!("test_wh"));
        assert_eq!(login["role"], json!("test_role"));
        assert_eq!(login["account_name"], json!("fake"));
        assert_eq!(login["authenticator"], json!("SNOWFLAKE"));
        assert_eq!(login["has_password"], json!(true));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_pair_login_signs_a_jwt_with_the_configured_key() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let fingerprint = std::fs::read_to_string(format!("{fixtures}/test_key.fingerprint"))
            .expect("fingerprint fixture");
        let db = TestDb::new().await;
        for (file, passphrase) in [
            ("test_key.p8", None),
            ("test_key_encrypted.p8", Some("test-passphrase")),
        ] {
            let user = unique("keypair");
            let mut config = db.config(&user, "UNUSED_SOURCE", &unique("STATE"));
            config.auth = SnowflakeAuth::KeyPair {
                private_key_pem: std::fs::read_to_string(format!("{fixtures}/{file}"))
                    .expect("key fixture")
                    .into(),
                passphrase: passphrase.map(|p| p.to_owned().into()),
            };
            let store = SnowflakeStore::connect(config)
                .await
                .expect("key-pair login");
            assert!(!format!("{store:?}").contains("PRIVATE KEY"));
            let logins = fakesnow().logins_of(&user);
            assert_eq!(logins.len(), 1);
            assert_eq!(logins[0]["authenticator"], json!("SNOWFLAKE_JWT"));
            assert_eq!(logins[0]["has_password"], json!(false));
            let claims = &logins[0]["jwt_claims"];
            assert_eq!(
                claims["sub"],
                json!(format!("FAKE.{}", user.to_ascii_uppercase()))
            );
            assert_eq!(
                claims["iss"],
                json!(format!(
                    "FAKE.{}.SHA256:{}",
                    user.to_ascii_uppercase(),
                    fingerprint.trim()
                )),
                "the JWT is not signed with the configured key"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_session_is_replaced_and_the_statement_sent_again() {
        let db = TestDb::new().await;
        let user = unique("expiry");
        let store = store_with(&db, &user, &records(1, 6)).await;
        let first = store.claim(3, LEASE).await.expect("claim");
        assert_eq!(first.records.len(), 3);

        let expired = fakesnow().post("/__shim/expire-sessions", json!({ "login_name": user }));
        assert_eq!(expired["expired"], json!(1));
        let second = store.claim(3, LEASE).await.expect("claim after expiry");
        assert_eq!(second.records.len(), 3);

        fakesnow().post("/__shim/expire-sessions", json!({ "login_name": user }));
        let outcomes: Vec<RecordOutcome> = first.records.iter().map(|r| invalid(&r.id)).collect();
        let receipt = store
            .write_back(&first.token, &outcomes)
            .await
            .expect("write after expiry");
        assert_eq!(receipt.written, 3);
        assert_eq!(fakesnow().logins_of(&user).len(), 3, "one login per expiry");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_past_lock_timeout_fails_fast_and_retryably() {
        let db = TestDb::new().await;
        let user = unique("locked");
        let source = unique("SRC");
        db.create_source(&source, &records(1, 3)).await;
        let mut config = db.config(&user, &source, &unique("STATE"));
        config.lock_timeout_secs = 1;
        let store = TestStore::open(config).await;
        let claim = store.claim(1, LEASE).await.expect("claim");

        // Another statement holds the (emulated) table lock for longer than LOCK_TIMEOUT.
        fakesnow().post("/__shim/hold-lock?seconds=3", json!({}));
        match store.claim(1, LEASE).await {
            Err(SourceError::Unavailable(m)) => assert!(m.contains("000625"), "{m}"),
            other => panic!("expected a retryable lock timeout, got {other:?}"),
        }
        let outcome = [invalid(&claim.records[0].id)];
        match store.write_back(&claim.token, &outcome).await {
            Err(SinkError::Unavailable(m)) => assert!(m.contains("000625"), "{m}"),
            other => panic!("expected a retryable lock timeout, got {other:?}"),
        }
        // Retrying, as the pipeline does, succeeds once the lock is free.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let receipt = loop {
            match store.write_back(&claim.token, &outcome).await {
                Ok(receipt) => break receipt,
                Err(SinkError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the retried write failed: {e}"),
            }
        };
        assert_eq!(receipt.written, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transport_and_server_failures_map_onto_the_port_contracts() {
        let db = TestDb::new().await;
        let user = unique("faults");
        let store = store_with(&db, &user, &records(1, 2)).await;
        let state = store.config.state_table.clone();
        fakesnow().post(
            "/__shim/fail-next",
            json!({ "match": state.clone(), "http_status": 503, "count": 1 }),
        );
        assert!(matches!(
            store.claim(1, LEASE).await,
            Err(SourceError::Unavailable(_))
        ));
        fakesnow().post(
            "/__shim/fail-next",
            json!({ "match": state.clone(), "code": "003001", "message": "Insufficient privileges to operate on table", "count": 1 }),
        );
        assert!(matches!(
            store.claim(1, LEASE).await,
            Err(SourceError::Misconfigured(_))
        ));
        fakesnow().post(
            "/__shim/fail-next",
            json!({ "match": state, "code": "100038", "message": "Numeric value '+1 415 555 0123' is not recognized", "count": 1 }),
        );
        match store.peek(1).await {
            Err(SourceError::Unknown(e)) => {
                assert!(
                    !e.to_string().contains("555 0123"),
                    "a phone number in an error: {e}"
                )
            }
            other => panic!("expected an unknown error, got {other:?}"),
        }
        assert_eq!(store.claim(2, LEASE).await.expect("claim").records.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_reports_tables_columns_schema_and_waiting_records() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 5)).await;
        let config = db.config(&unique("check"), &source, &unique("STATE"));
        let store = SnowflakeStore::connect(config).await.expect("connect");

        let before = store.check().await.expect("check");
        assert_eq!(before.schema_version, None);
        assert!(before.needs_migration());
        assert_eq!(before.pending_records, None);
        let roles: Vec<(&str, &str, &str)> = before
            .source_columns
            .iter()
            .map(|c| (c.role, c.name.as_str(), c.snowflake_type.as_str()))
            .collect();
        assert_eq!(
            roles,
            [
                ("id", "ID", "fixed"),
                ("phone", "PHONE", "text"),
                ("test_date", "TEST_DATE", "date"),
                ("symptom_date", "SYMPTOM_DATE", "text"),
                ("test_type", "TEST_TYPE", "text"),
                ("tz_offset", "TZ_OFFSET", "fixed"),
            ]
        );
        assert!(before.source_table.ends_with(&format!("\"{source}\"")));

        store.migrate().await.expect("migrate");
        let after = store.check().await.expect("check");
        assert_eq!(after.schema_version, Some(after.latest_schema_version));
        assert!(!after.needs_migration());
        assert_eq!(after.pending_records, Some(5));
        let claim = store.claim(2, LEASE).await.expect("claim");
        assert_eq!(claim.records.len(), 2);
        assert_eq!(store.check().await.expect("check").pending_records, Some(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_names_every_missing_column_and_a_missing_table() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 1)).await;
        let mut config = db.config(&unique("check_missing"), &source, &unique("STATE"));
        config.table.phone_column = "mobile".into();
        config.table.test_type_column = Some("kind".into());
        let store = SnowflakeStore::connect(config.clone())
            .await
            .expect("connect");
        match store.check().await {
            Err(StoreError::Misconfigured(m)) => {
                assert!(
                    m.contains("\"MOBILE\" (snowflake.table.phone_column)"),
                    "{m}"
                );
                assert!(
                    m.contains("\"KIND\" (snowflake.table.test_type_column)"),
                    "{m}"
                );
                assert!(!m.contains("\"ID\""), "{m}");
            }
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
        config.table.name = "NO_SUCH_TABLE".into();
        let store = SnowflakeStore::connect(config).await.expect("connect");
        match store.check().await {
            Err(StoreError::Misconfigured(m)) => assert!(m.contains("NO_SUCH_TABLE"), "{m}"),
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_is_idempotent_and_safe_from_two_workers_at_once() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 1)).await;
        let config = db.config(&unique("migrate"), &source, &unique("STATE"));
        let a = SnowflakeStore::connect(config.clone())
            .await
            .expect("connect");
        let b = SnowflakeStore::connect(config).await.expect("connect");
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        let (ra, rb) = (ra.expect("migrate a"), rb.expect("migrate b"));
        assert_eq!((ra.to_version, rb.to_version), (4, 4));
        let again = a.migrate().await.expect("migrate again");
        assert!(!again.applied_any(), "{again}");
        assert_eq!(again.from_version, 4);
        assert_eq!(a.claim(5, LEASE).await.expect("claim").records.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_state_table_keeps_the_ledger_of_one_source_table_only() {
        let db = TestDb::new().await;
        let (first, second) = (unique("SRC"), unique("SRC"));
        db.create_source(&first, &records(1, 1)).await;
        db.create_source(&second, &records(1, 1)).await;
        let state = unique("STATE");
        TestStore::open(db.config(&unique("ledger"), &first, &state)).await;
        let other = SnowflakeStore::connect(db.config(&unique("ledger"), &second, &state))
            .await
            .expect("connect");
        for result in [
            other.migrate().await.map(|_| ()),
            other.check().await.map(|_| ()),
        ] {
            match result {
                Err(StoreError::Misconfigured(m)) => {
                    assert!(m.contains(&first) && m.contains(&second), "{m}")
                }
                other => panic!("expected a misconfiguration, got {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_migration_the_ports_say_misconfigured_and_name_the_state_table() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 1)).await;
        let state = unique("STATE");
        let store = SnowflakeStore::connect(db.config(&unique("unmigrated"), &source, &state))
            .await
            .expect("connect");
        match store.claim(1, LEASE).await {
            Err(SourceError::Misconfigured(m)) => {
                assert!(m.contains(&state) && m.contains("migration"), "{m}")
            }
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
        let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");
        assert!(matches!(
            store
                .write_back(&token, &[invalid(&RecordId::new("1"))])
                .await,
            Err(SinkError::Misconfigured(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_and_null_source_ids_are_handled_once_or_not_at_all() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        let mut rows = records(1, 2);
        let mut twin = rows[0].clone();
        twin.phone = Some(RawPhone::new("+14155550999"));
        rows.push(twin);
        db.create_source(&source, &rows).await;
        db.exec(
            &format!(
                "INSERT INTO {} (ID, PHONE) VALUES (NULL, '+14155550100')",
                db.qualified(&source)
            ),
            Vec::new(),
        )
        .await;
        let store = TestStore::open(db.config(&unique("dups"), &source, &unique("STATE"))).await;
        assert_eq!(store.store.peek(10).await.expect("peek").len(), 2);
        let claim = store.claim(10, LEASE).await.expect("claim");
        let ids: Vec<&str> = claim.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["1", "2"],
            "a repeated id came back twice, or a NULL id came back"
        );
        let outcomes: Vec<RecordOutcome> = claim.records.iter().map(|r| invalid(&r.id)).collect();
        let mut doubled = outcomes.clone();
        doubled.push(outcomes[0].clone());
        let receipt = store
            .write_back(&claim.token, &doubled)
            .await
            .expect("write");
        assert_eq!((receipt.written, receipt.not_owned), (2, 1));
        assert!(store
            .claim(10, LEASE)
            .await
            .expect("claim")
            .records
            .is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_back_that_is_only_partly_ours_is_tallied_exactly() {
        let db = TestDb::new().await;
        let store = store_with(&db, &unique("partial"), &records(1, 4)).await;
        let claim = store.claim(4, LEASE).await.expect("claim");
        let ids: Vec<RecordId> = claim.records.iter().map(|r| r.id.clone()).collect();
        store
            .release(&claim.token, &ids[..1])
            .await
            .expect("release one");
        let outcomes = vec![
            invalid(&ids[0]),
            invalid(&ids[1]),
            invalid(&ids[2]),
            RecordOutcome::new(
                ids[3].clone(),
                None,
                Outcome::deferred(ca_notify_domain::DeferReason::Deadline),
            ),
        ];
        let receipt = store
            .write_back(&claim.token, &outcomes)
            .await
            .expect("write");
        assert_eq!(
            (receipt.written, receipt.released, receipt.not_owned),
            (2, 1, 1)
        );
    }

    /// The attempt log is written before the state: when the state `MERGE` then fails, the
    /// attempts are kept (true facts), and the retry the error asks for writes the state
    /// without appending them again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_goes_first_and_a_retry_after_a_failed_state_write_completes_it_once() {
        use ca_notify_domain::AttemptAnswer::{FailedAfterCommit, Issued};
        let db = TestDb::new().await;
        let store = store_with(&db, &unique("log_first"), &records(1, 1)).await;
        let claim = store.claim(1, LEASE).await.expect("claim");
        let key = ca_notify_store_contract::fixtures::dedup_key(77);
        let sent = RecordOutcome {
            attempts: vec![FailedAfterCommit, Issued],
            ..RecordOutcome::new(claim.records[0].id.clone(), Some(key), Outcome::Sent)
        };
        let state_merge = format!(
            "MERGE INTO {} AS st",
            db.qualified(&store.config.state_table)
        );
        fakesnow().post(
            "/__shim/fail-next",
            json!({ "match": state_merge, "code": "000625", "message": "lock wait", "count": 1 }),
        );
        match store
            .write_back(&claim.token, std::slice::from_ref(&sent))
            .await
        {
            Err(SinkError::Unavailable(_)) => {}
            other => panic!("expected a retryable failure, got {other:?}"),
        }
        let logged = KeyHistory::default().with(&[FailedAfterCommit, Issued]);
        assert_eq!(
            store.key_histories(&[key]).await.expect("ledger"),
            vec![logged],
            "the attempts were not kept before the state write"
        );
        let receipt = store
            .write_back(&claim.token, std::slice::from_ref(&sent))
            .await
            .expect("the retry");
        assert_eq!(receipt.written, 1);
        assert_eq!(
            store.key_histories(&[key]).await.expect("ledger"),
            vec![KeyHistory {
                texted: true,
                ..logged
            }],
            "the retry appended the attempts again"
        );
    }

    /// A state table of version 1 (no attempt log) keeps working for claims and is told to
    /// migrate for the ledger; `migrate` brings it to the latest version (the attempt log,
    /// then the runs) with every row as it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_state_table_is_upgraded_in_place() {
        let db = TestDb::new().await;
        let store = store_with(&db, &unique("upgrade"), &records(1, 2)).await;
        let claim = store.claim(2, LEASE).await.expect("claim");
        let ids: Vec<RecordId> = claim.records.iter().map(|r| r.id.clone()).collect();
        let key = ca_notify_store_contract::fixtures::dedup_key(78);
        let first = RecordOutcome::new(ids[0].clone(), Some(key), Outcome::Sent);
        store
            .write_back(&claim.token, &[first])
            .await
            .expect("write");
        let state = &store.config.state_table;
        db.exec(
            &format!("DROP TABLE {}", db.qualified(&format!("{state}_ATTEMPTS"))),
            Vec::new(),
        )
        .await;
        db.exec(
            &format!("DROP TABLE {}", db.qualified(&format!("{state}_LOCK"))),
            Vec::new(),
        )
        .await;
        db.exec(
            &format!(
                "DELETE FROM {} WHERE VERSION >= 2",
                db.qualified(&format!("{state}_MIGRATIONS"))
            ),
            Vec::new(),
        )
        .await;
        let before = store.store.check().await.expect("check");
        assert_eq!(before.schema_version, Some(1));
        assert!(before.needs_migration());
        match store.key_histories(&[key]).await {
            Err(SinkError::Misconfigured(m)) => assert!(m.contains("migration"), "{m}"),
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
        let report = store.store.migrate().await.expect("migrate");
        assert_eq!((report.from_version, report.to_version), (1, 4));
        assert_eq!(
            store.key_histories(&[key]).await.expect("ledger")[0],
            KeyHistory {
                texted: true,
                ..KeyHistory::default()
            },
            "the ledger lost a texted record in the upgrade"
        );
        let receipt = store
            .write_back(&claim.token, &[invalid(&ids[1])])
            .await
            .expect("write");
        assert_eq!(receipt.written, 1, "the upgrade lost a live claim");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn debug_output_never_shows_the_password() {
        let db = TestDb::new().await;
        let mut config = db.config(&unique("debug"), "UNUSED_SOURCE", &unique("STATE"));
        config.auth = SnowflakeAuth::Password("correct horse battery staple".to_owned().into());
        assert!(!format!("{config:?}").contains("horse"));
        let store = SnowflakeStore::connect(config).await.expect("connect");
        let shown = format!("{store:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("SnowflakeStore"), "{shown}");
    }

    /// The first words of a statement, enough to tell which one it is.
    fn head(statement: &str, words: usize) -> String {
        statement
            .split_whitespace()
            .take(words)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_is_one_transaction_that_takes_the_lock_before_it_reads() {
        let db = TestDb::new().await;
        let user = unique("claim_order");
        let store = store_with(&db, &user, &records(1, 3)).await;
        let state = db.qualified(&store.config.state_table);
        let lock = db.qualified(&format!("{}_LOCK", store.config.state_table));
        let before = fakesnow().statements_of(&user).len();
        let claim = store.claim(2, LEASE).await.expect("claim");
        assert_eq!(claim.records.len(), 2);
        let sent: Vec<String> = fakesnow().statements_of(&user)[before..]
            .iter()
            .map(|s| head(s, 3))
            .collect();
        assert_eq!(
            sent,
            vec![
                "SELECT 1 AS".to_owned(),
                "BEGIN TRANSACTION".to_owned(),
                format!("UPDATE {lock} SET"),
                format!("INSERT INTO {state}"),
                format!("UPDATE {state} AS"),
                "COMMIT".to_owned(),
                "SELECT st.RECORD_ID AS".to_owned(),
            ],
            "the hint, then BEGIN, the lock, the new rows, the stamps, COMMIT, the read-back"
        );
        for statement in &fakesnow().statements_of(&user)[before..] {
            assert!(!statement.contains("LIMIT ?"), "a bound LIMIT: {statement}");
        }
    }

    /// A run about to start, as the job describes it.
    fn run_start(id: &str) -> RunStart {
        RunStart {
            id: RunId::parse(id).expect("valid"),
            worker: "worker-1".to_owned(),
            started_at: chrono::Utc::now(),
        }
    }

    /// Prepares `store` for run `id`, as the job does before its first claim.
    async fn prepare(store: &TestStore, id: &str) -> (RunStart, RunReadiness) {
        let start = run_start(id);
        let readiness = store
            .store
            .prepare_for_run(true, Some(&start))
            .await
            .expect("ready");
        (start, readiness)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_run_costs_one_statement_and_takes_no_lock() {
        let db = TestDb::new().await;
        let user = unique("idle");
        let store = store_with(&db, &user, &[]).await;
        let runs = db.qualified(&format!("{}_RUNS", store.config.state_table));
        let before = fakesnow().statements_of(&user).len();
        // The whole run, as the job drives it: prepare, start, claim, count, finish.
        let (start, readiness) = prepare(&store, "idle-run").await;
        assert_eq!(readiness.waiting, Some(false));
        assert_eq!(readiness.version, 4);
        store.start_run(&start).await.expect("start");
        let claim = store.claim(100, LEASE).await.expect("claim");
        assert!(claim.records.is_empty());
        let backlog = store.backlog().await.expect("backlog");
        assert_eq!((backlog.records, backlog.oldest_arrival), (0, None));
        store
            .finish_run(&start.id, &RunEnd::nothing_to_claim(chrono::Utc::now()))
            .await
            .expect("finish");
        let sent = fakesnow().statements_of(&user)[before..].to_vec();
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert!(
            sent[0].starts_with(&format!("INSERT INTO {runs}")),
            "{sent:#?}"
        );
        assert!(
            !sent[0].contains("_LOCK"),
            "an idle run took the claim lock"
        );
        // The one statement recorded the run, finished and successful.
        let recorded = store.recent_runs(5).await.expect("runs");
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0].start.id, start.id);
        assert_eq!(recorded[0].start.worker, "worker-1");
        let end = recorded[0].end.as_ref().expect("an end");
        assert!(end.is_nothing_to_claim(), "{end:?}");
        // The status is used once: a later claim asks again, still without the lock.
        let before = fakesnow().statements_of(&user).len();
        let again = store.claim(100, LEASE).await.expect("claim");
        assert!(again.records.is_empty());
        let sent = fakesnow().statements_of(&user)[before..].to_vec();
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert!(sent[0].starts_with("SELECT 1 AS PENDING"), "{sent:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_recorded_idle_that_claims_after_all_records_what_it_did() {
        let db = TestDb::new().await;
        let user = unique("idle_then_busy");
        let store = store_with(&db, &user, &[]).await;
        let (start, readiness) = prepare(&store, "idle-then-busy").await;
        assert_eq!(readiness.waiting, Some(false));
        store.start_run(&start).await.expect("start");
        assert!(store
            .claim(10, LEASE)
            .await
            .expect("claim")
            .records
            .is_empty());
        // A record arrives during the run, and a later claim of the same run takes it.
        db.exec(
            &format!(
                "INSERT INTO {} (ID, PHONE, ARRIVED_AT) VALUES (?, ?, SYSDATE())",
                db.qualified(&store.config.table.name)
            ),
            vec![Some("77".to_owned()), Some("+14155550177".to_owned())],
        )
        .await;
        let claim = store.claim(10, LEASE).await.expect("claim");
        assert_eq!(claim.records.len(), 1);
        let backlog = store.backlog().await.expect("backlog");
        assert_eq!(backlog.records, 0, "the claimed record is not waiting");
        let mut end = RunEnd::nothing_to_claim(chrono::Utc::now());
        end.counts.claimed = 1;
        end.stop = "deadline".into();
        store.finish_run(&start.id, &end).await.expect("finish");
        let recorded = store.recent_runs(5).await.expect("runs");
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        let written = recorded[0].end.as_ref().expect("an end");
        assert_eq!(
            (written.counts.claimed, written.stop.as_str()),
            (1, "deadline")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_run_reads_the_status_after_the_idle_check_and_records_nothing_yet() {
        let db = TestDb::new().await;
        let user = unique("busy");
        let store = store_with(&db, &user, &records(1, 2)).await;
        let before = fakesnow().statements_of(&user).len();
        let (_, readiness) = prepare(&store, "busy-run").await;
        assert_eq!(readiness.waiting, Some(true));
        let sent: Vec<String> = fakesnow().statements_of(&user)[before..]
            .iter()
            .map(|s| head(s, 2))
            .collect();
        assert_eq!(
            sent,
            vec!["INSERT INTO".to_owned(), "SELECT (SELECT".to_owned()],
            "the idle check, then the run status"
        );
        assert!(
            store.recent_runs(5).await.expect("runs").is_empty(),
            "a run with work was recorded before it ended"
        );
        let backlog = store.backlog().await.expect("backlog");
        assert_eq!(backlog.records, 2);
        assert!(backlog.oldest_arrival.is_some(), "{backlog:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_on_an_empty_schema_migrates_first_or_names_ca_notify_migrate() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 2)).await;
        let config = db.config(&unique("empty_schema"), &source, &unique("STATE"));
        let store = SnowflakeStore::connect(config).await.expect("connect");
        match store.prepare_for_run(false, None).await {
            Err(StoreError::Misconfigured(m)) => {
                assert!(m.contains("ca-notify migrate"), "{m}");
                assert!(m.contains("snowflake.auto_migrate"), "{m}");
            }
            other => panic!("expected a refusal naming ca-notify migrate, got {other:?}"),
        }
        let readiness = store
            .prepare_for_run(true, Some(&run_start("empty-schema")))
            .await
            .expect("migrated");
        assert_eq!((readiness.found_version, readiness.version), (0, 4));
        assert_eq!(store.claim(5, LEASE).await.expect("claim").records.len(), 2);
        let again = store.prepare_for_run(false, None).await.expect("ready");
        assert_eq!(again.waiting, Some(false), "both records are claimed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_print_is_what_migrate_runs() {
        let db = TestDb::new().await;
        let source = unique("SRC");
        db.create_source(&source, &records(1, 1)).await;
        let user = unique("print");
        let config = db.config(&user, &source, &unique("STATE"));
        let script = config.migration_sql().expect("script");
        let store = SnowflakeStore::connect(config).await.expect("connect");
        store.migrate().await.expect("migrate");
        let is_ddl = |s: &str| s.starts_with("CREATE TABLE") || s.contains("_LOCK\" (NAME)");
        let printed: Vec<String> = script
            .lines()
            .filter(|l| !l.starts_with("--") && !l.starts_with("GRANT"))
            .map(|l| l.trim_end_matches(';').to_owned())
            .collect();
        let sent = fakesnow().statements_of(&user);
        assert_eq!(
            printed.iter().filter(|s| is_ddl(s)).collect::<Vec<_>>(),
            sent.iter().filter(|s| is_ddl(s)).collect::<Vec<_>>(),
            "the printed DDL differs from what migrate sent, or its order"
        );
        let records = |statements: &[String], table: &str| {
            statements
                .iter()
                .filter(|s| s.starts_with(&format!("INSERT INTO {}", db.qualified(table))))
                .count()
        };
        let state = &store_name(&sent);
        for table in [format!("{state}_MIGRATIONS"), format!("{state}_META")] {
            assert_eq!(
                records(&printed, &table),
                records(&sent, &table),
                "{table}: the printed records differ from what migrate kept"
            );
        }
    }

    /// The state table a migration created, from its first `CREATE TABLE`.
    fn store_name(sent: &[String]) -> String {
        let create = sent
            .iter()
            .find(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
            .expect("a CREATE TABLE");
        let name = create
            .split_whitespace()
            .nth(5)
            .expect("a table name")
            .rsplit('.')
            .next()
            .expect("a table");
        name.trim_matches('"')
            .trim_end_matches("_MIGRATIONS")
            .to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_programmatic_access_token_is_sent_where_a_password_goes() {
        let db = TestDb::new().await;
        let user = unique("pat");
        let mut config = db.config(&user, "UNUSED_SOURCE", &unique("STATE"));
        config.auth = SnowflakeAuth::ProgrammaticAccessToken("pat-secret-value".to_owned().into());
        let store = SnowflakeStore::connect(config).await.expect("PAT login");
        assert!(!format!("{store:?}").contains("pat-secret-value"));
        let logins = fakesnow().logins_of(&user);
        assert_eq!(logins.len(), 1);
        assert_eq!(logins[0]["authenticator"], json!("SNOWFLAKE"));
        assert_eq!(logins[0]["has_password"], json!(true));
        assert!(!logins[0].to_string().contains("pat-secret-value"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_whose_source_table_is_gone_is_told_so_not_to_migrate() {
        let db = TestDb::new().await;
        let user = unique("gone");
        let store = store_with(&db, &user, &records(1, 1)).await;
        db.exec(
            &format!("DROP TABLE {}", db.qualified(&store.config.table.name)),
            Vec::new(),
        )
        .await;
        for auto_migrate in [true, false] {
            match store
                .store
                .prepare_for_run(auto_migrate, Some(&run_start("gone")))
                .await
            {
                Err(StoreError::Misconfigured(m)) => {
                    assert!(
                        m.contains(&store.config.table.name.to_ascii_uppercase())
                            || m.contains("does not exist"),
                        "{m}"
                    );
                    assert!(!m.contains("auto_migrate is off"), "{m}");
                }
                other => panic!("expected the missing source table, got {other:?}"),
            }
        }
    }
}
