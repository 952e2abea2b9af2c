//! The team roster: a hash-chained log of admin-signed operations, and the
//! verifier that turns it into the set of devices, roles and epochs.
//!
//! Every device verifies the whole chain itself, starting from the genesis
//! hash pinned in its invite, so a relay cannot substitute or alter a
//! roster. The relay verifies it too, to authorise requests.

mod op;

pub use op::{DeviceEntry, MAX_LABEL_LEN, MAX_OP_LEN, RosterChange, RosterOp};

use std::collections::BTreeMap;

use age::x25519;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::envelope::EnvelopeHeader;
use crate::error::{AuthorError, RosterError};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::keys::DeviceKeys;

/// What a device may do (see the Roles section of the architecture brief).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the roster; an office device.
    Admin,
    /// Reads and edits every case, produces statistics.
    Office,
    /// Reads and edits every case of the team.
    Field,
    /// Submits intakes and follow-ups; holds only the epoch recipient.
    Intake,
    /// Verifies the relay's data; holds no epoch key and writes nothing.
    Auditor,
}

impl Role {
    /// Every role, in code order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Office,
        Role::Field,
        Role::Intake,
        Role::Auditor,
    ];

    /// The byte that encodes the role.
    pub fn code(self) -> u8 {
        match self {
            Role::Admin => 1,
            Role::Office => 2,
            Role::Field => 3,
            Role::Intake => 4,
            Role::Auditor => 5,
        }
    }

    /// The role for a code byte.
    pub fn from_code(code: u8) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The role's name, as the CLI, the relay API and serde spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Office => "office",
            Role::Field => "field",
            Role::Intake => "intake",
            Role::Auditor => "auditor",
        }
    }

    /// Whether the role may write case data.
    pub fn can_write(self) -> bool {
        !matches!(self, Role::Auditor)
    }

    /// Whether the role receives epoch secrets (and so can read case data).
    pub fn reads_cases(self) -> bool {
        matches!(self, Role::Admin | Role::Office | Role::Field)
    }

    /// Whether the role has office powers (consent overrides, statistics).
    pub fn is_office(self) -> bool {
        matches!(self, Role::Admin | Role::Office)
    }
}

/// A revocation as the roster records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Index of the revoke operation.
    pub at: u64,
    /// Last seq of the device's log the team accepts.
    pub last_seq: u64,
    /// The id of the envelope at `last_seq` (zero for seq 0).
    pub last_id: Digest,
}

/// A device on the roster and its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device as added.
    pub entry: DeviceEntry,
    /// Index of the operation that added it.
    pub added_at: u64,
    /// The epoch in force when it was added.
    pub joined_epoch: u32,
    /// Set once the device is revoked.
    pub revoked: Option<Revocation>,
}

impl DeviceRecord {
    /// Whether the device is active (not revoked).
    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }
}

/// An epoch as the roster records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    /// The epoch number.
    pub epoch: u32,
    /// Its public recipient.
    pub recipient: x25519::Recipient,
    /// Index of the operation that started it.
    pub started_at: u64,
    /// Whether it retired every older epoch.
    pub forgets_older: bool,
}

/// A verified roster: the state after applying every operation of the chain.
#[derive(Clone, Debug)]
pub struct Roster {
    team: TeamId,
    genesis: Digest,
    head: Digest,
    ops: Vec<RosterOp>,
    devices: BTreeMap<DeviceId, DeviceRecord>,
    epochs: Vec<EpochRecord>,
}

impl Roster {
    /// Creates a team: signs its genesis operation with the first admin's
    /// keys and returns the one-operation roster.
    pub fn create(
        team: TeamId,
        admin: &DeviceKeys,
        admin_recipient: &x25519::Recipient,
        admin_label: Vec<u8>,
        epoch_recipient: x25519::Recipient,
    ) -> Result<Roster, RosterError> {
        let change = RosterChange::Genesis {
            admin: DeviceEntry {
                signing_key: admin.verifying_key(),
                recipient: admin_recipient.clone(),
                role: Role::Admin,
                label: admin_label,
            },
            epoch_recipient,
        };
        let op = RosterOp::sign(team, 0, Digest::ZERO, change, 0, admin)?;
        // Decode what we signed, so it passes exactly the checks others will run.
        Roster::from_genesis(RosterOp::decode(op.as_bytes(), 0)?)
    }

    /// Verifies a whole chain given as encoded operations.
    pub fn verify<B: AsRef<[u8]>>(ops: &[B]) -> Result<Roster, RosterError> {
        let first = ops.first().ok_or(RosterError::Empty)?;
        let mut roster = Roster::from_genesis(RosterOp::decode(first.as_ref(), 0)?)?;
        for bytes in &ops[1..] {
            roster.apply(bytes.as_ref())?;
        }
        Ok(roster)
    }

    /// Verifies a chain and checks that it starts at the pinned genesis hash.
    pub fn verify_pinned<B: AsRef<[u8]>>(
        ops: &[B],
        genesis: Digest,
    ) -> Result<Roster, RosterError> {
        let first = ops.first().ok_or(RosterError::Empty)?;
        let found = Digest::of(first.as_ref());
        if found != genesis {
            return Err(RosterError::GenesisMismatch {
                expected: genesis,
                found,
            });
        }
        Roster::verify(ops)
    }

