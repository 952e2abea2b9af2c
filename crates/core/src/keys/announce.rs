//! Recipient announcements: a device telling its team where to send the
//! next epoch key.
//!
//! ```text
//! version u8 = 1 ‖ team 16 ‖ device 16 ‖ generation u32 ‖ have_epoch u32
//!   ‖ recipient (str16) ‖ signature 64
//! signature = Ed25519(device, "amana/v1/recipient\0" ‖ every byte before it)
//! ```
//!
//! The device signs it itself (roster operations are for admins), so a
//! relay can neither invent a recipient nor change one; at worst it serves
//! an older announcement, whose identity the device has already destroyed,
//! and the delivery simply does not open. `have_epoch` is the newest epoch
//! key the device holds: an admin that sees it behind the current epoch
//! delivers again, so a delivery lost to a race heals itself.

use age::x25519;
use ed25519_dalek::{Signature, Signer};

use crate::error::AnnouncementError;
use crate::ids::{DeviceId, TeamId};
use crate::keys::DeviceKeys;
use crate::roster::Roster;
use crate::wire::{Reader, put_bytes16};

/// The only announcement version this build reads and writes.
pub const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"amana/v1/recipient\0";
/// Largest accepted announcement.
pub const MAX_LEN: usize = 512;

/// A parsed announcement (signature not yet checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The team.
    pub team: TeamId,
    /// The announcing device.
    pub device: DeviceId,
    /// Generation of the receiving key.
    pub generation: u32,
    /// Newest epoch whose key the device holds (0: none).
    pub have_epoch: u32,
    /// Where to encrypt epoch keys to.
    pub recipient: x25519::Recipient,
    bytes: Vec<u8>,
}

impl Announcement {
    /// Signs an announcement as `device`.
    pub fn sign(
        team: TeamId,
        device: &DeviceKeys,
        generation: u32,
        have_epoch: u32,
        recipient: &x25519::Recipient,
    ) -> Result<Self, AnnouncementError> {
        let mut bytes = Vec::with_capacity(160);
        bytes.push(VERSION);
        bytes.extend_from_slice(team.as_bytes());
        bytes.extend_from_slice(device.device_id().as_bytes());
        bytes.extend_from_slice(&generation.to_be_bytes());
        bytes.extend_from_slice(&have_epoch.to_be_bytes());
        put_bytes16(&mut bytes, recipient.to_string().as_bytes())
            .map_err(AnnouncementError::Malformed)?;
        let signature = device.signing_key().sign(&signed_message(&bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        Self::parse(bytes)
    }

    /// Parses the structure.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, AnnouncementError> {
        let malformed = AnnouncementError::Malformed;
        if bytes.len() > MAX_LEN {
            return Err(malformed(crate::error::WireError::FieldTooLong {
                len: bytes.len(),
                max: MAX_LEN,
            }));
        }
        let mut r = Reader::new(&bytes);
        let version = r.u8().map_err(malformed)?;
        if version != VERSION {
            return Err(AnnouncementError::UnsupportedVersion(version));
        }
        let team = TeamId::from_bytes(r.array().map_err(malformed)?);
        let device = DeviceId::from_bytes(r.array().map_err(malformed)?);
        let generation = r.u32().map_err(malformed)?;
        let have_epoch = r.u32().map_err(malformed)?;
        let recipient = r
            .str16()
            .map_err(malformed)?
            .parse()
            .map_err(|_| AnnouncementError::BadRecipient)?;
        r.take(64).map_err(malformed)?;
        r.finish().map_err(malformed)?;
        Ok(Self {
            team,
            device,
            generation,
            have_epoch,
            recipient,
            bytes,
        })
    }

    /// Checks the team, that the device is active, and its signature.
    pub fn verify(&self, roster: &Roster) -> Result<(), AnnouncementError> {
        self.check(roster, true)
    }

    /// Checks the team, that the device is (or was) on the roster, and its
    /// signature: what an auditor checks of an announcement the relay
    /// still holds for a device revoked since.
    pub fn verify_authentic(&self, roster: &Roster) -> Result<(), AnnouncementError> {
        self.check(roster, false)
    }

    fn check(&self, roster: &Roster, active_only: bool) -> Result<(), AnnouncementError> {
        if self.team != roster.team() {
            return Err(AnnouncementError::WrongTeam);
        }
        let key = if active_only {
            roster.active_key(&self.device)
        } else {
            roster.device(&self.device).map(|d| &d.entry.signing_key)
        }
        .ok_or(AnnouncementError::UnknownDevice(self.device))?;
        let (signed, signature) = self.bytes.split_at(self.bytes.len() - 64);
        let signature =
            Signature::from_slice(signature).map_err(|_| AnnouncementError::BadSignature)?;
        key.verify_strict(&signed_message(signed), &signature)
            .map_err(|_| AnnouncementError::BadSignature)
    }

    /// The exact bytes, as stored and sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + unsigned.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(unsigned);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::EpochKey;
    use crate::keys::ReceivingKey;

    #[test]
    fn signed_by_the_device_and_checked_against_the_roster() {
        let admin = DeviceKeys::generate();
        let admin_rx = ReceivingKey::generate(0);
        let roster = Roster::create(
            TeamId::random(),
            &admin,
            &admin_rx.recipient(),
            Vec::new(),
            EpochKey::generate(1).recipient(),
        )
        .unwrap();
        let next = ReceivingKey::generate(1);
        let a = Announcement::sign(roster.team(), &admin, 1, 1, &next.recipient()).unwrap();
        let parsed = Announcement::parse(a.as_bytes().to_vec()).unwrap();
        assert_eq!(parsed, a);
        parsed.verify(&roster).unwrap();
        assert_eq!((parsed.generation, parsed.have_epoch), (1, 1));

        // Any changed byte breaks it; another device cannot sign for it.
        for i in [20, 40, 45, a.as_bytes().len() - 1] {
            let mut bad = a.as_bytes().to_vec();
            bad[i] ^= 1;
            let refused = Announcement::parse(bad).and_then(|p| p.verify(&roster));
            assert!(refused.is_err(), "byte {i}");
        }
        let stranger = DeviceKeys::generate();
        let forged = Announcement::sign(roster.team(), &stranger, 1, 1, &next.recipient()).unwrap();
        assert!(matches!(
            forged.verify(&roster),
            Err(AnnouncementError::UnknownDevice(_))
        ));
        assert!(Announcement::parse(vec![1; 10]).is_err());
    }
}
