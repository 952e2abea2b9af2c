//! Shredded cases and retired epochs in the device store.
//!
//! Shredding a case deletes its document, its unsent changes and its
//! submission record in one transaction and keeps a tombstone (case id,
//! who, when, a reason code): never anything of the content. SQLite runs
//! with `secure_delete`, so the freed pages are zeroed, and retiring
//! truncates the WAL, so no old page image survives there either.
//!
//! Retiring epochs (after a snapshot under a forgetting rotation is
//! complete) destroys their keys and this device's own receipted envelopes,
//! which were sealed under them.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use super::{DeviceStore, Sealer, StoreError, cases};
use crate::envelope::seal::CaseChange;
use crate::envelope::snapshot::{ShredReason, Snapshot, Tombstone};
use crate::ids::{CaseId, DeviceId};

/// Meta entry: device labels learnt from snapshots or read once.
const LABELS: &str = "labels";
/// Meta entry: the newest snapshot seen and which of its parts applied.
const SNAPSHOT: &str = "snapshot";

/// How far this device got with the newest snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// The snapshot's id (hex).
    pub id: String,
    /// Its epoch; older ones are retired once it is complete.
    pub floor: u32,
    /// How many parts it has.
    pub parts: u32,
    /// The parts applied.
    pub seen: BTreeSet<u32>,
    /// Per device (hex), the last seq it covers.
    pub covers: BTreeMap<String, u64>,
}

impl SnapshotProgress {
    /// Whether every part has been applied.
    pub fn complete(&self) -> bool {
        self.parts > 0 && self.seen.len() as u32 == self.parts
    }

    /// The last seq of `device` the snapshot covers (0 if none).
    pub fn cover(&self, device: DeviceId) -> u64 {
        self.covers.get(&device.to_hex()).copied().unwrap_or(0)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("the {what} record is unreadable"))
}

fn encode_tombstone(t: &Tombstone) -> Vec<u8> {
    let mut out = Vec::with_capacity(41);
    out.extend_from_slice(t.case.as_bytes());
    out.extend_from_slice(t.by.as_bytes());
    out.extend_from_slice(&t.at.to_be_bytes());
    out.push(t.reason.code());
    out
}

fn decode_tombstone(b: &[u8]) -> Option<Tombstone> {
    if b.len() != 41 {
        return None;
    }
    Some(Tombstone {
        case: CaseId::from_slice(&b[..16]).ok()?,
        by: DeviceId::from_slice(&b[16..32]).ok()?,
        at: u64::from_be_bytes(b[32..40].try_into().ok()?),
        reason: ShredReason::from_code(b[40])?,
    })
}

/// Deletes a case and keeps its tombstone, inside an open transaction.
/// Returns whether the document was held here.
pub(super) fn shred_in(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    tombstone: &Tombstone,
) -> Result<bool, StoreError> {
    let key = cases::case_key(sealer, tombstone.case);
    let sealed = sealer.seal("shredded", &key, &encode_tombstone(tombstone));
    tx.execute(
        "INSERT INTO shredded (case_key, entry_sealed) VALUES (?1, ?2)
         ON CONFLICT (case_key) DO NOTHING",
        params![key, sealed],
    )?;
    let held = tx.execute("DELETE FROM cases WHERE case_key = ?1", params![key])? > 0;
    // What the case was may survive in freed blocks: owe a re-key.
    super::put_meta_in(tx, sealer, super::rekey::OWED, &[])?;
    tx.execute("DELETE FROM submissions WHERE case_key = ?1", params![key])?;
    let mut doomed = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT id, entry_sealed FROM outbox")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for row in rows {
            let (id, sealed) = row?;
            let plain = sealer.open("outbox", &id.to_be_bytes(), &sealed)?;
            if plain.get(..16) == Some(tombstone.case.as_bytes().as_slice()) {
                doomed.push(id);
            }
        }
    }
    for id in doomed {
        tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
    }
    Ok(held)
}

/// Adds labels to the remembered ones, inside an open transaction.
pub(super) fn remember_labels_in(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    labels: &[(DeviceId, String)],
) -> Result<(), StoreError> {
    let mut known = read_labels(
        super::meta_in(tx, sealer, LABELS)?
            .as_ref()
            .map(|v| v.as_slice()),
    )?;
    for (device, label) in labels {
        known.insert(device.to_hex(), label.clone());
    }
    let json = serde_json::to_vec(&known).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    super::put_meta_in(tx, sealer, LABELS, &json)
}

