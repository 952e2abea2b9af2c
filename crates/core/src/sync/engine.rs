//! One sync: refresh the roster, collect delivered epoch keys, push the
//! outbox, pull and verify everything new.
//!
//! Every step is resumable. An outgoing envelope is sealed and committed to
//! the device's own log *before* it is sent, so a retry resends the same
//! bytes (the relay answers `duplicate`); a pulled page commits its changes,
//! the device heads, the quarantine and the cursor in one transaction. A
//! connection that drops at any byte therefore loses nothing, and the next
//! sync repeats at most one batch.
//!
//! The pull and its checks are in [`super::pull`] and [`super::verify`];
//! every integrity alarm a sync ends with is recorded ([`super::alarms`]).

use super::client::{RelayClient, UploadOutcome};
use super::keys;
use super::{Env, Rejection, SyncError};
use crate::envelope::seal::{self, CaseChange, Notice, SealContext};
use crate::envelope::{EnvelopeHeader, Kind};
use crate::ids::{CaseId, DeviceId, Digest, TeamId};
use crate::receipt::Receipt;
use crate::roster::{Role, Roster};
use crate::store::{DeviceStore, StoreError};
use crate::transport::Transport;

/// Most changes sealed into one envelope.
const CHANGES_PER_ENVELOPE: usize = 200;
/// Soft cap on the (uncompressed) change bytes in one envelope: about five
/// intakes, under 2 KiB once compressed. An envelope is what a dropped
/// connection can cost, so it stays small (docs/performance.md).
const ENVELOPE_TARGET_BYTES: usize = 8 * 1024;
/// Most envelopes per upload request (the relay accepts up to 500).
const UPLOAD_BATCH: usize = 20;
/// Soft cap on an upload request's envelope bytes (at least one envelope
/// goes). A request cut off is sent again whole, so on links that drop
/// every few tens of KiB a small request wastes little.
const UPLOAD_TARGET_BYTES: usize = 4 * 1024;
/// Requests cut off in a row that a sync retries on a new connection
/// before it gives up; every request that gets through starts the count
/// again, so a sync goes on as long as the link lets anything through (a
/// retried request is idempotent: the relay answers `duplicate` for
/// envelopes it already holds).
pub(super) const RETRIES: usize = 4;

/// Whether an error is a connection cut off in transfer, worth retrying
/// at once on a new connection.
pub(super) fn interrupted(e: &SyncError) -> bool {
    matches!(
        e,
        SyncError::Transport(crate::transport::TransportError::Interrupted(_))
    )
}

/// What a sync is doing, for progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Envelopes uploaded out of those waiting.
    Pushing {
        /// Uploaded so far.
        done: usize,
        /// Waiting in total.
        total: usize,
    },
    /// Envelopes received so far.
    Pulling {
        /// Received so far.
        done: usize,
    },
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Envelopes sealed from the outbox.
    pub sealed: usize,
    /// Envelopes the relay receipted in this sync.
    pub pushed: usize,
    /// Envelopes received and applied.
    pub pulled: usize,
    /// Changes applied from other devices.
    pub applied_changes: usize,
    /// Epoch keys received.
    pub epoch_keys_received: usize,
    /// Envelopes quarantined in this sync, with the reason.
    pub quarantined: Vec<Rejection>,
    /// Cases an intake-role device forgot after they were receipted.
    pub forgotten_cases: usize,
    /// Cases deleted here because a snapshot shredded them.
    pub cases_shredded: usize,
    /// Envelopes of retired epochs passed over (verified, not readable).
    pub skipped_retired: usize,
    /// Changes to shredded cases that were discarded.
    pub discarded_shredded: usize,
    /// Devices that wrote to a shredded case under a current epoch (the
    /// case must be shredded again to remove that from the relay).
    pub late_writers_to_shredded: Vec<DeviceId>,
    /// Changes of this device re-sent under the new epoch because the
    /// snapshot did not cover them.
    pub republished: usize,
    /// Epoch keys destroyed because their epochs were retired.
    pub epochs_retired: usize,
    /// Whether the device store was re-keyed after a forgetting step.
    pub store_rekeyed: bool,
    /// Envelope bodies of retired epochs the relay dropped at this admin's
    /// request.
    pub bodies_dropped_at_relay: u64,
    /// Requests made.
    pub requests: u64,
    /// Bytes sent (bodies and paths).
    pub bytes_sent: u64,
    /// Bytes received (bodies).
    pub bytes_received: u64,
}

