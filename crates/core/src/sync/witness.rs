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
//! kept in the quarantine (code `fork_witnessed`) as evidence, and the
//! sync ends with the alarm.

use std::collections::BTreeMap;

use super::SyncError;
use crate::envelope::seal::Witness;
use crate::ids::DeviceId;
use crate::store::{DeviceStore, PeerHead};

/// The witnesses read during one pull.
#[derive(Default)]
pub(super) struct Witnesses {
    /// Claims beyond what this device had applied when they were read.
    ahead: Vec<(DeviceId, Witness)>,
    /// The first disagreement found.
    alarm: Option<SyncError>,
    /// Evidence for the envelope just checked, to keep in the quarantine.
    pub(super) evidence: Option<String>,
}

impl Witnesses {
    /// Checks the witnesses of one envelope written by `author`, against
    /// the heads applied so far and the envelopes chained in this page.
    pub(super) fn check(
        &mut self,
        store: &DeviceStore,
        author: DeviceId,
        witnesses: &[Witness],
        heads: &BTreeMap<DeviceId, PeerHead>,
        page: &[PeerHead],
    ) -> Result<(), SyncError> {
        let me = store.keys().device_id();
        for w in witnesses {
            let applied = if w.device == me {
                store.own_head()?.map_or(0, |(seq, _)| seq)
            } else {
                heads.get(&w.device).map_or(0, |h| h.seq)
            };
            if w.seq > applied {
                if w.device == me {
                    self.raise(author, w);
                } else {
                    self.ahead.push((author, *w));
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
                self.raise(author, w);
            }
        }
        Ok(())
    }

    /// After the last page: every claim must now be covered, and agree.
    pub(super) fn settle(
        mut self,
        store: &DeviceStore,
        heads: &BTreeMap<DeviceId, PeerHead>,
    ) -> Result<(), SyncError> {
        for (author, w) in std::mem::take(&mut self.ahead) {
            let applied = heads.get(&w.device).map_or(0, |h| h.seq);
            if applied < w.seq {
                if self.alarm.is_none() {
                    self.alarm = Some(SyncError::WitnessedAhead {
                        device: w.device,
                        seq: w.seq,
                        applied,
                        witness: author,
                    });
                }
            } else if store
                .applied_id(&w.device, w.seq)?
                .is_some_and(|id| id != w.id)
            {
                self.raise(author, &w);
            }
        }
        self.alarm.map_or(Ok(()), Err)
    }

    fn raise(&mut self, author: DeviceId, w: &Witness) {
        let alarm = SyncError::ForkWitnessed {
            device: w.device,
            seq: w.seq,
            witness: author,
        };
        self.evidence = Some(format!("fork_witnessed: {alarm}"));
        if self.alarm.is_none() {
            self.alarm = Some(alarm);
        }
    }
}