fn read_labels(json: Option<&[u8]>) -> Result<BTreeMap<String, String>, StoreError> {
    json.map(|j| serde_json::from_slice(j).map_err(|_| corrupt("label")))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Records an applied snapshot part, inside an open transaction. A newer
/// snapshot (higher floor, or the same floor and another id) replaces the
/// progress of an older one.
pub(super) fn record_snapshot_in(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    part: &Snapshot,
) -> Result<(), StoreError> {
    let id = hex::encode(part.id);
    let mut progress: SnapshotProgress = match super::meta_in(tx, sealer, SNAPSHOT)? {
        Some(json) => serde_json::from_slice(&json).map_err(|_| corrupt("snapshot"))?,
        None => SnapshotProgress::default(),
    };
    if progress.id != id {
        if part.floor < progress.floor {
            return Ok(());
        }
        progress = SnapshotProgress {
            id,
            floor: part.floor,
            parts: part.parts,
            seen: BTreeSet::new(),
            covers: part
                .covers
                .iter()
                .map(|c| (c.device.to_hex(), c.seq))
                .collect(),
        };
    }
    progress.seen.insert(part.part);
    let json = serde_json::to_vec(&progress).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    super::put_meta_in(tx, sealer, SNAPSHOT, &json)
}

impl DeviceStore {
    /// Shreds a case on this device: its document and unsent changes are
    /// deleted, the tombstone kept. Returns whether the case was held.
    pub fn shred_case(&mut self, tombstone: &Tombstone) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let held = shred_in(&tx, &self.sealer, tombstone)?;
        tx.commit()?;
        Ok(held)
    }

    /// Every tombstone, oldest first.
    pub fn tombstones(&self) -> Result<Vec<Tombstone>, StoreError> {
        let mut out = self
            .open_rows(
                "shredded",
                "SELECT case_key, entry_sealed FROM shredded",
                [],
                |key: &Vec<u8>| key.clone(),
            )?
            .into_iter()
            .map(|(_, plain)| decode_tombstone(&plain).ok_or_else(|| corrupt("tombstone")))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|t| (t.at, t.case));
        Ok(out)
    }

    /// The ids of every shredded case.
    pub fn shredded_cases(&self) -> Result<BTreeSet<CaseId>, StoreError> {
        Ok(self.tombstones()?.into_iter().map(|t| t.case).collect())
    }

    /// Labels remembered from snapshots (or recorded with
    /// [`remember_labels`](Self::remember_labels)), by device.
    pub fn labels(&self) -> Result<BTreeMap<DeviceId, String>, StoreError> {
        let known = read_labels(self.meta(LABELS)?.as_ref().map(|v| v.as_slice()))?;
        Ok(known
            .into_iter()
            .filter_map(|(hex, label)| hex.parse().ok().map(|id| (id, label)))
            .collect())
    }

    /// Remembers device labels (read while their epoch key was held).
    pub fn remember_labels(&mut self, labels: &[(DeviceId, String)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        remember_labels_in(&tx, &self.sealer, labels)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a snapshot part as applied (its cases are not needed).
    pub fn record_snapshot(&mut self, part: &Snapshot) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        record_snapshot_in(&tx, &self.sealer, part)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest snapshot seen, and how much of it is applied.
    pub fn snapshot_progress(&self) -> Result<Option<SnapshotProgress>, StoreError> {
        self.meta(SNAPSHOT)?
            .map(|json| serde_json::from_slice(&json).map_err(|_| corrupt("snapshot")))
            .transpose()
    }

    /// This device's own envelopes after `seq`, in order (to republish what
    /// a snapshot did not cover).
    pub fn own_envelopes_after(&self, seq: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .open_rows(
                "own_log",
                "SELECT seq, envelope_sealed FROM own_log WHERE seq > ?1 ORDER BY seq",
                [seq as i64],
                |seq: &i64| (*seq as u64).to_be_bytes().to_vec(),
            )?
            .into_iter()
            .map(|(_, bytes)| bytes.to_vec())
            .collect())
    }

    /// Puts changes back into the outbox (they go out in the next envelope).
    pub fn requeue(&mut self, changes: &[CaseChange]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for c in changes {
            cases::push_outbox(&tx, &self.sealer, c.case, &c.change)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Destroys the keys of every epoch below `floor` and this device's
    /// receipted envelopes (all sealed under such keys, or covered by the
    /// relay), keeping the newest as the chain's head; then truncates the
    /// WAL so no old page survives. Returns how many epoch keys went.
    pub fn retire_epochs_below(&mut self, floor: u32) -> Result<usize, StoreError> {
        let retired: Vec<u32> = self.epoch_keys()?.epochs().filter(|e| *e < floor).collect();
        let tx = self.conn.transaction()?;
        for epoch in &retired {
            let slot = self.sealer.index("epoch", &epoch.to_be_bytes());
            tx.execute("DELETE FROM epoch_keys WHERE slot = ?1", params![slot])?;
        }
        tx.execute(
            "DELETE FROM own_log WHERE receipted = 1 AND seq < (SELECT MAX(seq) FROM own_log)",
            [],
        )?;
        if !retired.is_empty() {
            super::put_meta_in(&tx, &self.sealer, super::rekey::OWED, &[])?;
        }
        tx.commit()?;
        self.checkpoint()?;
        Ok(retired.len())
    }

    /// Moves everything from the WAL into the database and truncates it,
    /// so deleted data leaves no copy there.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
