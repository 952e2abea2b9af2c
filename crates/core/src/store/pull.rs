//! The sync engine's transactions on the device store: committing a pulled
//! page (changes, heads, cursor and quarantine together), and what an
//! intake-role device keeps after it has handed its cases in.

use super::{CheckedCase, DeviceStore, StoreError, cases};
use crate::envelope::snapshot::{Snapshot, Tombstone};
use crate::ids::{CaseId, DeviceId};
use crate::store::{Alarm, AlarmId, NewAlarm, PeerHead};

/// A case an intake-role device submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The case.
    pub case: CaseId,
    /// The seq of the envelope that first carried it.
    pub seq: u64,
    /// Whether the relay has receipted that envelope.
    pub receipted: bool,
}

/// A verified page, ready to commit.
#[derive(Debug, Default)]
pub struct PulledPage {
    /// The case documents the page changed, checked, with their views.
    pub checked: Vec<CheckedCase>,
    /// Cases shredded by a snapshot: deleted, their tombstones kept.
    pub tombstones: Vec<Tombstone>,
    /// Device labels a snapshot carried.
    pub labels: Vec<(DeviceId, String)>,
    /// Snapshot parts applied in this page (their cases moved to `docs`).
    pub snapshot_parts: Vec<Snapshot>,
    /// Device heads after this page.
    pub heads: Vec<PeerHead>,
    /// Every envelope this page chained (applied or passed over as
    /// retired), in order: kept to compare other devices' witnesses.
    pub chained: Vec<PeerHead>,
    /// The roster length each applied envelope stated, by (device, seq).
    pub stated_rosters: std::collections::BTreeMap<(DeviceId, u64), u64>,
    /// The cursor after this page.
    pub cursor: u64,
    /// Envelopes refused, in page order: the bytes, the record, and who
    /// vouches for them (what a relay makes for free is reduced and
    /// removed first).
    pub quarantined: Vec<(Vec<u8>, String, super::quarantine::Vouched)>,
    /// Integrity alarms this page raised (recorded with it, so no later
    /// error can lose them).
    pub alarms: Vec<NewAlarm>,
    /// When the page was pulled (unix seconds), for the alarms.
    pub at: u64,
    /// Sync bookkeeping written with the page (`meta` entries).
    pub meta: Vec<(&'static str, Vec<u8>)>,
    /// Alarms other devices reported (kept on office devices).
    pub reported_alarms: Vec<Alarm>,
    /// Acknowledgements from admin devices: (raising device, alarm, by, at).
    pub acks: Vec<(DeviceId, AlarmId, DeviceId, u64)>,
}

impl DeviceStore {
    /// Commits a pulled page in one transaction: either all of it (changes,
    /// heads, cursor, quarantine, alarms, bookkeeping) is stored, or none.
    pub fn commit_pull(&mut self, mut page: PulledPage) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for tombstone in &page.tombstones {
            super::shred::shred_in(&tx, &self.sealer, tombstone)?;
        }
        let mut checked = std::mem::take(&mut page.checked);
        cases::write_checked_in(&tx, &self.sealer, &mut checked)?;
        if !page.labels.is_empty() {
            super::shred::remember_labels_in(&tx, &self.sealer, &page.labels)?;
        }
        for part in &page.snapshot_parts {
            super::shred::record_snapshot_in(&tx, &self.sealer, part)?;
        }
        for head in &page.heads {
            super::sync_state::set_peer_head_in(&tx, &self.sealer, head)?;
        }
        super::witness::record_in(&tx, &self.sealer, &page.chained, &page.stated_rosters)?;
        for (envelope, reason, vouched) in &page.quarantined {
            super::quarantine::quarantine_in(&tx, &self.sealer, envelope, reason, *vouched)?;
        }
        let me = self.keys.device_id();
        for alarm in &page.alarms {
            super::alarms::raise_in(&tx, &self.sealer, me, alarm, page.at)?;
        }
        super::alarms::keep_reported_in(&tx, &self.sealer, &page.reported_alarms)?;
        for (raised_by, id, by, at) in &page.acks {
            super::alarms::acknowledge_in(&tx, &self.sealer, &[(*raised_by, *id)], *by, *at)?;
        }
        for (name, value) in &page.meta {
            super::put_meta_in(&tx, &self.sealer, name, value)?;
        }
        super::put_meta_in(&tx, &self.sealer, "cursor", &page.cursor.to_be_bytes())?;
        tx.commit()?;
        Ok(())
    }

    /// Every case this device submitted, oldest first.
    pub fn submissions(&self) -> Result<Vec<Submission>, StoreError> {
        let first_unreceipted: Option<i64> = self.conn.query_row(
            "SELECT MIN(seq) FROM own_log WHERE receipted = 0",
            [],
            |r| r.get(0),
        )?;
        let mut stmt = self
            .conn
            .prepare("SELECT case_key, entry_sealed FROM submissions")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, sealed) = row?;
            let plain = self.sealer.open("submissions", &key, &sealed)?;
            let bad = || StoreError::Corrupt("submission record unreadable".into());
            let (case, seq) = plain.split_at_checked(16).ok_or_else(bad)?;
            let seq = u64::from_be_bytes(seq.try_into().map_err(|_| bad())?);
            out.push(Submission {
                case: CaseId::from_slice(case).map_err(|_| bad())?,
                seq,
                receipted: first_unreceipted.is_none_or(|first| (seq as i64) < first),
            });
        }
        out.sort_by_key(|s| (s.seq, s.case));
        Ok(out)
    }

    /// For an intake-role device once everything is receipted: deletes
    /// every case document and every receipted envelope but the last
    /// (whose id the next envelope chains to). With `secure_delete` on,
    /// SQLite overwrites the freed pages. Returns how many cases it forgot.
    pub fn forget_submitted(&mut self) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let pending: i64 = tx.query_row(
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM own_log WHERE receipted = 0)",
            [],
            |r| r.get(0),
        )?;
        if pending > 0 {
            return Ok(0);
        }
        let forgotten = tx.execute("DELETE FROM cases", [])?;
        tx.execute(
            "DELETE FROM own_log WHERE seq < (SELECT MAX(seq) FROM own_log)",
            [],
        )?;
        tx.commit()?;
        // Fold the WAL back so the deleted pages do not linger in it.
        self.checkpoint()?;
        Ok(forgotten)
    }

    /// Records when the last sync completed (unix seconds).
    pub fn set_last_sync(&mut self, at: u64) -> Result<(), StoreError> {
        self.put_meta("last_sync", &at.to_be_bytes())
    }

    /// When the last sync completed.
    pub fn last_sync(&self) -> Result<Option<u64>, StoreError> {
        self.meta("last_sync")?
            .map(|b| {
                b.as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("last sync record unreadable".into()))
            })
            .transpose()
    }
}
