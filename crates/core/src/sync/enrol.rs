//! Enrolment over the relay: creating a team, invite codes, joining,
//! listing and approving pending devices.
//!
//! An invite code ([`super::invites`]) pins everything a new device must
//! not take from the relay on trust and carries a secret the relay never
//! sees. The device sends its keys with the redemption token derived from
//! the secret and a MAC of its keys under the binding key derived from it
//! (`crate::invite`); the office checks that MAC against the secret it kept
//! (a relay that substituted keys fails here, whatever number it ground),
//! then compares the safety number (keyed by the same secret) with the
//! device's screen, and approves: an admin-signed roster operation adds
//! the device, and every epoch key the admin holds is delivered to it
//! (none to `intake` or `auditor` devices, which only ever get the epoch
//! *recipient* from the roster).
//!
//! Device labels ("Field officer 2") are sealed to the epoch recipient
//! before they enter the roster, so the relay never sees them.

use age::x25519;
use ed25519_dalek::Signer as _;

use super::admin::require_admin;
use super::client::{JoinRequest, PendingDevice, RelayClient};
use super::engine::refresh_roster;
use super::invites::{InviteCode, InviteInfo, IssuedInvite, issued_invites, store_invites};
use super::{Env, SyncError};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::invite::{InviteSecret, join_message};
use crate::keys::delivery::KeyEnvelope;
use crate::keys::{EpochKey, EpochKeyring};
use crate::roster::{DeviceEntry, Role, Roster, RosterChange};
use crate::store::{DeviceStore, Membership, StoreError};
use crate::team_token::TeamToken;
use crate::transport::Transport;

const MAX_URL_LEN: usize = 200;
/// Meta entry: the safety number a joining device shows until approved.
pub(crate) const JOIN_SAFETY_NUMBER: &str = "join_safety_number";

/// Whether a join request's keys are bound to the invite it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The keys carry the invite's MAC: compare this safety number with
    /// the device's screen, then approve.
    Verified {
        /// The number both screens show.
        safety_number: String,
    },
    /// The MAC does not match the keys: someone (the relay) substituted
    /// them. Never approve; an integrity alarm.
    Substituted,
    /// The invite was issued on another admin device, which alone can
    /// check the binding.
    NotIssuedHere,
}

/// A pending device with what the office needs to decide.
#[derive(Clone, Debug)]
pub struct PendingApproval {
    /// What the relay reports.
    pub device: PendingDevice,
    /// Whether its keys are bound to the invite, and the safety number.
    pub binding: Binding,
    /// This admin's record of the invite it used, if it issued it.
    pub invite: Option<InviteInfo>,
}

/// Creates a team on the relay with this device as its first admin, and
/// records the membership. Nothing is stored locally unless the relay
/// accepted the team. `token` is the team token the relay's operator
/// issued (`None` only for a relay configured open, as in tests).
pub fn create_team<T: Transport>(
    store: &mut DeviceStore,
    transport: T,
    relay_url: &str,
    tls_pin: Option<Digest>,
    label: &str,
    token: Option<&TeamToken>,
) -> Result<TeamId, SyncError> {
    if store.membership()?.is_some() {
        return Err(SyncError::AlreadyMember);
    }
    check_url(relay_url)?;
    let team = TeamId::random();
    let epoch = EpochKey::generate(1);
    let sealed_label = seal_label(label, &epoch.recipient())?;
    let recipient = store.current_receiving_key()?.recipient();
    let roster = Roster::create(
        team,
        store.keys(),
        &recipient,
        sealed_label,
        epoch.recipient(),
    )?;
    let mut client = RelayClient::new(transport, team);
    let relay_key = client.create_team(roster.ops()[0].as_bytes(), token)?;
    store.put_epoch_key(&epoch)?;
    store.set_membership(&Membership {
        team,
        role: Role::Admin,
        relay_url: relay_url.to_owned(),
        genesis: roster.genesis_hash(),
        relay_key_pin: tls_pin,
        relay_receipt_key: Some(Digest::from_bytes(relay_key.to_bytes())),
    })?;
    store.save_roster(&roster)?;
    Ok(team)
}

/// Issues an invite for a device of `role`, valid for `ttl_secs`.
pub fn invite<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    role: Role,
    label: &str,
    ttl_secs: u64,
) -> Result<InviteCode, SyncError> {
    let result = invite_now(store, client, env, role, label, ttl_secs);
    super::alarms::note(store, env.now(), result)
}

