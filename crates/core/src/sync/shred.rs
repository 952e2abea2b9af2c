//! Crypto-shredding a case, and retiring epochs on every device.
//!
//! On the admin device that shreds (`amana cases shred`):
//! 1. a full sync, so everything the team wrote so far is applied here;
//! 2. the case is deleted here and its tombstone kept (a "shred owed"
//!    marker makes the rest resumable: every later sync finishes it);
//! 3. a *forgetting* rotation: a new epoch, whose key goes to every active
//!    reading device's newest receiving key;
//! 4. a snapshot under the new epoch: every remaining case, every
//!    tombstone, the device labels, and what this admin had applied from
//!    each device (its covers), sealed as snapshot envelopes in its log;
//! 5. the keys of the older epochs are destroyed here.
//!
//! On every other reading device, in its next sync: the roster says the
//! older epochs are retired; the snapshot's tombstones delete the case;
//! once the whole snapshot is applied the device re-sends its own changes
//! that were sealed under a retired epoch after its cover (so nothing it
//! wrote is lost), then destroys the retired keys. Its receiving key that
//! opened the new epoch key is replaced and destroyed in the same sync
//! (see [`crate::keys::receiving`]), and the relay dropped the key
//! envelopes of retired epochs when it appended the rotation.
//!
//! After that, no device holds a key that opens anything sealed under a
//! retired epoch, in the relay's data or in any older copy of it. The
//! limits are in `docs/threat-model.md`.

use super::client::RelayClient;
use super::engine::{self, Progress, SyncReport};
use super::{Env, SyncError};
use crate::envelope::seal::{self, CaseChange};
use crate::envelope::snapshot::{Cover, SavedCase, ShredReason, Snapshot, Tombstone};
use crate::envelope::{EnvelopeHeader, EnvelopeLimits, Kind, SealedEnvelope};
use crate::ids::Digest;
use crate::roster::Roster;
use crate::store::{DeviceStore, StoreError};
use crate::transport::Transport;

/// Meta entry: a shred whose rotation (value 0) or snapshot (value: the
/// epoch rotated to) is still owed.
const PENDING: &str = "pending_shred";
/// Meta entry: the seq of a snapshot part whose compaction at the relay is
/// still owed.
const PENDING_COMPACT: &str = "pending_compaction";
/// Soft cap on the saved documents in one snapshot envelope.
const PART_TARGET_BYTES: usize = 1024 * 1024;

/// What a shred did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shredded {
    /// The tombstone that remains.
    pub tombstone: Tombstone,
    /// The epoch the snapshot was published under.
    pub epoch: u32,
    /// Cases in the snapshot.
    pub cases_kept: usize,
    /// Envelopes the snapshot took.
    pub snapshot_parts: usize,
    /// Epoch keys destroyed on this device.
    pub epochs_retired: usize,
    /// Envelope bodies of retired epochs the relay dropped.
    pub bodies_dropped_at_relay: u64,
}

/// Shreds the case whose id starts with `prefix`, for `reason`.
pub fn shred<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    prefix: &str,
    reason: ShredReason,
    progress: &mut dyn FnMut(Progress),
) -> Result<Shredded, SyncError> {
    let result = shred_now(store, client, env, prefix, reason, progress);
    super::alarms::note(store, env.now(), result)
}

