//! Cases in the device store: recording, editing, reading and applying
//! changes received from other devices.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{DeviceStore, StoreError};
use crate::case::{Case, CaseDoc, CaseError, CaseView};
use crate::envelope::seal::CaseChange;
use crate::envelope::snapshot::SavedCase;
use crate::ids::CaseId;

impl DeviceStore {
    /// Records a new case; durable when this returns.
    pub fn record_intake(&mut self, case: &Case) -> Result<CaseId, StoreError> {
        let (mut doc, change) = CaseDoc::create(case, self.keys.device_id())?;
        let tx = self.conn.transaction()?;
        save_doc(&tx, &self.sealer, case.case_id, &mut doc)?;
        push_outbox(&tx, &self.sealer, case.case_id, &change)?;
        tx.commit()?;
        Ok(case.case_id)
    }

    /// Edits a case with `edit`, which returns the change it made (or
    /// `None` for no change). The new document and the outbox entry commit
    /// together; if `edit` fails, nothing is stored.
    pub fn edit_case<F>(&mut self, id: CaseId, edit: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&mut CaseDoc) -> Result<Option<Vec<u8>>, CaseError>,
    {
        let tx = self.conn.transaction()?;
        let mut doc =
            load_doc(&tx, &self.sealer, id, &self.keys)?.ok_or(StoreError::UnknownCase(id))?;
        let Some(change) = edit(&mut doc)? else {
            return Ok(false);
        };
        save_doc(&tx, &self.sealer, id, &mut doc)?;
        push_outbox(&tx, &self.sealer, id, &change)?;
        tx.commit()?;
        Ok(true)
    }

    /// Reads one case.
    pub fn case(&self, id: CaseId) -> Result<CaseView, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let doc =
            load_doc(&tx, &self.sealer, id, &self.keys)?.ok_or(StoreError::UnknownCase(id))?;
        Ok(doc.read()?)
    }

    /// Finds the case whose id starts with `prefix` (people type short ids).
    pub fn resolve_case_id(&self, prefix: &str) -> Result<CaseId, StoreError> {
        if let Ok(id) = prefix.parse::<CaseId>() {
            return Ok(id);
        }
        let prefix = prefix.trim().to_lowercase();
        let matches: Vec<CaseId> = self
            .cases()?
            .into_iter()
            .map(|v| v.case.case_id)
            .filter(|id| !prefix.is_empty() && id.to_hex().starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(StoreError::NoSuchCase(prefix)),
            _ => Err(StoreError::AmbiguousCase(prefix)),
        }
    }

    /// Every case on this device, oldest first. Read from each case's sealed
    /// view (written with its document), so no document is loaded unless a
    /// view is missing.
    pub fn cases(&self) -> Result<Vec<CaseView>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT case_key, doc_sealed, view_sealed FROM cases")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let mut views = Vec::new();
        for row in rows {
            let (key, doc, view) = row?;
            views.push(self.read_view(&key, &doc, view.as_deref())?);
        }
        views.sort_by(|a, b| {
            (a.case.created_at, a.case.case_id).cmp(&(b.case.created_at, b.case.case_id))
        });
        Ok(views)
    }

    /// A case's view from its sealed view, or from its document when the
    /// row has none (written before views were kept, or not a readable
    /// case, which then fails here as it always did).
    fn read_view(
        &self,
        key: &[u8],
        doc: &[u8],
        view: Option<&[u8]>,
    ) -> Result<CaseView, StoreError> {
        if let Some(sealed) = view {
            let json = self.sealer.open(VIEWS, key, sealed)?;
            if let Ok(view) = serde_json::from_slice(&json) {
                return Ok(view);
            }
        }
        let bytes = self.sealer.open("cases", key, doc)?;
        Ok(CaseDoc::load(&bytes, self.keys.device_id())?.read()?)
    }

    /// Every case document, as saved.
    fn docs(&self) -> Result<Vec<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .open_rows(
                "cases",
                "SELECT case_key, doc_sealed FROM cases",
                [],
                |key: &Vec<u8>| key.clone(),
            )?
            .into_iter()
            .map(|(_, doc)| doc)
            .collect())
    }

    /// Applies changes received from other devices, grouped per case, in
    /// one transaction.
    pub fn apply_changes(&mut self, changes: &[CaseChange]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        apply_in(&tx, &self.sealer, &self.keys, changes)?;
        tx.commit()?;
        Ok(())
    }
}