/// Runs one sync of `store` with the relay behind `client`. An integrity
/// alarm it ends with is recorded in the store (see [`super::alarms`]).
pub fn sync<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    progress: &mut dyn FnMut(Progress),
) -> Result<SyncReport, SyncError> {
    let result = run(store, client, env, progress);
    let mut result = super::alarms::note(store, env.now(), result);
    // A shred or a retirement applied, even by a sync that failed later,
    // re-keys the store before the command ends (docs/device-store.md,
    // "Re-keying").
    match store.settle_rekey() {
        Ok(rekeyed) => {
            if let Ok(report) = &mut result {
                report.store_rekeyed = rekeyed;
            }
        }
        Err(e) if result.is_ok() => result = Err(e.into()),
        Err(_) => {}
    }
    result
}

fn run<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    progress: &mut dyn FnMut(Progress),
) -> Result<SyncReport, SyncError> {
    let (start_requests, start_sent, start_received) =
        (client.requests, client.bytes_sent, client.bytes_received);
    let mut report = SyncReport::default();
    let roster = refresh_roster(store, client, env)?;
    let me = store.keys().device_id();
    let role = roster
        .device(&me)
        .map(|d| d.entry.role)
        .ok_or(SyncError::Revoked)?;
    if role.reads_cases() {
        if keys::missing_any(store, &roster)? {
            report.epoch_keys_received = keys::collect(store, client, env, &roster)?;
        }
        keys::renew_receiving_key(store, client, env)?;
    }
    let mut roster = roster;
    if role == Role::Admin {
        super::admin::deliver_owed(store, client, env, &roster)?;
        if super::shred::finish_pending(store, client, env)? {
            roster = store.roster()?.ok_or(StoreError::NotMember)?;
        }
    }
    // Pull before sealing: a snapshot may shred a case, and this device's
    // unsent changes to it must then never be sealed under the new epoch.
    let pulled = if role.reads_cases() {
        super::pull::pull(store, client, env, &mut roster, progress, &mut report)
    } else {
        Ok(())
    };
    // A device whose view of the roster is in doubt seals nothing: it
    // could seal to an epoch a revoked device reads.
    if let Err(e) = &pulled
        && (e.roster_in_doubt()
            || !(e.is_integrity_alarm() || matches!(e, SyncError::MissingEpochKey(_))))
    {
        return pulled.map(|()| report);
    }
    // An alarm about someone else's envelopes does not keep this device's
    // own work from reaching the relay; a roster another device stated and
    // the relay does not serve keeps it from sealing anything new.
    // Sealing uses the roster as it is now, not as it was when the sync
    // began (a long pull may overlap a revocation); a sync with nothing to
    // seal asks for nothing more.
    if role.can_write() && (store.outbox_len()? > 0 || !store.unreported_alarms()?.is_empty()) {
        roster = refresh_roster(store, client, env)?;
    }
    let doubt = super::pull::open_doubt(store, &roster)?;
    if role.can_write() {
        if doubt.is_none() {
            report.sealed = seal_outbox(store, &roster, role, client.now(env))?;
        }
        report.pushed = push(store, client, env, progress)?;
    }
    pulled?;
    if let Some(doubt) = doubt {
        return Err(doubt);
    }
    if role == Role::Admin {
        report.bodies_dropped_at_relay = super::shred::finish_compaction(store, client, env)?;
    }
    if role.reads_cases() {
        super::shred::retire(store, client, env, &roster, progress, &mut report)?;
    }
    if role == Role::Intake {
        report.forgotten_cases = store.forget_submitted()?;
    }
    store.set_last_sync(env.now())?;
    report.requests = client.requests - start_requests;
    report.bytes_sent = client.bytes_sent - start_sent;
    report.bytes_received = client.bytes_received - start_received;
    Ok(report)
}

