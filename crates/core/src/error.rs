//! Errors of the format layer: identifiers, byte parsing, age structure,
//! envelopes, key envelopes and the roster.
//!
//! Each variant is a case a caller can act on. Messages say what happened
//! and what to do next; none of them ever contains secret material or
//! decrypted content.

use crate::ids::{DeviceId, Digest, TeamId};

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not hexadecimal.
    #[error("{what} must be written in hexadecimal; check that it was copied whole")]
    NotHex {
        /// Which kind of identifier.
        what: &'static str,
    },
    /// The identifier has the wrong length.
    #[error("{what} must be {expected} bytes, found {found}; check that it was copied whole")]
    Length {
        /// Which kind of identifier.
        what: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Length found.
        found: usize,
    },
}

/// A low-level decoding failure in a binary format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended early.
    #[error("truncated: needed {needed} bytes, only {found} present")]
    Truncated {
        /// Bytes needed to read the next field.
        needed: usize,
        /// Bytes available.
        found: usize,
    },
    /// Bytes were left over after a complete structure.
    #[error("{extra} unexpected bytes after the end of the structure")]
    TrailingBytes {
        /// Number of bytes left over.
        extra: usize,
    },
    /// A text field is not UTF-8.
    #[error("a text field is not valid UTF-8")]
    NotUtf8,
    /// A field is too long to encode.
    #[error("a field of {len} bytes exceeds the maximum of {max}")]
    FieldTooLong {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A field holds a value outside its range.
    #[error("invalid {0}")]
    InvalidValue(&'static str),
    /// A count is larger than the rest of the input could hold.
    #[error("a count of {count} items cannot fit in the {remaining} bytes left")]
    CountTooLarge {
        /// The count read.
        count: usize,
        /// Bytes left.
        remaining: usize,
    },
}

/// Bytes that are not a well-formed age file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeFileError {
    /// The bytes do not start with the age v1 magic line.
    #[error("not an age file (plaintext or another format); only encrypted data is accepted")]
    NotAgeFile,
    /// The age header is longer than allowed.
    #[error("age header exceeds {max} bytes; the file was not made by Amana")]
    HeaderTooLarge {
        /// The limit.
        max: usize,
    },
    /// The age header has more recipient stanzas than allowed.
    #[error("age header has more than {max} recipient stanzas; the file was not made by Amana")]
    TooManyStanzas {
        /// The limit.
        max: usize,
    },
    /// The age header is malformed.
    #[error("age header is malformed")]
    InvalidHeader,
    /// The encrypted payload is too short or ends mid-chunk.
    #[error("age payload is truncated")]
    TruncatedPayload,
}

/// Why an envelope was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than the header, signature and declared body need.
    #[error("envelope truncated: needed {needed} bytes, found {found}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the header declares.
    #[error("envelope has {extra} bytes after its declared body")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// A format version this build does not know.
    #[error("envelope format version {0} is not supported; update Amana")]
    UnsupportedVersion(u8),
    /// An envelope kind this build does not know.
    #[error("envelope kind {0} is not supported; update Amana")]
    UnknownKind(u8),
    /// Sequence numbers start at 1.
    #[error("envelope seq 0 is invalid; sequences start at 1")]
    ZeroSeq,
    /// The first envelope of a log must have an all-zero `prev`.
    #[error("envelope seq 1 must have an all-zero prev hash")]
    FirstPrevNotZero,
    /// Only seq 1 may have an all-zero `prev`.
    #[error("envelope seq {seq} has an all-zero prev hash")]
    MissingPrev {
        /// The sequence number.
        seq: u64,
    },
    /// Epochs start at 1.
    #[error("envelope epoch 0 is invalid; epochs start at 1")]
    ZeroEpoch,
    /// The body is larger than allowed.
    #[error("envelope body of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not a well-formed age file.
    #[error("envelope body is not a valid age file: {0}")]
    Body(#[from] AgeFileError),
    /// The signature does not verify.
    #[error("envelope signature is invalid: the envelope was forged or altered")]
    BadSignature,
    /// The envelope belongs to another team.
    #[error("envelope belongs to team {found}, expected {expected}")]
    WrongTeam {
        /// The team we expected.
        expected: TeamId,
        /// The team in the header.
        found: TeamId,
    },
    /// No key for the envelope's epoch is held.
    #[error("no key for epoch {0}: sync the roster and key envelopes first")]
    UnknownEpoch(u32),
    /// Compressing or encrypting the body failed (should not happen with valid keys).
    #[error("could not compress or encrypt the envelope body")]
    EncryptFailed,
    /// The body does not decrypt with the epoch key.
    #[error("envelope body does not decrypt with the key of its epoch")]
    DecryptFailed,
    /// The header copy inside the plaintext differs from the outer header.
    #[error("envelope header does not match the copy inside the encrypted body")]
    HeaderMismatch,
    /// The padding inside the plaintext is malformed.
    #[error("envelope padding is invalid")]
    PaddingInvalid,
    /// The compressed payload is corrupt.
    #[error("envelope payload does not decompress (corrupt or over {max} bytes)")]
    Decompress {
        /// The decompressed-size limit.
        max: usize,
    },
    /// The payload expands beyond what its body's size allows: a
    /// decompression bomb.
    #[error("envelope payload expands to more than the {limit} bytes its size allows")]
    InflatesTooFar {
        /// What the body may expand to.
        limit: usize,
    },
    /// The decrypted payload is malformed.
    #[error("envelope payload is malformed: {0}")]
    Payload(WireError),
}

