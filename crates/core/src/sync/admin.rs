//! Running a team after enrolment: revoking a device, rotating the epoch,
//! and delivering a new epoch key to every device that reads cases.
//!
//! Every operation here is signed against the roster head just fetched
//! from the relay, and the relay appends a roster operation only at its
//! current head. Two admins acting at the same time (or offline, then both
//! coming back) therefore never produce two branches: the second one's
//! append is refused, its device fetches the new roster and decides again.
//! For revocation that means: a device already revoked by the other admin
//! is reported as such and not revoked twice, and if no rotation followed
//! that revocation yet this device does it. The rule is written out in
//! `docs/threat-model.md`.
//!
//! A rotation stores the new epoch key on this device *before* the relay
//! learns of the epoch, so a crash after the append never leaves a team
//! encrypting to a key nobody holds; and the delivery to the other devices
//! is remembered until it succeeds (retried by the next sync).

use std::collections::BTreeMap;

use super::client::RelayClient;
use super::engine::refresh_roster;
use super::{Env, SyncError};
use crate::error::{AnnouncementError, RosterError};
use crate::ids::DeviceId;
use crate::keys::EpochKey;
use crate::keys::announce::Announcement;
use crate::keys::delivery::KeyEnvelope;
use crate::roster::{Role, Roster, RosterChange};
use crate::store::{Delivered, DeviceStore};
use crate::transport::Transport;

/// How often an operation is signed again after another admin got there
/// first (or the revoked device uploaded in between).
const ATTEMPTS: usize = 5;
/// Meta entry naming an epoch whose key still has to be delivered.
const PENDING_DELIVERY: &str = "pending_key_delivery";

/// What a rotation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The new epoch.
    pub epoch: u32,
    /// Key envelopes delivered with it: one per other reading device (more
    /// if a device was also owed a key it missed).
    pub delivered_to: usize,
}

/// What a revocation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked device.
    pub device: DeviceId,
    /// The last seq of its log the team accepts.
    pub last_seq: u64,
    /// The admin device that signed the revocation (another one if it was
    /// already revoked).
    pub revoked_by: DeviceId,
    /// Whether another admin had revoked it already.
    pub already_revoked: bool,
    /// The rotation that followed, if this call made it.
    pub rotation: Option<Rotation>,
}

/// Finds a device of the roster by the start of its id or by its label.
pub fn find_device(
    roster: &Roster,
    labels: &BTreeMap<DeviceId, String>,
    which: &str,
) -> Result<DeviceId, SyncError> {
    let wanted = which.trim();
    let lower = wanted.to_lowercase();
    let matches: Vec<DeviceId> = roster
        .devices()
        .filter(|d| {
            (lower.len() >= 4 && d.entry.id().to_hex().starts_with(&lower))
                || labels
                    .get(&d.entry.id())
                    .is_some_and(|label| label.trim().to_lowercase() == lower)
        })
        .map(|d| d.entry.id())
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(SyncError::UnknownDevice(wanted.to_owned())),
        _ => Err(SyncError::AmbiguousDevice(wanted.to_owned())),
    }
}

/// Revokes a device (given by id prefix or label) and rotates the epoch.
/// Refused if the relay holds more of the device's log than this device
/// could verify (see [`revoke_dropping_unverified`]).
pub fn revoke<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    which: &str,
) -> Result<Revocation, SyncError> {
    let result = revoke_now(store, client, env, which, false);
    super::alarms::note(store, env.now(), result)
}

/// Revokes as [`revoke`] does, even when the relay holds envelopes of the
/// device beyond what this device verified: every device then refuses
/// those (a thief's, or the last intakes of a lost phone that never reached
/// this device: the person says which).
pub fn revoke_dropping_unverified<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    which: &str,
) -> Result<Revocation, SyncError> {
    let result = revoke_now(store, client, env, which, true);
    super::alarms::note(store, env.now(), result)
}