fn invite_now<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    role: Role,
    label: &str,
    ttl_secs: u64,
) -> Result<InviteCode, SyncError> {
    let roster = require_admin(store, client, env)?;
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let team = roster.team();
    let secret = InviteSecret::generate();
    let id = secret.invite_id(team);
    let expires_at = env.now() + ttl_secs;
    client.create_invite(env, store.keys(), id, role, expires_at)?;
    // Records past their grace period are dropped as the list is written.
    let mut issued = issued_invites(store, env.now())?;
    issued.push(IssuedInvite {
        id,
        role,
        label: label.to_owned(),
        expires_at,
        secret: InviteSecret::from_bytes(*secret.expose()),
    });
    store_invites(store, &issued)?;
    Ok(InviteCode {
        team: roster.team(),
        genesis: roster.genesis_hash(),
        relay_receipt_key: membership
            .relay_receipt_key
            .ok_or_else(|| StoreError::Corrupt("the pinned relay key is missing".into()))?,
        tls_pin: membership.relay_key_pin,
        role,
        secret,
        relay_url: membership.relay_url,
    })
}

/// Asks to join with `code`; returns the safety number to show.
pub fn join<T: Transport>(
    store: &mut DeviceStore,
    transport: T,
    code: &InviteCode,
) -> Result<String, SyncError> {
    if store.membership()?.is_some() {
        return Err(SyncError::AlreadyMember);
    }
    let recipient = store.current_receiving_key()?.recipient().to_string();
    let keys = store.keys();
    let signing_key = keys.verifying_key();
    let token = code.secret.token(code.team);
    let invite = code.secret.invite_id(code.team);
    let message = join_message(code.team, invite, &signing_key, &recipient);
    let proof = keys.signing_key().sign(&message).to_bytes();
    let key_mac = code.secret.key_mac(code.team, &signing_key, &recipient);
    let safety_number = code
        .secret
        .safety_number(code.team, &signing_key, &recipient);
    let mut client = RelayClient::new(transport, code.team);
    client.join(&JoinRequest {
        invite_token: token,
        signing_key,
        recipient,
        proof,
        key_mac,
    })?;
    store.set_membership(&Membership {
        team: code.team,
        role: code.role,
        relay_url: code.relay_url.clone(),
        genesis: code.genesis,
        relay_key_pin: code.tls_pin,
        relay_receipt_key: Some(code.relay_receipt_key),
    })?;
    store.put_meta(JOIN_SAFETY_NUMBER, safety_number.as_bytes())?;
    Ok(safety_number)
}

/// The safety number this device showed when it asked to join (kept until
/// it is approved, for `amana status`).
pub fn waiting_safety_number(store: &DeviceStore) -> Result<Option<String>, SyncError> {
    Ok(store
        .meta(JOIN_SAFETY_NUMBER)?
        .map(|n| String::from_utf8_lossy(&n).into_owned()))
}

/// Devices waiting for approval (not yet on the roster), each with the
/// check of its binding to the invite it used.
pub fn pending<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Vec<PendingApproval>, SyncError> {
    let roster = require_admin(store, client, env)?;
    let issued = issued_invites(store, env.now())?;
    let team = roster.team();
    let list = client
        .pending(env, store.keys())?
        .into_iter()
        .filter(|p| roster.device(&p.device).is_none())
        .filter(|p| DeviceId::for_key(&p.signing_key) == p.device)
        .map(|device| {
            let invite = issued.iter().find(|i| i.id == device.invite);
            let binding = match invite {
                None => Binding::NotIssuedHere,
                Some(i)
                    if i.secret.verify_key_mac(
                        team,
                        &device.signing_key,
                        &device.recipient,
                        &device.key_mac,
                    ) =>
                {
                    Binding::Verified {
                        safety_number: i.secret.safety_number(
                            team,
                            &device.signing_key,
                            &device.recipient,
                        ),
                    }
                }
                Some(_) => Binding::Substituted,
            };
            PendingApproval {
                invite: invite.map(IssuedInvite::info),
                binding,
                device,
            }
        })
        .collect::<Vec<_>>();
    for substituted in list.iter().filter(|p| p.binding == Binding::Substituted) {
        let alarm = SyncError::JoinSubstituted {
            device: substituted.device.device,
        };
        if let Some(new) = super::alarms::of_error(&alarm) {
            store.raise_alarm(&new, env.now())?;
        }
    }
    Ok(list)
}

/// Approves the pending device whose id starts with `prefix`, after the
/// admin typed the safety number shown on that device. Refuses a request
/// whose keys are not bound to its invite (an integrity alarm: the relay
/// substituted them) before looking at the number. Adds the device to the
/// roster (with the role and label of the invite this admin issued) and
/// delivers every epoch key this admin holds to reading roles. Running it
/// again for an approved device re-delivers the keys.
pub fn approve<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    prefix: &str,
    typed_safety_number: &str,
) -> Result<DeviceEntry, SyncError> {
    let result = approve_now(store, client, env, prefix, typed_safety_number);
    super::alarms::note(store, env.now(), result)
}

