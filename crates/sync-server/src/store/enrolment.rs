//! Enrolment records in the SQLite store: invites (by the hash of their
//! secret), join requests and delivered key envelopes. The relay keeps
//! only public keys and ciphertext here.

use amana_core::{DeviceId, Digest, TeamId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::sqlite::{backend, blob_id, team_exists};
use super::{JoinRecord, StoreError};

pub(super) fn create_invite(
    conn: &mut Connection,
    team: TeamId,
    invite: Digest,
    role: u8,
    expires_at: u64,
    now: u64,
    max_open: u64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    let open: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM invites WHERE team = ?1 AND used_at IS NULL AND expires_at > ?2",
            params![team.as_bytes(), now as i64],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if open as u64 >= max_open {
        return Err(StoreError::TooManyInvites { max: max_open });
    }
    tx.execute(
        "INSERT INTO invites (team, invite_id, role, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![
            team.as_bytes(),
            invite.as_bytes(),
            role,
            expires_at as i64,
            now as i64
        ],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

pub(super) fn redeem_invite(
    conn: &mut Connection,
    team: TeamId,
    request: &JoinRecord,
    now: u64,
) -> Result<u8, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    let invite: Option<(u8, i64, Option<i64>)> = tx
        .query_row(
            "SELECT role, expires_at, used_at FROM invites WHERE team = ?1 AND invite_id = ?2",
            params![team.as_bytes(), request.invite.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    let (role, expires_at, used_at) = invite.ok_or(StoreError::InviteUnknown)?;
    if used_at.is_some() {
        return Err(StoreError::InviteUsed);
    }
    if expires_at as u64 <= now {
        return Err(StoreError::InviteExpired);
    }
    tx.execute(
        "UPDATE invites SET used_at = ?3 WHERE team = ?1 AND invite_id = ?2",
        params![team.as_bytes(), request.invite.as_bytes(), now as i64],
    )
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO join_requests (team, device, signing_key, recipient, invite_id, requested_at, key_mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (team, device) DO UPDATE SET invite_id = excluded.invite_id,
             recipient = excluded.recipient, requested_at = excluded.requested_at,
             key_mac = excluded.key_mac",
        params![
            team.as_bytes(),
            request.device.as_bytes(),
            request.signing_key,
            request.recipient,
            request.invite.as_bytes(),
            now as i64,
            request.key_mac
        ],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(role)
}

pub(super) fn join_requests(
    conn: &Connection,
    team: TeamId,
) -> Result<Vec<JoinRecord>, StoreError> {
    team_exists(conn, team)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT j.device, j.signing_key, j.recipient, j.invite_id, i.role, j.requested_at, j.key_mac
             FROM join_requests j JOIN invites i ON i.team = j.team AND i.invite_id = j.invite_id
             WHERE j.team = ?1 ORDER BY j.requested_at, j.device",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([team.as_bytes()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, u8>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (device, key, recipient, invite, role, at, mac) = row.map_err(backend)?;
        let key_mac = blob_id(
            mac.ok_or_else(|| StoreError::Corrupt("a join request without its key MAC".into()))?,
            |m: [u8; 32]| m,
        )?;
        out.push(JoinRecord {
            device: blob_id(device, DeviceId::from_bytes)?,
            signing_key: blob_id(key, |k: [u8; 32]| k)?,
            recipient,
            invite: blob_id(invite, Digest::from_bytes)?,
            role,
            key_mac,
            requested_at: at as u64,
        });
    }
    Ok(out)
}

pub(super) fn put_key_envelopes(
    conn: &mut Connection,
    team: TeamId,
    deliveries: &[(DeviceId, u32, Vec<u8>)],
    now: u64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    team_exists(&tx, team)?;
    for (device, epoch, bytes) in deliveries {
        tx.execute(
            "INSERT INTO key_envelopes (team, device, epoch, key_envelope, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (team, device, epoch) DO UPDATE SET
                 key_envelope = excluded.key_envelope, stored_at = excluded.stored_at",
            params![team.as_bytes(), device.as_bytes(), epoch, bytes, now as i64],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

pub(super) fn key_envelopes(
    conn: &Connection,
    team: TeamId,
    device: DeviceId,
) -> Result<Vec<Vec<u8>>, StoreError> {
    team_exists(conn, team)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT key_envelope FROM key_envelopes WHERE team = ?1 AND device = ?2 ORDER BY epoch",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![team.as_bytes(), device.as_bytes()], |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}
