//! The engine's logs, at every level, carry record ids but never a phone number.
//!
//! A test binary of its own: tracing caches per-callsite interest globally, and a
//! thread-local subscriber racing other tests' threads could miss events.

use std::sync::{Arc, Mutex};

use ca_notify_adapter_memory::{
    MemoryIssuer, MemoryStore, MemoryValidator, Scripted, ValidatorFault,
};
use ca_notify_domain::{DedupSecret, ItemAnswer, RawPhone, RecipientRecord};
use ca_notify_pipeline::{Pipeline, Settings};
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn logs_at_every_level_carry_no_phone_number() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut records: Vec<RecipientRecord> = (0..20)
        .map(|i| {
            RecipientRecord::new(format!("r{i}"), format!("+1415{:07}", 2_000_001 + i * 10))
                .with_test_date("2021-06-14")
        })
        .collect();
    records[3].phone = Some(RawPhone::new("(415) 555-01x9"));
    records[4].phone = Some(RawPhone::new("+14155550100"));
    let store = Arc::new(MemoryStore::with_records(records.clone()));
    let validator = MemoryValidator::new();
    validator.fail_next(2, ValidatorFault::Unavailable);
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Answers(vec![ItemAnswer::failed("sms_failure")])]);
    let pipeline = Pipeline::builder()
        .source(store.clone())
        .validator(Arc::new(validator))
        .issuer(Arc::new(issuer))
        .sink(store)
        .settings(Settings::default())
        .dedup_secret(DedupSecret::new("a test secret, long enough".to_owned().into()).expect("ok"))
        .today(Arc::new(|| {
            NaiveDate::from_ymd_opt(2021, 6, 15).expect("date")
        }))
        .build()
        .expect("pipeline");
    pipeline.run(CancellationToken::new()).await.expect("run");

    let logs = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.contains("Epoch written."), "the capture works: {logs}");
    if std::env::var_os("SHOW_LOGS").is_some() {
        println!("{logs}");
    }
    assert!(
        logs.contains("record_id=r0"),
        "record ids are logged: {logs}"
    );
    assert!(logs.contains("Phone validator unavailable"), "{logs}");
    for record in &records {
        let raw = record.phone.as_ref().expect("phone").expose();
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !logs.contains(&digits[digits.len() - 7..]),
            "a phone number leaked: {logs}"
        );
    }
}