/// Fetches the roster, verifies it against the pinned genesis and checks it
/// extends the one already held; stores and returns it.
pub(crate) fn refresh_roster<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Roster, SyncError> {
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let held = store.roster()?;
    let awaiting = |store: &DeviceStore| -> SyncError {
        match store.meta(super::enrol::JOIN_SAFETY_NUMBER) {
            Ok(number) => SyncError::AwaitingApproval {
                safety_number: number
                    .map(|n| String::from_utf8_lossy(&n).into_owned())
                    .unwrap_or_default(),
            },
            Err(e) => e.into(),
        }
    };
    // A device that holds a verified roster downloads only what follows
    // it, and verifies the whole chain again (held ops are not trusted
    // from the store without it).
    let fetched = match &held {
        Some(held) => client
            .roster_after(env, store.keys(), held.ops().len())
            .map(|new| {
                held.ops()
                    .iter()
                    .map(|o| o.as_bytes().to_vec())
                    .chain(new)
                    .collect()
            }),
        None => client.roster(env, store.keys()),
    };
    let ops: Vec<Vec<u8>> = match fetched {
        Err(SyncError::Refused { code, .. }) if code == "not_a_team_device" && held.is_none() => {
            return Err(awaiting(store));
        }
        other => other?,
    };
    let roster = Roster::verify_pinned(&ops, membership.genesis)?;
    if let Some(held) = &held {
        let extends = held.ops().len() <= roster.ops().len()
            && held
                .ops()
                .iter()
                .zip(roster.ops())
                .all(|(a, b)| a.as_bytes() == b.as_bytes());
        if !extends {
            return Err(SyncError::RosterRollback {
                ours: held.ops().len(),
                relay: roster.ops().len(),
            });
        }
    }
    match roster.device(&store.keys().device_id()) {
        None => return Err(awaiting(store)),
        Some(record) if !record.is_active() => {
            store.save_roster(&roster)?;
            return Err(SyncError::Revoked);
        }
        Some(record) => {
            if record.entry.role != membership.role {
                let mut updated = membership.clone();
                updated.role = record.entry.role;
                store.set_membership(&updated)?;
            }
        }
    }
    store.save_roster(&roster)?;
    let known = held.as_ref().map_or(0, |h| h.ops().len() as u64);
    applied_beyond_revocations(store, &roster, known, env.now())?;
    Ok(roster)
}

/// A revocation names the last envelope the team accepts from a device; if
/// this device already applied more of it, or another envelope at that
/// seq (the relay kept it from the revoking admin), that is an alarm: what
/// lies beyond was written by whoever holds the device.
///
/// Only revocations this refresh brought (from index `known` on) are
/// looked at: an alarm an admin acknowledged is not raised again.
fn applied_beyond_revocations(
    store: &mut DeviceStore,
    roster: &Roster,
    known: u64,
    now: u64,
) -> Result<(), SyncError> {
    for record in roster.devices() {
        let Some(bound) = record.revoked.filter(|r| r.at >= known) else {
            continue;
        };
        let device = record.entry.id();
        let Some(head) = store.peer_head(device)? else {
            continue;
        };
        let code = if head.seq > bound.last_seq {
            "revoked_author"
        } else if head.seq == bound.last_seq && head.id != bound.last_id {
            "revoked_fork"
        } else {
            continue;
        };
        store.raise_alarm(
            &crate::store::NewAlarm {
                code: code.into(),
                device: Some(device),
                seq: Some(head.seq),
                message: format!(
                    "device {device} was revoked with its log ending at seq {}, but this device had applied its seq {} before it learnt of the revocation: what that envelope brought came from whoever holds the device",
                    bound.last_seq, head.seq
                ),
            },
            now,
        )?;
    }
    Ok(())
}

