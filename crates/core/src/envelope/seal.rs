//! Sealing and opening envelopes (client side).
//!
//! ```text
//! body = age(epoch recipient, pad(deflate(header copy ‖ context ‖ payload)))
//! context            = roster length u64 ‖ roster head 32 ‖ sealed at u64
//!                      ‖ last complete pull began at u64
//! payload (changes)  = count u32 ‖ [case id 16 ‖ len u32 ‖ Automerge change bytes]*
//!                      ‖ witnesses u16 ‖ [device 16 ‖ seq u64 ‖ envelope id 32]*
//!                      ‖ notices u16 ‖ [notice]*
//! payload (snapshot) = see [`super::snapshot`]
//! ```
//!
//! The context is the author's statement, signed and encrypted with the
//! content, of the roster it sealed under and when: readers check it
//! against their own roster (`docs/protocol.md`, "Seal context").
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
use crate::wire::{Reader, put_bytes16};

/// Largest accepted decompressed plaintext.
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;
/// What an envelope may expand to, in all (its own deflate and the
/// Automerge chunks inside it), per byte of body received.
pub const INFLATE_RATIO: usize = 32;
/// ... and at least (a small envelope may expand more than its ratio).
pub const INFLATE_FLOOR: usize = 64 * 1024;

/// How many bytes an envelope whose body is `body_len` bytes may expand
/// to, its own deflate and the Automerge chunks it carries together
/// (`docs/protocol.md`, "Inflation budget"). What a page holds in memory
/// is then bounded by the bytes it brought, not by what a writer chose to
/// compress; [`seal`] stores a payload uncompressed rather than exceed it.
pub fn inflate_limit(body_len: usize) -> usize {
    body_len
        .saturating_mul(INFLATE_RATIO)
        .clamp(INFLATE_FLOOR, MAX_PLAINTEXT)
}
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
/// Most notices one envelope carries.
pub const MAX_NOTICES: usize = 1024;
/// Longest alarm code a notice carries.
pub const MAX_ALARM_CODE: usize = 64;
const CONTEXT_LEN: usize = 8 + 32 + 8 + 8;

/// What the author states about the roster it sealed under, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealContext {
    /// How many operations its roster held.
    pub roster_len: u64,
    /// The hash of the last of them.
    pub roster_head: Digest,
    /// When it sealed (unix seconds, its clock as corrected by the relay's).
    pub sealed_at: u64,
    /// When its last pull that reached the end of the relay's log began
    /// (0 if it never pulled): everything the relay held then, it had seen.
    pub pulled_at: u64,
}

impl SealContext {
    /// The context of sealing under `roster` at `sealed_at`, by a device
    /// whose last complete pull began at `pulled_at`.
    pub fn under(roster: &crate::roster::Roster, sealed_at: u64) -> SealContext {
        SealContext {
            roster_len: roster.ops().len() as u64,
            roster_head: roster.head(),
            sealed_at,
            pulled_at: 0,
        }
    }

    /// The same, stating when the author's last complete pull began.
    pub fn pulled_at(self, pulled_at: u64) -> SealContext {
        SealContext { pulled_at, ..self }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.roster_len.to_be_bytes());
        out.extend_from_slice(self.roster_head.as_bytes());
        out.extend_from_slice(&self.sealed_at.to_be_bytes());
        out.extend_from_slice(&self.pulled_at.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<SealContext, WireError> {
        let mut r = Reader::new(bytes);
        Ok(SealContext {
            roster_len: r.u64()?,
            roster_head: Digest::from_bytes(r.array()?),
            sealed_at: r.u64()?,
            pulled_at: r.u64()?,
        })
    }
}

/// A message to the team carried beside the changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// An integrity alarm the author raised, reported to the office.
    Alarm {
        /// The alarm's id (chosen by the author).
        id: [u8; 16],
        /// Its stable code.
        code: String,
        /// The device it concerns.
        device: Option<DeviceId>,
        /// The seq it concerns.
        seq: Option<u64>,
        /// When the author first saw it.
        first_seen: u64,
    },
    /// An admin's acknowledgement of an alarm another device raised.
    Ack {
        /// The device that raised it.
        raised_by: DeviceId,
        /// The alarm's id.
        id: [u8; 16],
    },
}

