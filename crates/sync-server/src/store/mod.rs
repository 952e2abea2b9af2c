//! Relay storage behind one trait, so the embedded SQLite store and the
//! PostgreSQL store (a later issue) are two implementations of the same
//! contract, not two relays.
//!
//! The store only ever names sealed things: envelope bytes, roster
//! operations, key envelopes and the plaintext metadata the threat model
//! allows (ids, seqs, epochs, cursors). The checks that need the roster
//! (signatures, authors) run before the store is called; the store enforces
//! what must be atomic with the write: chain continuity, idempotence,
//! equivocation evidence and quotas.

mod enrolment;
mod group;
mod lifecycle;
mod readers;
mod sqlite;

pub use sqlite::{MAX_EVIDENCE_PER_DEVICE, SqliteStore};

use amana_core::{DeviceId, Digest, TeamId};

/// An envelope that passed every check and is ready to append.
#[derive(Clone, Debug)]
pub struct NewEnvelope<'a> {
    /// Author device.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// Its prev (must equal the current head's id).
    pub prev: Digest,
    /// Its epoch.
    pub epoch: u32,
    /// The envelope id.
    pub id: Digest,
    /// The envelope.
    pub bytes: &'a [u8],
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this cursor.
    New {
        /// Team-wide cursor.
        cursor: u64,
    },
    /// The same bytes were already stored at this cursor; nothing changed.
    Duplicate {
        /// Team-wide cursor.
        cursor: u64,
    },
}

impl Appended {
    /// The cursor of the envelope either way.
    pub fn cursor(self) -> u64 {
        match self {
            Appended::New { cursor } | Appended::Duplicate { cursor } => cursor,
        }
    }
}

/// A stored envelope and its cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Team-wide cursor.
    pub cursor: u64,
    /// The envelope bytes.
    pub bytes: Vec<u8>,
}

/// The last accepted envelope of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The device.
    pub device: DeviceId,
    /// Its last accepted seq.
    pub seq: u64,
    /// That envelope's id.
    pub id: Digest,
}

/// A device's request to join, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRecord {
    /// The requesting device.
    pub device: DeviceId,
    /// Its Ed25519 public key.
    pub signing_key: [u8; 32],
    /// Its age recipient.
    pub recipient: String,
    /// The invite it used.
    pub invite: Digest,
    /// The role of that invite (filled in by the store).
    pub role: u8,
    /// The MAC binding its keys to the invite (only the issuing admin can
    /// check it).
    pub key_mac: [u8; 32],
    /// When it asked.
    pub requested_at: u64,
}

/// What a roster operation changes in the relay's own tables, in the
/// transaction that appends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RosterEffect {
    /// Nothing beyond the roster.
    None,
    /// A revocation: refused unless the device's stored head is exactly
    /// the bound, and from then on
    /// [`append_envelope`](RelayStore::append_envelope) refuses anything
    /// beyond it.
    Revokes(RevocationBound),
    /// A rotation that retires every older epoch (a case was shredded):
    /// the key envelopes of those epochs are deleted.
    Forgets {
        /// The new epoch; older ones are retired.
        below: u32,
    },
}

/// What a compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Envelopes whose body was dropped.
    pub envelopes: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// The bound of a revocation, as the relay enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationBound {
    /// The revoked device.
    pub device: DeviceId,
    /// The last seq of its log the team accepts.
    pub last_seq: u64,
    /// The id of the envelope at that seq (zero for seq 0).
    pub last_id: Digest,
}

