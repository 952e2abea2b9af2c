//! Envelopes: the signed, encrypted unit that every device appends to its
//! own log and that the relay stores.
//!
//! This module is the *format* side (header layout, structural checks,
//! signatures). It is all the relay links: it never decrypts. The client
//! side (compress, pad, encrypt, decrypt) lives in [`seal`] behind the
//! `client` feature.
//!
//! Wire layout (all integers big-endian), see `docs/protocol.md`:
//!
//! ```text
//! header (82 bytes) ‖ signature (64 bytes) ‖ body (header.body_len bytes)
//! signature = Ed25519(device key, "amana/v1/envelope\0" ‖ header ‖ SHA-256(body))
//! ```

#[cfg(feature = "client")]
pub mod seal;
#[cfg(feature = "client")]
pub mod snapshot;

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::agefile::{self, AgeLimits};
use crate::error::{EnvelopeError, WireError};
use crate::ids::{DeviceId, Digest, TeamId};
use crate::keys::DeviceKeys;
use crate::wire::Reader;

/// The only envelope format version this build reads and writes.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 82;
/// Length of the Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Domain separation tag for envelope signatures.
const DOMAIN: &[u8] = b"amana/v1/envelope\0";

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Automerge changes to one or more cases.
    Changes,
    /// Part of a snapshot: the compacted state of the team's cases, which
    /// an admin publishes under a new epoch when a case is shredded.
    Snapshot,
}

impl Kind {
    /// The byte that encodes this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Changes => 1,
            Kind::Snapshot => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self, EnvelopeError> {
        match code {
            1 => Ok(Kind::Changes),
            2 => Ok(Kind::Snapshot),
            other => Err(EnvelopeError::UnknownKind(other)),
        }
    }
}

/// The plaintext header of an envelope: everything the relay may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// What the body carries.
    pub kind: Kind,
    /// The team this envelope belongs to.
    pub team: TeamId,
    /// The device whose log this envelope extends (and who signed it).
    pub device: DeviceId,
    /// Position in the device's log, dense from 1.
    pub seq: u64,
    /// Id of the device's previous envelope; all zero for seq 1.
    pub prev: Digest,
    /// The epoch whose key encrypts the body.
    pub epoch: u32,
    /// Length of the body in bytes.
    pub body_len: u32,
}

impl EnvelopeHeader {
    /// Encodes the header to its 82 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.kind.code();
        out[2..18].copy_from_slice(self.team.as_bytes());
        out[18..34].copy_from_slice(self.device.as_bytes());
        out[34..42].copy_from_slice(&self.seq.to_be_bytes());
        out[42..74].copy_from_slice(self.prev.as_bytes());
        out[74..78].copy_from_slice(&self.epoch.to_be_bytes());
        out[78..82].copy_from_slice(&self.body_len.to_be_bytes());
        out
    }

    /// Decodes and checks a header.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, EnvelopeError> {
        if bytes[0] != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(bytes[0]));
        }
        let kind = Kind::from_code(bytes[1])?;
        // The input is exactly HEADER_LEN bytes, so none of these reads can fail.
        let mut r = Reader::new(&bytes[2..]);
        let fixed = |e: WireError| EnvelopeError::Payload(e);
        let header = EnvelopeHeader {
            kind,
            team: TeamId::from_bytes(r.array().map_err(fixed)?),
            device: DeviceId::from_bytes(r.array().map_err(fixed)?),
            seq: r.u64().map_err(fixed)?,
            prev: Digest::from_bytes(r.array().map_err(fixed)?),
            epoch: r.u32().map_err(fixed)?,
            body_len: r.u32().map_err(fixed)?,
        };
        header.check()?;
        Ok(header)
    }

    /// Checks the invariants of the header fields.
    fn check(&self) -> Result<(), EnvelopeError> {
        if self.seq == 0 {
            return Err(EnvelopeError::ZeroSeq);
        }
        if self.seq == 1 && !self.prev.is_zero() {
            return Err(EnvelopeError::FirstPrevNotZero);
        }
        if self.seq > 1 && self.prev.is_zero() {
            return Err(EnvelopeError::MissingPrev { seq: self.seq });
        }
        if self.epoch == 0 {
            return Err(EnvelopeError::ZeroEpoch);
        }
        Ok(())
    }

    /// The bytes of the header copy sealed inside the body: every header
    /// field except the body length, which depends on the ciphertext (the
    /// signature binds it).
    #[cfg(feature = "client")]
    pub(crate) fn inner_copy(&self) -> [u8; HEADER_LEN - 4] {
        let full = self.encode();
        let mut out = [0u8; HEADER_LEN - 4];
        out.copy_from_slice(&full[..HEADER_LEN - 4]);
        out
    }
}

