//! What a reader checks before applying another device's changes: that
//! the author was allowed to make them. The writer's own checks are not
//! enough, since a stolen device, a modified build or anyone holding a
//! device's key writes what it likes.
//!
//! For each envelope, in order, every change must:
//!
//! - carry the author as its Automerge actor (`forged_actor`): otherwise a
//!   change could pass itself off as another device's, and a conflict would
//!   be shown as the office's;
//! - build only on changes this device holds (`missing_dependencies`):
//!   Automerge would otherwise keep it aside and apply it, unchecked, the
//!   day its dependencies arrive;
//! - leave the case readable, with its own case id (`invalid_schema`);
//! - be within the author's role (`not_permitted`): an `intake` device
//!   creates cases and adds to the ones it created, nothing else; only
//!   office and admin devices record a consent override.
//!
//! **All or nothing per envelope.** If one change fails, none of the
//! envelope's changes is applied (to any case): an envelope's changes
//! usually build on each other (one intake is several changes, and the
//! next edit builds on it), so keeping part of them would leave the rest
//! waiting forever, and a case half written by a misbehaving device is
//! worse than its absence. The envelope itself is authentic: its author's
//! chain goes on, a copy is kept as evidence, and an alarm is raised. Its
//! author's later changes to the same case then miss their dependencies
//! and are refused too, until the office has dealt with the device.
//!
//! The checks run on the page's documents in memory, in envelope order;
//! the documents are written once, with their views, when the page commits.

use std::collections::{BTreeMap, BTreeSet};

use super::Rejection;
use crate::case::{CaseDoc, CaseView};
use crate::envelope::seal::CaseChange;
use crate::envelope::snapshot::SavedCase;
use crate::ids::{CaseId, DeviceId};
use crate::roster::Role;
use crate::store::{CheckedCase, DeviceStore, StoreError};

/// What was applied to one case in this page, to rebuild it if an
/// envelope is refused half-way.
enum Applied {
    Changes(Vec<Vec<u8>>),
    Saved(Vec<u8>),
}

/// One case's document as the page changes it.
struct Slot {
    /// The document as stored before the page (`None`: not held).
    stored: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// The document now (`None`: not held, nothing applied yet).
    doc: Option<CaseDoc>,
    /// Its view now.
    view: Option<CaseView>,
    /// What the page applied, in order.
    applied: Vec<Applied>,
}

/// The documents a page touches.
pub(super) struct PageDocs {
    device: DeviceId,
    slots: BTreeMap<CaseId, Slot>,
}

impl PageDocs {
    /// No document touched yet; `device` is this device (the actor of any
    /// later local edit).
    pub(super) fn new(device: DeviceId) -> Self {
        PageDocs {
            device,
            slots: BTreeMap::new(),
        }
    }

    fn slot(&mut self, store: &DeviceStore, case: CaseId) -> Result<&mut Slot, StoreError> {
        if !self.slots.contains_key(&case) {
            let (stored, doc, view) = match store.held_case(case)? {
                Some((bytes, view)) => {
                    let doc = CaseDoc::load(&bytes, self.device)?;
                    let view = view.or_else(|| doc.read().ok());
                    (Some(bytes), Some(doc), view)
                }
                None => (None, None, None),
            };
            self.slots.insert(
                case,
                Slot {
                    stored,
                    doc,
                    view,
                    applied: Vec::new(),
                },
            );
        }
        Ok(self.slots.get_mut(&case).expect("inserted above"))
    }

    /// Checks the changes of one envelope of `author` (with `role`) and,
    /// if every one passes, applies them all. Changes to `shredded` cases
    /// are left out by the caller. Returns the refusal if one fails
    /// (nothing of the envelope applied then).
    pub(super) fn apply(
        &mut self,
        store: &DeviceStore,
        author: DeviceId,
        role: Role,
        seq: u64,
        changes: &[CaseChange],
    ) -> Result<Option<Rejection>, StoreError> {
        let mut by_case: BTreeMap<CaseId, Vec<Vec<u8>>> = BTreeMap::new();
        for c in changes {
            if CaseDoc::change_author(&c.change) != Some(author) {
                return Ok(Some(Rejection::ForgedActor {
                    device: author,
                    seq,
                    case: c.case,
                }));
            }
            by_case.entry(c.case).or_default().push(c.change.clone());
        }
        let mut done: Vec<(CaseId, Option<CaseView>, Vec<Vec<u8>>)> = Vec::new();
        let mut refusal = None;
        for (case, batch) in by_case {
            match self.try_case(store, author, role, seq, case, &batch)? {
                Ok(view) => done.push((case, view, batch)),
                Err(r) => {
                    refusal = Some(r);
                    break;
                }
            }
        }
        if let Some(refusal) = refusal {
            // Undo what this envelope changed in the cases it passed in.
            for (case, _, _) in done {
                self.rebuild(case)?;
            }
            if let Some(failed) = refusal_case(&refusal) {
                self.rebuild(failed)?;
            }
            return Ok(Some(refusal));
        }
        for (case, view, batch) in done {
            let slot = self.slots.get_mut(&case).expect("touched above");
            slot.view = view;
            slot.applied.push(Applied::Changes(batch));
        }
        Ok(None)
    }