/// Why a roster operation or chain was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The operation bytes are malformed.
    #[error("roster operation {index} is malformed: {source}")]
    Malformed {
        /// Position in the chain.
        index: u64,
        /// What was wrong.
        source: WireError,
    },
    /// A format version this build does not know.
    #[error("roster operation {index} has unsupported version {version}; update Amana")]
    UnsupportedVersion {
        /// Position in the chain.
        index: u64,
        /// The version byte.
        version: u8,
    },
    /// An operation kind this build does not know.
    #[error("roster operation {index} has unknown kind {kind}; update Amana")]
    UnknownKind {
        /// Position in the chain.
        index: u64,
        /// The kind byte.
        kind: u8,
    },
    /// The chain is empty.
    #[error("the roster is empty: it must start with a genesis operation")]
    Empty,
    /// The first operation is not a valid genesis.
    #[error("the roster does not start with a valid genesis operation")]
    BadGenesis,
    /// The genesis hash differs from the one pinned in the invite.
    #[error(
        "the roster's genesis {found} differs from the pinned {expected}: the relay served another roster"
    )]
    GenesisMismatch {
        /// Pinned genesis hash.
        expected: Digest,
        /// Genesis hash found.
        found: Digest,
    },
    /// An operation names another team.
    #[error("roster operation {index} belongs to another team")]
    WrongTeam {
        /// Position in the chain.
        index: u64,
    },
    /// An operation's index is not the next one.
    #[error("roster operation has index {found}, expected {expected}")]
    IndexGap {
        /// Expected index.
        expected: u64,
        /// Index found.
        found: u64,
    },
    /// An operation's `prev` is not the hash of the previous operation.
    #[error("roster operation {index} does not chain to the previous operation")]
    BrokenChain {
        /// Position in the chain.
        index: u64,
    },
    /// The signature does not verify.
    #[error("roster operation {index} has an invalid signature")]
    BadSignature {
        /// Position in the chain.
        index: u64,
    },
    /// The signer is not an active admin.
    #[error("roster operation {index} is signed by {signer}, which is not an active admin")]
    NotAdmin {
        /// Position in the chain.
        index: u64,
        /// The signer.
        signer: DeviceId,
    },
    /// The operation names a device the roster does not hold.
    #[error("roster operation {index} names unknown device {device}")]
    UnknownDevice {
        /// Position in the chain.
        index: u64,
        /// The device.
        device: DeviceId,
    },
    /// The device is already on the roster.
    #[error("roster operation {index} adds device {device}, which is already on the roster")]
    DuplicateDevice {
        /// Position in the chain.
        index: u64,
        /// The device.
        device: DeviceId,
    },
    /// The device is already revoked.
    #[error("roster operation {index} revokes device {device}, which is already revoked")]
    AlreadyRevoked {
        /// Position in the chain.
        index: u64,
        /// The device.
        device: DeviceId,
    },
    /// The operation would leave the team without an active admin.
    #[error(
        "roster operation {index} would leave the team without an active admin; add another admin first"
    )]
    LastAdmin {
        /// Position in the chain.
        index: u64,
    },
    /// An epoch rotation does not name the next epoch.
    #[error("roster operation {index} rotates to epoch {found}, expected {expected}")]
    EpochGap {
        /// Position in the chain.
        index: u64,
        /// Expected epoch.
        expected: u32,
        /// Epoch found.
        found: u32,
    },
    /// A public key or recipient in the operation is invalid.
    #[error("roster operation {index} holds an invalid key")]
    BadKey {
        /// Position in the chain.
        index: u64,
    },
    /// A device label is not an age file.
    #[error("roster operation {index} holds a label that is not encrypted")]
    LabelNotEncrypted {
        /// Position in the chain.
        index: u64,
    },
    /// A role byte this build does not know.
    #[error("roster operation {index} has unknown role {role}")]
    UnknownRole {
        /// Position in the chain.
        index: u64,
        /// The role byte.
        role: u8,
    },
    /// Writing an operation failed because a field is too long.
    #[error("roster operation cannot be encoded: {0}")]
    Encode(WireError),
}

