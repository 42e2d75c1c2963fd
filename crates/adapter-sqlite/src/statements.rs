//! The SQL text of every operation, built once per store from the validated names.
//!
//! Configured names appear only quoted (see [`crate::identifier`]); every value is a
//! numbered parameter (`?1`, …). The state table's name is fixed.

use crate::config::ValidTable;

/// Up to `?2` pending records (no final outcome, and unclaimed or lease ended by `?1`), in
/// the order a claim takes them. Walks the partial index `ca_notify_state_pending` from its
/// low end: unclaimed rows (lease 0) first, then the oldest expired leases; live leases
/// and processed rows are never read.
pub(crate) const CLAIMABLE: &str = "SELECT record_id FROM ca_notify_state
    WHERE outcome IS NULL AND lease_until <= ?1
    ORDER BY lease_until LIMIT ?2";

/// Stamps claim `?2` (worker `?3`, lease until `?4`) on record `?1` if it is claimable at
/// `?5`. A claim runs [`CLAIMABLE`] and then this per record in one write transaction, so
/// the check always holds there; it keeps the statement right on its own. One record a
/// statement, not one `UPDATE … WHERE record_id IN (SELECT …) RETURNING`: SQLite runs an
/// update whose WHERE holds a subquery in two passes through temporary tables (the list,
/// the keys to change, the rows returned), which cost more than the claim's own writes.
pub(crate) const STAMP: &str = "UPDATE ca_notify_state
    SET claim_token = ?2, claimed_by = ?3, lease_until = ?4
    WHERE record_id = ?1 AND outcome IS NULL AND lease_until <= ?5";

/// A final outcome, only where `?2` still holds the claim.
pub(crate) const WRITE_FINAL: &str = "UPDATE ca_notify_state
    SET sent = ?3, outcome = ?4, reason = ?5, dedup_uuid = ?6, processed_at = ?7, run_id = ?8,
        attempts = attempts + 1, claim_token = NULL, claimed_by = NULL, lease_until = 0
    WHERE record_id = ?1 AND claim_token = ?2 AND outcome IS NULL";

/// A deferral: released with an attempt counted and the reason kept, no outcome.
pub(crate) const WRITE_DEFERRED: &str = "UPDATE ca_notify_state
    SET attempts = attempts + 1, last_deferral = ?3, run_id = ?4,
        claim_token = NULL, claimed_by = NULL, lease_until = 0
    WHERE record_id = ?1 AND claim_token = ?2 AND outcome IS NULL";

/// A deferral that holds the claim (a request may still be running): an attempt counted
/// and the reason kept; the token is cleared, so no write or release by it can end the
/// hold early, but the lease (and `claimed_by`) stay, so no claim takes the record before
/// `lease_until`.
pub(crate) const WRITE_HELD: &str = "UPDATE ca_notify_state
    SET attempts = attempts + 1, last_deferral = ?3, run_id = ?4, claim_token = NULL
    WHERE record_id = ?1 AND claim_token = ?2 AND outcome IS NULL";