    fn from_genesis(op: RosterOp) -> Result<Roster, RosterError> {
        let RosterChange::Genesis {
            admin,
            epoch_recipient,
        } = &op.change
        else {
            return Err(RosterError::BadGenesis);
        };
        if op.index != 0
            || !op.prev.is_zero()
            || admin.role != Role::Admin
            || admin.id() != op.signer
        {
            return Err(RosterError::BadGenesis);
        }
        if !op.signature_valid(&admin.signing_key) {
            return Err(RosterError::BadSignature { index: 0 });
        }
        let mut devices = BTreeMap::new();
        devices.insert(
            admin.id(),
            DeviceRecord {
                entry: admin.clone(),
                added_at: 0,
                joined_epoch: 1,
                revoked: None,
            },
        );
        let epochs = vec![EpochRecord {
            epoch: 1,
            recipient: epoch_recipient.clone(),
            started_at: 0,
            forgets_older: false,
        }];
        let hash = op.hash();
        Ok(Roster {
            team: op.team,
            genesis: hash,
            head: hash,
            ops: vec![op],
            devices,
            epochs,
        })
    }

    /// Verifies one more encoded operation and applies it. On error the
    /// roster is unchanged.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<(), RosterError> {
        let expected = self.next_index();
        let op = RosterOp::decode(bytes, expected)?;
        self.check(&op)?;
        self.commit(op);
        Ok(())
    }

    /// Signs an operation as `admin`, verifies it like any other and applies it.
    pub fn append(
        &mut self,
        change: RosterChange,
        admin: &DeviceKeys,
    ) -> Result<&RosterOp, RosterError> {
        self.append_at(change, 0, admin)
    }

    /// [`Roster::append`], stating that the admin signs it at `at` (unix
    /// seconds): readers hold envelopes sealed well after a revocation or
    /// rotation under a roster without it against their author.
    pub fn append_at(
        &mut self,
        change: RosterChange,
        at: u64,
        admin: &DeviceKeys,
    ) -> Result<&RosterOp, RosterError> {
        let index = self.next_index();
        let op = RosterOp::sign(self.team, index, self.head, change, at, admin)?;
        // Decode what we signed, so it passes exactly the checks others will run.
        let op = RosterOp::decode(op.as_bytes(), index)?;
        self.check(&op)?;
        self.commit(op);
        Ok(self
            .ops
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// Every rule a non-genesis operation must satisfy.
    fn check(&self, op: &RosterOp) -> Result<(), RosterError> {
        let index = self.next_index();
        if op.team != self.team {
            return Err(RosterError::WrongTeam { index });
        }
        if op.index != index {
            return Err(RosterError::IndexGap {
                expected: index,
                found: op.index,
            });
        }
        if op.prev != self.head {
            return Err(RosterError::BrokenChain { index });
        }
        let signer = self
            .devices
            .get(&op.signer)
            .filter(|d| d.is_active() && d.entry.role == Role::Admin)
            .ok_or(RosterError::NotAdmin {
                index,
                signer: op.signer,
            })?;
        if !op.signature_valid(&signer.entry.signing_key) {
            return Err(RosterError::BadSignature { index });
        }
        match &op.change {
            RosterChange::Genesis { .. } => Err(RosterError::BadGenesis),
            RosterChange::AddDevice(entry) => {
                let device = entry.id();
                if self.devices.contains_key(&device) {
                    return Err(RosterError::DuplicateDevice { index, device });
                }
                Ok(())
            }
            RosterChange::RevokeDevice { device, .. } => {
                let record = self.devices.get(device).ok_or(RosterError::UnknownDevice {
                    index,
                    device: *device,
                })?;
                if !record.is_active() {
                    return Err(RosterError::AlreadyRevoked {
                        index,
                        device: *device,
                    });
                }
                let other_admins = self
                    .active_devices()
                    .filter(|d| d.entry.role == Role::Admin && d.entry.id() != *device)
                    .count();
                if record.entry.role == Role::Admin && other_admins == 0 {
                    return Err(RosterError::LastAdmin { index });
                }
                Ok(())
            }
            RosterChange::RotateEpoch { epoch, .. } => {
                let expected = self.current_epoch().epoch + 1;
                if *epoch != expected {
                    return Err(RosterError::EpochGap {
                        index,
                        expected,
                        found: *epoch,
                    });
                }
                Ok(())
            }
        }
    }

    /// Applies a checked operation.
    fn commit(&mut self, op: RosterOp) {
        let index = op.index;
        let current = self.current_epoch().epoch;
        match &op.change {
            RosterChange::Genesis { .. } => {}
            RosterChange::AddDevice(entry) => {
                self.devices.insert(
                    entry.id(),
                    DeviceRecord {
                        entry: entry.clone(),
                        added_at: index,
                        joined_epoch: current,
                        revoked: None,
                    },
                );
            }
            RosterChange::RevokeDevice {
                device,
                last_seq,
                last_id,
            } => {
                if let Some(record) = self.devices.get_mut(device) {
                    record.revoked = Some(Revocation {
                        at: index,
                        last_seq: *last_seq,
                        last_id: *last_id,
                    });
                }
            }
            RosterChange::RotateEpoch {
                epoch,
                recipient,
                forget,
            } => {
                self.epochs.push(EpochRecord {
                    epoch: *epoch,
                    recipient: recipient.clone(),
                    started_at: index,
                    forgets_older: *forget,
                });
            }
        }
        self.head = op.hash();
        self.ops.push(op);
    }

    /// The team id.
    pub fn team(&self) -> TeamId {
        self.team
    }

    /// Hash of the genesis operation (pinned in invites).
    pub fn genesis_hash(&self) -> Digest {
        self.genesis
    }

    /// Hash of the last operation.
    pub fn head(&self) -> Digest {
        self.head
    }

    /// Index the next operation must carry.
    pub fn next_index(&self) -> u64 {
        self.ops.len() as u64
    }

    /// The operations of the chain, in order.
    pub fn ops(&self) -> &[RosterOp] {
        &self.ops
    }

    /// A device's record, active or revoked.
    pub fn device(&self, id: &DeviceId) -> Option<&DeviceRecord> {
        self.devices.get(id)
    }

    /// Every device ever added.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.devices.values()
    }

    /// Devices not revoked.
    pub fn active_devices(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.devices.values().filter(|d| d.is_active())
    }

    /// The public key of an active device, for authenticating its requests.
    pub fn active_key(&self, id: &DeviceId) -> Option<&VerifyingKey> {
        self.devices
            .get(id)
            .filter(|d| d.is_active())
            .map(|d| &d.entry.signing_key)
    }

    /// The current epoch.
    pub fn current_epoch(&self) -> &EpochRecord {
        // Genesis always creates epoch 1, so the list is never empty.
        self.epochs
            .last()
            .unwrap_or_else(|| unreachable!("a verified roster has epoch 1"))
    }

    /// Epochs below this one are retired: a later rotation forgot them, so
    /// no device keeps their keys once it has applied the snapshot that
    /// followed. 1 if nothing was ever forgotten.
    pub fn retired_below(&self) -> u32 {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.forgets_older)
            .map_or(1, |e| e.epoch)
    }

    /// The current epoch of this roster's first `len` operations (the
    /// roster an author held when it had seen that many); `None` for 0.
    pub fn current_epoch_at(&self, len: u64) -> Option<&EpochRecord> {
        self.epochs.iter().rev().find(|e| e.started_at < len)
    }

    /// The hash of operation `index`, if the roster has it.
    pub fn op_hash(&self, index: u64) -> Option<Digest> {
        self.ops
            .get(usize::try_from(index).ok()?)
            .map(RosterOp::hash)
    }

    /// A given epoch.
    pub fn epoch(&self, epoch: u32) -> Option<&EpochRecord> {
        self.epochs.iter().find(|e| e.epoch == epoch)
    }

    /// Checks that the author of an envelope was allowed to write it: on the
    /// roster, a writing role, the epoch known and not older than the
    /// device, and the seq within its revocation bound.
    pub fn check_author(&self, header: &EnvelopeHeader) -> Result<&DeviceRecord, AuthorError> {
        let record = self
            .devices
            .get(&header.device)
            .ok_or(AuthorError::UnknownDevice(header.device))?;
        if !record.entry.role.can_write() {
            return Err(AuthorError::CannotWrite(header.device));
        }
        let current = self.current_epoch().epoch;
        if header.epoch == 0 || header.epoch > current {
            return Err(AuthorError::UnknownEpoch {
                epoch: header.epoch,
                current,
            });
        }
        if header.epoch < record.joined_epoch {
            return Err(AuthorError::EpochBeforeJoin {
                device: header.device,
                epoch: header.epoch,
                joined: record.joined_epoch,
            });
        }
        if let Some(revocation) = record.revoked {
            if header.seq > revocation.last_seq {
                return Err(AuthorError::Revoked {
                    device: header.device,
                    seq: header.seq,
                    last_seq: revocation.last_seq,
                });
            }
            // Its key is public knowledge to whoever holds the device now:
            // nothing it signs under an epoch begun after the revocation
            // was written while it was a member.
            let began = self.epoch(header.epoch).map_or(0, |e| e.started_at);
            if began > revocation.at {
                return Err(AuthorError::EpochAfterRevocation {
                    device: header.device,
                    epoch: header.epoch,
                });
            }
        }
        Ok(record)
    }

    /// Whether `signer` may deliver the key of an epoch that started at
    /// operation `started_at`: an admin, not revoked before that epoch began.
    /// (The delivered key must also match the epoch's recipient on the
    /// roster, so a delivery can never introduce a key of its own.)
    pub fn may_deliver(&self, signer: &DeviceId, started_at: u64) -> bool {
        self.devices.get(signer).is_some_and(|d| {
            d.entry.role == Role::Admin && d.revoked.is_none_or(|r| r.at > started_at)
        })
    }
}

#[cfg(test)]
mod tests;
