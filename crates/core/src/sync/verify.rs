//! The checks of a pulled page and of each envelope in it: pure
//! decisions over plain values (no I/O), which the pull applies and tests
//! call directly.
//!
//! Page: cursors rise strictly after ours; the relay's reported heads are
//! not behind, or different from, what this device applied (rollback,
//! fork); on the last page every reported head was received (withheld).
//! Envelope, in order: structure and team; the author on the roster,
//! allowed to write in that epoch and within its revocation bound; the
//! signature; chain continuity (seq = head + 1 and prev = head id, so a gap
//! means withheld data and an old seq a replay); a stub only for a retired
//! epoch; a snapshot only from an admin; decryption and the header copy
//! inside; decodable content.

use std::collections::BTreeMap;

use super::{Rejection, SyncError};
use crate::case::CaseDoc;
use crate::case::bounded::{BoundError, InflateBudget};
use crate::envelope::seal;
use crate::envelope::{EnvelopeLimits, Kind, Stored};
use crate::error::EnvelopeError;
use crate::framing::Page;
use crate::ids::{DeviceId, Digest};
use crate::keys::EpochKeyring;
use crate::roster::{Role, Roster};
use crate::store::PeerHead;

/// Cursors must rise strictly, starting after ours.
///
/// The page may hold at most `limit` envelopes, and its next cursor is the
/// last envelope's (or `after` for an empty page): a next cursor beyond
/// what the page holds would move this device past envelopes it never saw.
pub(super) fn check_page_order(
    page: &Page,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<(), SyncError> {
    if page.entries.is_empty() && page.more {
        return Err(SyncError::RelayMalformed(
            "an empty page that says more follows".into(),
        ));
    }
    if page.entries.len() > limit {
        return Err(SyncError::RelayMalformed(format!(
            "a page of {} envelopes, {limit} asked for",
            page.entries.len()
        )));
    }
    // The relay stops a page before the envelope that would take it past
    // the budget asked for (but serves at least one): what a page holds in
    // memory, and may expand to, is bounded by it.
    let bytes: usize = page.entries.iter().map(|e| e.bytes.len()).sum();
    if page.entries.len() > 1 && bytes > max_bytes {
        return Err(SyncError::RelayMalformed(format!(
            "a page of {bytes} bytes, {max_bytes} asked for"
        )));
    }
    let mut last = after;
    for entry in &page.entries {
        if entry.cursor <= last {
            return Err(SyncError::RelayMalformed(format!(
                "envelope cursors out of order ({} after {last})",
                entry.cursor
            )));
        }
        last = entry.cursor;
    }
    if page.next_cursor != last {
        return Err(SyncError::RelayMalformed(format!(
            "next cursor {} is not the page's last ({last})",
            page.next_cursor
        )));
    }
    Ok(())
}

/// The relay's heads must not be behind, or different from, what we applied.
pub(super) fn check_heads(
    page: &Page,
    ours: &BTreeMap<DeviceId, PeerHead>,
) -> Result<(), SyncError> {
    for relay in &page.heads {
        if let Some(held) = ours.get(&relay.device) {
            if relay.seq < held.seq {
                return Err(SyncError::Rollback {
                    device: relay.device,
                    ours: held.seq,
                    relay: relay.seq,
                });
            }
            if relay.seq == held.seq && relay.id != held.id {
                return Err(SyncError::Fork {
                    device: relay.device,
                    seq: relay.seq,
                });
            }
        }
    }
    // Every device we applied envelopes from must still be listed.
    for held in ours.values() {
        if !page.heads.iter().any(|h| h.device == held.device) {
            return Err(SyncError::Rollback {
                device: held.device,
                ours: held.seq,
                relay: 0,
            });
        }
    }
    Ok(())
}

/// On the last page, every head the relay reports must have been received.
///
/// `refused` names, per device, the highest seq the relay did serve but
/// this device refused for its author's sake (revoked, a role that may not
/// write, signed content that is not valid): that was not withheld, and
/// its own alarm says what it was.
pub(super) fn check_withheld(
    page: &Page,
    ours: &BTreeMap<DeviceId, PeerHead>,
    refused: &BTreeMap<DeviceId, u64>,
    roster: &Roster,
    deferred: &std::collections::BTreeSet<DeviceId>,
) -> Result<(), SyncError> {
    // A head of a device that is not on the roster names nothing this
    // device could be missing (and must not make it fetch anything again);
    // a device whose envelopes this pull deferred is behind on purpose.
    for relay in page
        .heads
        .iter()
        .filter(|h| roster.device(&h.device).is_some() && !deferred.contains(&h.device))
    {
        let received = ours.get(&relay.device).map_or(0, |h| h.seq);
        let served = received.max(refused.get(&relay.device).copied().unwrap_or(0));
        // Beyond a revoked device's bound nothing counts: not withheld.
        let owed = roster
            .device(&relay.device)
            .and_then(|d| d.revoked)
            .map_or(relay.seq, |r| relay.seq.min(r.last_seq));
        if served < owed {
            return Err(SyncError::Withheld {
                device: relay.device,
                received,
                relay: relay.seq,
            });
        }
        if let Some(held) = ours.get(&relay.device)
            && held.seq == relay.seq
            && held.id != relay.id
        {
            return Err(SyncError::Fork {
                device: relay.device,
                seq: relay.seq,
            });
        }
    }
    Ok(())
}

pub(super) enum Refusal {
    /// An envelope of a retired epoch whose key this device does not hold:
    /// verified and chained, its content passed over.
    Retired(PeerHead),
    MissingKey(u32),
    /// Signed by a roster device under an epoch beyond this device's
    /// roster: its author holds a longer roster.
    RosterAhead,
    /// An author this roster does not know: perhaps a device added since
    /// it was fetched (fetch it once more before refusing).
    UnknownAuthor(Rejection),
    Quarantine(Rejection),
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Quarantine(rejection)
    }
}

