//! The wire format of roster operations, and signing them.
//!
//! ```text
//! version u8 = 2 ‖ team 16 ‖ index u64 ‖ prev 32 ‖ signer 16 ‖ at u64
//!   ‖ kind u8 ‖ body_len u32 ‖ body ‖ signature 64
//! signature = Ed25519(signer, "amana/v1/roster-op\0" ‖ every byte before the signature)
//! ```
//!
//! Bodies (see `docs/protocol.md`):
//! - genesis (1): device entry ‖ epoch-1 recipient (str16)
//! - add device (2): device entry
//! - revoke device (3): device id 16 ‖ last accepted seq u64 ‖ id of that
//!   envelope 32 (all zero for seq 0)
//! - rotate epoch (4): new epoch u32 ‖ recipient (str16)
//! - rotate epoch and forget the older ones (5): same body as 4. Every
//!   device destroys the keys of older epochs once it has applied the
//!   snapshot that the same admin publishes under the new epoch (this is
//!   how a case is shredded; see `docs/threat-model.md`).
//!
//! Device entry: Ed25519 public key 32 ‖ role u8 ‖ age recipient (str16) ‖ label (bytes16).

use age::x25519;
use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::error::{RosterError, WireError};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::keys::DeviceKeys;
use crate::wire::{Reader, put_bytes16};

use super::Role;

/// The only roster format version this build reads and writes (2: every
/// operation states when its admin signed it, and a revocation names the
/// id of the last envelope it accepts, not only its seq).
pub const VERSION: u8 = 2;
/// Domain separation tag for roster signatures.
const DOMAIN: &[u8] = b"amana/v1/roster-op\0";
/// Largest accepted encoded operation.
pub const MAX_OP_LEN: usize = 8 * 1024;
/// Largest accepted encrypted device label.
pub const MAX_LABEL_LEN: usize = 1024;

/// A device as the roster records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device's Ed25519 public key; its id derives from it.
    pub signing_key: VerifyingKey,
    /// Where epoch keys for this device are encrypted to.
    pub recipient: x25519::Recipient,
    /// What the device may do.
    pub role: Role,
    /// A label for people ("Office laptop 2"), age-encrypted to the epoch
    /// recipient so only team members can read it; empty if none.
    pub label: Vec<u8>,
}

impl DeviceEntry {
    /// The device id.
    pub fn id(&self) -> DeviceId {
        DeviceId::for_key(&self.signing_key)
    }
}

/// What a roster operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterChange {
    /// Creates the team with its first admin and epoch 1.
    Genesis {
        /// The first admin device (signs this operation itself).
        admin: DeviceEntry,
        /// Recipient of epoch 1.
        epoch_recipient: x25519::Recipient,
    },
    /// Adds a device.
    AddDevice(DeviceEntry),
    /// Revokes a device; envelopes it wrote up to `last_seq` stay valid,
    /// and the one at `last_seq` must be `last_id` (so no other history up
    /// to the bound can be passed off as its).
    RevokeDevice {
        /// The device.
        device: DeviceId,
        /// The last seq of its log that the team accepts.
        last_seq: u64,
        /// The id of that envelope, as the revoking admin verified it (all
        /// zero when `last_seq` is 0).
        last_id: Digest,
    },
    /// Starts a new epoch.
    RotateEpoch {
        /// The new epoch number (current + 1).
        epoch: u32,
        /// Its recipient.
        recipient: x25519::Recipient,
        /// Whether every older epoch is retired: its keys destroyed on
        /// every device once the snapshot under this epoch is applied.
        forget: bool,
    },
}

impl RosterChange {
    fn code(&self) -> u8 {
        match self {
            RosterChange::Genesis { .. } => 1,
            RosterChange::AddDevice(_) => 2,
            RosterChange::RevokeDevice { .. } => 3,
            RosterChange::RotateEpoch { forget: false, .. } => 4,
            RosterChange::RotateEpoch { forget: true, .. } => 5,
        }
    }
}

/// A decoded, signed roster operation together with its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterOp {
    /// The team.
    pub team: TeamId,
    /// Position in the chain, from 0 (genesis).
    pub index: u64,
    /// Hash of the previous operation; zero for genesis.
    pub prev: Digest,
    /// The admin device that signed it.
    pub signer: DeviceId,
    /// When it signed it (unix seconds, its clock as the relay corrected
    /// it; 0 where not stated).
    pub at: u64,
    /// What it does.
    pub change: RosterChange,
    signature: Signature,
    bytes: Vec<u8>,
}

