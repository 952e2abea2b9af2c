//! Why a sync or an enrolment step failed. Variants are grouped by what a
//! person should do: retry later, ask the office, or raise the alarm.

use crate::error::{AnnouncementError, EnvelopeError, KeyEnvelopeError, RosterError};
use crate::ids::DeviceId;
use crate::store::StoreError;
use crate::transport::TransportError;

/// Why a sync or enrolment step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The device store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No response from the relay.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The relay is up but failing (5xx).
    #[error(
        "the relay is failing right now (HTTP {status}: {message}); nothing was lost, retry later"
    )]
    RelayUnavailable {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The relay's answer arrived whole (TLS with the pinned key, so from
    /// the relay) but failed a framing, order, format or consistency
    /// check: evidence about the relay, not a network fault.
    #[error(
        "INTEGRITY ALARM: the relay's answer failed its checks ({0}); nothing of it was applied. Tell the office"
    )]
    RelayMalformed(String),
    /// The relay refused the request for a reason not covered below.
    #[error("the relay refused the request ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The relay's error code.
        code: String,
        /// The relay's message.
        message: String,
    },
    /// The relay's clock and this device's disagree even after correcting.
    #[error(
        "this device's clock is too far from the relay's; set the date and time, then sync again"
    )]
    ClockSkew,
    /// This device is not on the team's roster (yet).
    #[error(
        "the office has not approved this device yet. Safety number: {safety_number}. Ask the office to compare it and approve, then sync again"
    )]
    AwaitingApproval {
        /// The number both screens show.
        safety_number: String,
    },
    /// This device was revoked.
    #[error("this device was revoked from the team; it can no longer sync. Hand it to the office")]
    Revoked,
    /// The role of this device cannot do this.
    #[error("a device with role `{role}` cannot {action}")]
    NotPermitted {
        /// The role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// The invite code is not known to the relay.
    #[error(
        "the relay does not know this invite code; check it was copied completely, or ask the office for a new one"
    )]
    InviteUnknown,
    /// The invite code was used already.
    #[error("this invite code was already used; ask the office for a new one")]
    InviteUsed,
    /// The invite code expired.
    #[error("this invite code has expired; ask the office for a new one")]
    InviteExpired,
    /// The invite code is malformed.
    #[error("this is not a valid invite code ({0}); check it was copied completely")]
    InviteMalformed(&'static str),
    /// This device already belongs to a team.
    #[error("this device already belongs to a team; use another --data-dir for another team")]
    AlreadyMember,
    /// The relay URL is not usable.
    #[error(
        "`{0}` is not a relay address: use https://host:port (or http://127.0.0.1:port for a relay on this machine)"
    )]
    BadRelayUrl(String),
    /// The pending device used an invite this admin device did not issue.
    #[error("this device used an invite issued from another admin device; approve it there")]
    InviteNotIssuedHere,
    /// No device on the roster matches what was typed.
    #[error("no device of the team matches `{0}`; run `amana team devices` to list them")]
    UnknownDevice(String),
    /// Several devices match what was typed.
    #[error("several devices match `{0}`; type more characters of the device id")]
    AmbiguousDevice(String),
    /// The relay holds more of the device's log than this admin device
    /// verified: revoking now would have every device refuse the rest.
    #[error(
        "the relay reports device {device}'s log up to seq {relay}, but this device verified it only up to seq {verified}; revoking now makes every device refuse the rest (a thief's writes, or a lost phone's last intakes). Sync again and retry; to revoke at seq {verified} anyway, run `amana team revoke --drop-unverified`"
    )]
    RevocationBelowRelay {
        /// The device to revoke.
        device: DeviceId,
        /// The last seq this device verified.
        verified: u64,
        /// The head the relay reports.
        relay: u64,
    },
    /// A device tried to revoke itself.
    #[error(
        "a device cannot revoke itself (and a team's last admin can never be revoked); revoke it from another admin device"
    )]
    RevokeSelf,
    /// No pending device matches.
    #[error("no pending device matches `{0}`; run `amana team pending` to list them")]
    UnknownPending(String),
    /// A pending device's keys are not bound to the invite it used: the
    /// relay (or someone in its place) substituted them.
    #[error(
        "INTEGRITY ALARM: the join request of device {device} does not carry its invite's proof (its keys were substituted on the way, probably by the relay): do NOT approve it. Issue a new invite, and tell whoever runs the relay"
    )]
    JoinSubstituted {
        /// The device id the substituted request names.
        device: DeviceId,
    },
    /// An admin operation gave up after another admin or device kept
    /// changing the roster or the log it depends on.
    #[error(
        "the roster kept changing while this was signed ({attempts} attempts); wait a minute and run the command again"
    )]
    TooManyRaces {
        /// Attempts made.
        attempts: usize,
    },
    /// The safety number typed by the admin does not match.
    #[error(
        "the safety number does not match the device's request: do NOT approve. Ask the person to read the number again from their screen; if it still differs, someone may be impersonating them"
    )]
    SafetyNumberMismatch,
    /// This device does not hold the key of the epoch it must write in.
    #[error(
        "this device has not received the key for epoch {0} yet; ask the office to approve it again, then sync"
    )]
    MissingEpochKey(u32),
    /// The roster from the relay does not verify, or contradicts ours.
    #[error(
        "INTEGRITY ALARM: the roster from the relay is not valid ({0}); nothing was applied. Tell the office"
    )]
    Roster(#[from] RosterError),
    /// The relay's roster is shorter than, or diverges from, the one this
    /// device already verified.
    #[error(
        "INTEGRITY ALARM: the relay's roster has {relay} operations and does not extend the {ours} this device verified (rollback or substitution); nothing was applied. Tell the office"
    )]
    RosterRollback {
        /// Operations this device holds.
        ours: usize,
        /// Operations the relay sent.
        relay: usize,
    },
    /// A key envelope failed its checks.
    #[error(
        "INTEGRITY ALARM: a key delivery failed its checks ({0}); it was ignored. Tell the office"
    )]
    KeyDelivery(#[from] KeyEnvelopeError),
    /// A recipient announcement from the relay failed its checks.
    #[error(
        "INTEGRITY ALARM: a device's key announcement from the relay failed its checks ({0}); no key was sent to it. Tell the office"
    )]
    Announcement(#[from] AnnouncementError),
    /// Sealing an envelope failed.
    #[error("could not seal the outgoing changes: {0}")]
    Seal(#[from] EnvelopeError),
    /// A receipt does not verify against the pinned relay key.
    #[error(
        "INTEGRITY ALARM: the relay's receipt for seq {seq} does not verify; the upload is not confirmed. Tell the office"
    )]
    BadReceipt {
        /// The seq it claims to cover.
        seq: u64,
    },
    /// The relay no longer has envelopes it receipted to this device, or
    /// holds different ones.
    #[error(
        "INTEGRITY ALARM: the relay refused this device's envelope {seq} ({code}): it has lost or replaced envelopes it acknowledged. Keep this device's data; tell the office"
    )]
    RelayLostOwnLog {
        /// The seq refused.
        seq: u64,
        /// The relay's error code.
        code: String,
    },
    /// The relay reports a device head behind what this device applied.
    #[error(
        "INTEGRITY ALARM: the relay reports device {device} at seq {relay}, but this device already applied seq {ours} (rollback); nothing more was applied. Tell the office"
    )]
    Rollback {
        /// The device.
        device: DeviceId,
        /// What this device applied.
        ours: u64,
        /// What the relay reports.
        relay: u64,
    },
    /// The relay reports a different envelope at a seq this device applied.
    #[error(
        "INTEGRITY ALARM: the relay reports a different envelope for device {device} at seq {seq} than the one this device applied (forked history). Tell the office"
    )]
    Fork {
        /// The device.
        device: DeviceId,
        /// The seq.
        seq: u64,
    },
    /// The relay reports envelopes it did not send.
    #[error(
        "INTEGRITY ALARM: the relay reports device {device} up to seq {relay}, but sent only up to {received} (withheld envelopes). Tell the office"
    )]
    Withheld {
        /// The device.
        device: DeviceId,
        /// What this device received.
        received: u64,
        /// What the relay reports.
        relay: u64,
    },
    /// Another device saw a different envelope of a log at the same seq,
    /// or an envelope of this device's log it never wrote.
    #[error(
        "INTEGRITY ALARM: device {witness} saw a different envelope {seq} of device {device}'s log than this device (forked history: the relay shows devices different logs, or someone else holds that device's key). Its envelope is kept as evidence; tell the office"
    )]
    ForkWitnessed {
        /// The device whose log forked.
        device: DeviceId,
        /// The seq where the views differ.
        seq: u64,
        /// The device whose envelope witnessed the other view.
        witness: DeviceId,
    },
    /// Another device wrote under a longer roster than the relay gives
    /// this device: operations (a revocation, a rotation) are hidden from
    /// it. This device seals nothing until it has them.
    #[error(
        "INTEGRITY ALARM: device {author} wrote under a roster of {claimed} operations, but the relay gives this device only {ours}: a revocation or key rotation is being hidden from it. Nothing new was sealed; tell the office"
    )]
    RosterWithheld {
        /// The device whose envelope stated the longer roster.
        author: DeviceId,
        /// Its seq.
        seq: u64,
        /// The roster length it stated.
        claimed: u64,
        /// The roster length this device holds.
        ours: u64,
    },
    /// Another device sealed under a different roster operation at a
    /// position this device holds: two roster branches.
    #[error(
        "INTEGRITY ALARM: device {author} wrote under a roster whose operation {index} differs from this device's (two rosters shown to two groups of devices). Nothing new was sealed; tell the office at once"
    )]
    RosterForkWitnessed {
        /// The device whose envelope stated the other branch.
        author: DeviceId,
        /// Its seq.
        seq: u64,
        /// The index of the last operation it stated.
        index: u64,
    },
    /// A device sealed under another epoch than its stated roster's.
    #[error(
        "INTEGRITY ALARM: device {device} sealed envelope {seq} under epoch {epoch} while the roster it states makes epoch {expected} current. Tell the office"
    )]
    StaleEpoch {
        /// The author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The epoch it sealed under.
        epoch: u32,
        /// The epoch its stated roster makes current.
        expected: u32,
    },
    /// A device wrote under a roster older than one it had seen.
    #[error(
        "INTEGRITY ALARM: device {device} wrote envelope {seq} under a roster of {stated} operations after applying an envelope written under {witnessed}. Tell the office"
    )]
    StaleRoster {
        /// The author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The roster length it stated.
        stated: u64,
        /// The roster length of an envelope it witnessed.
        witnessed: u64,
    },
    /// A device sealed long after a revocation or rotation under a roster
    /// without it: the relay kept that change from it.
    #[error(
        "INTEGRITY ALARM: device {device} sealed envelope {seq} {hours} hour(s) after roster operation {index} (a revocation or key rotation) under a roster without it: the relay kept it from that device, and what it sealed may be readable with the old key. Tell the office"
    )]
    SealedAfterRosterChange {
        /// The author.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The roster operation it did not know.
        index: u64,
        /// How many hours after that operation it sealed.
        hours: u64,
    },
    /// Another device completed a pull well after this device's envelope
    /// was receipted and still has not seen it: the relay keeps it from the
    /// team.
    #[error(
        "INTEGRITY ALARM: this device's envelope {seq}, receipted by the relay at {since} (unix time), has not reached device {witness}, which has synced since: the relay is keeping what this device sends from the team. Tell the office by phone"
    )]
    OwnTailWithheld {
        /// The first envelope not seen.
        seq: u64,
        /// A device that synced since and has not seen it.
        witness: DeviceId,
        /// When it was receipted.
        since: u64,
    },
    /// A forgetting rotation's snapshot has not arrived.
    #[error(
        "INTEGRITY ALARM: the team key was rotated to shred a case (epoch {epoch}), but the office's snapshot has not arrived since {since} (unix time); the shred cannot finish on this device. Tell the office"
    )]
    SnapshotMissing {
        /// The epoch of the forgetting rotation.
        epoch: u32,
        /// Since when it is awaited.
        since: u64,
    },
    /// Another device applied more of a log than the relay gives this one.
    #[error(
        "INTEGRITY ALARM: device {witness} has seen device {device}'s log up to seq {seq}, but the relay gives this device only up to seq {applied} (withheld from this device). Tell the office"
    )]
    WitnessedAhead {
        /// The device whose log is withheld.
        device: DeviceId,
        /// The seq the witness applied.
        seq: u64,
        /// What this device applied.
        applied: u64,
        /// The device whose envelope witnessed it.
        witness: DeviceId,
    },
}

