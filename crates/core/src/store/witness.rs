//! What this device knows of every log, for comparing views with other
//! devices: the id of each envelope it applied from another device
//! (`peer_log`), the id of each of its own, and which heads it already
//! witnessed in an envelope of its own.
//!
//! A relay that shows two devices different histories of a third cannot
//! make them agree on the envelope id at the same seq: each device writes
//! the heads it applied into its next envelope (encrypted), and every
//! reader compares them with its own (`crate::sync::engine`).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{DeviceStore, PeerHead, StoreError};
use crate::envelope::seal::Witness;
use crate::ids::{DeviceId, Digest};

const WITNESSED: &str = "witnessed";

impl DeviceStore {
    /// The id of the envelope this device applied at `seq` of `device`'s
    /// log (its own log included), if it still knows it.
    pub fn applied_id(&self, device: &DeviceId, seq: u64) -> Result<Option<Digest>, StoreError> {
        if *device == self.keys().device_id() {
            return self.own_envelope_id(seq);
        }
        self.peer_log(device, seq)?
            .map(|plain| {
                Digest::from_slice(plain.get(..32).unwrap_or_default())
                    .map_err(|_| StoreError::Corrupt("peer log record unreadable".into()))
            })
            .transpose()
    }

    /// The `peer_log` record of `device`'s envelope at `seq`, opened.
    fn peer_log(
        &self,
        device: &DeviceId,
        seq: u64,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        let key = self.sealer.index("peer_log", &entry(device, seq));
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT id_sealed FROM peer_log WHERE entry_key = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|sealed| self.sealer.open("peer_log", &key, &sealed))
            .transpose()
    }

    /// The roster length the envelope this device applied at `seq` of
    /// `device`'s log stated it was sealed under, if known.
    pub fn applied_roster_len(
        &self,
        device: &DeviceId,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self.peer_log(device, seq)?.and_then(|plain| {
            plain
                .get(32..40)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        }))
    }

    fn own_envelope_id(&self, seq: u64) -> Result<Option<Digest>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT envelope_sealed FROM own_log WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|sealed| {
                let bytes = self.sealer.open("own_log", &seq.to_be_bytes(), &sealed)?;
                crate::envelope::id_of(&bytes)
                    .ok_or_else(|| StoreError::Corrupt("an own envelope is too short".into()))
            })
            .transpose()
    }

    /// The heads this device applied that its own envelopes have not
    /// witnessed yet.
    pub fn unwitnessed_heads(&self) -> Result<Vec<Witness>, StoreError> {
        let done = self.witnessed()?;
        Ok(self
            .peer_heads()?
            .into_iter()
            .filter(|h| done.get(&h.device) != Some(&(h.seq, h.id)))
            .map(|h| Witness {
                device: h.device,
                seq: h.seq,
                id: h.id,
            })
            .collect())
    }

    /// Records heads as witnessed by an envelope of this device.
    pub fn mark_witnessed(&mut self, witnesses: &[Witness]) -> Result<(), StoreError> {
        let mut done = self.witnessed()?;
        for w in witnesses {
            done.insert(w.device, (w.seq, w.id));
        }
        let mut plain = Vec::with_capacity(done.len() * 56);
        for (device, (seq, id)) in &done {
            plain.extend_from_slice(device.as_bytes());
            plain.extend_from_slice(&seq.to_be_bytes());
            plain.extend_from_slice(id.as_bytes());
        }
        self.put_meta(WITNESSED, &plain)
    }

    fn witnessed(&self) -> Result<BTreeMap<DeviceId, (u64, Digest)>, StoreError> {
        let heads = self.meta_records(WITNESSED, 56, "witnessed heads", |r| {
            (r.device(0), (r.u64(16), r.digest(24)))
        })?;
        Ok(heads.into_iter().collect())
    }
}

fn entry(device: &DeviceId, seq: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(device.as_bytes());
    out[16..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// Records the id of every envelope a pulled page chained, and the roster
/// length each stated (where it could be read).
pub(super) fn record_in(
    tx: &rusqlite::Transaction<'_>,
    sealer: &super::Sealer,
    chained: &[PeerHead],
    stated: &BTreeMap<(DeviceId, u64), u64>,
) -> Result<(), StoreError> {
    for head in chained {
        let key = sealer.index("peer_log", &entry(&head.device, head.seq));
        let mut value = head.id.as_bytes().to_vec();
        if let Some(len) = stated.get(&(head.device, head.seq)) {
            value.extend_from_slice(&len.to_be_bytes());
        }
        let sealed = sealer.seal("peer_log", &key, &value);
        tx.execute(
            "INSERT OR REPLACE INTO peer_log (entry_key, id_sealed) VALUES (?1, ?2)",
            params![key, sealed],
        )?;
    }
    Ok(())
}
