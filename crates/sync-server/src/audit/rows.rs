//! The row check: every value of every documented column holds what the
//! inventory says (a 16-byte id, an integer, an age recipient, …), and
//! every sealed blob outside the envelope log parses as what it claims
//! (key envelopes and announcements verify against the roster, refused
//! envelopes are still envelopes around an age body). The envelope log
//! itself is checked by [`amana_core::audit::LogAudit`].

use std::collections::BTreeMap;

use amana_core::TeamId;
use amana_core::agefile::{self, AgeLimits};
use amana_core::audit::Finding;
use amana_core::envelope::{EnvelopeLimits, Stored};
use amana_core::keys::announce::Announcement;
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::roster::Roster;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::schema::{ColumnType, Table};

/// A finding with the bytes that caused it, so the byte scan can name the
/// same bytes as one finding, not two.
pub struct Evidence {
    /// The finding.
    pub finding: Finding,
    /// The offending value.
    pub bytes: Vec<u8>,
}

/// Checks every documented table's rows; `rosters` are the verified
/// rosters by team.
pub fn check(
    conn: &Connection,
    inventory: &[Table],
    rosters: &BTreeMap<TeamId, Roster>,
) -> rusqlite::Result<(Vec<Evidence>, u64)> {
    let mut out = Vec::new();
    let mut values = 0u64;
    for table in inventory {
        let exists: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&table.name],
            |r| r.get(0),
        )?;
        if !exists {
            continue;
        }
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let sql = format!(
            "SELECT rowid, {} FROM \"{}\"",
            columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            table.name
        );
        let Ok(mut stmt) = conn.prepare(&sql) else {
            // A documented column is missing; the schema check says so.
            continue;
        };
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(0)?;
            let team = match row.get_ref(1)? {
                ValueRef::Blob(b) if table.columns[0].name == "team" => TeamId::from_slice(b).ok(),
                _ => None,
            };
            for (i, column) in table.columns.iter().enumerate() {
                values += 1;
                let value = row.get_ref(i + 1)?;
                let location = format!("table {} row {rowid} column {}", table.name, column.name);
                let roster = team.and_then(|t| rosters.get(&t));
                if let Some((code, detail)) = check_value(&table.name, column, value, roster) {
                    let bytes = match value {
                        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                        _ => Vec::new(),
                    };
                    out.push(Evidence {
                        finding: Finding::alarm(code, location, detail),
                        bytes,
                    });
                    // One finding per row.
                    break;
                }
            }
        }
    }
    Ok((out, values))
}

type Problem = Option<(&'static str, String)>;

fn check_value(
    table: &str,
    column: &super::schema::Column,
    value: ValueRef<'_>,
    roster: Option<&Roster>,
) -> Problem {
    let wrong = |what: &str| {
        Some((
            "unexpected_value",
            format!(
                "holds {what}, but the inventory documents {:?}",
                column.kind
            ),
        ))
    };
    let describe = |v: ValueRef<'_>| match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(_) => "an integer".to_owned(),
        ValueRef::Real(_) => "a real number".to_owned(),
        ValueRef::Text(t) => format!("{} bytes of text", t.len()),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    };
    match (column.kind, value) {
        (ColumnType::Integer, ValueRef::Integer(_))
        | (ColumnType::IntegerOrNull, ValueRef::Integer(_) | ValueRef::Null) => None,
        (ColumnType::FixedBlob(n), ValueRef::Blob(b)) if b.len() == n => None,
        (ColumnType::Text, ValueRef::Text(t)) => {
            let text = std::str::from_utf8(t).unwrap_or_default();
            if text.parse::<age::x25519::Recipient>().is_ok() {
                None
            } else {
                Some((
                    "unexpected_value",
                    format!("{} bytes of text that are not an age recipient", t.len()),
                ))
            }
        }
        (ColumnType::Blob, ValueRef::Blob(b)) => check_blob(table, &column.name, b, roster),
        (_, v) => wrong(&describe(v)),
    }
}

/// Sealed blobs outside the envelope log.
fn check_blob(table: &str, column: &str, bytes: &[u8], roster: Option<&Roster>) -> Problem {
    match (table, column) {
        ("key_envelopes", "key_envelope") => {
            let parsed = KeyEnvelope::parse(bytes.to_vec())
                .map_err(|e| e.to_string())
                .and_then(|k| match roster {
                    Some(r) => k.verify(r).map_err(|e| e.to_string()),
                    None => Ok(()),
                });
            parsed
                .err()
                .map(|e| ("bad_key_envelope", format!("not a valid key envelope: {e}")))
        }
        ("recipients", "announcement") => {
            let parsed = Announcement::parse(bytes.to_vec())
                .map_err(|e| e.to_string())
                .and_then(|a| match roster {
                    Some(r) => a.verify_authentic(r).map_err(|e| e.to_string()),
                    None => Ok(()),
                });
            parsed
                .err()
                .map(|e| ("bad_announcement", format!("not a valid announcement: {e}")))
        }
        ("equivocations", "envelope") => {
            match Stored::parse(bytes.to_vec(), &EnvelopeLimits::default()) {
                Err(e) => Some(("malformed_envelope", format!("not an envelope: {e}"))),
                Ok(Stored::Whole(whole)) => {
                    agefile::check_structure(whole.body(), AgeLimits::ONE_RECIPIENT)
                        .err()
                        .map(|e| ("not_age", format!("the body is not an age file: {e}")))
                }
                Ok(Stored::Stub(_)) => None,
            }
        }
        // Roster operations and envelopes: the log audit.
        _ => None,
    }
}
