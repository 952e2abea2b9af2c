//! The embedded relay store: one SQLite file in WAL mode with
//! `synchronous=FULL`, so an envelope is durable before its receipt is sent.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use amana_core::{DeviceId, Digest, TeamId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::group::GroupCommit;
use super::readers::{ReadConn, Readers};
use super::{
    Appended, Compaction, Head, JoinRecord, NewEnvelope, Page, RelayStore, RosterEffect,
    StoreError, StoredEnvelope,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_enrolment.sql"),
    include_str!("../../migrations/sqlite/0003_lifecycle.sql"),
    include_str!("../../migrations/sqlite/0004_nonce_expiry.sql"),
    include_str!("../../migrations/sqlite/0005_join_binding.sql"),
    include_str!("../../migrations/sqlite/0006_team_tokens.sql"),
];

/// The SQLite implementation of [`RelayStore`].
pub struct SqliteStore {
    /// Read-only connections for the reads every request makes (none for
    /// an in-memory store). Declared first so that they close before the
    /// writer: the last connection to close folds the WAL into the
    /// database file, and a read-only one cannot, which would leave a stopped
    /// relay's file without its last writes for whoever copies it alone.
    readers: Option<Readers>,
    conn: Mutex<Connection>,
    /// Nonces and uploads of concurrent requests share a commit.
    group: GroupCommit,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(Box::new(e)),
    }
}

pub(super) fn blob_id<T, const N: usize>(
    bytes: Vec<u8>,
    make: fn([u8; N]) -> T,
) -> Result<T, StoreError> {
    let array: [u8; N] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an id column has the wrong length".into()))?;
    Ok(make(array))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        let mut store = Self::init(conn)?;
        store.readers = Some(Readers::new(path));
        Ok(store)
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        // Room for every statement a request or an upload makes.
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(backend)?;
        let current: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {current} is newer than this relay; update amana-relay"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute_batch(sql).map_err(backend)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            group: GroupCommit::default(),
            readers: None,
        })
    }

    /// A connection for reads that need no write lock: they see the last
    /// commit and do not wait for one being flushed.
    fn read(&self) -> Result<ReadConn<'_>, StoreError> {
        match &self.readers {
            Some(readers) => readers.take().map(ReadConn::Pooled),
            None => Ok(ReadConn::Writer(self.lock())),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// At most one row, through the connection's statement cache (the
/// queries every request or envelope makes).
pub(super) fn cached_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, row))
        .optional()
        .map_err(backend)
}

pub(super) fn team_exists(conn: &Connection, team: TeamId) -> Result<(), StoreError> {
    let found: Option<i64> = cached_row(
        conn,
        "SELECT 1 FROM teams WHERE team = ?1",
        [team.as_bytes()],
        |r| r.get(0),
    )?;
    found.map(|_| ()).ok_or(StoreError::UnknownTeam(team))
}

