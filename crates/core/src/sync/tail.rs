//! Who has seen what of whose log: the team's view of every log as this
//! device learns it from the envelopes it reads, and the two alarms no
//! single page can raise.
//!
//! A relay can serve a device its own envelopes and receipts and keep its
//! later envelopes from every other device: nobody else holds that tail,
//! so no witness elsewhere catches it. The device itself can: every
//! envelope states when its author's last complete pull began, and
//! witnesses what its author had applied of each log. Once another reading
//! device has completed a pull that began well after one of this device's
//! envelopes was receipted, and still witnesses this device's log as
//! shorter, the relay kept that envelope from it (`own_tail_withheld`).
//!
//! A shred's forgetting rotation is followed at once by its admin's
//! snapshot; a device that holds the rotation but, two days on, no
//! snapshot part raises `snapshot_missing` (the relay keeps the snapshot
//! from it, or the admin never finished: either way the shred is not done
//! on this device).
//!
//! The views feed `amana team devices`: per device, the last envelope
//! applied here, when its author sealed it, how far others have seen its
//! log, what the relay reports, and since when this device is behind.

use std::collections::BTreeMap;

use super::SyncError;
use crate::envelope::seal::{SealContext, Witness};
use crate::framing::PageHead;
use crate::ids::DeviceId;
use crate::roster::Roster;
use crate::store::{DeviceStore, PeerHead, StoreError};

/// Meta entry: the views of every log.
pub(super) const VIEWS: &str = "log_views";
/// Meta entry: this device's receipted envelopes not yet seen by another
/// device, with when they were receipted.
const OWN_RECEIPTS: &str = "own_receipted_at";
/// Meta entry: since when this device holds a forgetting rotation whose
/// snapshot it has not applied.
const AWAITING_SNAPSHOT: &str = "awaiting_snapshot_since";
/// Meta entry: when this device's last complete pull began.
pub(super) const LAST_COMPLETE_PULL: &str = "last_complete_pull";
/// How much later than a receipt another device's pull must begin before
/// its view of this device's log is held against the relay (clocks of
/// field devices differ; the relay accepts five minutes of skew).
pub const TAIL_MARGIN_SECS: u64 = 3600;
/// How long a forgetting rotation may wait for its snapshot.
pub const SNAPSHOT_WAIT_SECS: u64 = 48 * 3600;
/// Most own receipts kept waiting to be seen.
const MAX_OWN_RECEIPTS: usize = 4096;

/// What this device knows of one device's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogView {
    /// When that device sealed the last envelope applied here (its clock).
    pub sealed_at: u64,
    /// When its last complete pull began, as its last envelope states.
    pub pulled_at: u64,
    /// The highest seq of its log another device has witnessed.
    pub witnessed: u64,
    /// The highest seq of this device's own log it has witnessed.
    pub sees_me: u64,
    /// Its head as the relay last reported it.
    pub relay: u64,
    /// Since when this device has applied less of its log than others
    /// witnessed or the relay reports (0: not behind).
    pub behind_since: u64,
}

const VIEW_LEN: usize = 16 + 6 * 8;

/// The views of every log, as a pull updates them.
pub(super) struct Views {
    map: BTreeMap<DeviceId, LogView>,
}

impl Views {
    pub(super) fn load(store: &DeviceStore) -> Result<Self, StoreError> {
        Ok(Views {
            map: log_views(store)?,
        })
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.map.len() * VIEW_LEN);
        for (device, v) in &self.map {
            out.extend_from_slice(device.as_bytes());
            for n in [
                v.sealed_at,
                v.pulled_at,
                v.witnessed,
                v.sees_me,
                v.relay,
                v.behind_since,
            ] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        out
    }

    /// An envelope of `author` applied here, stating `context` and
    /// witnessing `witnesses`.
    ///
    /// Times beyond `now` (and the margin) are the author's clock lying, or
    /// broken: not taken, so nobody can make every device look withheld.
    /// Its newest envelope's statement replaces older ones (no high-water
    /// mark a single lie could latch).
    pub(super) fn note_envelope(
        &mut self,
        me: DeviceId,
        author: DeviceId,
        context: &SealContext,
        witnesses: &[Witness],
        now: u64,
    ) {
        let plausible = |t: u64| t <= now.saturating_add(TAIL_MARGIN_SECS);
        let view = self.map.entry(author).or_default();
        if plausible(context.sealed_at) {
            view.sealed_at = context.sealed_at;
        }
        if plausible(context.pulled_at) {
            view.pulled_at = context.pulled_at;
        }
        for w in witnesses {
            if w.device == me {
                let view = self.map.entry(author).or_default();
                view.sees_me = view.sees_me.max(w.seq);
            }
            let seen = self.map.entry(w.device).or_default();
            seen.witnessed = seen.witnessed.max(w.seq);
        }
    }

    /// The heads the relay reported (of roster devices only: a head of
    /// anything else is the relay's invention and is kept nowhere).
    pub(super) fn note_relay(&mut self, heads: &[PageHead], roster: &Roster) {
        for h in heads.iter().filter(|h| roster.device(&h.device).is_some()) {
            self.map.entry(h.device).or_default().relay = h.seq;
        }
    }