/// One attempt's answer for dedup uuid `?1`, kept by the write-back of claim `?2` for
/// record `?3` at index `?4`; that key makes a repeated write-back append nothing.
pub(crate) const APPEND_ATTEMPT: &str = "INSERT INTO ca_notify_attempts
    (dedup_uuid, claim_token, record_id, attempt_index, answer, recorded_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT DO NOTHING";

/// The ledger of the dedup uuids in the JSON array `?1`: one row per (uuid, answer) of the
/// attempt log with its count, and one row with a NULL answer per uuid some record was
/// written texted under. Both halves look each uuid up (`CROSS JOIN` keeps the asked
/// uuids the outer loop): the attempt log's key leads with the uuid, and
/// `ca_notify_state_texted` holds the texted rows by uuid.
pub(crate) const KEY_HISTORIES: &str = "WITH k(dedup_uuid) AS (SELECT DISTINCT value FROM json_each(?1))
    SELECT a.dedup_uuid, a.answer, count(*)
      FROM k CROSS JOIN ca_notify_attempts AS a ON a.dedup_uuid = k.dedup_uuid
     GROUP BY a.dedup_uuid, a.answer
    UNION ALL
    SELECT k.dedup_uuid, NULL, 1 FROM k
     WHERE EXISTS (SELECT 1 FROM ca_notify_state AS s WHERE s.dedup_uuid = k.dedup_uuid AND s.sent = 1)";

/// A release: the claim cleared, nothing else.
pub(crate) const RELEASE: &str = "UPDATE ca_notify_state
    SET claim_token = NULL, claimed_by = NULL, lease_until = 0
    WHERE record_id = ?1 AND claim_token = ?2 AND outcome IS NULL";

/// Totals for the CLI; `?1` is now.
pub(crate) const COUNTS: &str = "SELECT count(*),
        count(*) FILTER (WHERE outcome IS NULL AND lease_until <= ?1),
        count(*) FILTER (WHERE outcome IS NULL AND lease_until > ?1),
        count(*) FILTER (WHERE sent = 1),
        count(*) FILTER (WHERE sent = 0)
    FROM ca_notify_state";

/// The outcome of record `?1`: no row when the ledger does not know it, NULL while pending.
pub(crate) const OUTCOME_OF: &str = "SELECT outcome FROM ca_notify_state WHERE record_id = ?1";

/// Statements that name the source table.
#[derive(Debug, Clone)]
pub(crate) struct SourceSql {
    /// The records of claim `?1`: state joined to source by id.
    pub read_by_token: String,
    /// Up to `?2` records a claim at time `?1` would take.
    pub peek: String,
    /// Forgets the pending state of `?1` when its source row is truly gone. The full
    /// `CAST` comparison (no index) runs only for such orphans, which are rare.
    pub drop_orphan: String,
    /// Inserts one source row (import) and returns its id as the state table spells it
    /// (an INTEGER column stores `007` as 7); the adoption trigger adds its state row.
    pub insert: String,
    /// The id, as the state table spells it, of a source row with id `?1` (import).
    pub find: String,
}

impl SourceSql {
    pub fn new(t: &ValidTable) -> Self {
        let src = t.name.quoted();
        let id = t.id.quoted();
        let column = |c: Option<&crate::identifier::Identifier>| {
            c.map_or_else(|| "NULL".to_owned(), |c| format!("r.{}", c.quoted()))
        };
        let fields = format!(
            "s.record_id, r.{}, {}, {}, {}",
            t.phone.quoted(),
            column(t.test_date.as_ref()),
            column(t.symptom_date.as_ref()),
            column(t.test_type.as_ref())
        );
        let present: Vec<String> = t.columns().iter().flatten().map(|c| c.quoted()).collect();
        let placeholders: Vec<String> = (1..=present.len()).map(|i| format!("?{i}")).collect();
        Self {
            read_by_token: format!(
                "SELECT {fields} FROM ca_notify_state AS s JOIN {src} AS r ON r.{id} = s.record_id
                  WHERE s.claim_token = ?1 ORDER BY s.record_id"
            ),
            peek: format!(
                "SELECT {fields}
                   FROM (SELECT record_id, lease_until FROM ca_notify_state
                          WHERE outcome IS NULL AND lease_until <= ?1
                          ORDER BY lease_until LIMIT ?2) AS s
                   JOIN {src} AS r ON r.{id} = s.record_id
                  ORDER BY s.lease_until, s.record_id"
            ),
            drop_orphan: format!(
                "DELETE FROM ca_notify_state
                  WHERE record_id = ?1 AND outcome IS NULL
                    AND NOT EXISTS (SELECT 1 FROM {src} AS r WHERE CAST(r.{id} AS TEXT) = ?1)"
            ),
            insert: format!(
                "INSERT INTO {src} ({}) VALUES ({}) RETURNING CAST({id} AS TEXT)",
                present.join(", "),
                placeholders.join(", ")
            ),
            find: format!("SELECT CAST({id} AS TEXT) FROM {src} WHERE {id} = ?1 LIMIT 1"),
        }
    }
}