fn shred_now<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    prefix: &str,
    reason: ShredReason,
    progress: &mut dyn FnMut(Progress),
) -> Result<Shredded, SyncError> {
    let roster = super::engine::refresh_roster(store, client, env)?;
    let me = store.keys().device_id();
    let role = roster.device(&me).map(|d| d.entry.role);
    if role != Some(crate::roster::Role::Admin) {
        return Err(SyncError::NotPermitted {
            role: role.map_or("none", crate::roster::Role::name),
            action: "shred cases (only an office admin device can: shredding rotates the team key)",
        });
    }
    let case = store.resolve_case_id(prefix)?;
    // A case shredded before can be shredded again (to remove a late
    // write to it that reached the relay under the current epoch).
    if !store.shredded_cases()?.contains(&case) {
        store.case(case)?;
    }
    // Everything written so far is applied here before the snapshot.
    engine::sync(store, client, env, progress)?;
    let tombstone = Tombstone {
        case,
        by: me,
        at: env.now(),
        reason,
    };
    store.shred_case(&tombstone)?;
    store.put_meta(PENDING, &0u32.to_be_bytes())?;
    let report = engine::sync(store, client, env, progress)?;
    let progress_now = store
        .snapshot_progress()?
        .ok_or_else(|| StoreError::Corrupt("the snapshot just published is not recorded".into()))?;
    Ok(Shredded {
        tombstone,
        epoch: progress_now.floor,
        cases_kept: store.cases()?.len(),
        snapshot_parts: progress_now.parts as usize,
        epochs_retired: report.epochs_retired,
        bodies_dropped_at_relay: report.bodies_dropped_at_relay,
    })
}

/// Finishes a shred this admin device started: the forgetting rotation if
/// it is still owed, then the snapshot (sealed into this device's log; the
/// sync pushes it). Returns whether anything was done.
pub(crate) fn finish_pending<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<bool, SyncError> {
    let Some(marker) = store.meta(PENDING)? else {
        return Ok(false);
    };
    let rotated = marker
        .as_slice()
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("the pending shred is unreadable".into()))?;
    if rotated == 0 {
        let roster = super::admin::require_admin(store, client, env)?;
        let rotation = super::admin::rotate_from(store, client, env, roster, true)?;
        store.put_meta(PENDING, &rotation.epoch.to_be_bytes())?;
    }
    let roster = store.roster()?.ok_or(StoreError::NotMember)?;
    publish_snapshot(store, &roster, env)?;
    store.remove_meta(PENDING)?;
    Ok(true)
}

/// Seals a snapshot of every case held here into this device's log, under
/// the roster's current epoch, and records it as applied here.
fn publish_snapshot(
    store: &mut DeviceStore,
    roster: &Roster,
    env: &mut Env,
) -> Result<usize, SyncError> {
    let epoch = roster.current_epoch().clone();
    let me = store.keys().device_id();
    let mut covers: Vec<Cover> = store
        .peer_heads()?
        .into_iter()
        .filter(|h| h.device != me)
        .map(|h| Cover {
            device: h.device,
            seq: h.seq,
            id: h.id,
        })
        .collect();
    if let Some((seq, id)) = store.own_head()? {
        covers.push(Cover {
            device: me,
            seq,
            id,
        });
    }
    let tombstones = store.tombstones()?;
    let labels: Vec<_> = super::enrol::device_labels(store, roster)?
        .into_iter()
        .collect();
    store.remember_labels(&labels)?;
    let groups = split_parts(store.saved_cases()?);
    let parts = groups.len() as u32;
    let id = env.nonce();
    for (part, cases) in groups.into_iter().enumerate() {
        let snapshot = Snapshot {
            id,
            part: part as u32,
            parts,
            floor: epoch.epoch,
            covers: covers.clone(),
            tombstones: tombstones.clone(),
            labels: labels.clone(),
            cases,
        };
        let (seq, prev) = match store.own_head()? {
            Some((seq, id)) => (seq + 1, id),
            None => (1, Digest::ZERO),
        };
        let header = EnvelopeHeader {
            kind: Kind::Snapshot,
            team: roster.team(),
            device: me,
            seq,
            prev,
            epoch: epoch.epoch,
            body_len: 0,
        };
        let context = seal::SealContext::under(roster, env.now());
        let envelope =
            seal::seal_snapshot(header, &context, &snapshot, &epoch.recipient, store.keys())?;
        store.commit_envelope(&envelope, &[], &[])?;
        store.record_snapshot(&Snapshot {
            cases: Vec::new(),
            ..snapshot
        })?;
        store.put_meta(PENDING_COMPACT, &seq.to_be_bytes())?;
    }
    Ok(parts as usize)
}

