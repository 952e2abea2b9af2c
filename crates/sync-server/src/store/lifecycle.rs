//! Device lifecycle in the SQLite store: roster operations with their
//! effects on the relay's own tables (revocation bounds, retired key
//! envelopes), and recipient announcements.

use amana_core::envelope::{EnvelopeLimits, STUB_LEN, Stored};
use amana_core::{DeviceId, TeamId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::sqlite::{backend, team_exists};
use super::{Compaction, RosterEffect, StoreError};

pub(super) fn append_roster_op(
    conn: &mut Connection,
    team: TeamId,
    index: u64,
    op: &[u8],
    effect: RosterEffect,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    let len: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM roster_ops WHERE team = ?1",
            [team.as_bytes()],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if len as u64 != index {
        return Err(StoreError::RosterConflict {
            expected: len as u64,
            found: index,
        });
    }
    match effect {
        RosterEffect::None => {}
        RosterEffect::Revokes(bound) => {
            // The bound must be an envelope this relay holds, the one the
            // revoking admin verified (or nothing, for seq 0). Envelopes
            // stored beyond it (uploaded while the admin signed) stay, and
            // every reader refuses them.
            let head: i64 = tx
                .query_row(
                    "SELECT seq FROM heads WHERE team = ?1 AND device = ?2",
                    params![team.as_bytes(), bound.device.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .unwrap_or(0);
            let at_bound: Option<Vec<u8>> = if bound.last_seq == 0 {
                Some(vec![0; 32])
            } else {
                tx.query_row(
                    "SELECT envelope_id FROM envelopes WHERE team = ?1 AND device = ?2 AND seq = ?3",
                    params![
                        team.as_bytes(),
                        bound.device.as_bytes(),
                        bound.last_seq as i64
                    ],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
            };
            if at_bound.as_deref() != Some(bound.last_id.as_bytes()) {
                return Err(StoreError::RevocationBound {
                    device: bound.device,
                    head: head as u64,
                    bound: bound.last_seq,
                });
            }
            tx.execute(
                "INSERT INTO revocations (team, device, last_seq, roster_index)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    team.as_bytes(),
                    bound.device.as_bytes(),
                    bound.last_seq as i64,
                    index as i64
                ],
            )
            .map_err(backend)?;
        }
        RosterEffect::Forgets { below } => {
            tx.execute(
                "DELETE FROM key_envelopes WHERE team = ?1 AND epoch < ?2",
                params![team.as_bytes(), below],
            )
            .map_err(backend)?;
        }
    }
    tx.execute(
        "INSERT INTO roster_ops (team, idx, op) VALUES (?1, ?2, ?3)",
        params![team.as_bytes(), index as i64, op],
    )
    .map_err(backend)?;
    // Counted against the team like every stored byte, but never refused
    // for it: revoking a stolen device must work on a full team.
    tx.execute(
        "UPDATE teams SET stored_bytes = stored_bytes + ?2 WHERE team = ?1",
        params![team.as_bytes(), op.len() as i64],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

pub(super) fn put_announcement(
    conn: &mut Connection,
    team: TeamId,
    device: DeviceId,
    generation: u32,
    announcement: &[u8],
    now: u64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    let stored: Option<(u32, Vec<u8>)> = tx
        .query_row(
            "SELECT generation, announcement FROM recipients WHERE team = ?1 AND device = ?2",
            params![team.as_bytes(), device.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    match stored {
        Some((_, bytes)) if bytes == announcement => return Ok(()),
        Some((stored, _)) if stored >= generation => {
            return Err(StoreError::StaleAnnouncement { device, stored });
        }
        _ => {}
    }
    tx.execute(
        "INSERT INTO recipients (team, device, generation, announcement, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (team, device) DO UPDATE SET generation = excluded.generation,
             announcement = excluded.announcement, stored_at = excluded.stored_at",
        params![
            team.as_bytes(),
            device.as_bytes(),
            generation,
            announcement,
            now as i64
        ],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

pub(super) fn announcements(conn: &Connection, team: TeamId) -> Result<Vec<Vec<u8>>, StoreError> {
    team_exists(conn, team)?;
    let mut stmt = conn
        .prepare_cached("SELECT announcement FROM recipients WHERE team = ?1 ORDER BY device")
        .map_err(backend)?;
    let rows = stmt
        .query_map([team.as_bytes()], |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub(super) fn compact(
    conn: &mut Connection,
    team: TeamId,
    below: u32,
    requested_by: DeviceId,
    now: u64,
) -> Result<Compaction, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = tx
            .prepare(
                "SELECT cursor, envelope FROM envelopes
                 WHERE team = ?1 AND epoch < ?2 AND length(envelope) > ?3",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![team.as_bytes(), below, STUB_LEN as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    let mut done = Compaction::default();
    for (cursor, bytes) in rows {
        let len = bytes.len() as u64;
        let stub = match Stored::parse(
            bytes,
            &EnvelopeLimits {
                max_body: usize::MAX,
                ..EnvelopeLimits::default()
            },
        ) {
            Ok(Stored::Whole(envelope)) => envelope.stub(),
            Ok(Stored::Stub(_)) => continue,
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "stored envelope at cursor {cursor} does not parse: {e}"
                )));
            }
        };
        tx.execute(
            "UPDATE envelopes SET envelope = ?1 WHERE team = ?2 AND cursor = ?3",
            params![stub.as_bytes(), team.as_bytes(), cursor],
        )
        .map_err(backend)?;
        done.envelopes += 1;
        done.bytes_freed += len - stub.as_bytes().len() as u64;
    }
    tx.execute(
        "UPDATE teams SET stored_bytes = MAX(0, stored_bytes - ?1) WHERE team = ?2",
        params![done.bytes_freed as i64, team.as_bytes()],
    )
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO compactions (team, below_epoch, compacted_at, requested_by, envelopes, bytes_freed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            team.as_bytes(),
            below,
            now as i64,
            requested_by.as_bytes(),
            done.envelopes as i64,
            done.bytes_freed as i64
        ],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    // No page of a dropped body may stay in the WAL (secure_delete zeroes
    // the freed pages of the database itself).
    tx_checkpoint(conn)?;
    Ok(done)
}

fn tx_checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(backend)
}
