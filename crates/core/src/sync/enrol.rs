//! Enrolment over the relay: creating a team, invite codes, joining,
//! listing and approving pending devices.
//!
//! An invite code pins everything a new device must not take from the
//! relay on trust: the team id, the roster's genesis hash, the relay URL,
//! the SHA-256 of the relay's TLS public key, the relay's receipt key, the
//! role, and a one-time secret (the relay only knows its hash). The device
//! sends its keys with the secret; the office lists the request with a
//! safety number computed from those keys, compares it with the number on
//! the device's screen, and approves: an admin-signed roster operation adds
//! the device, and every epoch key the admin holds is delivered to it
//! (none to `intake` or `auditor` devices, which only ever get the epoch
//! *recipient* from the roster).
//!
//! Device labels ("Field officer 2") are sealed to the epoch recipient
//! before they enter the roster, so the relay never sees them.

use age::x25519;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::admin::require_admin;
use super::client::{JoinRequest, PendingDevice, RelayClient};
use super::engine::refresh_roster;
use super::{Env, SyncError};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::invite::{invite_id, join_message, safety_number};
use crate::keys::delivery::KeyEnvelope;
use crate::keys::{EpochKey, EpochKeyring};
use crate::roster::{DeviceEntry, Role, Roster, RosterChange};
use crate::store::{DeviceStore, Membership, StoreError};
use crate::transport::Transport;

const CODE_PREFIX: &str = "amana1-";
const CODE_VERSION: u8 = 1;
const MAX_URL_LEN: usize = 200;

/// Everything a new device needs to join, pinned.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode {
    /// The team.
    pub team: TeamId,
    /// The roster's genesis hash.
    pub genesis: Digest,
    /// The relay's receipt-signing key.
    pub relay_receipt_key: Digest,
    /// SHA-256 of the relay's TLS public key (absent for a loopback relay
    /// without TLS).
    pub tls_pin: Option<Digest>,
    /// The role the device will have.
    pub role: Role,
    /// The one-time secret.
    pub secret: [u8; 16],
    /// The relay's base URL.
    pub relay_url: String,
}

impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteCode")
            .field("team", &self.team)
            .field("role", &self.role)
            .field("relay_url", &self.relay_url)
            .finish_non_exhaustive()
    }
}