/// Seals the outbox into envelopes of this device's log, under `roster`
/// at `now`. The first envelope also carries this device's unreported
/// alarms and, on an admin device, its acknowledgements not yet sent; if
/// the outbox is empty but such notices wait, one envelope carries them
/// alone.
pub(super) fn seal_outbox(
    store: &mut DeviceStore,
    roster: &Roster,
    role: Role,
    now: u64,
) -> Result<usize, SyncError> {
    let epoch = roster.current_epoch().clone();
    let team = roster.team();
    let pulled_at = store
        .meta(super::tail::LAST_COMPLETE_PULL)?
        .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0);
    let context = SealContext::under(roster, now).pulled_at(pulled_at);
    let mut sealed = 0;
    loop {
        let entries = store.outbox(CHANGES_PER_ENVELOPE)?;
        let Notices {
            notices,
            reported,
            acked,
        } = if sealed == 0 {
            notices_to_send(store, role)?
        } else {
            Notices::default()
        };
        if entries.is_empty() && notices.is_empty() {
            return Ok(sealed);
        }
        let mut bytes = 0;
        let mut ids = Vec::new();
        let mut changes: Vec<CaseChange> = Vec::new();
        for entry in entries {
            if !changes.is_empty() && bytes + entry.change.change.len() > ENVELOPE_TARGET_BYTES {
                break;
            }
            bytes += entry.change.change.len();
            ids.push(entry.id);
            changes.push(entry.change);
        }
        let (seq, prev) = match store.own_head()? {
            Some((seq, id)) => (seq + 1, id),
            None => (1, Digest::ZERO),
        };
        let header = EnvelopeHeader {
            kind: Kind::Changes,
            team,
            device: store.keys().device_id(),
            seq,
            prev,
            epoch: epoch.epoch,
            body_len: 0,
        };
        // The first envelope of a batch witnesses the heads applied since
        // this device last wrote (the rest have nothing new to witness).
        let witnesses = store.unwitnessed_heads()?;
        let contents = seal::Contents {
            context,
            changes: &changes,
            witnesses: &witnesses,
            notices: &notices,
        };
        let envelope = seal::seal(header, &contents, &epoch.recipient, store.keys())?;
        let submitted: Vec<CaseId> = if role == Role::Intake {
            let mut cases: Vec<CaseId> = changes.iter().map(|c| c.case).collect();
            cases.sort();
            cases.dedup();
            cases
        } else {
            Vec::new()
        };
        store.commit_envelope(&envelope, &ids, &submitted)?;
        store.mark_witnessed(&witnesses)?;
        if !reported.is_empty() {
            store.mark_alarms_reported(&reported)?;
        }
        if !acked.is_empty() {
            // Only what went out: an acknowledgement made meanwhile waits.
            let left: Vec<_> = super::alarms::pending_acks(store)?
                .into_iter()
                .filter(|a| !acked.contains(a))
                .collect();
            super::alarms::set_pending_acks(store, &left)?;
        }
        sealed += 1;
    }
}

/// The notices this device's next envelope carries: its alarms not yet
/// reported, and (an admin) the acknowledgements it has not sent.
fn notices_to_send(store: &DeviceStore, role: Role) -> Result<Notices, SyncError> {
    // Acknowledgements first: they close alarms across the team; reports
    // fill what room is left, the rest go in the next envelope.
    let acks = if role == Role::Admin {
        super::alarms::pending_acks(store)?
    } else {
        Vec::new()
    };
    let acks: Vec<_> = acks.into_iter().take(seal::MAX_NOTICES).collect();
    let mut notices: Vec<Notice> = acks
        .iter()
        .map(|(raised_by, id)| Notice::Ack {
            raised_by: *raised_by,
            id: id.0,
        })
        .collect();
    let mut reported = Vec::new();
    for alarm in store.unreported_alarms()? {
        if notices.len() >= seal::MAX_NOTICES {
            break;
        }
        reported.push(alarm.id);
        notices.push(Notice::Alarm {
            id: alarm.id.0,
            code: alarm.code,
            device: alarm.device,
            seq: alarm.seq,
            first_seen: alarm.first_seen,
        });
    }
    Ok(Notices {
        notices,
        reported,
        acked: acks,
    })
}

/// What an envelope's notices carry, and what sending them settles.
#[derive(Default)]
struct Notices {
    notices: Vec<Notice>,
    reported: Vec<crate::store::AlarmId>,
    acked: Vec<(DeviceId, crate::store::AlarmId)>,
}