impl RelayStore for SqliteStore {
    fn issue_team_token(&self, hash: Digest, expires_at: u64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO team_tokens (hash, expires_at) VALUES (?1, ?2)",
                params![hash.as_bytes(), expires_at as i64],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn create_team(
        &self,
        team: TeamId,
        genesis: &[u8],
        now: u64,
        max_teams: u64,
        token: Option<Digest>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        // The token first: without one, nobody learns whether a team id
        // exists. Consumed with the team, or not at all.
        if let Some(hash) = token {
            let used = tx
                .execute(
                    "UPDATE team_tokens SET used_at = ?2
                     WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![hash.as_bytes(), now as i64],
                )
                .map_err(backend)?;
            if used != 1 {
                return Err(StoreError::TeamTokenInvalid);
            }
        }
        if team_exists(&tx, team).is_ok() {
            return Err(StoreError::TeamExists(team));
        }
        let count: i64 = tx
            .query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0))
            .map_err(backend)?;
        if count as u64 >= max_teams {
            return Err(StoreError::TooManyTeams { max: max_teams });
        }
        tx.execute(
            "INSERT INTO teams (team, created_at, stored_bytes) VALUES (?1, ?2, ?3)",
            params![team.as_bytes(), now as i64, genesis.len() as i64],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO roster_ops (team, idx, op) VALUES (?1, 0, ?2)",
            params![team.as_bytes(), genesis],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn roster_tip(&self, team: TeamId) -> Result<(u64, Vec<u8>), StoreError> {
        let conn = self.read()?;
        let tip: Option<(i64, Vec<u8>)> = cached_row(
            &conn,
            "SELECT idx, op FROM roster_ops WHERE team = ?1 ORDER BY idx DESC LIMIT 1",
            [team.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        match tip {
            Some((idx, op)) => Ok((idx as u64 + 1, op)),
            None => Err(StoreError::UnknownTeam(team)),
        }
    }

    fn roster(&self, team: TeamId) -> Result<Vec<Vec<u8>>, StoreError> {
        let conn = self.read()?;
        team_exists(&conn, team)?;
        let mut stmt = conn
            .prepare_cached("SELECT op FROM roster_ops WHERE team = ?1 ORDER BY idx")
            .map_err(backend)?;
        let rows = stmt
            .query_map([team.as_bytes()], |r| r.get(0))
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn append_roster_op(
        &self,
        team: TeamId,
        index: u64,
        op: &[u8],
        effect: RosterEffect,
    ) -> Result<(), StoreError> {
        super::lifecycle::append_roster_op(&mut self.lock(), team, index, op, effect)
    }

    fn put_announcement(
        &self,
        team: TeamId,
        device: DeviceId,
        generation: u32,
        announcement: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        super::lifecycle::put_announcement(
            &mut self.lock(),
            team,
            device,
            generation,
            announcement,
            now,
        )
    }

    fn announcements(&self, team: TeamId) -> Result<Vec<Vec<u8>>, StoreError> {
        super::lifecycle::announcements(&self.lock(), team)
    }

    fn compact(
        &self,
        team: TeamId,
        below: u32,
        requested_by: DeviceId,
        now: u64,
    ) -> Result<Compaction, StoreError> {
        super::lifecycle::compact(&mut self.lock(), team, below, requested_by, now)
    }

    fn append_envelopes(
        &self,
        team: TeamId,
        envelopes: &[NewEnvelope<'_>],
        now: u64,
        max_team_bytes: u64,
    ) -> Result<(Vec<Appended>, Option<StoreError>), StoreError> {
        let envelopes: Vec<OwnedEnvelope> = envelopes.iter().map(OwnedEnvelope::from).collect();
        // One commit (one fsync) for the whole batch, shared with the
        // writers waiting at the same time, and only then are receipts
        // signed: nothing is acknowledged before it is durable.
        self.group.run(
            || self.lock(),
            move |conn| append_batch(conn, team, &envelopes, now, max_team_bytes),
        )
    }

    fn envelopes_after(
        &self,
        team: TeamId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEnvelope>, StoreError> {
        envelopes_in(&*self.read()?, team, after, limit, usize::MAX).map(|(e, _)| e)
    }

    fn envelope_at(
        &self,
        team: TeamId,
        device: DeviceId,
        seq: u64,
    ) -> Result<Option<StoredEnvelope>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT cursor, envelope FROM envelopes WHERE team = ?1 AND device = ?2 AND seq = ?3",
            params![team.as_bytes(), device.as_bytes(), seq as i64],
            |r| {
                Ok(StoredEnvelope {
                    cursor: r.get::<_, i64>(0)? as u64,
                    bytes: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(backend)
    }

    fn heads(&self, team: TeamId) -> Result<Vec<Head>, StoreError> {
        heads_in(&*self.read()?, team)
    }

    fn page(
        &self,
        team: TeamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, StoreError> {
        // One read transaction (one snapshot): the heads describe exactly
        // the log the listing was read from.
        let conn = self.read()?;
        let snapshot = conn.unchecked_transaction().map_err(backend)?;
        let (envelopes, more) = envelopes_in(&snapshot, team, after, limit, max_bytes)?;
        let heads = heads_in(&snapshot, team)?;
        Ok(Page {
            envelopes,
            heads,
            more,
        })
    }

    fn create_invite(
        &self,
        team: TeamId,
        invite: Digest,
        role: u8,
        expires_at: u64,
        now: u64,
        max_open: u64,
    ) -> Result<(), StoreError> {
        super::enrolment::create_invite(
            &mut self.lock(),
            team,
            invite,
            role,
            expires_at,
            now,
            max_open,
        )
    }

    fn redeem_invite(
        &self,
        team: TeamId,
        request: &JoinRecord,
        now: u64,
    ) -> Result<u8, StoreError> {
        super::enrolment::redeem_invite(&mut self.lock(), team, request, now)
    }

    fn join_requests(&self, team: TeamId) -> Result<Vec<JoinRecord>, StoreError> {
        super::enrolment::join_requests(&self.lock(), team)
    }

    fn put_key_envelopes(
        &self,
        team: TeamId,
        deliveries: &[(DeviceId, u32, Vec<u8>)],
        now: u64,
    ) -> Result<(), StoreError> {
        super::enrolment::put_key_envelopes(&mut self.lock(), team, deliveries, now)
    }

    fn key_envelopes(&self, team: TeamId, device: DeviceId) -> Result<Vec<Vec<u8>>, StoreError> {
        super::enrolment::key_envelopes(&self.lock(), team, device)
    }

    fn equivocations(
        &self,
        team: TeamId,
        device: DeviceId,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, envelope FROM equivocations WHERE team = ?1 AND device = ?2 ORDER BY seq, seen_at",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![team.as_bytes(), device.as_bytes()], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn use_nonce(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.group.run(
            || self.lock(),
            move |conn| {
                conn.prepare_cached("DELETE FROM request_nonces WHERE expires_at < ?1")
                    .and_then(|mut stmt| stmt.execute([now as i64]))
                    .map_err(backend)?;
                let inserted = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO request_nonces (device, nonce, expires_at) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![device.as_bytes(), nonce, expires_at as i64])
                    })
                    .map_err(backend)?;
                Ok(inserted == 1)
            },
        )
    }
}

fn heads_in(conn: &Connection, team: TeamId) -> Result<Vec<Head>, StoreError> {
    team_exists(conn, team)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT device, seq, envelope_id FROM heads WHERE team = ?1 ORDER BY device",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([team.as_bytes()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut heads = Vec::new();
    for row in rows {
        let (device, seq, id) = row.map_err(backend)?;
        heads.push(Head {
            device: blob_id(device, DeviceId::from_bytes)?,
            seq: seq as u64,
            id: blob_id(id, Digest::from_bytes)?,
        });
    }
    Ok(heads)
}

/// At most `limit` envelopes after `after`, stopping before the one that
/// would take their bytes past `max_bytes` (but at least one), and whether
/// more follow. Sizes are read first, so no body beyond the budget is ever
/// loaded.
fn envelopes_in(
    conn: &Connection,
    team: TeamId,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<(Vec<StoredEnvelope>, bool), StoreError> {
    team_exists(conn, team)?;
    let after = after.min(i64::MAX as u64) as i64;
    let mut sizes = conn
        .prepare_cached(
            "SELECT cursor, length(envelope) FROM envelopes WHERE team = ?1 AND cursor > ?2
             ORDER BY cursor LIMIT ?3",
        )
        .map_err(backend)?;
    let listed = sizes
        .query_map(
            params![team.as_bytes(), after, limit.saturating_add(1) as i64],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as usize)),
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut bytes = 0usize;
    let keep = listed
        .iter()
        .take(limit)
        .position(|(_, len)| {
            bytes = bytes.saturating_add(*len);
            bytes > max_bytes
        })
        .map_or(listed.len().min(limit), |over| over.max(1));
    let more = listed.len() > keep;
    let Some(&(last, _)) = listed[..keep].last() else {
        return Ok((Vec::new(), more));
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT cursor, envelope FROM envelopes WHERE team = ?1 AND cursor > ?2
             AND cursor <= ?3 ORDER BY cursor",
        )
        .map_err(backend)?;
    let envelopes = stmt
        .query_map(params![team.as_bytes(), after, last], |r| {
            Ok(StoredEnvelope {
                cursor: r.get::<_, i64>(0)? as u64,
                bytes: r.get(1)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    Ok((envelopes, more))
}

/// The team's running totals while a batch is appended.
/// An envelope to append, owned so that it can wait in the group commit's
/// queue.
struct OwnedEnvelope {
    device: DeviceId,
    seq: u64,
    prev: Digest,
    epoch: u32,
    id: Digest,
    bytes: Vec<u8>,
}

impl From<&NewEnvelope<'_>> for OwnedEnvelope {
    fn from(e: &NewEnvelope<'_>) -> Self {
        Self {
            device: e.device,
            seq: e.seq,
            prev: e.prev,
            epoch: e.epoch,
            id: e.id,
            bytes: e.bytes.to_vec(),
        }
    }
}

impl OwnedEnvelope {
    fn as_new(&self) -> NewEnvelope<'_> {
        NewEnvelope {
            device: self.device,
            seq: self.seq,
            prev: self.prev,
            epoch: self.epoch,
            id: self.id,
            bytes: &self.bytes,
        }
    }
}

/// Appends a batch in order, up to the first refusal (which is returned
/// beside what was appended; a failure of the database is an error), and
/// keeps the team's byte and cursor tally.
fn append_batch(
    conn: &Connection,
    team: TeamId,
    envelopes: &[OwnedEnvelope],
    now: u64,
    max_team_bytes: u64,
) -> Result<(Vec<Appended>, Option<StoreError>), StoreError> {
    let (stored_bytes, next_cursor): (i64, i64) = cached_row(
        conn,
        "SELECT stored_bytes, next_cursor FROM teams WHERE team = ?1",
        [team.as_bytes()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .ok_or(StoreError::UnknownTeam(team))?;
    let mut tally = Tally {
        stored_bytes: stored_bytes as u64,
        next_cursor,
        max_team_bytes,
    };
    let mut appended = Vec::with_capacity(envelopes.len());
    let mut refused = None;
    for env in envelopes {
        match append_one(conn, team, &env.as_new(), now, &mut tally) {
            Ok(outcome) => appended.push(outcome),
            Err(e @ (StoreError::Backend(_) | StoreError::Corrupt(_))) => return Err(e),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    conn.prepare_cached("UPDATE teams SET stored_bytes = ?2, next_cursor = ?3 WHERE team = ?1")
        .and_then(|mut update| {
            update.execute(params![
                team.as_bytes(),
                tally.stored_bytes as i64,
                tally.next_cursor
            ])
        })
        .map_err(backend)?;
    Ok((appended, refused))
}

struct Tally {
    stored_bytes: u64,
    next_cursor: i64,
    max_team_bytes: u64,
}

/// Most equivocation evidence rows kept per device.
pub const MAX_EVIDENCE_PER_DEVICE: u64 = 8;

/// Appends one envelope inside the batch's transaction: idempotent for the
/// same bytes, equivocation evidence (kept) for other bytes at a stored
/// seq, otherwise only as the next seq chained to the head, within quota.
fn append_one(
    tx: &Connection,
    team: TeamId,
    env: &NewEnvelope<'_>,
    now: u64,
    tally: &mut Tally,
) -> Result<Appended, StoreError> {
    let existing: Option<(i64, Vec<u8>)> = cached_row(
        tx,
        "SELECT cursor, envelope_id FROM envelopes WHERE team = ?1 AND device = ?2 AND seq = ?3",
        params![team.as_bytes(), env.device.as_bytes(), env.seq as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((cursor, id)) = existing {
        if id == env.id.as_bytes() {
            return Ok(Appended::Duplicate {
                cursor: cursor as u64,
            });
        }
        // Evidence is kept, a few per device and within the team's quota
        // (it counts like every stored byte); past that the equivocation
        // is still refused and reported, but not stored again.
        let kept: i64 = cached_row(
            tx,
            "SELECT COUNT(*) FROM equivocations WHERE team = ?1 AND device = ?2",
            params![team.as_bytes(), env.device.as_bytes()],
            |r| r.get(0),
        )?
        .unwrap_or(0);
        let new_total = tally.stored_bytes + env.bytes.len() as u64;
        if (kept as u64) < MAX_EVIDENCE_PER_DEVICE && new_total <= tally.max_team_bytes {
            let stored = tx
                .execute(
                    "INSERT OR IGNORE INTO equivocations (team, device, seq, envelope_id, envelope, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        team.as_bytes(),
                        env.device.as_bytes(),
                        env.seq as i64,
                        env.id.as_bytes(),
                        env.bytes,
                        now as i64
                    ],
                )
                .map_err(backend)?;
            if stored == 1 {
                tally.stored_bytes = new_total;
            }
        }
        return Err(StoreError::Equivocation {
            device: env.device,
            seq: env.seq,
        });
    }

    let bound: Option<i64> = cached_row(
        tx,
        "SELECT last_seq FROM revocations WHERE team = ?1 AND device = ?2",
        params![team.as_bytes(), env.device.as_bytes()],
        |r| r.get(0),
    )?;
    if let Some(last_seq) = bound
        && env.seq > last_seq as u64
    {
        return Err(StoreError::Revoked { device: env.device });
    }
    let head: Option<(i64, Vec<u8>)> = cached_row(
        tx,
        "SELECT seq, envelope_id FROM heads WHERE team = ?1 AND device = ?2",
        params![team.as_bytes(), env.device.as_bytes()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (head_seq, head_id) = match head {
        Some((seq, id)) => (seq as u64, blob_id(id, Digest::from_bytes)?),
        None => (0, Digest::ZERO),
    };
    if env.seq != head_seq + 1 {
        return Err(StoreError::Gap {
            device: env.device,
            expected: head_seq + 1,
        });
    }
    if env.prev != head_id {
        return Err(StoreError::PrevMismatch {
            device: env.device,
            seq: env.seq,
        });
    }
    let new_total = tally.stored_bytes + env.bytes.len() as u64;
    if new_total > tally.max_team_bytes {
        return Err(StoreError::TeamFull {
            max: tally.max_team_bytes,
        });
    }
    let cursor = tally.next_cursor;
    tx.prepare_cached(
        "INSERT INTO envelopes (team, cursor, device, seq, epoch, envelope_id, envelope, accepted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            team.as_bytes(),
            cursor,
            env.device.as_bytes(),
            env.seq as i64,
            env.epoch as i64,
            env.id.as_bytes(),
            env.bytes,
            now as i64
        ])
    })
    .map_err(backend)?;
    tx.prepare_cached(
        "INSERT INTO heads (team, device, seq, envelope_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (team, device) DO UPDATE SET seq = excluded.seq, envelope_id = excluded.envelope_id",
    )
    .and_then(|mut upsert| {
        upsert.execute(params![
            team.as_bytes(),
            env.device.as_bytes(),
            env.seq as i64,
            env.id.as_bytes()
        ])
    })
    .map_err(backend)?;
    tally.stored_bytes = new_total;
    tally.next_cursor += 1;
    Ok(Appended::New {
        cursor: cursor as u64,
    })
}
