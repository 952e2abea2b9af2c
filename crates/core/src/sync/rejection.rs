//! Why the engine refused one pulled envelope.
//!
//! Every refusal has a stable [`code`](Rejection::code) (kept with the
//! quarantined envelope, shown by `amana status --json`, listed in
//! `docs/auditor-guide.md`) and a message naming the device and seq, so the
//! office can tell an attack from a bug without opening anything.

use crate::error::{AuthorError, EnvelopeError};
use crate::ids::{CaseId, DeviceId, TeamId};

/// Why one pulled envelope was quarantined instead of applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not an envelope at all (bad header, truncated, oversized).
    #[error("malformed envelope: {0}")]
    Malformed(EnvelopeError),
    /// An envelope of another team.
    #[error("device {device} seq {seq}: an envelope of team {found}, not this team")]
    WrongTeam {
        /// Author named in the header.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The team in its header.
        found: TeamId,
    },
    /// The author was not allowed to write it (unknown, revoked, auditor,
    /// wrong epoch).
    #[error("author not allowed: {0}")]
    Author(AuthorError),
    /// The signature does not verify with the author's roster key: forged
    /// or altered in transit or at rest.
    #[error("device {device} seq {seq}: {error}")]
    Signature {
        /// Author named in the header.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// What failed.
        error: EnvelopeError,
    },
    /// A seq this device already applied: a replay.
    #[error(
        "device {device} seq {seq}: replay of an envelope already applied (next expected {expected})"
    )]
    Replay {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The seq the chain expects.
        expected: u64,
    },
    /// A seq beyond the next one: envelopes in between were withheld.
    #[error("device {device} seq {seq}: gap in the chain, seq {expected} was withheld")]
    Gap {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The seq the chain expects.
        expected: u64,
    },
    /// The right seq, but its `prev` is not the envelope applied before it.
    #[error("device {device} seq {seq}: does not chain to the envelope applied before it")]
    BrokenChain {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
    },
    /// A stub (header and signature without the body) of an epoch that is
    /// not retired: the relay dropped a body it must keep.
    #[error(
        "device {device} seq {seq}: the relay served it without its body, but epoch {epoch} is not retired"
    )]
    BodyDropped {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// Its epoch.
        epoch: u32,
    },
    /// A revoked device's envelope at the last seq the team accepts from
    /// it, but not the one the revoking admin verified: another history
    /// passed off as its.
    #[error(
        "device {device} seq {seq}: not the envelope its revocation accepted at that seq (another history of a revoked device)"
    )]
    RevokedFork {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
    },
    /// A change under another actor than the envelope's author.
    #[error(
        "device {device} seq {seq}: a change to case {case} written under another device's name"
    )]
    ForgedActor {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The case.
        case: CaseId,
    },
    /// A change its author's role may not make.
    #[error("device {device} seq {seq}: not permitted on case {case}: {what}")]
    NotPermitted {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The case.
        case: CaseId,
        /// What the role may not do.
        what: String,
    },
    /// A change that would leave a case unreadable (or another case's).
    #[error("device {device} seq {seq}: the change would leave case {case} unreadable")]
    InvalidSchema {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The case.
        case: CaseId,
    },
    /// A change that builds on changes this device does not hold.
    #[error(
        "device {device} seq {seq}: a change to case {case} builds on changes this device never received"
    )]
    MissingDependencies {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The case.
        case: CaseId,
    },
    /// A snapshot from a device that is not an admin.
    #[error("device {device} seq {seq}: a snapshot from a device that is not an admin")]
    SnapshotNotAdmin {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
    },
    /// Signed, but the body does not decrypt or does not match its header.
    #[error("device {device} seq {seq}: {error}")]
    Unreadable {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// What failed.
        error: EnvelopeError,
    },
    /// Its body, or an Automerge chunk in it, expands beyond what the
    /// envelope's size allows: a decompression bomb, refused before it is
    /// inflated.
    #[error("device {device} seq {seq}: a decompression bomb: {what}")]
    DecompressionBomb {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// Which part, and its limit.
        what: String,
    },
    /// Opened, but its content is not valid (a change or a snapshot).
    #[error("device {device} seq {seq}: {what}")]
    InvalidContent {
        /// Author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// What is wrong.
        what: String,
    },
}

impl Rejection {
    /// A stable, short code for the kind of refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::WrongTeam { .. } => "wrong_team",
            Rejection::Author(AuthorError::UnknownDevice(_)) => "unknown_author",
            Rejection::Author(AuthorError::Revoked { .. }) => "revoked_author",
            Rejection::Author(AuthorError::CannotWrite(_)) => "author_cannot_write",
            Rejection::Author(AuthorError::EpochAfterRevocation { .. }) => "epoch_after_revocation",
            Rejection::Author(_) => "epoch_not_allowed",
            Rejection::Signature { .. } => "bad_signature",
            Rejection::Replay { .. } => "replay",
            Rejection::Gap { .. } => "gap",
            Rejection::BrokenChain { .. } => "broken_chain",
            Rejection::BodyDropped { .. } => "body_dropped",
            Rejection::SnapshotNotAdmin { .. } => "snapshot_not_admin",
            Rejection::RevokedFork { .. } => "revoked_fork",
            Rejection::ForgedActor { .. } => "forged_actor",
            Rejection::NotPermitted { .. } => "not_permitted",
            Rejection::InvalidSchema { .. } => "invalid_schema",
            Rejection::MissingDependencies { .. } => "missing_dependencies",
            Rejection::Unreadable { .. } => "unreadable",
            Rejection::InvalidContent { .. } => "invalid_content",
            Rejection::DecompressionBomb { .. } => "decompression_bomb",
        }
    }

    /// The device and seq the refused envelope names, where known.
    pub fn subject(&self) -> (Option<DeviceId>, Option<u64>) {
        match self {
            Rejection::Malformed(_) => (None, None),
            Rejection::Author(a) => match a {
                AuthorError::UnknownDevice(d) | AuthorError::CannotWrite(d) => (Some(*d), None),
                AuthorError::Revoked { device, seq, .. } => (Some(*device), Some(*seq)),
                AuthorError::EpochBeforeJoin { device, .. }
                | AuthorError::EpochAfterRevocation { device, .. } => (Some(*device), None),
                _ => (None, None),
            },
            Rejection::WrongTeam { device, seq, .. }
            | Rejection::Signature { device, seq, .. }
            | Rejection::Replay { device, seq, .. }
            | Rejection::Gap { device, seq, .. }
            | Rejection::BrokenChain { device, seq }
            | Rejection::BodyDropped { device, seq, .. }
            | Rejection::SnapshotNotAdmin { device, seq }
            | Rejection::RevokedFork { device, seq }
            | Rejection::ForgedActor { device, seq, .. }
            | Rejection::NotPermitted { device, seq, .. }
            | Rejection::InvalidSchema { device, seq, .. }
            | Rejection::MissingDependencies { device, seq, .. }
            | Rejection::Unreadable { device, seq, .. }
            | Rejection::InvalidContent { device, seq, .. }
            | Rejection::DecompressionBomb { device, seq, .. } => (Some(*device), Some(*seq)),
        }
    }

    /// The line kept with the quarantined envelope: `code: message`.
    pub fn record(&self) -> String {
        format!("{}: {self}", self.code())
    }
}
