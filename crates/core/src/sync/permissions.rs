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
//! **How.** The pull stages each envelope's changes (and each snapshot
//! document) per case, in page order; [`PageDocs::resolve`] then runs each
//! case's steps on its document, the cases on every core (a first sync
//! brings thousands). An envelope refused in one case is taken out of the
//! others it touched, which are run again without it, until nothing
//! changes. The documents are written once, with their views, when the
//! page commits.

use std::collections::{BTreeMap, BTreeSet};

use automerge::Change;

use super::Rejection;
use crate::case::{CaseDoc, CaseView};
use crate::envelope::seal::CaseChange;
use crate::envelope::snapshot::SavedCase;
use crate::ids::{CaseId, DeviceId};
use crate::roster::Role;
use crate::store::{CheckedCase, DeviceStore, StoreError};

/// One thing the page does to a case, in order.
enum Step {
    /// An envelope's changes to this case.
    Changes {
        /// The envelope (its position among the page's staged envelopes).
        envelope: usize,
        batch: Vec<Vec<u8>>,
    },
    /// A document from an admin's snapshot, merged.
    Saved {
        /// The snapshot's envelope.
        envelope: usize,
        doc: Vec<u8>,
    },
}

/// Who wrote a staged envelope.
struct Author {
    device: DeviceId,
    role: Role,
    seq: u64,
}

/// The changes a page stages, per case.
pub(super) struct PageDocs {
    device: DeviceId,
    authors: Vec<Author>,
    steps: BTreeMap<CaseId, Vec<Step>>,
}

/// What resolving a page gives: refused envelopes (by number), deferred
/// authors (from which seq), and the documents to write.
pub(super) type Resolved = (
    BTreeMap<usize, Rejection>,
    BTreeMap<DeviceId, u64>,
    Vec<CheckedCase>,
);

/// One case at the end of a run of its steps.
struct Outcome {
    doc: Option<CaseDoc>,
    view: Option<CaseView>,
    /// The first refusal of each envelope refused in this case.
    refused: Vec<(usize, Rejection)>,
    /// The envelopes the run left out.
    excluded: BTreeSet<usize>,
}

/// Whether the run behind `outcome` applied one of the envelopes `out`.
fn applied_any(steps: &[Step], outcome: &Outcome, out: &BTreeSet<usize>) -> bool {
    steps.iter().any(|s| match s {
        Step::Changes { envelope, .. } | Step::Saved { envelope, .. } => {
            out.contains(envelope)
                && !outcome.excluded.contains(envelope)
                && !outcome.refused.iter().any(|(e, _)| e == envelope)
        }
    })
}

impl PageDocs {
    /// Nothing staged yet; `device` is this device (the actor of any later
    /// local edit).
    pub(super) fn new(device: DeviceId) -> Self {
        PageDocs {
            device,
            authors: Vec::new(),
            steps: BTreeMap::new(),
        }
    }

    /// Stages one envelope's changes (those to shredded cases left out by
    /// the caller); returns its number for [`PageDocs::resolve`].
    pub(super) fn stage(
        &mut self,
        device: DeviceId,
        role: Role,
        seq: u64,
        changes: Vec<CaseChange>,
    ) -> usize {
        let envelope = self.authors.len();
        self.authors.push(Author { device, role, seq });
        let mut by_case: BTreeMap<CaseId, Vec<Vec<u8>>> = BTreeMap::new();
        for c in changes {
            by_case.entry(c.case).or_default().push(c.change);
        }
        for (case, batch) in by_case {
            self.steps
                .entry(case)
                .or_default()
                .push(Step::Changes { envelope, batch });
        }
        envelope
    }

    /// Stages a snapshot part's documents (from an admin, checked by the
    /// caller); returns its number.
    pub(super) fn stage_snapshot(
        &mut self,
        device: DeviceId,
        seq: u64,
        cases: Vec<SavedCase>,
    ) -> usize {
        let envelope = self.authors.len();
        self.authors.push(Author {
            device,
            role: Role::Admin,
            seq,
        });
        for saved in cases {
            self.steps.entry(saved.case).or_default().push(Step::Saved {
                envelope,
                doc: saved.doc,
            });
        }
        envelope
    }