impl RosterOp {
    /// Encodes and signs an operation.
    pub fn sign(
        team: TeamId,
        index: u64,
        prev: Digest,
        change: RosterChange,
        at: u64,
        signer: &DeviceKeys,
    ) -> Result<Self, RosterError> {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(VERSION);
        bytes.extend_from_slice(team.as_bytes());
        bytes.extend_from_slice(&index.to_be_bytes());
        bytes.extend_from_slice(prev.as_bytes());
        bytes.extend_from_slice(signer.device_id().as_bytes());
        bytes.extend_from_slice(&at.to_be_bytes());
        bytes.push(change.code());
        let body = encode_body(&change).map_err(RosterError::Encode)?;
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        let signature = signer.signing_key().sign(&signed_message(&bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        if bytes.len() > MAX_OP_LEN {
            return Err(RosterError::Encode(WireError::FieldTooLong {
                len: bytes.len(),
                max: MAX_OP_LEN,
            }));
        }
        Ok(Self {
            team,
            index,
            prev,
            signer: signer.device_id(),
            at,
            change,
            signature,
            bytes,
        })
    }

    /// Decodes an operation. `position` is where it sits in the chain (for
    /// error messages); the signature is *not* checked here.
    pub fn decode(bytes: &[u8], position: u64) -> Result<Self, RosterError> {
        let malformed = |source| RosterError::Malformed {
            index: position,
            source,
        };
        if bytes.len() > MAX_OP_LEN {
            return Err(malformed(WireError::FieldTooLong {
                len: bytes.len(),
                max: MAX_OP_LEN,
            }));
        }
        let mut r = Reader::new(bytes);
        let version = r.u8().map_err(malformed)?;
        if version != VERSION {
            return Err(RosterError::UnsupportedVersion {
                index: position,
                version,
            });
        }
        let team = TeamId::from_bytes(r.array().map_err(malformed)?);
        let index = r.u64().map_err(malformed)?;
        let prev = Digest::from_bytes(r.array().map_err(malformed)?);
        let signer = DeviceId::from_bytes(r.array().map_err(malformed)?);
        let at = r.u64().map_err(malformed)?;
        let kind = r.u8().map_err(malformed)?;
        let body_len = r.u32().map_err(malformed)? as usize;
        let body = r.take(body_len).map_err(malformed)?;
        let signature = Signature::from_bytes(&r.array().map_err(malformed)?);
        r.finish().map_err(malformed)?;
        let change = decode_body(kind, body, position)?;
        Ok(Self {
            team,
            index,
            prev,
            signer,
            at,
            change,
            signature,
            bytes: bytes.to_vec(),
        })
    }

    /// Checks the signature against `key`.
    pub(crate) fn signature_valid(&self, key: &VerifyingKey) -> bool {
        let signed = &self.bytes[..self.bytes.len() - 64];
        key.verify_strict(&signed_message(signed), &self.signature)
            .is_ok()
    }

    /// The exact bytes, as stored and sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the operation bytes; the next operation names it as `prev`.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.bytes)
    }
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + unsigned.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(unsigned);
    msg
}

fn encode_entry(out: &mut Vec<u8>, entry: &DeviceEntry) -> Result<(), WireError> {
    out.extend_from_slice(entry.signing_key.as_bytes());
    out.push(entry.role.code());
    put_bytes16(out, entry.recipient.to_string().as_bytes())?;
    put_bytes16(out, &entry.label)
}

fn encode_body(change: &RosterChange) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(160);
    match change {
        RosterChange::Genesis {
            admin,
            epoch_recipient,
        } => {
            encode_entry(&mut out, admin)?;
            put_bytes16(&mut out, epoch_recipient.to_string().as_bytes())?;
        }
        RosterChange::AddDevice(entry) => encode_entry(&mut out, entry)?,
        RosterChange::RevokeDevice {
            device,
            last_seq,
            last_id,
        } => {
            out.extend_from_slice(device.as_bytes());
            out.extend_from_slice(&last_seq.to_be_bytes());
            out.extend_from_slice(last_id.as_bytes());
        }
        RosterChange::RotateEpoch {
            epoch, recipient, ..
        } => {
            out.extend_from_slice(&epoch.to_be_bytes());
            put_bytes16(&mut out, recipient.to_string().as_bytes())?;
        }
    }
    Ok(out)
}

fn decode_recipient(r: &mut Reader<'_>, index: u64) -> Result<x25519::Recipient, RosterError> {
    let text = r
        .str16()
        .map_err(|source| RosterError::Malformed { index, source })?;
    text.parse().map_err(|_| RosterError::BadKey { index })
}

fn decode_entry(r: &mut Reader<'_>, index: u64) -> Result<DeviceEntry, RosterError> {
    let malformed = |source| RosterError::Malformed { index, source };
    let key_bytes: [u8; 32] = r.array().map_err(malformed)?;
    let signing_key =
        VerifyingKey::from_bytes(&key_bytes).map_err(|_| RosterError::BadKey { index })?;
    let role_code = r.u8().map_err(malformed)?;
    let role = Role::from_code(role_code).ok_or(RosterError::UnknownRole {
        index,
        role: role_code,
    })?;
    let recipient = decode_recipient(r, index)?;
    let label = r.bytes16().map_err(malformed)?.to_vec();
    if !label.is_empty()
        && (label.len() > MAX_LABEL_LEN
            || crate::agefile::check_structure(&label, crate::agefile::AgeLimits::ONE_RECIPIENT)
                .is_err())
    {
        return Err(RosterError::LabelNotEncrypted { index });
    }
    Ok(DeviceEntry {
        signing_key,
        recipient,
        role,
        label,
    })
}

fn decode_body(kind: u8, body: &[u8], index: u64) -> Result<RosterChange, RosterError> {
    let malformed = |source| RosterError::Malformed { index, source };
    let mut r = Reader::new(body);
    let change = match kind {
        1 => RosterChange::Genesis {
            admin: decode_entry(&mut r, index)?,
            epoch_recipient: decode_recipient(&mut r, index)?,
        },
        2 => RosterChange::AddDevice(decode_entry(&mut r, index)?),
        3 => {
            let device = DeviceId::from_bytes(r.array().map_err(malformed)?);
            let last_seq = r.u64().map_err(malformed)?;
            let last_id = Digest::from_bytes(r.array().map_err(malformed)?);
            if (last_seq == 0) != last_id.is_zero() {
                return Err(malformed(WireError::InvalidValue(
                    "a revocation's last id (zero exactly when its last seq is 0)",
                )));
            }
            RosterChange::RevokeDevice {
                device,
                last_seq,
                last_id,
            }
        }
        4 | 5 => RosterChange::RotateEpoch {
            epoch: r.u32().map_err(malformed)?,
            recipient: decode_recipient(&mut r, index)?,
            forget: kind == 5,
        },
        other => return Err(RosterError::UnknownKind { index, kind: other }),
    };
    r.finish().map_err(malformed)?;
    Ok(change)
}