fn revoke_now<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    which: &str,
    drop_unverified: bool,
) -> Result<Revocation, SyncError> {
    let me = store.keys().device_id();
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let roster = require_admin(store, client, env)?;
        let labels = super::enrol::device_labels(store, &roster)?;
        let device = find_device(&roster, &labels, which)?;
        if device == me {
            return Err(SyncError::RevokeSelf);
        }
        let record = roster
            .device(&device)
            .ok_or_else(|| SyncError::UnknownDevice(which.to_owned()))?;
        if let Some(done) = record.revoked {
            let rotated = roster.current_epoch().started_at > done.at;
            let revoked_by = roster.ops()[done.at as usize].signer;
            let rotation = if rotated {
                None
            } else {
                Some(rotate_from(store, client, env, roster, false)?)
            };
            return Ok(Revocation {
                device,
                last_seq: done.last_seq,
                revoked_by,
                already_revoked: true,
                rotation,
            });
        }
        // The bound is what this device itself verified of the device's
        // log, never a number the relay reports: pull everything first. A
        // relay that hides part of that log from this device (its head
        // ahead of what it serves) does not hold the revocation up: the
        // bound is what was verified, and whatever it hid is refused.
        // An integrity alarm (recorded by the sync) does not hold the
        // revocation up either: a stolen device must not be able to stop
        // its own revocation by making the admin's sync fail.
        match super::engine::sync(store, client, env, &mut |_| {}) {
            Err(e) if !e.is_integrity_alarm() => return Err(e),
            _ => {}
        }
        let (last_seq, last_id) = store
            .peer_head(device)?
            .map_or((0, crate::ids::Digest::ZERO), |h| (h.seq, h.id));
        let relay = super::tail::log_views(store)?
            .get(&device)
            .map_or(0, |v| v.relay);
        if relay > last_seq && !drop_unverified {
            return Err(SyncError::RevocationBelowRelay {
                device,
                verified: last_seq,
                relay,
            });
        }
        let mut roster = require_admin(store, client, env)?;
        if roster.device(&device).is_some_and(|d| !d.is_active()) {
            // Another admin revoked it meanwhile: decide again.
            continue;
        }
        let op = roster
            .append_at(
                RosterChange::RevokeDevice {
                    device,
                    last_seq,
                    last_id,
                },
                client.now(env),
                store.keys(),
            )
            .map_err(|e| match e {
                RosterError::LastAdmin { .. } => SyncError::RevokeSelf,
                other => other.into(),
            })?
            .as_bytes()
            .to_vec();
        match client.append_roster(env, store.keys(), &op) {
            Ok(()) => {
                store.save_roster(&roster)?;
                let rotation = rotate_from(store, client, env, roster, false)?;
                return Ok(Revocation {
                    device,
                    last_seq,
                    revoked_by: me,
                    already_revoked: false,
                    rotation: Some(rotation),
                });
            }
            Err(e) if is_race(&e) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or(SyncError::TooManyRaces { attempts: ATTEMPTS }))
}

/// Starts a new epoch and delivers its key to every active reading device.
pub fn rotate<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Rotation, SyncError> {
    let result = rotate_now(store, client, env);
    super::alarms::note(store, env.now(), result)
}

fn rotate_now<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Rotation, SyncError> {
    let roster = require_admin(store, client, env)?;
    rotate_from(store, client, env, roster, false)
}

pub(crate) fn rotate_from<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    mut roster: Roster,
    forget: bool,
) -> Result<Rotation, SyncError> {
    let mut last_error = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            roster = require_admin(store, client, env)?;
        }
        let epoch = roster.current_epoch().epoch + 1;
        let key = EpochKey::generate(epoch);
        let op = roster
            .append_at(
                RosterChange::RotateEpoch {
                    epoch,
                    recipient: key.recipient(),
                    forget,
                },
                client.now(env),
                store.keys(),
            )?
            .as_bytes()
            .to_vec();
        // Kept before the relay hears of the epoch; a key that never
        // became the epoch's is replaced when the real one is delivered.
        store.put_epoch_key(&key)?;
        store.put_meta(PENDING_DELIVERY, &epoch.to_be_bytes())?;
        match client.append_roster(env, store.keys(), &op) {
            Ok(()) => {
                store.save_roster(&roster)?;
                let delivered_to = deliver_owed(store, client, env, &roster)?;
                return Ok(Rotation {
                    epoch,
                    delivered_to,
                });
            }
            Err(e) if is_race(&e) => {
                store.remove_epoch_key(epoch)?;
                store.remove_meta(PENDING_DELIVERY)?;
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or(SyncError::TooManyRaces { attempts: ATTEMPTS }))
}