impl InviteCode {
    /// The code as text: `amana1-` and URL-safe base64 of the fields and a
    /// 4-byte checksum, so a mistyped code is caught before it is sent.
    pub fn encode(&self) -> String {
        let mut bytes = vec![CODE_VERSION];
        bytes.extend_from_slice(self.team.as_bytes());
        bytes.extend_from_slice(self.genesis.as_bytes());
        bytes.extend_from_slice(self.relay_receipt_key.as_bytes());
        match self.tls_pin {
            Some(pin) => {
                bytes.push(1);
                bytes.extend_from_slice(pin.as_bytes());
            }
            None => bytes.push(0),
        }
        bytes.push(self.role.code());
        bytes.extend_from_slice(&self.secret);
        bytes.push(self.relay_url.len() as u8);
        bytes.extend_from_slice(self.relay_url.as_bytes());
        let check = Sha256::digest(&bytes);
        bytes.extend_from_slice(&check[..4]);
        format!("{CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a code as printed by [`InviteCode::encode`] (surrounding
    /// whitespace and line breaks are ignored).
    pub fn parse(text: &str) -> Result<InviteCode, SyncError> {
        let compact: String = text.split_whitespace().collect();
        let body = compact
            .strip_prefix(CODE_PREFIX)
            .ok_or(SyncError::InviteMalformed("it must start with amana1-"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SyncError::InviteMalformed("it contains characters that do not belong"))?;
        let (payload, check) = bytes
            .split_at_checked(bytes.len().saturating_sub(4))
            .ok_or(SyncError::InviteMalformed("it is too short"))?;
        if bytes.len() < 4 || Sha256::digest(payload)[..4] != *check {
            return Err(SyncError::InviteMalformed("the checksum does not match"));
        }
        let mut r = crate::wire::Reader::new(payload);
        let short = |_| SyncError::InviteMalformed("it is truncated");
        if r.u8().map_err(short)? != CODE_VERSION {
            return Err(SyncError::InviteMalformed(
                "it was made by a newer version of Amana",
            ));
        }
        let team = TeamId::from_bytes(r.array().map_err(short)?);
        let genesis = Digest::from_bytes(r.array().map_err(short)?);
        let relay_receipt_key = Digest::from_bytes(r.array().map_err(short)?);
        let tls_pin = match r.u8().map_err(short)? {
            0 => None,
            1 => Some(Digest::from_bytes(r.array().map_err(short)?)),
            _ => return Err(SyncError::InviteMalformed("unknown pin flag")),
        };
        let role = Role::from_code(r.u8().map_err(short)?)
            .ok_or(SyncError::InviteMalformed("unknown role"))?;
        let secret = r.array().map_err(short)?;
        let url_len = r.u8().map_err(short)? as usize;
        let url = r.take(url_len).map_err(short)?;
        let relay_url = String::from_utf8(url.to_vec())
            .map_err(|_| SyncError::InviteMalformed("the relay address is not text"))?;
        if r.remaining() != 0 {
            return Err(SyncError::InviteMalformed("it has trailing bytes"));
        }
        Ok(InviteCode {
            team,
            genesis,
            relay_receipt_key,
            tls_pin,
            role,
            secret,
            relay_url,
        })
    }
}

/// An invite this admin device issued (kept sealed in its store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedInvite {
    /// The invite id.
    pub id: Digest,
    /// The role it grants.
    pub role: Role,
    /// The label the device will carry.
    pub label: String,
    /// Expiry (unix seconds).
    pub expires_at: u64,
}

/// A pending device with what the office needs to decide.
#[derive(Clone, Debug)]
pub struct PendingApproval {
    /// What the relay reports.
    pub device: PendingDevice,
    /// The safety number to compare with the device's screen.
    pub safety_number: String,
    /// This admin's record of the invite it used, if it issued it.
    pub invite: Option<IssuedInvite>,
}

/// Creates a team on the relay with this device as its first admin, and
/// records the membership. Nothing is stored locally unless the relay
/// accepted the team.
pub fn create_team<T: Transport>(
    store: &mut DeviceStore,
    transport: T,
    relay_url: &str,
    tls_pin: Option<Digest>,
    label: &str,
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
    let relay_key = client.create_team(roster.ops()[0].as_bytes())?;
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
    let roster = require_admin(store, client, env)?;
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let secret: [u8; 16] = crate::random::bytes();
    let id = invite_id(&secret);
    let expires_at = env.now() + ttl_secs;
    client.create_invite(env, store.keys(), id, role, expires_at)?;
    let mut issued = issued_invites(store)?;
    issued.retain(|i| i.expires_at > env.now());
    issued.push(IssuedInvite {
        id,
        role,
        label: label.to_owned(),
        expires_at,
    });
    store.put_meta("invites", &serde_json::to_vec(&issued).map_err(corrupt)?)?;
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
    let message = join_message(code.team, invite_id(&code.secret), &signing_key, &recipient);
    let proof = keys.signing_key().sign(&message).to_bytes();
    let mut client = RelayClient::new(transport, code.team);
    client.join(&JoinRequest {
        invite_secret: code.secret,
        signing_key,
        recipient: recipient.clone(),
        proof,
    })?;
    store.set_membership(&Membership {
        team: code.team,
        role: code.role,
        relay_url: code.relay_url.clone(),
        genesis: code.genesis,
        relay_key_pin: code.tls_pin,
        relay_receipt_key: Some(code.relay_receipt_key),
    })?;
    Ok(safety_number(code.team, &signing_key, &recipient))
}

/// Devices waiting for approval (not yet on the roster).
pub fn pending<T: Transport>(
    store: &mut DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
) -> Result<Vec<PendingApproval>, SyncError> {
    let roster = require_admin(store, client, env)?;
    let issued = issued_invites(store)?;
    Ok(client
        .pending(env, store.keys())?
        .into_iter()
        .filter(|p| roster.device(&p.device).is_none())
        .filter(|p| DeviceId::for_key(&p.signing_key) == p.device)
        .map(|device| PendingApproval {
            safety_number: safety_number(roster.team(), &device.signing_key, &device.recipient),
            invite: issued.iter().find(|i| i.id == device.invite).cloned(),
            device,
        })
        .collect())
}

/// Approves the pending device whose id starts with `prefix`, after the
/// admin typed the safety number shown on that device. Adds it to the
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
    let prefix = prefix.trim().to_lowercase();
    let candidates: Vec<PendingApproval> = pending(store, client, env)?
        .into_iter()
        .filter(|p| !prefix.is_empty() && p.device.device.to_hex().starts_with(&prefix))
        .collect();
    let [found] = candidates.as_slice() else {
        return Err(SyncError::UnknownPending(prefix));
    };
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    if digits(typed_safety_number) != digits(&found.safety_number) {
        return Err(SyncError::SafetyNumberMismatch);
    }
    let issued = found.invite.clone().ok_or(SyncError::InviteNotIssuedHere)?;
    let recipient: x25519::Recipient = found
        .device
        .recipient
        .parse()
        .map_err(|_| SyncError::RelayGarbage("the pending device's recipient".into()))?;
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

/// The invites this device issued and that have not expired.
pub fn issued_invites(store: &DeviceStore) -> Result<Vec<IssuedInvite>, SyncError> {
    Ok(match store.meta("invites")? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(corrupt)?,
        None => Vec::new(),
    })
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

fn corrupt(_: serde_json::Error) -> SyncError {
    SyncError::Store(StoreError::Corrupt("invite records unreadable".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> InviteCode {
        InviteCode {
            team: TeamId::from_bytes([1; 16]),
            genesis: Digest::from_bytes([2; 32]),
            relay_receipt_key: Digest::from_bytes([3; 32]),
            tls_pin: Some(Digest::from_bytes([4; 32])),
            role: Role::Field,
            secret: [5; 16],
            relay_url: "https://relay.example.org:8443".into(),
        }
    }

    #[test]
    fn invite_code_round_trips_with_and_without_pin() {
        let c = code();
        let text = c.encode();
        assert!(text.starts_with("amana1-"));
        assert_eq!(InviteCode::parse(&text).unwrap(), c);
        let spaced = format!("  {}\n{}  ", &text[..20], &text[20..]);
        assert_eq!(InviteCode::parse(&spaced).unwrap(), c);
        let mut no_pin = code();
        no_pin.tls_pin = None;
        assert_eq!(InviteCode::parse(&no_pin.encode()).unwrap(), no_pin);
    }

    #[test]
    fn damaged_invite_codes_are_refused() {
        let text = code().encode();
        for i in 7..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let damaged: String = chars.into_iter().collect();
            assert!(
                matches!(
                    InviteCode::parse(&damaged),
                    Err(SyncError::InviteMalformed(_))
                ),
                "position {i}"
            );
        }
        for cut in 0..text.len() {
            assert!(InviteCode::parse(&text[..cut]).is_err());
        }
        assert!(InviteCode::parse("hello").is_err());
    }

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
