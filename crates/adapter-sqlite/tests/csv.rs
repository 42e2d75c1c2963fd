//! CSV import (all or nothing, line-numbered errors, never a phone in an error). The
//! export is the job crate's, over `StoreAdmin` (`tests/admin.rs` has the rows it reads).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ca_notify_adapter_sqlite::import::MAX_LINE_BYTES;
use ca_notify_adapter_sqlite::{import_csv, ImportError, SourceTable, SqliteConfig, SqliteStore};
use ca_notify_domain::{RecipientRecord, RecordId};
use ca_notify_ports::{PhoneSource, ResultSink};
use ca_notify_store_contract::fixtures::{deferred, invalid_number, sent};
use rusqlite::Connection;
use support::{open, Harness};

const LEASE: Duration = Duration::from_secs(600);
/// The digits of the phones in these files; no error or export may contain them.
const PHONE_DIGITS: [&str; 3] = ["4155550101", "4155550102", "5550103"];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write csv");
    path
}

async fn all_records(store: &SqliteStore) -> Vec<RecipientRecord> {
    let mut records = store.claim(1_000, LEASE).await.expect("claim").records;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

fn assert_no_phone(text: &str) {
    for digits in PHONE_DIGITS {
        assert!(!text.contains(digits), "a phone leaked: {text}");
    }
}

#[tokio::test]
async fn imports_with_a_bom_crlf_any_column_order_and_verbatim_values() {
    let h = Harness::new();
    let store = open(&h.new_path(), "a").await;
    let file = write(
        h.dir(),
        "ok.csv",
        "\u{feff}Phone,ID,test_type,test_date\r\n\
         (415) 555-0101,1,confirmed,2021-06-01\r\n\
         \"x'); DROP TABLE recipients; --\",2,,\r\n\
         \"415 555 0102\nsecond line\",3,likely,2021-06-03\r\n\
         ,4,,\r\n\
         \r\n"
            .as_bytes(),
    );
    let report = import_csv(&store, &file).await.expect("import");
    assert_eq!(report.imported, 4);
    assert_eq!(report.columns, ["phone", "id", "test_type", "test_date"]);
    let records = all_records(&store).await;
    let phone = |r: &RecipientRecord| r.phone.as_ref().map(|p| p.expose().to_owned());
    assert_eq!(records[0].id, RecordId::from("1"));
    assert_eq!(phone(&records[0]).as_deref(), Some("(415) 555-0101"));
    assert_eq!(records[0].test_date.as_deref(), Some("2021-06-01"));
    assert_eq!(records[0].test_type.as_deref(), Some("confirmed"));
    assert_eq!(records[0].symptom_date, None);
    assert_eq!(
        phone(&records[1]).as_deref(),
        Some("x'); DROP TABLE recipients; --")
    );
    assert_eq!(
        records[1].test_type, None,
        "an empty optional field is NULL"
    );
    assert_eq!(
        phone(&records[2]).as_deref(),
        Some("415 555 0102\nsecond line")
    );
    assert_eq!(
        phone(&records[3]).as_deref(),
        Some(""),
        "an empty phone stays empty"
    );
}

#[tokio::test]
async fn a_header_only_file_imports_nothing_and_succeeds() {
    let h = Harness::new();
    let store = open(&h.new_path(), "a").await;
    for (name, text) in [
        ("h1.csv", "id,phone\n"),
        ("h2.csv", "id,phone"),
        ("h3.csv", "\u{feff}id,phone\r\n"),
    ] {
        let report = import_csv(&store, &write(h.dir(), name, text.as_bytes()))
            .await
            .expect(name);
        assert_eq!(report.imported, 0, "{name}");
    }
    assert_eq!(store.counts().await.expect("counts").total, 0);
}

/// Each malformed file is rejected with its line, and nothing of it is imported, even
/// the good lines before the bad one.
#[tokio::test]
async fn malformed_files_import_nothing_and_name_the_line() {
    let h = Harness::new();
    let store = open(&h.new_path(), "a").await;
    let good = "id,phone,test_date\n1,4155550101,2021-06-01\n2,4155550102,\n";
    let mut long = good.as_bytes().to_vec();
    long.extend_from_slice(b"3,");
    long.extend(std::iter::repeat_n(b'9', MAX_LINE_BYTES + 10));
    long.extend_from_slice(b",\n");
    // A quoted field of short lines, over the cap in all: one record, refused at its start.
    let mut long_record = good.as_bytes().to_vec();
    long_record.extend_from_slice(b"3,\"");
    while long_record.len() < MAX_LINE_BYTES + 1_000 {
        long_record.extend_from_slice(b"5550103\n");
    }
    long_record.extend_from_slice(b"\",\n4,4155550101,\n");
    let mut bad_utf8 = good.as_bytes().to_vec();
    bad_utf8.extend_from_slice(b"3,555\xff0103,\n");
    let cases: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        ("empty", Vec::new(), 1, "empty"),
        ("no header", b"1,4155550101\n".to_vec(), 1, "header"),
        (
            "no phone column",
            b"id,test_date\n1,2021-06-01\n".to_vec(),
            1,
            "phone",
        ),
        (
            "unknown column",
            b"id,phone,email\n".to_vec(),
            1,
            "header field 3",
        ),
        ("repeated column", b"id,phone,ID\n".to_vec(), 1, "twice"),
        (
            "too few fields",
            format!("{good}3,5550103\n").into_bytes(),
            4,
            "2 fields",
        ),
        (
            "too many fields",
            format!("{good}3,5550103,,x\n").into_bytes(),
            4,
            "4 fields",
        ),
        (
            "empty id",
            format!("{good} ,5550103,\n").into_bytes(),
            4,
            "empty id",
        ),
        (
            "repeated id",
            format!("{good}1,5550103,\n").into_bytes(),
            4,
            "line 2",
        ),
        ("invalid utf-8", bad_utf8, 4, "UTF-8"),
        ("over-long line", long, 4, "longer than"),
        ("over-long quoted record", long_record, 4, "closing quote"),
        (
            "after blank lines",
            b"id,phone\n\n\n1,5550103,x\n".to_vec(),
            4,
            "3 fields",
        ),
        (
            "after a quoted newline",
            b"id,phone\n1,\"a\nb\"\n2\n".to_vec(),
            4,
            "1 fields",
        ),
    ];
    // Every case again with CRLF line ends, which the csv crate's own line count gets wrong.
    let crlf: Vec<(String, Vec<u8>, u64, &str)> = cases
        .iter()
        .map(|(name, bytes, line, reason)| {
            let mut out = Vec::with_capacity(bytes.len() + 8);
            for &b in bytes {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            (format!("{name} (CRLF)"), out, *line, *reason)
        })
        .collect();
    let cases = cases
        .into_iter()
        .map(|(name, bytes, line, reason)| (name.to_owned(), bytes, line, reason))
        .chain(crlf);
    for (name, bytes, line, reason) in cases {
        let name = name.as_str();
        let file = write(h.dir(), "bad.csv", &bytes);
        let err = import_csv(&store, &file).await.expect_err(name);
        let text = err.to_string();
        match &err {
            ImportError::Malformed { line: got, .. } => {
                assert_eq!(*got, line, "{name}: {text}");
            }
            other => panic!("{name}: not a malformed-line error: {other}"),
        }
        assert!(text.contains(reason), "{name}: {text}");
        assert!(text.contains("nothing was imported"), "{name}: {text}");
        assert_no_phone(&text);
        assert_eq!(
            store.counts().await.expect("counts").total,
            0,
            "{name}: rows were imported"
        );
    }
}

#[tokio::test]
async fn an_id_the_store_already_holds_rejects_the_file() {
    let h = Harness::new();
    let store = open(&h.new_path(), "a").await;
    let first = write(h.dir(), "a.csv", b"id,phone\n1,4155550101\n");
    import_csv(&store, &first).await.expect("first import");
    let second = write(h.dir(), "b.csv", b"id,phone\n2,4155550102\n1,5550103\n");
    let err = import_csv(&store, &second).await.expect_err("repeat");
    match &err {
        ImportError::KnownIds { finalised, pending } => {
            assert_eq!(finalised.total, 0, "{err}");
            assert_eq!((pending.first.as_slice(), pending.total), (&[3][..], 1));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("line 3"), "{err}");
    assert!(err.to_string().contains("already holds"), "{err}");
    assert_eq!(store.counts().await.expect("counts").total, 1);
}

/// An id with a final outcome (sent, not sent, …) must never be imported again: its
/// record would not be processed, or, under a new phone, be processed as someone else.
/// Every such line is listed, with those still pending; nothing of the file goes in.
#[tokio::test]
async fn ids_with_a_final_outcome_are_refused_listing_every_line() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    let first = write(
        h.dir(),
        "a.csv",
        b"id,phone\n1,4155550101\n2,4155550102\n3,5550103\n4,4155550101\n",
    );
    import_csv(&store, &first).await.expect("first import");
    let claim = store.claim(4, LEASE).await.expect("claim");
    let id = |n: &str| RecordId::from(n);
    store
        .write_back(
            &claim.token,
            &[sent(&id("1")), invalid_number(&id("2")), deferred(&id("3"))],
        )
        .await
        .expect("write");
    store
        .release(&claim.token, &[id("4")])
        .await
        .expect("release");

    let second = write(
        h.dir(),
        "b.csv",
        b"id,phone\nnew-1,4155550101\n1,4155550101\nnew-2,4155550102\n2,4155550102\n3,5550103\n4,5550103\n",
    );
    let err = import_csv(&store, &second).await.expect_err("known ids");
    let text = err.to_string();
    match &err {
        ImportError::KnownIds { finalised, pending } => {
            assert_eq!(
                (finalised.first.as_slice(), finalised.total),
                (&[3, 5][..], 2)
            );
            assert_eq!((pending.first.as_slice(), pending.total), (&[6, 7][..], 2));
        }
        other => panic!("not a known-ids error: {other}"),
    }
    assert!(text.contains("lines 3 and 5"), "{text}");
    assert!(text.contains("final outcome"), "{text}");
    assert!(text.contains("lines 6 and 7"), "{text}");
    assert!(text.contains("nothing was imported"), "{text}");
    assert_no_phone(&text);
    assert_eq!(store.counts().await.expect("counts").total, 4);

    // The source row gone, the ledger still remembers the id.
    Connection::open(&path)
        .expect("raw")
        .execute("DELETE FROM recipients WHERE id IN ('1', '4')", [])
        .expect("delete");
    let third = write(h.dir(), "c.csv", b"id,phone\n4,4155550101\n1,4155550101\n");
    let err = import_csv(&store, &third)
        .await
        .expect_err("a deleted final id");
    match &err {
        ImportError::KnownIds { finalised, pending } => {
            assert_eq!((finalised.first.as_slice(), finalised.total), (&[3][..], 1));
            assert_eq!(
                pending.total, 0,
                "a pending id without its row is new again"
            );
        }
        other => panic!("not a known-ids error: {other}"),
    }
    let rows: i64 = Connection::open(&path)
        .expect("raw")
        .query_row("SELECT count(*) FROM recipients", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 2, "nothing was imported: {err}");
}

/// A long list is cut, with the count of all.
#[tokio::test]
async fn a_long_list_of_known_lines_is_cut_and_counted() {
    let h = Harness::new();
    let store = open(&h.new_path(), "a").await;
    let mut text = String::from("id,phone\n");
    for n in 0..500 {
        text.push_str(&format!("{n},x\n"));
    }
    let file = write(h.dir(), "many.csv", text.as_bytes());
    import_csv(&store, &file).await.expect("first import");
    let claim = store.claim(1_000, LEASE).await.expect("claim");
    let all: Vec<_> = claim.records.iter().map(|r| sent(&r.id)).collect();
    store.write_back(&claim.token, &all).await.expect("write");
    let err = import_csv(&store, &file).await.expect_err("all known");
    match &err {
        ImportError::KnownIds { finalised, .. } => {
            assert_eq!(finalised.total, 500);
            assert!(finalised.first.len() < 500);
            assert_eq!(finalised.first[..3], [2, 3, 4]);
        }
        other => panic!("not a known-ids error: {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("500 lines"), "{text}");
    assert!(text.len() < 2_000, "{text}");
}

/// An integer id column stores `007` as 7: the ledger of 7 is found all the same.
#[tokio::test]
async fn a_final_id_is_found_under_another_spelling_of_the_same_integer() {
    let h = Harness::new();
    let path = h.new_path();
    Connection::open(&path)
        .expect("raw")
        .execute_batch("CREATE TABLE Patients (PatientId INTEGER PRIMARY KEY, Mobile TEXT);")
        .expect("table");
    let store = SqliteStore::open(SqliteConfig {
        table: support::id_and_phone("Patients", "PatientId", "Mobile"),
        ..SqliteConfig::at(&path)
    })
    .await
    .expect("open");
    let file = write(h.dir(), "p.csv", b"id,phone\n7,4155550101\n");
    import_csv(&store, &file).await.expect("import");
    let claim = store.claim(1, LEASE).await.expect("claim");
    store
        .write_back(&claim.token, &[sent(&RecordId::from("7"))])
        .await
        .expect("write");
    for again in ["id,phone\n007,4155550101\n", "id,phone\n7,4155550101\n"] {
        let err = import_csv(&store, &write(h.dir(), "q.csv", again.as_bytes()))
            .await
            .expect_err(again);
        assert!(matches!(err, ImportError::KnownIds { .. }), "{err}");
    }
    Connection::open(&path)
        .expect("raw")
        .execute("DELETE FROM Patients", [])
        .expect("delete");
    let err = import_csv(
        &store,
        &write(h.dir(), "r.csv", b"id,phone\n007,4155550101\n"),
    )
    .await
    .expect_err("the ledger outlives the row");
    assert!(matches!(err, ImportError::KnownIds { .. }), "{err}");
    assert_eq!(store.counts().await.expect("counts").sent, 1);
    let rows: i64 = Connection::open(&path)
        .expect("raw")
        .query_row("SELECT count(*) FROM Patients", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 0, "nothing was imported");
}

#[tokio::test]
async fn a_column_the_store_does_not_have_is_refused() {
    let h = Harness::new();
    let path = h.new_path();
    let store = SqliteStore::open(SqliteConfig {
        table: SourceTable {
            test_type_column: None,
            ..SourceTable::default()
        },
        ..SqliteConfig::at(&path)
    })
    .await
    .expect("open");
    let file = write(
        h.dir(),
        "t.csv",
        b"id,phone,test_type\n1,4155550101,confirmed\n",
    );
    let err = import_csv(&store, &file)
        .await
        .expect_err("no test_type column");
    assert!(err.to_string().contains("test_type"), "{err}");
    let missing = h.dir().join("missing.csv");
    assert!(matches!(
        import_csv(&store, &missing).await,
        Err(ImportError::Io { .. })
    ));
}