/// Everything a changes envelope carries.
#[derive(Clone, Copy, Debug)]
pub struct Contents<'a> {
    /// The roster sealed under, and when.
    pub context: SealContext,
    /// The changes.
    pub changes: &'a [CaseChange],
    /// Heads of other logs the author applied since it last wrote.
    pub witnesses: &'a [Witness],
    /// Alarms and acknowledgements.
    pub notices: &'a [Notice],
}

impl<'a> Contents<'a> {
    /// Changes alone, with no witness and no notice.
    pub fn changes(context: SealContext, changes: &'a [CaseChange]) -> Self {
        Contents {
            context,
            changes,
            witnesses: &[],
            notices: &[],
        }
    }
}

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
    /// The roster its author sealed under, and when.
    pub context: SealContext,
    /// Its alarms and acknowledgements (none in a snapshot).
    pub notices: Vec<Notice>,
    /// What the Automerge chunks it carries may still inflate to
    /// ([`inflate_limit`] less the plaintext).
    pub inflate_left: usize,
}

/// Seals `contents` into a signed envelope under `header` (its `body_len`
/// is filled in), encrypted to the epoch recipient.
pub fn seal(
    header: EnvelopeHeader,
    contents: &Contents<'_>,
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let header = EnvelopeHeader {
        kind: Kind::Changes,
        ..header
    };
    let mut plaintext = Zeroizing::new(Vec::with_capacity(INNER_LEN + CONTEXT_LEN + 64));
    plaintext.extend_from_slice(&header.inner_copy());
    contents.context.encode(&mut plaintext);
    encode_payload(&mut plaintext, contents)?;
    seal_plaintext(header, &plaintext, epoch_recipient, device)
}

/// Seals one part of a snapshot under `header` (its kind and `body_len`
/// are filled in).
pub fn seal_snapshot(
    header: EnvelopeHeader,
    context: &SealContext,
    snapshot: &Snapshot,
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let header = EnvelopeHeader {
        kind: Kind::Snapshot,
        ..header
    };
    let mut plaintext = Zeroizing::new(Vec::with_capacity(INNER_LEN + CONTEXT_LEN + 1024));
    plaintext.extend_from_slice(&header.inner_copy());
    context.encode(&mut plaintext);
    snapshot::encode(&mut plaintext, snapshot).map_err(EnvelopeError::Payload)?;
    seal_plaintext(header, &plaintext, epoch_recipient, device)
}

fn seal_plaintext(
    header: EnvelopeHeader,
    plaintext: &[u8],
    epoch_recipient: &x25519::Recipient,
    device: &DeviceKeys,
) -> Result<SealedEnvelope, EnvelopeError> {
    let deflate = |level| {
        let mut compressed = Zeroizing::new(Vec::with_capacity(plaintext.len() / 2 + 64));
        DeflateEncoder::new(plaintext, level)
            .read_to_end(&mut compressed)
            .map(|_| compressed)
            .map_err(|_| EnvelopeError::EncryptFailed)
    };
    let mut compressed = deflate(Compression::default())?;
    if plaintext.len() > inflate_limit(compressed.len()) {
        // Compresses too well for a reader to accept (readers bound what
        // a body may expand to): stored blocks instead, never larger
        // than the plaintext by more than a few bytes per 64 KiB.
        compressed = deflate(Compression::none())?;
    }
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
    let limit = inflate_limit(envelope.body().len());
    let mut plaintext = Zeroizing::new(Vec::new());
    DeflateDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| EnvelopeError::Decompress { max: limit })?;
    if plaintext.len() > limit {
        return Err(EnvelopeError::InflatesTooFar { limit });
    }
    let inflate_left = limit - plaintext.len();
    if plaintext.len() < INNER_LEN || plaintext[..INNER_LEN] != header.inner_copy() {
        return Err(EnvelopeError::HeaderMismatch);
    }
    let rest = &plaintext[INNER_LEN..];
    let (context, payload) = rest
        .split_at_checked(CONTEXT_LEN)
        .ok_or(EnvelopeError::Payload(WireError::Truncated {
            needed: CONTEXT_LEN,
            found: rest.len(),
        }))?;
    let context = SealContext::decode(context).map_err(EnvelopeError::Payload)?;
    let (changes, witnesses, notices, snapshot) = match header.kind {
        Kind::Changes => {
            let (changes, witnesses, notices) =
                decode_payload(payload).map_err(EnvelopeError::Payload)?;
            (changes, witnesses, notices, None)
        }
        Kind::Snapshot => (
            Vec::new(),
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
        context,
        notices,
        inflate_left,
    })
}

