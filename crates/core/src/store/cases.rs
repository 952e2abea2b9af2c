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

    /// Every case on this device, oldest first.
    pub fn cases(&self) -> Result<Vec<CaseView>, StoreError> {
        let mut views = self
            .docs()?
            .into_iter()
            .map(|bytes| Ok(CaseDoc::load(&bytes, self.keys.device_id())?.read()?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        views.sort_by(|a, b| {
            (a.case.created_at, a.case.case_id).cmp(&(b.case.created_at, b.case.case_id))
        });
        Ok(views)
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

/// Applies received changes inside an open transaction (the sync engine
/// commits them together with its cursor).
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
    for (id, batch) in by_case {
        let mut doc = match load_doc(tx, sealer, id, keys)? {
            Some(mut doc) => {
                doc.apply_changes(&batch)?;
                doc
            }
            None => CaseDoc::from_changes(&batch, keys.device_id())?,
        };
        save_doc(tx, sealer, id, &mut doc)?;
    }
    Ok(())
}

/// Merges whole documents from a snapshot inside an open transaction.
pub(crate) fn merge_saved_in(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    keys: &crate::keys::DeviceKeys,
    docs: &[SavedCase],
) -> Result<(), StoreError> {
    for saved in docs {
        let mut doc = match load_doc(tx, sealer, saved.case, keys)? {
            Some(mut doc) => {
                doc.merge_saved(&saved.doc)?;
                doc
            }
            None => CaseDoc::load(&saved.doc, keys.device_id())?,
        };
        save_doc(tx, sealer, saved.case, &mut doc)?;
    }
    Ok(())
}

impl DeviceStore {
    /// Every case as its whole saved document, for a snapshot.
    pub fn saved_cases(&self) -> Result<Vec<SavedCase>, StoreError> {
        let mut out = self
            .docs()?
            .into_iter()
            .map(|bytes| {
                let case = CaseDoc::load(&bytes, self.keys.device_id())?.case_id()?;
                Ok(SavedCase {
                    case,
                    doc: bytes.to_vec(),
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

fn load_doc(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
    keys: &crate::keys::DeviceKeys,
) -> Result<Option<CaseDoc>, StoreError> {
    let key = case_key(sealer, id);
    let sealed: Option<Vec<u8>> = tx
        .query_row(
            "SELECT doc_sealed FROM cases WHERE case_key = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    sealed
        .map(|s| {
            let bytes = sealer.open("cases", &key, &s)?;
            Ok(CaseDoc::load(&bytes, keys.device_id())?)
        })
        .transpose()
}

fn save_doc(
    tx: &Transaction<'_>,
    sealer: &super::Sealer,
    id: CaseId,
    doc: &mut CaseDoc,
) -> Result<(), StoreError> {
    let key = case_key(sealer, id);
    let sealed = sealer.seal("cases", &key, &zeroize::Zeroizing::new(doc.save()));
    tx.execute(
        "INSERT INTO cases (case_key, doc_sealed) VALUES (?1, ?2)
         ON CONFLICT (case_key) DO UPDATE SET doc_sealed = excluded.doc_sealed",
        params![key, sealed],
    )?;
    Ok(())
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