/// How an envelope's seal context stands against this device's roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RosterView {
    /// The author sealed under this roster or a prefix of it, to that
    /// prefix's current epoch.
    Consistent,
    /// The author held more of the roster than this device: fetch it
    /// before going on.
    Ahead,
    /// The author held another operation at the same position: two
    /// roster branches.
    Fork,
    /// The author sealed under another epoch than the current one of the
    /// roster it states (an epoch it knew was over, or one not yet begun).
    StaleEpoch {
        /// The epoch that roster made current.
        expected: u32,
    },
}

/// Compares the roster an envelope states it was sealed under with this
/// device's (`docs/protocol.md`, "Seal context").
pub(super) fn check_context(
    roster: &Roster,
    epoch: u32,
    context: &seal::SealContext,
) -> RosterView {
    let len = context.roster_len;
    if len > roster.ops().len() as u64 {
        return RosterView::Ahead;
    }
    if len == 0 || roster.op_hash(len - 1) != Some(context.roster_head) {
        return RosterView::Fork;
    }
    match roster.current_epoch_at(len) {
        Some(current) if current.epoch == epoch => RosterView::Consistent,
        Some(current) => RosterView::StaleEpoch {
            expected: current.epoch,
        },
        None => RosterView::Fork,
    }
}

/// How long after a revocation or rotation was signed an envelope may still
/// be sealed under a roster without it (clocks are corrected to the
/// relay's within minutes; an honest device fetches the roster right
/// before it seals).
pub(super) const STALE_AFTER_SECS: u64 = 3600;

/// The first revocation or rotation missing from the roster an envelope
/// states that had been signed more than [`STALE_AFTER_SECS`] before the
/// envelope was sealed: its index and how long before. A device kept on an
/// old roster by the relay (one that never reads, like an intake device)
/// seals under it; this is how every reader still notices.
pub(super) fn sealed_after_unknown_change(
    roster: &Roster,
    context: &seal::SealContext,
) -> Option<(u64, u64)> {
    let start = usize::try_from(context.roster_len).ok()?;
    roster.ops().get(start..)?.iter().find_map(|op| {
        let counts = matches!(
            op.change,
            crate::roster::RosterChange::RevokeDevice { .. }
                | crate::roster::RosterChange::RotateEpoch { .. }
        );
        let late = context.sealed_at.checked_sub(op.at)?;
        (counts && op.at > 0 && late > STALE_AFTER_SECS).then_some((op.index, late))
    })
}