/// Once this admin's snapshot has reached the relay, asks it to drop the
/// bodies of the retired epochs' envelopes (they stay as verifiable stubs).
/// Returns how many bodies were dropped.
pub(crate) fn finish_compaction<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<u64, SyncError> {
    let Some(marker) = store.meta(PENDING_COMPACT)? else {
        return Ok(0);
    };
    let seq = marker
        .as_slice()
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("the pending compaction is unreadable".into()))?;
    let waiting = store.unreceipted()?;
    if waiting
        .iter()
        .any(|bytes| super::engine::envelope_seq(bytes) == Some(seq))
    {
        return Ok(0);
    }
    let dropped = match client.compact(env, store.keys(), seq) {
        Ok(n) => n,
        // Another forgetting rotation made this one moot.
        Err(SyncError::Refused { code, .. }) if code == "snapshot_missing" => 0,
        Err(e) => return Err(e),
    };
    store.remove_meta(PENDING_COMPACT)?;
    Ok(dropped)
}

/// Splits the cases into parts of bounded size (at least one part, so an
/// empty team still publishes its tombstones).
fn split_parts(cases: Vec<SavedCase>) -> Vec<Vec<SavedCase>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = 0;
    for case in cases {
        let last = parts.last_mut().expect("never empty");
        if !last.is_empty() && bytes + case.doc.len() > PART_TARGET_BYTES {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += case.doc.len();
        parts.last_mut().expect("never empty").push(case);
    }
    parts
}

/// After a complete pull: if the roster retired epochs whose keys this
/// device still holds, and the snapshot of the forgetting rotation is
/// fully applied, re-sends this device's own changes that the snapshot did
/// not cover and destroys the retired keys.
pub(crate) fn retire<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    roster: &Roster,
    progress: &mut dyn FnMut(Progress),
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let floor = roster.retired_below();
    let keyring = store.epoch_keys()?;
    if !keyring.epochs().any(|e| e < floor) {
        return Ok(());
    }
    let Some(snapshot) = store.snapshot_progress()? else {
        return Ok(());
    };
    if !snapshot.complete() || snapshot.floor < floor {
        return Ok(());
    }
    let me = store.keys().device_id();
    let shredded = store.shredded_cases()?;
    let mut again: Vec<CaseChange> = Vec::new();
    for bytes in store.own_envelopes_after(snapshot.cover(me))? {
        let envelope = SealedEnvelope::parse(bytes, &EnvelopeLimits::default())?;
        if envelope.header().kind != Kind::Changes || envelope.header().epoch >= floor {
            continue;
        }
        let opened = seal::open(
            &envelope,
            roster.team(),
            &store.keys().verifying_key(),
            &keyring,
        )?;
        again.extend(
            opened
                .changes
                .into_iter()
                .filter(|c| !shredded.contains(&c.case)),
        );
    }
    if !again.is_empty() {
        report.republished += again.len();
        store.requeue(&again)?;
        let role = roster
            .device(&me)
            .map(|d| d.entry.role)
            .ok_or(SyncError::Revoked)?;
        report.sealed += engine::seal_outbox(store, roster, role, client.now(env))?;
        report.pushed += engine::push(store, client, env, progress)?;
    }
    // Labels sealed to the retired keys stay readable here.
    let labels: Vec<_> = super::enrol::device_labels(store, roster)?
        .into_iter()
        .collect();
    store.remember_labels(&labels)?;
    report.epochs_retired += store.retire_epochs_below(floor)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CaseId;

    fn case(n: u8, len: usize) -> SavedCase {
        SavedCase {
            case: CaseId::from_bytes([n; 16]),
            doc: vec![0; len],
        }
    }

    #[test]
    fn parts_are_bounded_and_never_empty() {
        assert_eq!(split_parts(Vec::new()).len(), 1);
        let parts = split_parts(vec![case(1, 600_000), case(2, 600_000), case(3, 10)]);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].len(), 2);
        // One document larger than the target still travels, alone.
        let parts = split_parts(vec![case(1, 3_000_000), case(2, 10)]);
        assert_eq!(parts.len(), 2);
    }
}
