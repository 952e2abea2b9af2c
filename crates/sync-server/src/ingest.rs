//! The checks every uploaded envelope passes before it is stored, in a
//! fixed order, each with its own error: structure and size, an age body
//! (never plaintext), team, author = signer, the author's standing on the
//! roster (role, epoch, revocation bound), and the signature. Chain
//! continuity, idempotence and equivocation are checked atomically by the
//! store.

use amana_core::envelope::{EnvelopeLimits, SealedEnvelope};
use amana_core::roster::Roster;
use amana_core::{AuthorError, DeviceId, EnvelopeError, TeamId};

use crate::store::NewEnvelope;

/// Why an uploaded envelope was refused before reaching the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Malformed, truncated, oversized, not an age file, or a bad signature.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The envelope names another team.
    #[error("envelope belongs to team {found}, not to team {expected}")]
    WrongTeam {
        /// The team of the request.
        expected: TeamId,
        /// The team in the header.
        found: TeamId,
    },
    /// A device may only upload its own envelopes.
    #[error("envelope was written by {author}, but the request is signed by {signer}")]
    NotSigner {
        /// The header's device.
        author: DeviceId,
        /// The request signer.
        signer: DeviceId,
    },
    /// The author may not write this envelope (role, epoch, revocation).
    #[error(transparent)]
    Author(#[from] AuthorError),
}

/// An envelope that passed every stateless check.
#[derive(Debug)]
pub struct CheckedEnvelope(SealedEnvelope);

impl CheckedEnvelope {
    /// What the store needs to append it.
    pub fn as_new(&self) -> NewEnvelope<'_> {
        let h = self.0.header();
        NewEnvelope {
            device: h.device,
            seq: h.seq,
            prev: h.prev,
            epoch: h.epoch,
            id: self.0.id(),
            bytes: self.0.as_bytes(),
        }
    }

    /// The envelope.
    pub fn envelope(&self) -> &SealedEnvelope {
        &self.0
    }
}

/// Runs the stateless checks on one uploaded envelope.
pub fn check(
    bytes: Vec<u8>,
    team: TeamId,
    signer: DeviceId,
    roster: &Roster,
    limits: &EnvelopeLimits,
) -> Result<CheckedEnvelope, IngestError> {
    let envelope = SealedEnvelope::parse(bytes, limits)?;
    let header = envelope.header();
    if header.team != team {
        return Err(IngestError::WrongTeam {
            expected: team,
            found: header.team,
        });
    }
    if header.device != signer {
        return Err(IngestError::NotSigner {
            author: header.device,
            signer,
        });
    }
    let record = roster.check_author(header)?;
    envelope.verify_signature(&record.entry.signing_key)?;
    Ok(CheckedEnvelope(envelope))
}
