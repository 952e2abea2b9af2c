//! Sealing and opening envelopes (client side).
//!
//! ```text
//! body = age(epoch recipient, pad(deflate(header copy ‖ payload)))
//! payload (changes)  = count u32 ‖ [case id 16 ‖ len u32 ‖ Automerge change bytes]*
//!                      ‖ witnesses u16 ‖ [device 16 ‖ seq u64 ‖ envelope id 32]*
//! payload (snapshot) = see [`super::snapshot`]
//! ```
//!
//! Opening runs every check in a fixed order (team, signature, epoch key,
//! decryption, padding, decompression, header copy, payload) and stops at
//! the first failure with its specific error. Plaintext buffers are zeroized.

use std::io::Read;

use age::x25519;
use ed25519_dalek::VerifyingKey;
use flate2::Compression;
use flate2::read::{DeflateDecoder, DeflateEncoder};
use zeroize::Zeroizing;

use super::snapshot::{self, Snapshot};
use super::{EnvelopeHeader, HEADER_LEN, Kind, SealedEnvelope};
use crate::error::{EnvelopeError, WireError};
use crate::ids::{CaseId, DeviceId, Digest, TeamId};
use crate::keys::{DeviceKeys, EpochKeyring};
use crate::padding;
use crate::wire::Reader;

/// Largest accepted decompressed plaintext.
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;
const INNER_LEN: usize = HEADER_LEN - 4;

/// One Automerge change to one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseChange {
    /// The case the change belongs to.
    pub case: CaseId,
    /// The Automerge change bytes.
    pub change: Vec<u8>,
}

/// Another device's log as the sealing device had applied it: its seq and
/// the id of that envelope. Carried inside the encrypted body, so readers
/// compare views of the same log and catch a relay that shows two devices
/// different histories (`docs/protocol.md`, "witnesses").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The device whose log is witnessed.
    pub device: DeviceId,
    /// The seq applied.
    pub seq: u64,
    /// The id of the envelope at that seq.
    pub id: Digest,
}

/// Most witnesses one envelope carries (one per device of a team).
pub const MAX_WITNESSES: usize = 4096;

/// A verified, decrypted envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedEnvelope {
    /// The (verified) header.
    pub header: EnvelopeHeader,
    /// Envelope id.
    pub id: Digest,
    /// The changes it carries, in order (none in a snapshot).
    pub changes: Vec<CaseChange>,
    /// The snapshot part it carries, if it is one.
    pub snapshot: Option<Snapshot>,
    /// The other devices' heads its author witnessed (none in a snapshot).
    pub witnesses: Vec<Witness>,
}

/// Seals `changes` and `witnesses` into a signed envelope under `header`
/// (its `body_len` is filled in), encrypted to the epoch recipient.
pub fn seal(
    header: EnvelopeHeader,
    changes: &[CaseChange],
    witnesses: &[Witness],
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let header = EnvelopeHeader {
        kind: Kind::Changes,
        ..header
    };
    let mut plaintext = Zeroizing::new(Vec::with_capacity(INNER_LEN + 64));
    plaintext.extend_from_slice(&header.inner_copy());
    encode_payload(&mut plaintext, changes, witnesses)?;
    seal_plaintext(header, &plaintext, epoch_recipient, device)
}

/// Seals one part of a snapshot under `header` (its kind and `body_len`
/// are filled in).
pub fn seal_snapshot(
    header: EnvelopeHeader,
    snapshot: &Snapshot,
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let header = EnvelopeHeader {
        kind: Kind::Snapshot,
        ..header
    };
    let mut plaintext = Zeroizing::new(Vec::with_capacity(INNER_LEN + 1024));
    plaintext.extend_from_slice(&header.inner_copy());
    snapshot::encode(&mut plaintext, snapshot).map_err(EnvelopeError::Payload)?;
    seal_plaintext(header, &plaintext, epoch_recipient, device)
}

fn seal_plaintext(
    header: EnvelopeHeader,
    plaintext: &[u8],
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let mut compressed = Zeroizing::new(Vec::with_capacity(plaintext.len() / 2 + 64));
    DeflateEncoder::new(plaintext, Compression::default())
        .read_to_end(&mut compressed)
        .map_err(|_| EnvelopeError::EncryptFailed)?;
    let padded = Zeroizing::new(padding::pad(&compressed));
    let body = age::encrypt(epoch_recipient, &padded).map_err(|_| EnvelopeError::EncryptFailed)?;
    SealedEnvelope::sign(header, &body, device)
}

