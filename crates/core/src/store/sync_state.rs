//! What the sync engine keeps in the device store: the outbox, this
//! device's own envelope log, the heads seen per device, the team cursor,
//! relay receipts and quarantined envelopes.

use rusqlite::{OptionalExtension, params};

use super::{DeviceStore, StoreError};
use crate::envelope::SealedEnvelope;
use crate::envelope::seal::CaseChange;
use crate::ids::{CaseId, DeviceId, Digest};

/// A local change waiting to be put in an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox.
    pub id: i64,
    /// The change.
    pub change: CaseChange,
}

/// The last envelope applied from a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHead {
    /// The device.
    pub device: DeviceId,
    /// Its last applied seq.
    pub seq: u64,
    /// Id of that envelope.
    pub id: Digest,
}

impl From<PeerHead> for crate::framing::PageHead {
    fn from(h: PeerHead) -> Self {
        Self {
            device: h.device,
            seq: h.seq,
            id: h.id,
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} record unreadable"))
}

impl DeviceStore {
    /// Up to `limit` outbox entries, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, entry_sealed FROM outbox ORDER BY id LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sealed) = row?;
            let plain = self.sealer.open("outbox", &id.to_be_bytes(), &sealed)?;
            let (case, change) = plain
                .split_at_checked(16)
                .ok_or_else(|| corrupt("outbox"))?;
            out.push(OutboxEntry {
                id,
                change: CaseChange {
                    case: CaseId::from_slice(case).map_err(|_| corrupt("outbox"))?,
                    change: change.to_vec(),
                },
            });
        }
        Ok(out)
    }

    /// Number of changes not yet in an envelope.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Records a sealed envelope as the next of this device's log and
    /// removes the outbox entries it carries, in one transaction. From now
    /// on these exact bytes are what this seq means: a retry resends them.
    ///
    /// `submitted` names the cases whose submission this envelope records
    /// (an intake-role device lists them after it forgets the cases).
    pub fn commit_envelope(
        &mut self,
        envelope: &SealedEnvelope,
        outbox_ids: &[i64],
        submitted: &[CaseId],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let seq = envelope.header().seq;
        for case in submitted {
            let key = self.sealer.index("case", case.as_bytes());
            let mut plain = case.as_bytes().to_vec();
            plain.extend_from_slice(&seq.to_be_bytes());
            let sealed = self.sealer.seal("submissions", &key, &plain);
            tx.execute(
                "INSERT INTO submissions (case_key, entry_sealed) VALUES (?1, ?2)
                 ON CONFLICT (case_key) DO NOTHING",
                params![key, sealed],
            )?;
        }
        let sealed = self
            .sealer
            .seal("own_log", &seq.to_be_bytes(), envelope.as_bytes());
        tx.execute(
            "INSERT INTO own_log (seq, envelope_sealed) VALUES (?1, ?2)",
            params![seq as i64, sealed],
        )?;
        for id in outbox_ids {
            tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// This device's last envelope: its seq and id.
    pub fn own_head(&self) -> Result<Option<(u64, Digest)>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, envelope_sealed FROM own_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(seq, sealed)| {
            let bytes = self
                .sealer
                .open("own_log", &(seq as u64).to_be_bytes(), &sealed)?;
            let id = crate::envelope::id_of(&bytes)
                .ok_or_else(|| StoreError::Corrupt("an own envelope is too short".into()))?;
            Ok((seq as u64, id))
        })
        .transpose()
    }

    /// Envelopes of this device's log that the relay has not receipted.
    pub fn unreceipted(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .open_rows(
                "own_log",
                "SELECT seq, envelope_sealed FROM own_log WHERE receipted = 0 ORDER BY seq",
                [],
                |seq: &i64| (*seq as u64).to_be_bytes().to_vec(),
            )?
            .into_iter()
            .map(|(_, bytes)| bytes.to_vec())
            .collect())
    }

    /// Stores a relay receipt and marks the envelope it covers.
    pub fn add_receipt(&mut self, seq: u64, receipt: &[u8]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let next: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM receipts", [], |r| {
            r.get(0)
        })?;
        let sealed = self.sealer.seal("receipts", &next.to_be_bytes(), receipt);
        tx.execute(
            "INSERT INTO receipts (id, receipt_sealed) VALUES (?1, ?2)",
            params![next, sealed],
        )?;
        tx.execute(
            "UPDATE own_log SET receipted = 1 WHERE seq = ?1",
            [seq as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every stored receipt, oldest first.
    pub fn receipts(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, receipt_sealed FROM receipts ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sealed) = row?;
            out.push(
                self.sealer
                    .open("receipts", &id.to_be_bytes(), &sealed)?
                    .to_vec(),
            );
        }
        Ok(out)
    }

    /// The last applied envelope of `device`.
    pub fn peer_head(&self, device: DeviceId) -> Result<Option<PeerHead>, StoreError> {
        let key = self.sealer.index("device", device.as_bytes());
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT head_sealed FROM peer_heads WHERE device_key = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|s| {
                let plain = self.sealer.open("peer_heads", &key, &s)?;
                decode_head(&plain)
            })
            .transpose()
    }

    /// The last applied envelope of every device.
    pub fn peer_heads(&self) -> Result<Vec<PeerHead>, StoreError> {
        self.open_rows(
            "peer_heads",
            "SELECT device_key, head_sealed FROM peer_heads",
            [],
            |key: &Vec<u8>| key.clone(),
        )?
        .into_iter()
        .map(|(_, plain)| decode_head(&plain))
        .collect()
    }

    /// Records the last applied envelope of a device.
    pub fn set_peer_head(&mut self, head: &PeerHead) -> Result<(), StoreError> {
        set_peer_head_in(&self.conn, &self.sealer, head)
    }

    /// The team-wide cursor up to which envelopes have been pulled.
    pub fn cursor(&self) -> Result<u64, StoreError> {
        Ok(match self.meta("cursor")? {
            Some(bytes) => {
                u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| corrupt("cursor"))?)
            }
            None => 0,
        })
    }

    /// Moves the cursor.
    pub fn set_cursor(&mut self, cursor: u64) -> Result<(), StoreError> {
        self.put_meta("cursor", &cursor.to_be_bytes())
    }
}

/// Upserts a device's head on `conn` (the store's connection or an open
/// transaction).
pub(super) fn set_peer_head_in(
    conn: &rusqlite::Connection,
    sealer: &super::Sealer,
    head: &PeerHead,
) -> Result<(), StoreError> {
    let key = sealer.index("device", head.device.as_bytes());
    let mut plain = head.device.as_bytes().to_vec();
    plain.extend_from_slice(&head.seq.to_be_bytes());
    plain.extend_from_slice(head.id.as_bytes());
    let sealed = sealer.seal("peer_heads", &key, &plain);
    conn.execute(
        "INSERT INTO peer_heads (device_key, head_sealed) VALUES (?1, ?2)
         ON CONFLICT (device_key) DO UPDATE SET head_sealed = excluded.head_sealed",
        params![key, sealed],
    )?;
    Ok(())
}

fn decode_head(plain: &[u8]) -> Result<PeerHead, StoreError> {
    if plain.len() != 16 + 8 + 32 {
        return Err(corrupt("peer head"));
    }
    Ok(PeerHead {
        device: DeviceId::from_slice(&plain[..16]).map_err(|_| corrupt("peer head"))?,
        seq: u64::from_be_bytes(plain[16..24].try_into().map_err(|_| corrupt("peer head"))?),
        id: Digest::from_slice(&plain[24..]).map_err(|_| corrupt("peer head"))?,
    })
}
