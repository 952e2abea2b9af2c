//! Schema migrations of the device store: SQL files applied in order, each
//! in its own transaction, tracked by `PRAGMA user_version`. Files are
//! never edited once released; a change is a new file.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/device/0001_init.sql"),
    include_str!("../../migrations/device/0002_submissions.sql"),
    include_str!("../../migrations/device/0003_lifecycle.sql"),
    include_str!("../../migrations/device/0004_witnesses.sql"),
    include_str!("../../migrations/device/0005_case_views.sql"),
    include_str!("../../migrations/device/0006_alarms.sql"),
    include_str!("../../migrations/device/0007_quarantine_bounds.sql"),
    include_str!("../../migrations/device/0008_no_lifetime_counters.sql"),
];

/// Brings the schema up to date.
pub(super) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {current} is newer than this build; update Amana"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
