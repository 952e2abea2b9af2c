//! Key envelopes: how an epoch key reaches a device.
//!
//! ```text
//! version u8 = 1 ‖ team 16 ‖ epoch u32 ‖ recipient device 16 ‖ signer device 16
//!   ‖ body_len u32 ‖ signature 64 ‖ body
//! body      = age(recipient device's X25519 recipient, first 53 header bytes ‖ epoch secret)
//! signature = Ed25519(admin, "amana/v1/key-envelope\0" ‖ first 57 bytes ‖ SHA-256(body))
//! ```
//!
//! The format side ([`KeyEnvelope::parse`], [`KeyEnvelope::verify`]) needs no
//! key; opening needs the recipient device's identity. A device accepts the
//! delivered key only if its public half equals the epoch recipient on the
//! verified roster, so neither a relay nor a rogue admin can slip in a key of
//! their own.

use ed25519_dalek::{Signature, Signer};

use crate::agefile::{self, AgeLimits};
use crate::error::KeyEnvelopeError;
use crate::ids::{DeviceId, TeamId};
use crate::keys::{DeviceKeys, EpochKey, ReceivingKey};
use crate::roster::Roster;
use crate::wire::Reader;

/// The only key envelope version this build reads and writes.
pub const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"amana/v1/key-envelope\0";
const ADDRESS_LEN: usize = 53;
const HEADER_LEN: usize = ADDRESS_LEN + 4;
const SIGNATURE_LEN: usize = 64;
/// Largest accepted key envelope body.
pub const MAX_BODY_LEN: usize = 4096;

/// A parsed key envelope (signature not yet checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEnvelope {
    /// The team.
    pub team: TeamId,
    /// The epoch whose key is delivered.
    pub epoch: u32,
    /// The device it is encrypted to.
    pub recipient: DeviceId,
    /// The admin that signed it.
    pub signer: DeviceId,
    bytes: Vec<u8>,
}