/// Size limits applied to every envelope before anything else is done with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeLimits {
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Bounds on the body's age header.
    pub age: AgeLimits,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        Self {
            max_body: 4 * 1024 * 1024,
            age: AgeLimits::ONE_RECIPIENT,
        }
    }
}

/// A structurally valid envelope: header parsed, lengths exact, body shaped
/// like an age file. Its signature has *not* been checked yet: call
/// [`SealedEnvelope::verify_signature`] with the author's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedEnvelope {
    header: EnvelopeHeader,
    bytes: Vec<u8>,
}

impl SealedEnvelope {
    /// Parses `bytes` and checks every structural rule of the format.
    pub fn parse(bytes: Vec<u8>, limits: &EnvelopeLimits) -> Result<Self, EnvelopeError> {
        let prefix = HEADER_LEN + SIGNATURE_LEN;
        if bytes.len() < prefix {
            return Err(EnvelopeError::Truncated {
                needed: prefix,
                found: bytes.len(),
            });
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&bytes[..HEADER_LEN]);
        let header = EnvelopeHeader::decode(&header_bytes)?;
        let body_len = header.body_len as usize;
        if body_len > limits.max_body {
            return Err(EnvelopeError::Oversized {
                len: body_len,
                max: limits.max_body,
            });
        }
        let total = prefix + body_len;
        if bytes.len() < total {
            return Err(EnvelopeError::Truncated {
                needed: total,
                found: bytes.len(),
            });
        }
        if bytes.len() > total {
            return Err(EnvelopeError::TrailingBytes {
                extra: bytes.len() - total,
            });
        }
        agefile::check_structure(&bytes[prefix..], limits.age)?;
        Ok(Self { header, bytes })
    }

    /// Signs `body` under `header` with the device's key and assembles the
    /// envelope. `header.body_len` is set from `body`.
    pub fn sign(
        mut header: EnvelopeHeader,
        body: &[u8],
        device: &DeviceKeys,
    ) -> Result<Self, EnvelopeError> {
        header.body_len = u32::try_from(body.len()).map_err(|_| EnvelopeError::Oversized {
            len: body.len(),
            max: u32::MAX as usize,
        })?;
        header.check()?;
        let header_bytes = header.encode();
        let signature = device
            .signing_key()
            .sign(&signed_message(&header_bytes, body));
        let mut bytes = Vec::with_capacity(HEADER_LEN + SIGNATURE_LEN + body.len());
        bytes.extend_from_slice(&header_bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        bytes.extend_from_slice(body);
        Ok(Self { header, bytes })
    }

    /// Checks the Ed25519 signature against the author's public key.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), EnvelopeError> {
        if DeviceId::for_key(key) != self.header.device {
            return Err(EnvelopeError::BadSignature);
        }
        let signature = Signature::from_bytes(&self.signature());
        key.verify_strict(
            &signed_message(&self.bytes[..HEADER_LEN], self.body()),
            &signature,
        )
        .map_err(|_| EnvelopeError::BadSignature)
    }

    /// The parsed header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    /// The signature bytes.
    pub fn signature(&self) -> [u8; SIGNATURE_LEN] {
        // `parse` and `sign` guarantee the signature bytes are present.
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(&self.bytes[HEADER_LEN..HEADER_LEN + SIGNATURE_LEN]);
        out
    }

    /// The encrypted body (an age file).
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN + SIGNATURE_LEN..]
    }

    /// The whole envelope as it travels and is stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the envelope, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The envelope id: SHA-256 of the whole envelope. The next envelope of
    /// the same device names it as `prev`.
    pub fn id(&self) -> Digest {
        Digest::of(&self.bytes)
    }
}

/// The message an envelope signature covers.
fn signed_message(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + HEADER_LEN + 32);
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(header);
    msg.extend_from_slice(Digest::of(body).as_bytes());
    msg
}
