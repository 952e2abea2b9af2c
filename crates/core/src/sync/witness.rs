//! Comparing views of each log across devices (fork detection).
//!
//! A relay cannot forge an envelope, but it could show two devices
//! different histories of a third device's log (two envelopes signed for
//! the same seq by a stolen or restored key, or a tail withheld from one
//! reader only), and each device would find its own view consistent. So
//! every device writes the heads it applied into its next envelope (the
//! witnesses, inside the encrypted body), and every reader compares them
//! with what it applied itself:
//!
//! - same seq, different id: the two devices saw different envelopes, a
//!   fork ([`SyncError::ForkWitnessed`]);
//! - a seq of this device's own log it never wrote: someone else signs
//!   with its key (also a fork);
//! - a seq beyond anything the relay gave this device, still so after the
//!   last page: the relay shows the witness more than it shows this device
//!   ([`SyncError::WitnessedAhead`]).
//!
//! The witnessing envelope itself is authentic and is applied; a copy is
//! kept in the quarantine (code `fork_witnessed`) as evidence. Claims that
//! are ahead of what this device applied are kept in its store with the
//! page that brought them, so a later error, a crash or a restart cannot
//! lose them: the next pull that reaches its last page settles them.

use std::collections::BTreeMap;

use super::SyncError;
use crate::envelope::seal::Witness;
use crate::ids::DeviceId;
use crate::store::{DeviceStore, PeerHead, StoreError};

/// Meta entry: witness claims not yet settled.
pub(super) const CLAIMS: &str = "witness_claims";
const CLAIM_LEN: usize = 16 + 16 + 8 + 32;

/// A witness read from an envelope of `author` that named more of a log
/// than this device had applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    author: DeviceId,
    witness: Witness,
}

/// The witness claims of a pull.
#[derive(Default)]
pub(super) struct Witnesses {
    ahead: Vec<Claim>,
}

impl Witnesses {
    /// The claims a previous pull left unsettled.
    pub(super) fn load(store: &DeviceStore) -> Result<Self, StoreError> {
        let ahead = store.meta_records(CLAIMS, CLAIM_LEN, "witness claims", |r| Claim {
            author: r.device(0),
            witness: Witness {
                device: r.device(16),
                seq: r.u64(32),
                id: r.digest(40),
            },
        })?;
        Ok(Witnesses { ahead })
    }

    /// The claims to keep, as stored.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ahead.len() * CLAIM_LEN);
        for c in &self.ahead {
            out.extend_from_slice(c.author.as_bytes());
            out.extend_from_slice(c.witness.device.as_bytes());
            out.extend_from_slice(&c.witness.seq.to_be_bytes());
            out.extend_from_slice(c.witness.id.as_bytes());
        }
        out
    }

    /// Checks the witnesses of one envelope written by `author`, against
    /// the heads applied so far and the envelopes chained in this page;
    /// returns the forks they show.
    pub(super) fn check(
        &mut self,
        store: &DeviceStore,
        author: DeviceId,
        witnesses: &[Witness],
        heads: &BTreeMap<DeviceId, PeerHead>,
        page: &[PeerHead],
    ) -> Result<Vec<SyncError>, StoreError> {
        let me = store.keys().device_id();
        let mut forks = Vec::new();
        for w in witnesses {
            let applied = if w.device == me {
                store.own_head()?.map_or(0, |(seq, _)| seq)
            } else {
                heads.get(&w.device).map_or(0, |h| h.seq)
            };
            if w.seq > applied {
                if w.device == me {
                    forks.push(fork(author, w));
                } else {
                    let claim = Claim {
                        author,
                        witness: *w,
                    };
                    if !self.ahead.contains(&claim) {
                        self.ahead.push(claim);
                    }
                }
                continue;
            }
            let ours = match page
                .iter()
                .rev()
                .find(|h| h.device == w.device && h.seq == w.seq)
            {
                Some(head) => Some(head.id),
                None => store.applied_id(&w.device, w.seq)?,
            };
            // An id this device no longer keeps (an intake device forgets
            // its receipted log) cannot be compared.
            if ours.is_some_and(|id| id != w.id) {
                forks.push(fork(author, w));
            }
        }
        Ok(forks)
    }

    /// After the last page: every claim must now be covered, and agree.
    /// Returns what they show, and forgets them (the alarms are the
    /// record from here on).
    ///
    /// Claims about a log whose envelopes this device is holding back on
    /// purpose (`waiting`) stay for a later pull.
    pub(super) fn settle(
        &mut self,
        store: &DeviceStore,
        heads: &BTreeMap<DeviceId, PeerHead>,
        waiting: &std::collections::BTreeSet<DeviceId>,
    ) -> Result<Vec<SyncError>, StoreError> {
        let mut alarms = Vec::new();
        let (later, now): (Vec<Claim>, Vec<Claim>) = std::mem::take(&mut self.ahead)
            .into_iter()
            .partition(|c| waiting.contains(&c.witness.device));
        self.ahead = later;
        for Claim { author, witness: w } in now {
            let applied = heads.get(&w.device).map_or(0, |h| h.seq);
            if applied < w.seq {
                alarms.push(SyncError::WitnessedAhead {
                    device: w.device,
                    seq: w.seq,
                    applied,
                    witness: author,
                });
            } else if store
                .applied_id(&w.device, w.seq)?
                .is_some_and(|id| id != w.id)
            {
                alarms.push(fork(author, &w));
            }
        }
        Ok(alarms)
    }
}

fn fork(author: DeviceId, w: &Witness) -> SyncError {
    SyncError::ForkWitnessed {
        device: w.device,
        seq: w.seq,
        witness: author,
    }
}
