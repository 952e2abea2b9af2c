//! Relay receipts: the relay's signed statement that it accepted an
//! envelope at a cursor. Devices keep them; auditors replay them to prove
//! nothing receipted was later dropped or changed.
//!
//! ```text
//! version u8 = 1 ‖ team 16 ‖ device 16 ‖ seq u64 ‖ envelope id 32 ‖ cursor u64
//!   ‖ signature 64 = Ed25519(relay key, "amana/v1/receipt\0" ‖ the 81 bytes before it)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::WireError;
use crate::ids::{DeviceId, Digest, TeamId};
use crate::wire::Reader;

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"amana/v1/receipt\0";
/// Length of an encoded receipt.
pub const RECEIPT_LEN: usize = 81 + 64;

/// What a receipt states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The team.
    pub team: TeamId,
    /// The author device.
    pub device: DeviceId,
    /// The envelope's seq.
    pub seq: u64,
    /// The envelope id (see [`crate::envelope::SealedEnvelope::id`]).
    pub envelope: Digest,
    /// Where the relay stored it in the team's order.
    pub cursor: u64,
}

/// Why a receipt was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Malformed bytes.
    #[error("receipt is malformed: {0}")]
    Malformed(WireError),
    /// Unknown version.
    #[error("receipt version {0} is not supported; update Amana")]
    UnsupportedVersion(u8),
    /// The relay's signature does not verify.
    #[error("receipt signature does not verify against the relay key")]
    BadSignature,
}

impl Receipt {
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECEIPT_LEN);
        out.push(VERSION);
        out.extend_from_slice(self.team.as_bytes());
        out.extend_from_slice(self.device.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.envelope.as_bytes());
        out.extend_from_slice(&self.cursor.to_be_bytes());
        out
    }

    /// Signs the receipt with the relay's key and encodes it.
    pub fn sign(&self, relay: &SigningKey) -> Vec<u8> {
        let mut out = self.unsigned();
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&out);
        out.extend_from_slice(&relay.sign(&msg).to_bytes());
        out
    }

    /// Decodes a receipt and checks the relay's signature.
    pub fn verify(bytes: &[u8], relay: &VerifyingKey) -> Result<Receipt, ReceiptError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().map_err(ReceiptError::Malformed)?;
        if version != VERSION {
            return Err(ReceiptError::UnsupportedVersion(version));
        }
        let receipt = Receipt {
            team: TeamId::from_bytes(r.array().map_err(ReceiptError::Malformed)?),
            device: DeviceId::from_bytes(r.array().map_err(ReceiptError::Malformed)?),
            seq: r.u64().map_err(ReceiptError::Malformed)?,
            envelope: Digest::from_bytes(r.array().map_err(ReceiptError::Malformed)?),
            cursor: r.u64().map_err(ReceiptError::Malformed)?,
        };
        let signature = Signature::from_bytes(&r.array().map_err(ReceiptError::Malformed)?);
        r.finish().map_err(ReceiptError::Malformed)?;
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&bytes[..RECEIPT_LEN - 64]);
        relay
            .verify_strict(&msg, &signature)
            .map_err(|_| ReceiptError::BadSignature)?;
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_any_flip() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let receipt = Receipt {
            team: TeamId::from_bytes([1; 16]),
            device: DeviceId::from_bytes([2; 16]),
            seq: 7,
            envelope: Digest::of(b"e"),
            cursor: 99,
        };
        let bytes = receipt.sign(&key);
        assert_eq!(bytes.len(), RECEIPT_LEN);
        assert_eq!(
            Receipt::verify(&bytes, &key.verifying_key()).unwrap(),
            receipt
        );
        for at in 0..bytes.len() {
            let mut m = bytes.clone();
            m[at] ^= 0x10;
            assert!(
                Receipt::verify(&m, &key.verifying_key()).is_err(),
                "flip at {at}"
            );
        }
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert_eq!(
            Receipt::verify(&bytes, &other),
            Err(ReceiptError::BadSignature)
        );
        assert!(matches!(
            Receipt::verify(&bytes[..50], &key.verifying_key()),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