/// Verifies and decrypts an envelope of `team` written by the device
/// whose public key is `author`, with the epoch keys held in `keys`.
///
/// Checking that the author was allowed to write it (roster, revocation,
/// epoch) is [`crate::roster::Roster::check_author`]; chain continuity is
/// the sync engine's job.
pub fn open(
    envelope: &SealedEnvelope,
    team: TeamId,
    author: &VerifyingKey,
    keys: &EpochKeyring,
) -> Result<OpenedEnvelope, EnvelopeError> {
    let header = envelope.header();
    if header.team != team {
        return Err(EnvelopeError::WrongTeam {
            expected: team,
            found: header.team,
        });
    }
    envelope.verify_signature(author)?;
    let key = keys
        .get(header.epoch)
        .ok_or(EnvelopeError::UnknownEpoch(header.epoch))?;

    let decryptor =
        age::Decryptor::new_buffered(envelope.body()).map_err(|_| EnvelopeError::DecryptFailed)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(key.identity() as &dyn age::Identity))
        .map_err(|_| EnvelopeError::DecryptFailed)?;
    let mut padded = Zeroizing::new(Vec::with_capacity(envelope.body().len()));
    reader
        .read_to_end(&mut padded)
        .map_err(|_| EnvelopeError::DecryptFailed)?;

    let compressed = padding::unpad(&padded).ok_or(EnvelopeError::PaddingInvalid)?;
    let mut plaintext = Zeroizing::new(Vec::new());
    DeflateDecoder::new(compressed)
        .take(MAX_PLAINTEXT as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| EnvelopeError::Decompress { max: MAX_PLAINTEXT })?;
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EnvelopeError::Decompress { max: MAX_PLAINTEXT });
    }
    if plaintext.len() < INNER_LEN || plaintext[..INNER_LEN] != header.inner_copy() {
        return Err(EnvelopeError::HeaderMismatch);
    }
    let payload = &plaintext[INNER_LEN..];
    let (changes, witnesses, snapshot) = match header.kind {
        Kind::Changes => {
            let (changes, witnesses) = decode_payload(payload).map_err(EnvelopeError::Payload)?;
            (changes, witnesses, None)
        }
        Kind::Snapshot => (
            Vec::new(),
            Vec::new(),
            Some(snapshot::decode(payload).map_err(EnvelopeError::Payload)?),
        ),
    };
    Ok(OpenedEnvelope {
        header: header.clone(),
        id: envelope.id(),
        changes,
        snapshot,
        witnesses,
    })
}

fn encode_payload(
    out: &mut Vec<u8>,
    changes: &[CaseChange],
    witnesses: &[Witness],
) -> Result<(), EnvelopeError> {
    let too_long = |len: usize| EnvelopeError::Oversized {
        len,
        max: u32::MAX as usize,
    };
    let count = u32::try_from(changes.len()).map_err(|_| too_long(changes.len()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for c in changes {
        out.extend_from_slice(c.case.as_bytes());
        let len = u32::try_from(c.change.len()).map_err(|_| too_long(c.change.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&c.change);
    }
    if witnesses.len() > MAX_WITNESSES {
        return Err(EnvelopeError::Payload(WireError::FieldTooLong {
            len: witnesses.len(),
            max: MAX_WITNESSES,
        }));
    }
    out.extend_from_slice(&(witnesses.len() as u16).to_be_bytes());
    for w in witnesses {
        out.extend_from_slice(w.device.as_bytes());
        out.extend_from_slice(&w.seq.to_be_bytes());
        out.extend_from_slice(w.id.as_bytes());
    }
    Ok(())
}

type Payload = (Vec<CaseChange>, Vec<Witness>);

fn decode_payload(payload: &[u8]) -> Result<Payload, WireError> {
    let mut r = Reader::new(payload);
    let count = r.u32()? as usize;
    // Each entry takes at least 20 bytes: bound the allocation by the input.
    let mut changes = Vec::with_capacity(count.min(r.remaining() / 20));
    for _ in 0..count {
        let case = CaseId::from_bytes(r.array()?);
        let len = r.u32()? as usize;
        let change = r.take(len)?.to_vec();
        changes.push(CaseChange { case, change });
    }
    let count = r.u16()? as usize;
    if count > MAX_WITNESSES || count * 56 > r.remaining() {
        return Err(WireError::CountTooLarge {
            count,
            remaining: r.remaining(),
        });
    }
    let mut witnesses = Vec::with_capacity(count);
    for _ in 0..count {
        witnesses.push(Witness {
            device: DeviceId::from_bytes(r.array()?),
            seq: r.u64()?,
            id: Digest::from_bytes(r.array()?),
        });
    }
    r.finish()?;
    Ok((changes, witnesses))
}

#[cfg(test)]
mod tests;