    /// After a complete pull: since when each log is behind here.
    pub(super) fn settle(
        &mut self,
        me: DeviceId,
        applied: &BTreeMap<DeviceId, PeerHead>,
        now: u64,
    ) {
        for (device, view) in &mut self.map {
            if *device == me {
                continue;
            }
            let have = applied.get(device).map_or(0, |h| h.seq);
            if have < view.witnessed.max(view.relay) {
                if view.behind_since == 0 {
                    view.behind_since = now;
                }
            } else {
                view.behind_since = 0;
            }
        }
    }

    /// The first reading device that completed a pull well after one of
    /// this device's receipted envelopes and still does not witness it.
    pub(super) fn own_tail_withheld(
        &self,
        store: &DeviceStore,
        roster: &Roster,
    ) -> Result<Option<SyncError>, StoreError> {
        let me = store.keys().device_id();
        for (seq, receipted_at) in own_receipts(store)? {
            for (device, view) in &self.map {
                let reads = roster
                    .device(device)
                    .is_some_and(|d| d.is_active() && d.entry.role.reads_cases());
                if *device != me
                    && reads
                    && view.pulled_at > receipted_at.saturating_add(TAIL_MARGIN_SECS)
                    && view.sees_me < seq
                {
                    return Ok(Some(SyncError::OwnTailWithheld {
                        seq,
                        witness: *device,
                        since: receipted_at,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Forgets own receipts an active reading device has seen (a witness
    /// beyond this device's own head is a lie and counts for nothing).
    pub(super) fn prune_own(
        &self,
        store: &mut DeviceStore,
        roster: &Roster,
    ) -> Result<(), StoreError> {
        let own = store.own_head()?.map_or(0, |(seq, _)| seq);
        let seen = self
            .map
            .iter()
            .filter(|(d, _)| {
                roster
                    .device(d)
                    .is_some_and(|r| r.is_active() && r.entry.role.reads_cases())
            })
            .map(|(_, v)| v.sees_me)
            .filter(|seq| *seq <= own)
            .max()
            .unwrap_or(0);
        let kept: Vec<(u64, u64)> = own_receipts(store)?
            .into_iter()
            .filter(|(seq, _)| *seq > seen)
            .collect();
        write_own_receipts(store, &kept)
    }
}

/// What this device knows of every log (for `amana team devices`).
pub fn log_views(store: &DeviceStore) -> Result<BTreeMap<DeviceId, LogView>, StoreError> {
    let views = store.meta_records(VIEWS, VIEW_LEN, "log views", |r| {
        let n = |i: usize| r.u64(16 + i * 8);
        (
            r.device(0),
            LogView {
                sealed_at: n(0),
                pulled_at: n(1),
                witnessed: n(2),
                sees_me: n(3),
                relay: n(4),
                behind_since: n(5),
            },
        )
    })?;
    Ok(views.into_iter().collect())
}

fn own_receipts(store: &DeviceStore) -> Result<Vec<(u64, u64)>, StoreError> {
    store.meta_records(OWN_RECEIPTS, 16, "own receipt times", |r| {
        (r.u64(0), r.u64(8))
    })
}

fn write_own_receipts(store: &mut DeviceStore, list: &[(u64, u64)]) -> Result<(), StoreError> {
    let start = list.len().saturating_sub(MAX_OWN_RECEIPTS);
    let mut bytes = Vec::with_capacity((list.len() - start) * 16);
    for (seq, at) in &list[start..] {
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&at.to_be_bytes());
    }
    store.put_meta(OWN_RECEIPTS, &bytes)
}

/// Remembers when the relay receipted this device's envelope `seq`.
pub(super) fn note_receipt(store: &mut DeviceStore, seq: u64, now: u64) -> Result<(), StoreError> {
    let mut list = own_receipts(store)?;
    if !list.iter().any(|(s, _)| *s == seq) {
        list.push((seq, now));
    }
    write_own_receipts(store, &list)
}

/// After a complete pull: a forgetting rotation whose snapshot has waited
/// longer than [`SNAPSHOT_WAIT_SECS`].
pub(super) fn snapshot_missing(
    store: &mut DeviceStore,
    roster: &Roster,
    now: u64,
) -> Result<Option<SyncError>, StoreError> {
    let floor = roster.retired_below();
    let applied = store
        .snapshot_progress()?
        .is_some_and(|s| s.floor >= floor && s.complete());
    if floor <= 1 || applied {
        store.remove_meta(AWAITING_SNAPSHOT)?;
        return Ok(None);
    }
    let since = match store.meta(AWAITING_SNAPSHOT)? {
        Some(b) => u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("snapshot wait unreadable".into()))?,
        ),
        None => {
            store.put_meta(AWAITING_SNAPSHOT, &now.to_be_bytes())?;
            now
        }
    };
    Ok(
        (now.saturating_sub(since) > SNAPSHOT_WAIT_SECS).then_some(SyncError::SnapshotMissing {
            epoch: floor,
            since,
        }),
    )
}