/// Uploads every envelope of this device's log the relay has not receipted.
pub(super) fn push<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize, SyncError> {
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let relay_key = membership
        .relay_receipt_key
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(k.as_bytes()).ok())
        .ok_or_else(|| StoreError::Corrupt("the pinned relay key is missing".into()))?;
    // Receipt times are this device's own clock: the relay can skew what
    // the client takes for its time, not this.
    let pinned = (membership.team, &relay_key, env.now());
    let pending = store.unreceipted()?;
    let total = pending.len();
    let mut done = 0;
    let mut retries = 0;
    let mut rest = &pending[..];
    while !rest.is_empty() {
        progress(Progress::Pushing { done, total });
        let mut take = 1;
        let mut bytes = rest[0].len();
        while take < rest.len().min(UPLOAD_BATCH) && bytes + rest[take].len() <= UPLOAD_TARGET_BYTES
        {
            bytes += rest[take].len();
            take += 1;
        }
        let batch = &rest[..take];
        let UploadOutcome { accepted, refused } = match client.upload(env, store.keys(), batch) {
            Err(e) if interrupted(&e) && retries < RETRIES => {
                retries += 1;
                // The request may have arrived whole and only its answer
                // been lost: take the receipts of what the relay holds
                // rather than send those envelopes again.
                let me = store.keys().device_id();
                let first = envelope_seq(&batch[0]).unwrap_or(1);
                let held = match client.receipts(env, store.keys(), me, first - 1) {
                    Err(e) if interrupted(&e) => continue,
                    other => other?,
                };
                let mut receipted = 0;
                for (bytes, receipt) in batch.iter().zip(&held) {
                    let seq = envelope_seq(bytes).unwrap_or(0);
                    keep_receipt(store, pinned, bytes, seq, receipt, None)?;
                    receipted += 1;
                }
                if receipted > 0 {
                    retries = 0;
                }
                done += receipted;
                rest = &rest[receipted..];
                continue;
            }
            other => other?,
        };
        retries = 0;
        for accepted in &accepted {
            let bytes = batch
                .iter()
                .find(|b| envelope_seq(b) == Some(accepted.seq))
                .ok_or_else(|| {
                    SyncError::RelayMalformed("a receipt for an envelope not sent".into())
                })?;
            keep_receipt(
                store,
                pinned,
                bytes,
                accepted.seq,
                &accepted.receipt,
                Some(accepted.cursor),
            )?;
            done += 1;
        }
        if let Some(refusal) = refused {
            let seq = batch
                .get(accepted.len())
                .and_then(|b| envelope_seq(b))
                .unwrap_or(0);
            return Err(match refusal {
                SyncError::Refused { code, .. }
                    if matches!(code.as_str(), "seq_gap" | "prev_mismatch" | "equivocation") =>
                {
                    SyncError::RelayLostOwnLog { seq, code }
                }
                other => other,
            });
        }
        rest = &rest[take..];
    }
    progress(Progress::Pushing { done, total });
    Ok(done)
}

/// Verifies the relay's receipt for this device's envelope `bytes` at
/// `seq` (signed by the relay key pinned at enrolment, stating exactly
/// this team, device, seq, envelope id, and the cursor the relay answered
/// with, if it answered one) and keeps it.
fn keep_receipt(
    store: &mut DeviceStore,
    (team, relay_key, now): (TeamId, &ed25519_dalek::VerifyingKey, u64),
    bytes: &[u8],
    seq: u64,
    receipt: &[u8],
    cursor: Option<u64>,
) -> Result<(), SyncError> {
    let verified =
        Receipt::verify(receipt, relay_key).map_err(|_| SyncError::BadReceipt { seq })?;
    let expected = Receipt {
        team,
        device: store.keys().device_id(),
        seq,
        envelope: crate::envelope::id_of(bytes).unwrap_or(Digest::ZERO),
        cursor: cursor.unwrap_or(verified.cursor),
    };
    if verified != expected {
        return Err(SyncError::BadReceipt { seq });
    }
    store.add_receipt(seq, receipt)?;
    super::tail::note_receipt(store, seq, now)?;
    Ok(())
}

fn envelope_header(bytes: &[u8]) -> Option<EnvelopeHeader> {
    EnvelopeHeader::decode(bytes.first_chunk()?).ok()
}

pub(super) fn envelope_seq(bytes: &[u8]) -> Option<u64> {
    envelope_header(bytes).map(|h| h.seq)
}