impl SyncError {
    /// Whether the error means the relay (or someone in its place) may be
    /// lying: the office must hear about it.
    pub fn is_integrity_alarm(&self) -> bool {
        self.alarm_code().is_some()
    }

    /// The stable code of the alarm this error raises, if it is one
    /// (recorded with it, listed in `docs/auditor-guide.md`).
    pub fn alarm_code(&self) -> Option<&'static str> {
        Some(match self {
            SyncError::Roster(_) => "roster_invalid",
            SyncError::RelayMalformed(_) => "relay_malformed",
            SyncError::JoinSubstituted { .. } => "join_substituted",
            SyncError::RosterRollback { .. } => "roster_rollback",
            SyncError::KeyDelivery(_) => "bad_key_delivery",
            SyncError::Announcement(_) => "bad_announcement",
            SyncError::BadReceipt { .. } => "bad_receipt",
            SyncError::RelayLostOwnLog { .. } => "relay_lost_own_log",
            SyncError::Rollback { .. } => "rollback",
            SyncError::Fork { .. } => "fork",
            SyncError::Withheld { .. } => "withheld",
            SyncError::ForkWitnessed { .. } => "fork_witnessed",
            SyncError::WitnessedAhead { .. } => "witnessed_ahead",
            SyncError::RosterWithheld { .. } => "roster_withheld",
            SyncError::RosterForkWitnessed { .. } => "roster_fork",
            SyncError::StaleEpoch { .. } => "stale_epoch",
            SyncError::StaleRoster { .. } | SyncError::SealedAfterRosterChange { .. } => {
                "stale_roster"
            }
            SyncError::OwnTailWithheld { .. } => "own_tail_withheld",
            SyncError::SnapshotMissing { .. } => "snapshot_missing",
            SyncError::SafetyNumberMismatch => "safety_number_mismatch",
            SyncError::Transport(TransportError::PinMismatch) => "tls_pin_mismatch",
            _ => return None,
        })
    }

    /// The device and seq an alarm concerns, where it names them.
    pub fn alarm_subject(&self) -> (Option<DeviceId>, Option<u64>) {
        match self {
            SyncError::JoinSubstituted { device } => (Some(*device), None),
            SyncError::BadReceipt { seq } | SyncError::RelayLostOwnLog { seq, .. } => {
                (None, Some(*seq))
            }
            SyncError::OwnTailWithheld { seq, witness, .. } => (Some(*witness), Some(*seq)),
            SyncError::Rollback { device, relay, .. } => (Some(*device), Some(*relay)),
            SyncError::RosterWithheld { author, seq, .. }
            | SyncError::RosterForkWitnessed { author, seq, .. } => (Some(*author), Some(*seq)),
            SyncError::StaleEpoch { device, seq, .. }
            | SyncError::StaleRoster { device, seq, .. } => (Some(*device), Some(*seq)),
            SyncError::Fork { device, seq }
            | SyncError::ForkWitnessed { device, seq, .. }
            | SyncError::WitnessedAhead { device, seq, .. } => (Some(*device), Some(*seq)),
            SyncError::Withheld {
                device, received, ..
            } => (Some(*device), Some(received + 1)),
            _ => (None, None),
        }
    }

    /// Whether this device's own view of the roster is in doubt, so it must
    /// not seal anything (it could seal to a key a revoked device holds).
    pub fn roster_in_doubt(&self) -> bool {
        matches!(
            self,
            SyncError::RosterWithheld { .. } | SyncError::RosterForkWitnessed { .. }
        )
    }

    /// Whether retrying later may succeed without anyone doing anything.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            SyncError::Transport(
                TransportError::Unreachable { .. } | TransportError::Interrupted(_)
            ) | SyncError::RelayUnavailable { .. }
                | SyncError::TooManyRaces { .. }
        )
    }
}