/// Why an envelope's author is not allowed to have written it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorError {
    /// The device is not on the roster.
    #[error("device {0} is not on the team roster")]
    UnknownDevice(DeviceId),
    /// The device's role cannot write envelopes.
    #[error("device {0} has a role that cannot write case data")]
    CannotWrite(DeviceId),
    /// The device was revoked and the envelope is above its last accepted seq.
    #[error("device {device} was revoked; seq {seq} is above its last accepted seq {last_seq}")]
    Revoked {
        /// The device.
        device: DeviceId,
        /// The envelope's seq.
        seq: u64,
        /// Last seq accepted before revocation.
        last_seq: u64,
    },
    /// A revoked device's envelope under an epoch that began after its
    /// revocation (its seq within the bound, but its key in a thief's hands).
    #[error(
        "device {device} was revoked before epoch {epoch} began; nothing it sealed under that epoch is its own"
    )]
    EpochAfterRevocation {
        /// The device.
        device: DeviceId,
        /// The envelope's epoch.
        epoch: u32,
    },
    /// The epoch is not (yet) on the roster.
    #[error("epoch {epoch} is not on the roster (current epoch is {current})")]
    UnknownEpoch {
        /// The envelope's epoch.
        epoch: u32,
        /// The roster's current epoch.
        current: u32,
    },
    /// The device joined after that epoch ended.
    #[error("device {device} joined in epoch {joined}, after epoch {epoch} ended")]
    EpochBeforeJoin {
        /// The device.
        device: DeviceId,
        /// The envelope's epoch.
        epoch: u32,
        /// Epoch in force when the device was added.
        joined: u32,
    },
}

/// Why a key envelope (delivery of an epoch key) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyEnvelopeError {
    /// The bytes are malformed.
    #[error("key envelope is malformed: {0}")]
    Malformed(WireError),
    /// A format version this build does not know.
    #[error("key envelope version {0} is not supported; update Amana")]
    UnsupportedVersion(u8),
    /// The body is not a well-formed age file.
    #[error("key envelope body is not a valid age file: {0}")]
    Body(#[from] AgeFileError),
    /// The signature does not verify.
    #[error("key envelope signature is invalid")]
    BadSignature,
    /// The signer was not an admin when the epoch was created.
    #[error("key envelope is signed by {0}, which is not an admin of the team")]
    NotAdmin(DeviceId),
    /// The key envelope is for another team, device or epoch.
    #[error("key envelope is addressed to another team, device or epoch")]
    Misaddressed,
    /// age could not encrypt the key (should not happen with valid keys).
    #[error("could not encrypt the epoch key for delivery")]
    EncryptFailed,
    /// The body does not decrypt with this device's identity.
    #[error("key envelope does not decrypt with this device's key")]
    DecryptFailed,
    /// The delivered key does not match the epoch recipient on the roster.
    #[error("key envelope delivers a key that does not match epoch {0} on the roster")]
    KeyMismatch(u32),
    /// The epoch is not on the roster.
    #[error("key envelope is for epoch {0}, which is not on the roster")]
    UnknownEpoch(u32),
}

/// Why a recipient announcement was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnouncementError {
    /// The bytes are malformed.
    #[error("recipient announcement is malformed: {0}")]
    Malformed(WireError),
    /// A format version this build does not know.
    #[error("recipient announcement version {0} is not supported; update Amana")]
    UnsupportedVersion(u8),
    /// The recipient is not an age X25519 recipient.
    #[error("recipient announcement holds no valid age recipient")]
    BadRecipient,
    /// It is for another team.
    #[error("recipient announcement is for another team")]
    WrongTeam,
    /// Its device is not an active device of the roster.
    #[error("recipient announcement is from {0}, which is not an active device of the team")]
    UnknownDevice(DeviceId),
    /// The signature does not verify.
    #[error("recipient announcement signature is invalid")]
    BadSignature,
}
