//! When a commit is forced to disk: every write-back, and nothing that the ledger does not
//! need.
//!
//! The connection runs with `synchronous = FULL`, so a commit is on disk (the WAL's
//! `fsync`) before it returns: a power cut cannot forget that someone was texted. A claim
//! is the exception ([`unforced`]): it only stamps a lease, and a lease lost to a power
//! cut loses nothing — the process that held it died with it, and whatever it sent is
//! known to the ledger only through a write-back, which is forced and, the WAL being
//! one ordered log, carries every earlier commit of the file with it to disk.
//! `docs/store.md` (*Durability and I/O*) has the whole argument.

use rusqlite::Connection;

use crate::error::StoreError;

/// Sets the connection's default: every commit forced to disk.
pub(crate) fn force_commits(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Runs `f` with commits not forced to disk (`synchronous = NORMAL`: in WAL mode the
/// commit is written to the log, and reaches the disk with the next forced commit or
/// checkpoint), then forces commits again, whether `f` succeeded or not.
pub(crate) fn unforced<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = f(conn);
    let restored = force_commits(conn);
    let value = result?;
    restored?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
            .expect("pragma")
    }

    const NORMAL: i64 = 1;
    const FULL: i64 = 2;

    #[test]
    fn commits_are_forced_again_after_an_unforced_call() {
        let mut conn = Connection::open_in_memory().expect("memory");
        force_commits(&conn).expect("full");
        let inside = unforced(&mut conn, |conn| Ok(synchronous(conn))).expect("ran");
        assert_eq!(inside, NORMAL);
        assert_eq!(synchronous(&conn), FULL);
    }

    #[test]
    fn commits_are_forced_again_when_the_unforced_call_fails() {
        let mut conn = Connection::open_in_memory().expect("memory");
        force_commits(&conn).expect("full");
        let failed: Result<(), _> = unforced(&mut conn, |_| {
            Err(StoreError::Misconfigured("on purpose".to_owned()))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&conn), FULL);
    }
}