fn encode_payload(out: &mut Vec<u8>, contents: &Contents<'_>) -> Result<(), EnvelopeError> {
    let too_long = |len: usize| EnvelopeError::Oversized {
        len,
        max: u32::MAX as usize,
    };
    let changes = contents.changes;
    let count = u32::try_from(changes.len()).map_err(|_| too_long(changes.len()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for c in changes {
        out.extend_from_slice(c.case.as_bytes());
        let len = u32::try_from(c.change.len()).map_err(|_| too_long(c.change.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&c.change);
    }
    let field_too_long =
        |len: usize, max: usize| EnvelopeError::Payload(WireError::FieldTooLong { len, max });
    let witnesses = contents.witnesses;
    if witnesses.len() > MAX_WITNESSES {
        return Err(field_too_long(witnesses.len(), MAX_WITNESSES));
    }
    out.extend_from_slice(&(witnesses.len() as u16).to_be_bytes());
    for w in witnesses {
        out.extend_from_slice(w.device.as_bytes());
        out.extend_from_slice(&w.seq.to_be_bytes());
        out.extend_from_slice(w.id.as_bytes());
    }
    let notices = contents.notices;
    if notices.len() > MAX_NOTICES {
        return Err(field_too_long(notices.len(), MAX_NOTICES));
    }
    out.extend_from_slice(&(notices.len() as u16).to_be_bytes());
    for n in notices {
        match n {
            Notice::Alarm {
                id,
                code,
                device,
                seq,
                first_seen,
            } => {
                if code.len() > MAX_ALARM_CODE {
                    return Err(field_too_long(code.len(), MAX_ALARM_CODE));
                }
                out.push(1);
                out.extend_from_slice(id);
                put_bytes16(out, code.as_bytes()).map_err(EnvelopeError::Payload)?;
                out.push(u8::from(device.is_some()) | (u8::from(seq.is_some()) << 1));
                if let Some(device) = device {
                    out.extend_from_slice(device.as_bytes());
                }
                if let Some(seq) = seq {
                    out.extend_from_slice(&seq.to_be_bytes());
                }
                out.extend_from_slice(&first_seen.to_be_bytes());
            }
            Notice::Ack { raised_by, id } => {
                out.push(2);
                out.extend_from_slice(raised_by.as_bytes());
                out.extend_from_slice(id);
            }
        }
    }
    Ok(())
}

type Payload = (Vec<CaseChange>, Vec<Witness>, Vec<Notice>);

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
    let count = r.u16()? as usize;
    // Each notice takes at least 27 bytes.
    if count > MAX_NOTICES || count * 27 > r.remaining() {
        return Err(WireError::CountTooLarge {
            count,
            remaining: r.remaining(),
        });
    }
    let mut notices = Vec::with_capacity(count);
    for _ in 0..count {
        notices.push(match r.u8()? {
            1 => {
                let id = r.array()?;
                let code = r.str16()?;
                if code.len() > MAX_ALARM_CODE
                    || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                {
                    return Err(WireError::InvalidValue("alarm code"));
                }
                let code = code.to_owned();
                let flags = r.u8()?;
                if flags > 3 {
                    return Err(WireError::InvalidValue("alarm notice flags"));
                }
                let device = (flags & 1 != 0)
                    .then(|| r.array().map(DeviceId::from_bytes))
                    .transpose()?;
                let seq = (flags & 2 != 0).then(|| r.u64()).transpose()?;
                Notice::Alarm {
                    id,
                    code,
                    device,
                    seq,
                    first_seen: r.u64()?,
                }
            }
            2 => Notice::Ack {
                raised_by: DeviceId::from_bytes(r.array()?),
                id: r.array()?,
            },
            _ => return Err(WireError::InvalidValue("notice kind")),
        });
    }
    r.finish()?;
    Ok((changes, witnesses, notices))
}

#[cfg(test)]
mod tests;