/// One page of a team's log, as read in one snapshot.
#[derive(Debug)]
pub struct Page {
    /// The envelopes, in cursor order.
    pub envelopes: Vec<StoredEnvelope>,
    /// Every device's head.
    pub heads: Vec<Head>,
    /// Whether envelopes follow the last one listed.
    pub more: bool,
}

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such team on this relay.
    #[error("unknown team {0}")]
    UnknownTeam(TeamId),
    /// The team already exists.
    #[error("team {0} already exists")]
    TeamExists(TeamId),
    /// The team-creation token is unknown, used or expired.
    #[error(
        "the team token is unknown, already used or expired; ask the relay's operator for a new one"
    )]
    TeamTokenInvalid,
    /// The relay holds its maximum number of teams.
    #[error("this relay holds its maximum of {max} teams")]
    TooManyTeams {
        /// The limit.
        max: u64,
    },
    /// The team's storage quota is used up.
    #[error("team storage quota of {max} bytes is used up")]
    TeamFull {
        /// The limit.
        max: u64,
    },
    /// A roster operation was appended at the wrong index.
    #[error("roster has {expected} operations; an operation at index {found} does not extend it")]
    RosterConflict {
        /// Current length of the roster.
        expected: u64,
        /// Index of the refused operation.
        found: u64,
    },
    /// The envelope does not follow the device's head.
    #[error("device {device} expects seq {expected} next")]
    Gap {
        /// The device.
        device: DeviceId,
        /// The seq the relay expects.
        expected: u64,
    },
    /// The envelope's prev is not the device's head.
    #[error("envelope {seq} of device {device} does not chain to the stored head")]
    PrevMismatch {
        /// The device.
        device: DeviceId,
        /// Its seq.
        seq: u64,
    },
    /// Different bytes at an existing (device, seq); both are kept.
    #[error("device {device} already has a different envelope at seq {seq}")]
    Equivocation {
        /// The device.
        device: DeviceId,
        /// The seq.
        seq: u64,
    },
    /// No such invite for this team.
    #[error("the relay does not know this invite")]
    InviteUnknown,
    /// The invite was used already.
    #[error("this invite was already used")]
    InviteUsed,
    /// The invite has expired.
    #[error("this invite has expired")]
    InviteExpired,
    /// Too many open invites.
    #[error("the team has {max} open invites; let some expire or use them first")]
    TooManyInvites {
        /// The limit.
        max: u64,
    },
    /// A recipient announcement older than the stored one.
    #[error("device {device} already announced generation {stored}; an announcement must be newer")]
    StaleAnnouncement {
        /// The device.
        device: DeviceId,
        /// The stored generation.
        stored: u32,
    },
    /// A revocation's bound is not the device's stored head (it uploaded
    /// since the admin looked, or the admin's view is wrong).
    #[error(
        "device {device}'s log on this relay (head {head}) does not hold at seq {bound} the envelope the revocation names; pull, verify and sign the revocation again"
    )]
    RevocationBound {
        /// The device being revoked.
        device: DeviceId,
        /// Its stored head.
        head: u64,
        /// The bound in the refused operation.
        bound: u64,
    },
    /// The device is revoked and the envelope lies beyond its bound.
    #[error("device {device} is revoked; the relay accepts nothing more from it")]
    Revoked {
        /// The device.
        device: DeviceId,
    },
    /// The database holds something this build cannot read.
    #[error("relay database is damaged: {0}")]
    Corrupt(String),
    /// The database failed (disk full, locked, unreachable).
    #[error("relay database failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Relay storage. Every method is atomic.
