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
//! id        = SHA-256("amana/v1/envelope-id\0" ‖ header ‖ signature ‖ SHA-256(body))
//! ```
//!
//! The id commits to the body through its hash, so an envelope whose body
//! the relay dropped (its epoch retired after a shred) can travel as a
//! *stub*, `header ‖ signature ‖ SHA-256(body)`, and still be verified
//! (signature) and chained (id) by every client.

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

/// The only envelope format version this build reads and writes (2: the
/// plaintext carries the seal context and notices).
pub const VERSION: u8 = 2;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 82;
/// Length of the Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Domain separation tag for envelope signatures.
const DOMAIN: &[u8] = b"amana/v1/envelope\0";
/// Domain separation tag for envelope ids.
const ID_DOMAIN: &[u8] = b"amana/v1/envelope-id\0";
/// Length of a stub: header, signature and the body's hash.
pub const STUB_LEN: usize = HEADER_LEN + SIGNATURE_LEN + 32;

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
        verify(
            key,
            &self.bytes[..HEADER_LEN],
            &self.signature(),
            &Digest::of(self.body()),
        )
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

    /// The envelope id (see the module docs). The next envelope of the
    /// same device names it as `prev`.
    pub fn id(&self) -> Digest {
        envelope_id(
            &self.bytes[..HEADER_LEN],
            &self.signature(),
            &Digest::of(self.body()),
        )
    }

    /// The envelope without its body: what a relay keeps once the
    /// envelope's epoch is retired.
    pub fn stub(&self) -> EnvelopeStub {
        let mut bytes = Vec::with_capacity(STUB_LEN);
        bytes.extend_from_slice(&self.bytes[..HEADER_LEN + SIGNATURE_LEN]);
        bytes.extend_from_slice(Digest::of(self.body()).as_bytes());
        EnvelopeStub {
            header: self.header.clone(),
            bytes,
        }
    }
}

/// An envelope reduced to `header ‖ signature ‖ SHA-256(body)`: its body
/// was dropped because its epoch is retired. It verifies and chains like
/// the whole envelope; its content is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeStub {
    header: EnvelopeHeader,
    bytes: Vec<u8>,
}

impl EnvelopeStub {
    /// Parses a stub.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, EnvelopeError> {
        if bytes.len() != STUB_LEN {
            return Err(EnvelopeError::Truncated {
                needed: STUB_LEN,
                found: bytes.len(),
            });
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&bytes[..HEADER_LEN]);
        let header = EnvelopeHeader::decode(&header_bytes)?;
        Ok(Self { header, bytes })
    }

    /// The header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    fn signature(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(&self.bytes[HEADER_LEN..HEADER_LEN + SIGNATURE_LEN]);
        out
    }

    fn body_hash(&self) -> Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.bytes[HEADER_LEN + SIGNATURE_LEN..]);
        Digest::from_bytes(out)
    }

    /// Checks the author's signature (it covers the body's hash).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), EnvelopeError> {
        if DeviceId::for_key(key) != self.header.device {
            return Err(EnvelopeError::BadSignature);
        }
        verify(
            key,
            &self.bytes[..HEADER_LEN],
            &self.signature(),
            &self.body_hash(),
        )
    }

    /// The id of the whole envelope it stands for.
    pub fn id(&self) -> Digest {
        envelope_id(
            &self.bytes[..HEADER_LEN],
            &self.signature(),
            &self.body_hash(),
        )
    }

    /// The stub's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// An envelope as a relay stores and serves it: whole, or a stub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The whole envelope.
    Whole(SealedEnvelope),
    /// Its body was dropped.
    Stub(EnvelopeStub),
}

impl Stored {
    /// Parses stored bytes: exactly [`STUB_LEN`] bytes whose header names
    /// a longer body are a stub (no age file is 32 bytes long), anything
    /// else must be a whole envelope.
    pub fn parse(bytes: Vec<u8>, limits: &EnvelopeLimits) -> Result<Self, EnvelopeError> {
        if is_stub(&bytes) {
            EnvelopeStub::parse(bytes).map(Stored::Stub)
        } else {
            SealedEnvelope::parse(bytes, limits).map(Stored::Whole)
        }
    }

    /// The header.
    pub fn header(&self) -> &EnvelopeHeader {
        match self {
            Stored::Whole(e) => e.header(),
            Stored::Stub(s) => s.header(),
        }
    }

    /// The envelope id.
    pub fn id(&self) -> Digest {
        match self {
            Stored::Whole(e) => e.id(),
            Stored::Stub(s) => s.id(),
        }
    }
}

fn is_stub(bytes: &[u8]) -> bool {
    bytes.len() == STUB_LEN
        && u32::from_be_bytes([bytes[78], bytes[79], bytes[80], bytes[81]]) as usize != 32
}

/// The id of stored envelope bytes (whole or stub), without checking
/// anything else; `None` if too short to hold a header and signature.
pub fn id_of(bytes: &[u8]) -> Option<Digest> {
    let prefix = HEADER_LEN + SIGNATURE_LEN;
    if bytes.len() < prefix {
        return None;
    }
    let body_hash = if is_stub(bytes) {
        Digest::from_bytes(bytes[prefix..].try_into().ok()?)
    } else {
        Digest::of(&bytes[prefix..])
    };
    Some(envelope_id(
        &bytes[..HEADER_LEN],
        &bytes[HEADER_LEN..prefix],
        &body_hash,
    ))
}

fn envelope_id(header: &[u8], signature: &[u8], body_hash: &Digest) -> Digest {
    let mut msg = Vec::with_capacity(ID_DOMAIN.len() + HEADER_LEN + SIGNATURE_LEN + 32);
    msg.extend_from_slice(ID_DOMAIN);
    msg.extend_from_slice(header);
    msg.extend_from_slice(signature);
    msg.extend_from_slice(body_hash.as_bytes());
    Digest::of(&msg)
}

fn verify(
    key: &VerifyingKey,
    header: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    body_hash: &Digest,
) -> Result<(), EnvelopeError> {
    key.verify_strict(
        &signed_message_hashed(header, body_hash),
        &Signature::from_bytes(signature),
    )
    .map_err(|_| EnvelopeError::BadSignature)
}

/// The message an envelope signature covers.
fn signed_message(header: &[u8], body: &[u8]) -> Vec<u8> {
    signed_message_hashed(header, &Digest::of(body))
}

fn signed_message_hashed(header: &[u8], body_hash: &Digest) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + HEADER_LEN + 32);
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(header);
    msg.extend_from_slice(body_hash.as_bytes());
    msg
}