/// Delivers every epoch key a device is owed, and returns how many
/// deliveries were made. Called after a rotation and by every sync of an
/// admin device. A device is owed:
/// - the epoch this admin just rotated to (the `pending` marker), and
/// - every epoch newer than the one its announcement says it holds (a
///   delivery that went to a receiving key it had already replaced).
///
/// Keys go to the device's newest announced receiving key (or the one on
/// the roster if it announced none yet). What was sent to which
/// generation is remembered, so a device that stays offline is not sent
/// the same key on every sync.
pub(crate) fn deliver_owed<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    roster: &Roster,
) -> Result<usize, SyncError> {
    let ring = store.epoch_keys()?;
    let deliverable: Vec<&EpochKey> = ring
        .epochs()
        .filter(|e| *e >= roster.retired_below())
        .filter_map(|e| ring.get(e))
        .filter(|k| {
            roster
                .epoch(k.epoch())
                .is_some_and(|r| r.recipient.to_string() == k.recipient().to_string())
        })
        .collect();
    let pending = store
        .meta(PENDING_DELIVERY)?
        .and_then(|v| v.as_slice().try_into().ok().map(u32::from_be_bytes));
    let mut announced: BTreeMap<DeviceId, Announcement> = BTreeMap::new();
    for bytes in client.recipients(env, store.keys())? {
        let announcement = Announcement::parse(bytes)?;
        match announcement.verify(roster) {
            Ok(()) => {}
            // Revoked since it announced: it gets nothing anyway.
            Err(AnnouncementError::UnknownDevice(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        announced.insert(announcement.device, announcement);
    }
    let mut sent = store.deliveries()?;
    let me = store.keys().device_id();
    let mut deliveries = Vec::new();
    for device in roster.active_devices() {
        let id = device.entry.id();
        if id == me || !device.entry.role.reads_cases() {
            continue;
        }
        let (recipient, generation, holds) = match announced.get(&id) {
            Some(a) => (&a.recipient, a.generation, Some(a.have_epoch)),
            None => (&device.entry.recipient, 0, None),
        };
        let already = sent
            .get(&id)
            .copied()
            .filter(|d| d.generation == generation);
        for key in &deliverable {
            let owed = pending == Some(key.epoch()) || holds.is_some_and(|h| key.epoch() > h);
            let done = already.is_some_and(|d| d.epoch >= key.epoch());
            if owed && !done {
                deliveries.push(
                    KeyEnvelope::seal(roster.team(), key, id, recipient, store.keys())?
                        .as_bytes()
                        .to_vec(),
                );
                sent.insert(
                    id,
                    Delivered {
                        generation,
                        epoch: key.epoch(),
                    },
                );
            }
        }
    }
    if !deliveries.is_empty() {
        client.put_keys(env, store.keys(), &deliveries)?;
        store.set_deliveries(&sent)?;
    }
    if pending.is_some() {
        store.remove_meta(PENDING_DELIVERY)?;
    }
    Ok(deliveries.len())
}

/// Refreshes the roster and checks this device is an admin on it.
pub(crate) fn require_admin<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Roster, SyncError> {
    let roster = refresh_roster(store, client, env)?;
    let role = roster
        .device(&store.keys().device_id())
        .map(|d| d.entry.role);
    if role != Some(Role::Admin) {
        return Err(SyncError::NotPermitted {
            role: role.map_or("none", Role::name),
            action: "manage the team (only an admin device can)",
        });
    }
    Ok(roster)
}

/// Whether the relay refused because someone else changed the roster or
/// the revoked device's log first: sign again against what is there now.
fn is_race(e: &SyncError) -> bool {
    matches!(e, SyncError::Refused { code, .. }
        if code == "roster_conflict" || code == "revocation_bound")
}