pub trait RelayStore: Send + Sync + 'static {
    /// Creates a team from its genesis operation (already verified),
    /// consuming the team-creation token whose hash is `token` (`None`:
    /// the relay is configured open, for tests).
    fn create_team(
        &self,
        team: TeamId,
        genesis: &[u8],
        now: u64,
        max_teams: u64,
        token: Option<Digest>,
    ) -> Result<(), StoreError>;

    /// Records a team-creation token (its hash), valid until `expires_at`.
    fn issue_team_token(&self, hash: Digest, expires_at: u64) -> Result<(), StoreError>;

    /// The team's roster operations, in order.
    fn roster(&self, team: TeamId) -> Result<Vec<Vec<u8>>, StoreError>;

    /// How many roster operations the team has, and the last one (cheap:
    /// checked on every request to keep the verified roster cached).
    fn roster_tip(&self, team: TeamId) -> Result<(u64, Vec<u8>), StoreError>;

    /// Appends a roster operation (already verified against the stored
    /// roster) if the roster still has `index` operations, together with
    /// what it changes at the relay (see [`RosterEffect`]), atomically.
    fn append_roster_op(
        &self,
        team: TeamId,
        index: u64,
        op: &[u8],
        effect: RosterEffect,
    ) -> Result<(), StoreError>;

    /// Stores a device's recipient announcement (already verified) unless
    /// a newer generation is stored; the same bytes again are accepted.
    fn put_announcement(
        &self,
        team: TeamId,
        device: DeviceId,
        generation: u32,
        announcement: &[u8],
        now: u64,
    ) -> Result<(), StoreError>;

    /// The newest announcement of every device of the team.
    fn announcements(&self, team: TeamId) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Reduces every envelope of an epoch below `below` to its stub (header,
    /// signature, SHA-256 of the body), records the compaction, and leaves
    /// no copy of the dropped bodies in the database files.
    fn compact(
        &self,
        team: TeamId,
        below: u32,
        requested_by: DeviceId,
        now: u64,
    ) -> Result<Compaction, StoreError>;

    /// Appends envelopes in order, in one transaction: each idempotent for
    /// the same bytes, equivocation evidence for different bytes at an
    /// existing seq, otherwise only as the device's next seq chained to its
    /// head, within the team quota. Stops at the first refusal, keeping
    /// what was appended before it (and any equivocation evidence), and
    /// returns that refusal beside the outcomes. A backend failure keeps
    /// nothing.
    fn append_envelopes(
        &self,
        team: TeamId,
        envelopes: &[NewEnvelope<'_>],
        now: u64,
        max_team_bytes: u64,
    ) -> Result<(Vec<Appended>, Option<StoreError>), StoreError>;

    /// Appends one envelope (see [`append_envelopes`](RelayStore::append_envelopes)).
    fn append_envelope(
        &self,
        team: TeamId,
        envelope: &NewEnvelope<'_>,
        now: u64,
        max_team_bytes: u64,
    ) -> Result<Appended, StoreError> {
        match self.append_envelopes(team, std::slice::from_ref(envelope), now, max_team_bytes)? {
            (_, Some(refused)) => Err(refused),
            (mut appended, None) => appended
                .pop()
                .ok_or_else(|| StoreError::Corrupt("an append returned no outcome".into())),
        }
    }

    /// Up to `limit` envelopes with cursor greater than `after`, in order.
    fn envelopes_after(
        &self,
        team: TeamId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEnvelope>, StoreError>;

    /// The envelope a device wrote at `seq`, if stored.
    fn envelope_at(
        &self,
        team: TeamId,
        device: DeviceId,
        seq: u64,
    ) -> Result<Option<StoredEnvelope>, StoreError>;

    /// Every device's head.
    fn heads(&self, team: TeamId) -> Result<Vec<Head>, StoreError>;

    /// Equivocation evidence for a device: (seq, envelope bytes).
    fn equivocations(
        &self,
        team: TeamId,
        device: DeviceId,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Records a request nonce until `expires_at`; `false` if it was
    /// already used (a replay). Expired nonces are forgotten.
    fn use_nonce(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError>;

    /// Envelopes after `after` (at most `limit`, and stopping before the
    /// one that would take their bytes past `max_bytes`, but at least one)
    /// and every device's head, read consistently: on the last page, the
    /// heads cover exactly what was listed, so a client can tell withheld
    /// envelopes from new ones. No envelope beyond the budget is loaded.
    fn page(
        &self,
        team: TeamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, StoreError>;

    /// Registers an invite by id, unless the team has `max_open` unused,
    /// unexpired invites already.
    fn create_invite(
        &self,
        team: TeamId,
        invite: Digest,
        role: u8,
        expires_at: u64,
        now: u64,
        max_open: u64,
    ) -> Result<(), StoreError>;

    /// Marks the invite used and records the join request, atomically;
    /// returns the invite's role.
    fn redeem_invite(&self, team: TeamId, request: &JoinRecord, now: u64)
    -> Result<u8, StoreError>;

    /// Every join request of the team.
    fn join_requests(&self, team: TeamId) -> Result<Vec<JoinRecord>, StoreError>;

    /// Stores key envelopes (device, epoch, bytes); a new delivery of the
    /// same epoch to the same device replaces the old one.
    fn put_key_envelopes(
        &self,
        team: TeamId,
        deliveries: &[(DeviceId, u32, Vec<u8>)],
        now: u64,
    ) -> Result<(), StoreError>;

    /// The key envelopes delivered to a device, by epoch.
    fn key_envelopes(&self, team: TeamId, device: DeviceId) -> Result<Vec<Vec<u8>>, StoreError>;
}