    /// Forgets a shredded case (the store deletes it with the page).
    pub(super) fn forget(&mut self, case: CaseId) {
        self.steps.remove(&case);
    }

    /// Runs every staged step; returns the refused envelopes with their
    /// first refusal, the authors whose envelopes from a seq on wait for a
    /// later pull (changes building on what this device does not hold yet:
    /// the relay may have served them before what they build on), and the
    /// documents to write (none for `shredded`).
    ///
    /// A missing dependency whose author was already fetched again from
    /// that envelope (`retried`) is refused instead (the chain goes on): it
    /// builds on something this device will not get, such as an envelope it
    /// refused.
    pub(super) fn resolve(
        self,
        store: &DeviceStore,
        shredded: &BTreeSet<CaseId>,
        retried: &dyn Fn(DeviceId, u64) -> bool,
    ) -> Result<Resolved, StoreError> {
        let mut work = Vec::with_capacity(self.steps.len());
        for (case, steps) in self.steps {
            if !shredded.contains(&case) {
                work.push((case, store.held_case(case)?, steps));
            }
        }
        let (device, authors) = (self.device, &self.authors);
        let none = BTreeSet::new();
        let mut outcomes = crate::store::on_every_core(&mut work, |(case, held, steps)| {
            run(device, authors, *case, held.as_ref(), steps, &none)
        })
        .into_iter()
        .collect::<Result<Vec<Outcome>, StoreError>>()?;
        let mut refused: BTreeMap<usize, Rejection> = BTreeMap::new();
        let mut deferred_from: BTreeMap<DeviceId, u64> = BTreeMap::new();
        loop {
            let before = refused.len();
            for outcome in &outcomes {
                for (envelope, rejection) in &outcome.refused {
                    refused
                        .entry(*envelope)
                        .or_insert_with(|| rejection.clone());
                }
            }
            // A missing dependency defers its author from that envelope on:
            // every later envelope of it in the page is taken out too.
            for rejection in refused.values() {
                if let Rejection::MissingDependencies { device, seq, .. } = rejection
                    && !retried(*device, *seq)
                {
                    let from = deferred_from.entry(*device).or_insert(*seq);
                    *from = (*from).min(*seq);
                }
            }
            for (n, author) in authors.iter().enumerate() {
                if deferred_from
                    .get(&author.device)
                    .is_some_and(|from| author.seq >= *from)
                {
                    refused.entry(n).or_insert(Rejection::MissingDependencies {
                        device: author.device,
                        seq: author.seq,
                        case: CaseId::from_bytes([0; 16]),
                    });
                }
            }
            if refused.len() == before {
                break;
            }
            // Cases where an envelope refused elsewhere was applied: run
            // again without it (rare: only around a refused envelope). A
            // run without it may refuse another envelope (built on it): the
            // loop takes that one out too.
            let out: BTreeSet<usize> = refused.keys().copied().collect();
            for (i, (case, held, steps)) in work.iter().enumerate() {
                if applied_any(steps, &outcomes[i], &out) {
                    outcomes[i] = run(device, authors, *case, held.as_ref(), steps, &out)?;
                }
            }
        }
        let mut checked = Vec::new();
        for ((case, _, steps), outcome) in work.into_iter().zip(outcomes) {
            let changed = steps.iter().any(|s| match s {
                Step::Changes { envelope, .. } | Step::Saved { envelope, .. } => {
                    !refused.contains_key(envelope)
                }
            });
            if let (true, Some(doc)) = (changed, outcome.doc) {
                checked.push(CheckedCase {
                    case,
                    doc,
                    view: outcome.view,
                });
            }
        }
        // What waits is not refused.
        refused.retain(|n, _| {
            let author = &authors[*n];
            deferred_from
                .get(&author.device)
                .is_none_or(|from| author.seq < *from)
        });
        Ok((refused, deferred_from, checked))
    }
}