/// Every client-side check of one envelope, in order.
pub(super) fn check_envelope(
    bytes: &[u8],
    roster: &Roster,
    keyring: &EpochKeyring,
    heads: &BTreeMap<DeviceId, PeerHead>,
) -> Result<seal::OpenedEnvelope, Refusal> {
    let stored =
        Stored::parse(bytes.to_vec(), &EnvelopeLimits::default()).map_err(Rejection::Malformed)?;
    let header = stored.header().clone();
    let (device, seq) = (header.device, header.seq);
    if header.team != roster.team() {
        return Err(Rejection::WrongTeam {
            device,
            seq,
            found: header.team,
        }
        .into());
    }
    // The signature first, with the key the roster holds for the device
    // the header names: nothing unsigned can frame a device (its author
    // rules, its revocation bound) or stand for anything the relay did.
    let Some(named) = roster.device(&device) else {
        return Err(Refusal::UnknownAuthor(Rejection::Author(
            crate::error::AuthorError::UnknownDevice(device),
        )));
    };
    let key = named.entry.signing_key;
    let signed = match &stored {
        Stored::Whole(envelope) => envelope.verify_signature(&key),
        Stored::Stub(stub) => stub.verify_signature(&key),
    };
    signed.map_err(|error| Rejection::Signature { device, seq, error })?;
    let record = match roster.check_author(&header) {
        Ok(record) => record,
        // A genuine envelope under an epoch beyond this roster: its author
        // saw more of the roster.
        Err(crate::error::AuthorError::UnknownEpoch { epoch, current }) if epoch > current => {
            return Err(Refusal::RosterAhead);
        }
        Err(e) => return Err(Rejection::Author(e).into()),
    };
    let (expected, expected_prev) = heads
        .get(&device)
        .map_or((1, Digest::ZERO), |h| (h.seq + 1, h.id));
    if seq < expected {
        return Err(Rejection::Replay {
            device,
            seq,
            expected,
        }
        .into());
    }
    if seq > expected {
        return Err(Rejection::Gap {
            device,
            seq,
            expected,
        }
        .into());
    }
    if header.prev != expected_prev {
        return Err(Rejection::BrokenChain { device, seq }.into());
    }
    // The chain of a revoked device must end at the envelope its
    // revocation names; any other history up to the bound is refused.
    if let Some(revocation) = record.revoked
        && revocation.last_seq == seq
        && stored.id() != revocation.last_id
    {
        return Err(Rejection::RevokedFork { device, seq }.into());
    }
    let envelope = match stored {
        Stored::Whole(envelope) => envelope,
        // The relay may drop the body of a retired epoch's envelope, and
        // of nothing else.
        Stored::Stub(stub) if header.epoch < roster.retired_below() => {
            return Err(Refusal::Retired(PeerHead {
                device,
                seq,
                id: stub.id(),
            }));
        }
        Stored::Stub(_) => {
            return Err(Rejection::BodyDropped {
                device,
                seq,
                epoch: header.epoch,
            }
            .into());
        }
    };
    if header.kind == Kind::Snapshot && record.entry.role != Role::Admin {
        return Err(Rejection::SnapshotNotAdmin { device, seq }.into());
    }
    let opened = match seal::open(&envelope, roster.team(), &key, keyring) {
        Ok(opened) => opened,
        Err(EnvelopeError::UnknownEpoch(epoch)) if epoch < roster.retired_below() => {
            return Err(Refusal::Retired(PeerHead {
                device,
                seq,
                id: envelope.id(),
            }));
        }
        Err(EnvelopeError::UnknownEpoch(epoch)) => return Err(Refusal::MissingKey(epoch)),
        Err(EnvelopeError::InflatesTooFar { limit }) => {
            return Err(Rejection::DecompressionBomb {
                device,
                seq,
                what: format!("its body expands to more than {limit} bytes"),
            }
            .into());
        }
        Err(error) => return Err(Rejection::Unreadable { device, seq, error }.into()),
    };
    // Every Automerge chunk is checked here, before Automerge parses it,
    // against one budget for the whole envelope (`case::bounded`).
    let mut budget = InflateBudget::for_envelope(opened.inflate_left, envelope.body().len());
    let refuse = |part: String, error: BoundError| -> Refusal {
        match error {
            BoundError::TooLarge { .. } | BoundError::TooManyItems { .. } => {
                Rejection::DecompressionBomb {
                    device,
                    seq,
                    what: format!("{part}: {error}"),
                }
            }
            _ => Rejection::InvalidContent {
                device,
                seq,
                what: format!("{part}: {error}"),
            },
        }
        .into()
    };
    for (n, change) in opened.changes.iter().enumerate() {
        CaseDoc::check_received_change(&change.change, &mut budget)
            .map_err(|e| refuse(format!("change {n}"), e))?;
    }
    if let Some(part) = &opened.snapshot {
        if part.floor != header.epoch {
            return Err(Rejection::InvalidContent {
                device,
                seq,
                what: format!(
                    "a snapshot for epoch {} sealed under epoch {}",
                    part.floor, header.epoch
                ),
            }
            .into());
        }
        for (n, case) in part.cases.iter().enumerate() {
            CaseDoc::check_received_saved(&case.doc, &mut budget)
                .map_err(|e| refuse(format!("case {n} of the snapshot"), e))?;
        }
    }
    Ok(opened)
}