fn approve_now<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    prefix: &str,
    typed_safety_number: &str,
) -> Result<DeviceEntry, SyncError> {
    let prefix = prefix.trim().to_lowercase();
    let candidates: Vec<PendingApproval> = pending(store, client, env)?
        .into_iter()
        .filter(|p| !prefix.is_empty() && p.device.device.to_hex().starts_with(&prefix))
        .collect();
    let [found] = candidates.as_slice() else {
        return Err(SyncError::UnknownPending(prefix));
    };
    let expected = match &found.binding {
        Binding::Verified { safety_number } => safety_number,
        Binding::Substituted => {
            return Err(SyncError::JoinSubstituted {
                device: found.device.device,
            });
        }
        Binding::NotIssuedHere => return Err(SyncError::InviteNotIssuedHere),
    };
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if digits(typed_safety_number) != digits(expected) {
        return Err(SyncError::SafetyNumberMismatch);
    }
    let issued = found.invite.clone().ok_or(SyncError::InviteNotIssuedHere)?;
    let recipient: x25519::Recipient = found
        .device
        .recipient
        .parse()
        .map_err(|_| SyncError::RelayMalformed("the pending device's recipient".into()))?;
    let mut roster = refresh_roster(store, client, env)?;
    let entry = DeviceEntry {
        signing_key: found.device.signing_key,
        recipient,
        role: issued.role,
        label: seal_label(&issued.label, &roster.current_epoch().recipient)?,
    };
    let op = roster
        .append(RosterChange::AddDevice(entry.clone()), store.keys())?
        .as_bytes()
        .to_vec();
    client.append_roster(env, store.keys(), &op)?;
    store.save_roster(&roster)?;
    deliver_keys(store, client, env, &roster, &entry)?;
    Ok(entry)
}

/// Delivers every epoch key this admin holds to `entry`, if its role reads.
pub fn deliver_keys<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    roster: &Roster,
    entry: &DeviceEntry,
) -> Result<(), SyncError> {
    if !entry.role.reads_cases() {
        return Ok(());
    }
    let ring = store.epoch_keys()?;
    let mut deliveries = Vec::new();
    // Never a retired epoch's key (an admin that has not synced since a
    // shred may still hold one).
    for epoch in ring.epochs().filter(|e| *e >= roster.retired_below()) {
        let key = ring.get(epoch).expect("listed epoch");
        deliveries.push(
            KeyEnvelope::seal(
                roster.team(),
                key,
                entry.id(),
                &entry.recipient,
                store.keys(),
            )?
            .as_bytes()
            .to_vec(),
        );
    }
    if deliveries.is_empty() {
        return Err(SyncError::MissingEpochKey(roster.current_epoch().epoch));
    }
    client.put_keys(env, store.keys(), &deliveries)
}

/// A device's label, if this device holds a key that opens it.
/// Every device label this device can know: those remembered from
/// snapshots (whose epoch keys may be retired), and those that open with
/// the epoch keys it holds.
pub fn device_labels(
    store: &DeviceStore,
    roster: &Roster,
) -> Result<std::collections::BTreeMap<DeviceId, String>, SyncError> {
    let mut labels = store.labels()?;
    let keys = store.epoch_keys()?;
    for device in roster.devices() {
        if let Some(label) = device_label(&device.entry, &keys) {
            labels.insert(device.entry.id(), label);
        }
    }
    Ok(labels)
}

/// The label of one roster entry, if a held epoch key opens it.
pub fn device_label(entry: &DeviceEntry, keys: &EpochKeyring) -> Option<String> {
    if entry.label.is_empty() {
        return None;
    }
    let identities: Vec<&dyn age::Identity> = keys
        .epochs()
        .filter_map(|e| keys.get(e))
        .map(|k| k.identity() as &dyn age::Identity)
        .collect();
    crate::agefile::check_structure(&entry.label, crate::agefile::AgeLimits::ONE_RECIPIENT).ok()?;
    let decryptor = age::Decryptor::new_buffered(&entry.label[..]).ok()?;
    let mut reader = decryptor.decrypt(identities.into_iter()).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text).ok()?;
    Some(text)
}

fn seal_label(label: &str, recipient: &x25519::Recipient) -> Result<Vec<u8>, SyncError> {
    let label: String = label.chars().take(100).collect();
    age::encrypt(recipient, label.as_bytes())
        .map_err(|_| SyncError::Seal(crate::error::EnvelopeError::EncryptFailed))
}

fn check_url(url: &str) -> Result<(), SyncError> {
    if url.len() > MAX_URL_LEN || !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(SyncError::BadRelayUrl(url.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_open_only_with_the_epoch_key() {
        let epoch = EpochKey::generate(1);
        let label = seal_label("Field officer 2", &epoch.recipient()).unwrap();
        let mut ring = EpochKeyring::new();
        let entry = DeviceEntry {
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
            recipient: EpochKey::generate(9).recipient(),
            role: Role::Field,
            label,
        };
        assert_eq!(device_label(&entry, &ring), None);
        ring.insert(epoch);
        assert_eq!(
            device_label(&entry, &ring).as_deref(),
            Some("Field officer 2")
        );
    }
}