/// Runs one case's steps on its document, leaving out the envelopes in
/// `excluded`; each other envelope is applied if it passes, and refused
/// (its changes not applied) if not.
fn run(
    device: DeviceId,
    authors: &[Author],
    case: CaseId,
    held: Option<&crate::store::HeldCase>,
    steps: &[Step],
    excluded: &BTreeSet<usize>,
) -> Result<Outcome, StoreError> {
    let (mut doc, mut view) = match held {
        Some((bytes, view)) => {
            let doc = CaseDoc::load(bytes, device)?;
            let view = view.clone().or_else(|| doc.read().ok());
            (Some(doc), view)
        }
        None => (None, None),
    };
    let mut refused = Vec::new();
    for step in steps {
        match step {
            Step::Changes { envelope, .. } | Step::Saved { envelope, .. }
                if excluded.contains(envelope) => {}
            Step::Saved {
                envelope,
                doc: bytes,
            } => {
                // A document that does not merge (histories that disagree
                // at the same actor and seq) refuses that snapshot part,
                // not the whole page.
                let merged = match doc.as_mut() {
                    Some(d) => {
                        let mut next = d.fork();
                        next.merge_saved(bytes).map(|()| next)
                    }
                    None => CaseDoc::load(bytes, device),
                };
                match merged {
                    Ok(next) => {
                        view = next.read().ok();
                        doc = Some(next);
                    }
                    Err(_) => refused.push((
                        *envelope,
                        Rejection::InvalidContent {
                            device: authors[*envelope].device,
                            seq: authors[*envelope].seq,
                            what: format!("the snapshot's copy of case {case} does not merge"),
                        },
                    )),
                }
            }
            Step::Changes { envelope, batch } => {
                let author = &authors[*envelope];
                match check(device, author, case, doc.as_mut(), view.as_ref(), batch)? {
                    Ok((next, next_view)) => {
                        doc = Some(next);
                        view = next_view;
                    }
                    Err(rejection) => refused.push((*envelope, rejection)),
                }
            }
        }
    }
    Ok(Outcome {
        doc,
        view,
        refused,
        excluded: excluded.clone(),
    })
}

/// One envelope's changes to one case: the document and view after them,
/// or why they are refused (`doc` is then unchanged).
fn check(
    device: DeviceId,
    author: &Author,
    case: CaseId,
    doc: Option<&mut CaseDoc>,
    before: Option<&CaseView>,
    batch: &[Vec<u8>],
) -> Result<Result<(CaseDoc, Option<CaseView>), Rejection>, StoreError> {
    let Author {
        device: by,
        role,
        seq,
    } = *author;
    let mut decoded = Vec::with_capacity(batch.len());
    for bytes in batch {
        match Change::from_bytes(bytes.clone()) {
            Ok(change) if DeviceId::from_slice(change.actor_id().to_bytes()) == Ok(by) => {
                decoded.push(change);
            }
            Ok(_) => {
                return Ok(Err(Rejection::ForgedActor {
                    device: by,
                    seq,
                    case,
                }));
            }
            Err(_) => {
                return Ok(Err(Rejection::InvalidSchema {
                    device: by,
                    seq,
                    case,
                }));
            }
        }
    }
    let not_permitted = |what: &str| Rejection::NotPermitted {
        device: by,
        seq,
        case,
        what: what.to_owned(),
    };
    let held = doc.is_some();
    let mut next = match doc {
        Some(doc) => {
            if role == Role::Intake && doc.creator() != Some(by) {
                return Ok(Err(not_permitted(
                    "an intake device changes only the cases it recorded",
                )));
            }
            doc.fork()
        }
        None => CaseDoc::from_changes(&[], device)?,
    };
    if next.apply_decoded(decoded).is_err() {
        return Ok(Err(Rejection::InvalidSchema {
            device: by,
            seq,
            case,
        }));
    }
    if next.is_incomplete() {
        return Ok(Err(Rejection::MissingDependencies {
            device: by,
            seq,
            case,
        }));
    }
    let after = match next.read() {
        Ok(view) if view.case.case_id == case => Some(view),
        // A document that did not read before may still not (nothing this
        // envelope broke); one that did must go on reading.
        Err(_) if held && before.is_none() => None,
        _ => {
            return Ok(Err(Rejection::InvalidSchema {
                device: by,
                seq,
                case,
            }));
        }
    };
    if !role.is_office()
        && let Some(after) = &after
        && adds_consent_override(before, after)
    {
        return Ok(Err(not_permitted(
            "only an office device records a consent override",
        )));
    }
    Ok(Ok((next, after)))
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