/// Applies changes as they are, inside an open transaction (the sync
/// engine does not: it checks each envelope's changes first and writes the
/// documents it checked, see [`write_checked_in`]). The Automerge work of
/// each case runs on every core; the database is read and written from
/// this thread only.
pub(crate) fn apply_in(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    keys: &crate::keys::DeviceKeys,
    changes: &[CaseChange],
) -> Result<(), StoreError> {
    let mut by_case: std::collections::BTreeMap<CaseId, Vec<Vec<u8>>> = Default::default();
    for c in changes {
        by_case.entry(c.case).or_default().push(c.change.clone());
    }
    let mut work = by_case
        .into_iter()
        .map(|(id, batch)| Ok((id, batch, load_sealed(tx, sealer, id)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let device = keys.device_id();
    let rows: Vec<Result<SealedCase, StoreError>> =
        on_every_core(&mut work, |(id, batch, held)| {
            let mut doc = match held {
                Some(bytes) => {
                    let mut doc = CaseDoc::load(bytes, device)?;
                    doc.apply_changes(batch)?;
                    doc
                }
                None => CaseDoc::from_changes(batch, device)?,
            };
            Ok(SealedCase::build(sealer, *id, &mut doc))
        });
    for row in rows {
        row?.write(tx)?;
    }
    Ok(())
}

/// A case document checked and updated by the sync engine, with its view,
/// ready to be written.
#[derive(Debug)]
pub struct CheckedCase {
    /// The case.
    pub case: CaseId,
    /// Its document.
    pub doc: CaseDoc,
    /// Its view (`None` if it does not read as a case).
    pub view: Option<CaseView>,
}

/// Writes documents the engine already checked and updated, inside an
/// open transaction (the Automerge work of saving runs on every core).
pub(crate) fn write_checked_in(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    docs: &mut [CheckedCase],
) -> Result<(), StoreError> {
    let rows: Vec<SealedCase> = on_every_core(docs, |c| {
        SealedCase::build_with_view(sealer, c.case, &mut c.doc, c.view.as_ref())
    });
    for row in rows {
        row.write(tx)?;
    }
    Ok(())
}

/// `f` over `items`, split across the machine's cores when there are
/// enough items to be worth a thread; results in the order of `items`.
pub(crate) fn on_every_core<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    const PER_THREAD: usize = 16;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / PER_THREAD)
        .max(1);
    if threads == 1 {
        return items.iter_mut().map(&f).collect();
    }
    let f = &f;
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .map(|part| scope.spawn(move || part.iter_mut().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A case's saved document and its stored view.
pub type HeldCase = (zeroize::Zeroizing<Vec<u8>>, Option<CaseView>);

impl DeviceStore {
    /// A case's document and its stored view, if this device holds it.
    pub fn held_case(&self, id: CaseId) -> Result<Option<HeldCase>, StoreError> {
        let key = case_key(&self.sealer, id);
        let row: Option<(Vec<u8>, Option<Vec<u8>>)> = self
            .conn
            .query_row(
                "SELECT doc_sealed, view_sealed FROM cases WHERE case_key = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((doc, view)) = row else {
            return Ok(None);
        };
        let doc = self.sealer.open("cases", &key, &doc)?;
        let view = match view {
            Some(sealed) => serde_json::from_slice(&self.sealer.open(VIEWS, &key, &sealed)?).ok(),
            None => None,
        };
        Ok(Some((doc, view)))
    }
}

impl DeviceStore {
    /// Every case as its whole saved document, for a snapshot.
    pub fn saved_cases(&self) -> Result<Vec<SavedCase>, StoreError> {
        let mut out = self
            .docs()?
            .into_iter()
            .map(|bytes| {
                let mut doc = CaseDoc::load(&bytes, self.keys.device_id())?;
                Ok(SavedCase {
                    case: doc.case_id()?,
                    doc: doc.save_uncompressed(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|c| c.case);
        Ok(out)
    }
}

pub(super) fn case_key(sealer: &super::Sealer, id: CaseId) -> Vec<u8> {
    sealer.index("case", id.as_bytes())
}

/// The sealing table of case views (beside their documents in `cases`).
pub(super) const VIEWS: &str = "case_views";

/// A case's document, opened, if this device holds it.
fn load_sealed(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
    let key = case_key(sealer, id);
    let sealed: Option<Vec<u8>> = tx
        .query_row(
            "SELECT doc_sealed FROM cases WHERE case_key = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    sealed.map(|s| sealer.open("cases", &key, &s)).transpose()
}

fn load_doc(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
    keys: &crate::keys::DeviceKeys,
) -> Result<Option<CaseDoc>, StoreError> {
    load_sealed(tx, sealer, id)?
        .map(|bytes| Ok(CaseDoc::load(&bytes, keys.device_id())?))
        .transpose()
}

/// A case row ready to write: its document saved and sealed, and its view
/// sealed (none if the document does not read as a case).
struct SealedCase {
    key: Vec<u8>,
    doc: Vec<u8>,
    view: Option<Vec<u8>>,
}

impl SealedCase {
    fn build(sealer: &super::Sealer, id: CaseId, doc: &mut CaseDoc) -> SealedCase {
        let view = doc.read().ok();
        SealedCase::build_with_view(sealer, id, doc, view.as_ref())
    }

    /// As [`SealedCase::build`], with the view already read.
    fn build_with_view(
        sealer: &super::Sealer,
        id: CaseId,
        doc: &mut CaseDoc,
        view: Option<&CaseView>,
    ) -> SealedCase {
        let key = case_key(sealer, id);
        let sealed = sealer.seal("cases", &key, &zeroize::Zeroizing::new(doc.save()));
        let view = view
            .and_then(|view| serde_json::to_vec(view).ok())
            .map(|json| sealer.seal(VIEWS, &key, &zeroize::Zeroizing::new(json)));
        SealedCase {
            key,
            doc: sealed,
            view,
        }
    }

    fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO cases (case_key, doc_sealed, view_sealed) VALUES (?1, ?2, ?3)
             ON CONFLICT (case_key) DO UPDATE
             SET doc_sealed = excluded.doc_sealed, view_sealed = excluded.view_sealed",
            params![self.key, self.doc, self.view],
        )?;
        Ok(())
    }
}

fn save_doc(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
    doc: &mut CaseDoc,
) -> Result<(), StoreError> {
    SealedCase::build(sealer, id, doc).write(tx)
}

pub(super) fn push_outbox(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
    change: &[u8],
) -> Result<(), StoreError> {
    let next: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox", [], |r| {
        r.get(0)
    })?;
    let mut plain = zeroize::Zeroizing::new(id.as_bytes().to_vec());
    plain.extend_from_slice(change);
    let sealed = sealer.seal("outbox", &next.to_be_bytes(), &plain);
    tx.execute(
        "INSERT INTO outbox (id, entry_sealed) VALUES (?1, ?2)",
        params![next, sealed],
    )?;
    Ok(())
}