impl KeyEnvelope {
    /// Parses the structure: exact lengths and an age-shaped body.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, KeyEnvelopeError> {
        let mut r = Reader::new(&bytes);
        let version = r.u8().map_err(KeyEnvelopeError::Malformed)?;
        if version != VERSION {
            return Err(KeyEnvelopeError::UnsupportedVersion(version));
        }
        let team = TeamId::from_bytes(r.array().map_err(KeyEnvelopeError::Malformed)?);
        let epoch = r.u32().map_err(KeyEnvelopeError::Malformed)?;
        let recipient = DeviceId::from_bytes(r.array().map_err(KeyEnvelopeError::Malformed)?);
        let signer = DeviceId::from_bytes(r.array().map_err(KeyEnvelopeError::Malformed)?);
        let body_len = r.u32().map_err(KeyEnvelopeError::Malformed)? as usize;
        if body_len > MAX_BODY_LEN {
            return Err(KeyEnvelopeError::Malformed(
                crate::error::WireError::FieldTooLong {
                    len: body_len,
                    max: MAX_BODY_LEN,
                },
            ));
        }
        r.take(SIGNATURE_LEN).map_err(KeyEnvelopeError::Malformed)?;
        let body = r.take(body_len).map_err(KeyEnvelopeError::Malformed)?;
        r.finish().map_err(KeyEnvelopeError::Malformed)?;
        agefile::check_structure(body, AgeLimits::ONE_RECIPIENT)?;
        Ok(Self {
            team,
            epoch,
            recipient,
            signer,
            bytes,
        })
    }

    /// Encrypts `key` to device `to` at its receiving key `recipient`, and
    /// signs the delivery as `admin`.
    pub fn seal(
        team: TeamId,
        key: &EpochKey,
        to: DeviceId,
        recipient: &age::x25519::Recipient,
        admin: &DeviceKeys,
    ) -> Result<Self, KeyEnvelopeError> {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.push(VERSION);
        header.extend_from_slice(team.as_bytes());
        header.extend_from_slice(&key.epoch().to_be_bytes());
        header.extend_from_slice(to.as_bytes());
        header.extend_from_slice(admin.device_id().as_bytes());
        let mut plaintext = zeroize::Zeroizing::new(header.clone());
        plaintext.extend_from_slice(&key.secret_bytes());
        let body =
            age::encrypt(recipient, &plaintext).map_err(|_| KeyEnvelopeError::EncryptFailed)?;
        header.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let signature = admin.signing_key().sign(&signed_message(&header, &body));
        let mut bytes = header;
        bytes.extend_from_slice(&signature.to_bytes());
        bytes.extend_from_slice(&body);
        Self::parse(bytes)
    }

    /// Checks the signature and that the signer may deliver this epoch's key.
    pub fn verify(&self, roster: &Roster) -> Result<(), KeyEnvelopeError> {
        if self.team != roster.team() {
            return Err(KeyEnvelopeError::Misaddressed);
        }
        let epoch = roster
            .epoch(self.epoch)
            .ok_or(KeyEnvelopeError::UnknownEpoch(self.epoch))?;
        if !roster.may_deliver(&self.signer, epoch.started_at) {
            return Err(KeyEnvelopeError::NotAdmin(self.signer));
        }
        let key = roster
            .device(&self.signer)
            .map(|d| d.entry.signing_key)
            .ok_or(KeyEnvelopeError::NotAdmin(self.signer))?;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&self.bytes[HEADER_LEN..HEADER_LEN + SIGNATURE_LEN]);
        key.verify_strict(
            &signed_message(&self.bytes[..HEADER_LEN], self.body()),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| KeyEnvelopeError::BadSignature)
    }

    /// Verifies the envelope, decrypts it with one of this device's
    /// receiving keys and checks the key against the roster. Returns the
    /// epoch key and the generation of the receiving key that opened it.
    pub fn open(
        &self,
        roster: &Roster,
        device: DeviceId,
        receiving: &[ReceivingKey],
    ) -> Result<(EpochKey, u32), KeyEnvelopeError> {
        self.verify(roster)?;
        if self.recipient != device {
            return Err(KeyEnvelopeError::Misaddressed);
        }
        let (plaintext, generation) = receiving
            .iter()
            .rev()
            .find_map(|rx| {
                age::decrypt(rx.identity(), self.body())
                    .ok()
                    .map(|p| (zeroize::Zeroizing::new(p), rx.generation()))
            })
            .ok_or(KeyEnvelopeError::DecryptFailed)?;
        if plaintext.len() < ADDRESS_LEN || plaintext[..ADDRESS_LEN] != self.bytes[..ADDRESS_LEN] {
            return Err(KeyEnvelopeError::Misaddressed);
        }
        let secret = std::str::from_utf8(&plaintext[ADDRESS_LEN..])
            .map_err(|_| KeyEnvelopeError::DecryptFailed)?;
        let key =
            EpochKey::from_secret(self.epoch, secret).ok_or(KeyEnvelopeError::DecryptFailed)?;
        let expected = roster
            .epoch(self.epoch)
            .ok_or(KeyEnvelopeError::UnknownEpoch(self.epoch))?;
        if key.recipient() != expected.recipient {
            return Err(KeyEnvelopeError::KeyMismatch(self.epoch));
        }
        Ok((key, generation))
    }

    fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN + SIGNATURE_LEN..]
    }

    /// The exact bytes, as stored and sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn signed_message(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + HEADER_LEN + 32);
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(header);
    msg.extend_from_slice(crate::ids::Digest::of(body).as_bytes());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{DeviceEntry, Role, RosterChange};

    struct Team {
        roster: Roster,
        admin: DeviceKeys,
        field: DeviceKeys,
        field_rx: Vec<ReceivingKey>,
        epoch1: EpochKey,
    }

    fn team() -> Team {
        let admin = DeviceKeys::generate();
        let field = DeviceKeys::generate();
        let field_rx = vec![ReceivingKey::generate(0)];
        let epoch1 = EpochKey::generate(1);
        let mut roster = Roster::create(
            TeamId::random(),
            &admin,
            &ReceivingKey::generate(0).recipient(),
            Vec::new(),
            epoch1.recipient(),
        )
        .unwrap();
        let entry = DeviceEntry {
            signing_key: field.verifying_key(),
            recipient: field_rx[0].recipient(),
            role: Role::Field,
            label: Vec::new(),
        };
        roster
            .append(RosterChange::AddDevice(entry), &admin)
            .unwrap();
        Team {
            roster,
            admin,
            field,
            field_rx,
            epoch1,
        }
    }

    impl Team {
        fn deliver(&self, key: &EpochKey, signer: &DeviceKeys) -> KeyEnvelope {
            let to = self.field.device_id();
            KeyEnvelope::seal(
                self.roster.team(),
                key,
                to,
                &self.field_rx[0].recipient(),
                signer,
            )
            .unwrap()
        }

        fn open(&self, env: &KeyEnvelope) -> Result<(EpochKey, u32), KeyEnvelopeError> {
            env.open(&self.roster, self.field.device_id(), &self.field_rx)
        }
    }

    #[test]
    fn delivered_key_opens_and_matches_the_roster() {
        let t = team();
        let env = t.deliver(&t.epoch1, &t.admin);
        let parsed = KeyEnvelope::parse(env.as_bytes().to_vec()).unwrap();
        let (key, generation) = t.open(&parsed).unwrap();
        assert_eq!(key.recipient(), t.epoch1.recipient());
        assert_eq!(generation, 0);
        // Another device cannot use it, nor can other receiving keys.
        assert_eq!(
            parsed
                .open(&t.roster, t.admin.device_id(), &t.field_rx)
                .unwrap_err(),
            KeyEnvelopeError::Misaddressed
        );
        assert_eq!(
            parsed
                .open(&t.roster, t.field.device_id(), &[ReceivingKey::generate(1)])
                .unwrap_err(),
            KeyEnvelopeError::DecryptFailed
        );
    }

    #[test]
    fn a_substituted_key_is_refused() {
        let t = team();
        let env = t.deliver(&EpochKey::generate(1), &t.admin);
        assert_eq!(t.open(&env).unwrap_err(), KeyEnvelopeError::KeyMismatch(1));
    }

    #[test]
    fn only_admins_may_deliver() {
        let t = team();
        let env = t.deliver(&t.epoch1, &t.field);
        assert!(matches!(t.open(&env), Err(KeyEnvelopeError::NotAdmin(_))));
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let t = team();
        let bytes = t.deliver(&t.epoch1, &t.admin).as_bytes().to_vec();
        for at in 0..bytes.len() {
            let mut m = bytes.clone();
            m[at] ^= 0x04;
            let result = KeyEnvelope::parse(m).and_then(|e| t.open(&e));
            assert!(result.is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn unknown_epoch_and_truncation() {
        let t = team();
        let env = t.deliver(&EpochKey::generate(5), &t.admin);
        assert_eq!(t.open(&env).unwrap_err(), KeyEnvelopeError::UnknownEpoch(5));
        assert!(matches!(
            KeyEnvelope::parse(env.as_bytes()[..60].to_vec()),
            Err(KeyEnvelopeError::Malformed(_))
        ));
    }
}