    /// Applies one case's changes and checks the result; the slot holds
    /// the result either way (the caller rebuilds it on a refusal).
    fn try_case(
        &mut self,
        store: &DeviceStore,
        author: DeviceId,
        role: Role,
        seq: u64,
        case: CaseId,
        batch: &[Vec<u8>],
    ) -> Result<Result<Option<CaseView>, Rejection>, StoreError> {
        let device = self.device;
        let slot = self.slot(store, case)?;
        let not_permitted = |what: &str| Rejection::NotPermitted {
            device: author,
            seq,
            case,
            what: what.to_owned(),
        };
        if role == Role::Intake
            && let Some(doc) = slot.doc.as_mut()
            && doc.creator() != Some(author)
        {
            return Ok(Err(not_permitted(
                "an intake device changes only the cases it recorded",
            )));
        }
        let before = slot.view.clone();
        let doc = match slot.doc.as_mut() {
            Some(doc) => doc,
            None => slot.doc.insert(CaseDoc::from_changes(&[], device)?),
        };
        if doc.apply_changes(batch).is_err() {
            return Ok(Err(Rejection::InvalidSchema {
                device: author,
                seq,
                case,
            }));
        }
        if doc.is_incomplete() {
            return Ok(Err(Rejection::MissingDependencies {
                device: author,
                seq,
                case,
            }));
        }
        let after = match doc.read() {
            Ok(view) if view.case.case_id == case => Some(view),
            // A document that did not read before may still not (nothing
            // this envelope broke); one that did must go on reading.
            Err(_) if slot.stored.is_some() && before.is_none() => None,
            _ => {
                return Ok(Err(Rejection::InvalidSchema {
                    device: author,
                    seq,
                    case,
                }));
            }
        };
        if !role.is_office()
            && let Some(after) = &after
            && adds_consent_override(before.as_ref(), after)
        {
            return Ok(Err(not_permitted(
                "only an office device records a consent override",
            )));
        }
        Ok(Ok(after))
    }

    /// Merges a snapshot's document (from an admin, checked by the caller).
    pub(super) fn merge_saved(
        &mut self,
        store: &DeviceStore,
        saved: &SavedCase,
    ) -> Result<(), StoreError> {
        let device = self.device;
        let slot = self.slot(store, saved.case)?;
        match slot.doc.as_mut() {
            Some(doc) => doc.merge_saved(&saved.doc)?,
            None => {
                slot.doc = Some(CaseDoc::load(&saved.doc, device)?);
            }
        }
        slot.view = slot.doc.as_ref().and_then(|d| d.read().ok());
        slot.applied.push(Applied::Saved(saved.doc.clone()));
        Ok(())
    }

    /// Forgets a shredded case (the store deletes it with the page).
    pub(super) fn forget(&mut self, case: CaseId) {
        self.slots.remove(&case);
    }

    /// Rebuilds one case from what was stored and what the page applied.
    fn rebuild(&mut self, case: CaseId) -> Result<(), StoreError> {
        let device = self.device;
        let Some(slot) = self.slots.get_mut(&case) else {
            return Ok(());
        };
        let mut doc = match &slot.stored {
            Some(bytes) => Some(CaseDoc::load(bytes, device)?),
            None => None,
        };
        for step in &slot.applied {
            let d = match doc.as_mut() {
                Some(d) => d,
                None => doc.insert(CaseDoc::from_changes(&[], device)?),
            };
            match step {
                Applied::Changes(batch) => d.apply_changes(batch)?,
                Applied::Saved(bytes) => d.merge_saved(bytes)?,
            }
        }
        slot.view = doc.as_ref().and_then(|d| d.read().ok());
        slot.doc = doc;
        Ok(())
    }

    /// The documents the page changed, to write when it commits (none of
    /// the cases in `shredded`).
    pub(super) fn into_checked(self, shredded: &BTreeSet<CaseId>) -> Vec<CheckedCase> {
        self.slots
            .into_iter()
            .filter(|(case, slot)| !slot.applied.is_empty() && !shredded.contains(case))
            .filter_map(|(case, slot)| {
                slot.doc.map(|doc| CheckedCase {
                    case,
                    doc,
                    view: slot.view,
                })
            })
            .collect()
    }
}

fn refusal_case(r: &Rejection) -> Option<CaseId> {
    match r {
        Rejection::NotPermitted { case, .. }
        | Rejection::InvalidSchema { case, .. }
        | Rejection::MissingDependencies { case, .. } => Some(*case),
        _ => None,
    }
}

/// Whether `after` holds a consent override `before` did not, as a value
/// shown or as a competing value of a conflict.
fn adds_consent_override(before: Option<&CaseView>, after: &CaseView) -> bool {
    let shown = after.case.referrals.iter().any(|r| {
        r.consent_override.is_some()
            && !before.is_some_and(|b| {
                b.case
                    .referrals
                    .iter()
                    .any(|old| old.id == r.id && old.consent_override == r.consent_override)
            })
    });
    let competing = after.conflicts.iter().any(|c| {
        c.path.contains("consent_override")
            && !before.is_some_and(|b| b.conflicts.iter().any(|old| old == c))
    });
    shown || competing
}
