//! One Automerge document per case.
//!
//! The document mirrors the JSON form of [`Case`]: maps for records, lists
//! for referrals, follow-ups and notes, Automerge text for note bodies, and
//! scalars for everything else. The actor id of every change is the
//! writing device's id, so a conflict can say who wrote each value.
//!
//! Concurrent writes to one scalar field are never dropped: [`CaseDoc::read`]
//! returns the deterministic winner in the typed case *and* every competing
//! value in [`CaseView::conflicts`]. Writing the field again resolves it.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::bounded::{self, BoundError, InflateBudget};
use super::fields;
use super::model::{Case, Followup, Note, Referral};
use super::{CaseError, ValidationError};
use crate::ids::{CaseId, DeviceId};
use crate::roster::Role;

const SCHEMA_KEY: &str = "amana_case";
const SCHEMA: i64 = 1;

/// One competing value of a conflicted field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictValue {
    /// The value.
    pub value: Json,
    /// The device that wrote it (when the writer used a device id as actor).
    pub device: Option<DeviceId>,
}

/// A field with concurrent, unresolved values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Dotted path, list items by id (`referrals.ab12.status`).
    pub path: String,
    /// Every value, the one shown in the case first.
    pub values: Vec<ConflictValue>,
}

/// A case as read: the typed record plus any unresolved conflicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseView {
    /// The case, with the deterministic winner of each conflicted field.
    pub case: Case,
    /// Fields with competing values.
    pub conflicts: Vec<Conflict>,
}

/// The Automerge document of one case.
#[derive(Debug)]
pub struct CaseDoc {
    doc: AutoCommit,
}

fn actor_for(device: DeviceId) -> ActorId {
    ActorId::from(device.as_bytes())
}

fn doc_error(e: automerge::AutomergeError) -> CaseError {
    CaseError::Corrupt(e.to_string())
}

impl CaseDoc {
    /// Creates the document of a new case, written by `device`. Returns it
    /// with the bytes of its first change.
    pub fn create(case: &Case, device: DeviceId) -> Result<(CaseDoc, Vec<u8>), CaseError> {
        case.validate()?;
        let json = serde_json::to_value(case).map_err(|e| CaseError::Schema(e.to_string()))?;
        let mut doc = AutoCommit::new().with_actor(actor_for(device));
        doc.put(ROOT, SCHEMA_KEY, SCHEMA).map_err(doc_error)?;
        let Json::Object(map) = json else {
            return Err(CaseError::Schema("case is not a map".into()));
        };
        write_map(&mut doc, &ROOT, &map, "")?;
        let mut this = CaseDoc { doc };
        let change = this.commit()?;
        Ok((this, change))
    }

    /// Loads a saved document; future edits are attributed to `device`.
    pub fn load(bytes: &[u8], device: DeviceId) -> Result<CaseDoc, CaseError> {
        let doc = AutoCommit::load(bytes)
            .map_err(doc_error)?
            .with_actor(actor_for(device));
        Ok(CaseDoc { doc })
    }

    /// Builds a document from changes received from other devices (a case
    /// this device has not seen before).
    pub fn from_changes(changes: &[Vec<u8>], device: DeviceId) -> Result<CaseDoc, CaseError> {
        let mut this = CaseDoc {
            doc: AutoCommit::new().with_actor(actor_for(device)),
        };
        this.apply_changes(changes)?;
        Ok(this)
    }

    /// The compact saved form (how the store keeps it).
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The saved form without Automerge's own column compression: what a
    /// snapshot carries (the envelope deflates it as a whole, and readers
    /// bound what its compressed parts may inflate to).
    pub fn save_uncompressed(&mut self) -> Vec<u8> {
        self.doc.save_nocompress()
    }

    /// Applies a batch of received changes at once (one call per batch: one
    /// call per change is quadratic). Duplicates are ignored.
    pub fn apply_changes(&mut self, changes: &[Vec<u8>]) -> Result<(), CaseError> {
        let decoded = changes
            .iter()
            .map(|bytes| Change::from_bytes(bytes.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaseError::BadChange(e.to_string()))?;
        self.doc
            .apply_changes(decoded)
            .map_err(|e| CaseError::BadChange(e.to_string()))
    }

    /// Applies changes already decoded (the sync engine decodes them to
    /// check their author first).
    pub fn apply_decoded(&mut self, changes: Vec<Change>) -> Result<(), CaseError> {
        self.doc
            .apply_changes(changes)
            .map_err(|e| CaseError::BadChange(e.to_string()))
    }

    /// A copy to try changes on, with the same actor.
    pub fn fork(&mut self) -> CaseDoc {
        let actor = self.doc.get_actor().clone();
        CaseDoc {
            doc: self.doc.fork().with_actor(actor),
        }
    }

    /// Merges a saved document (a snapshot's copy of this case) into this
    /// one; what both hold is kept once.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> Result<(), CaseError> {
        self.doc
            .load_incremental(bytes)
            .map(drop)
            .map_err(|e| CaseError::BadChange(e.to_string()))
    }

    /// Checks a saved document received in a snapshot before it is
    /// accepted: its compressed parts fit `budget` (checked before
    /// Automerge parses anything, [`super::bounded`]), and it loads.
    pub fn check_received_saved(
        bytes: &[u8],
        budget: &mut InflateBudget,
    ) -> Result<(), BoundError> {
        bounded::check_saved(bytes, budget)?;
        AutoCommit::load(bytes)
            .map(drop)
            .map_err(|_| BoundError::Malformed {
                expected: "saved document",
                what: "Automerge does not load it",
            })
    }

    /// Checks a received change before its envelope is accepted (so one
    /// bad change cannot block a whole page): it fits `budget`
    /// ([`super::bounded`]), and it decodes.
    pub fn check_received_change(
        bytes: &[u8],
        budget: &mut InflateBudget,
    ) -> Result<(), BoundError> {
        bounded::check_change(bytes, budget)?;
        Change::from_bytes(bytes.to_vec())
            .map(drop)
            .map_err(|_| BoundError::Malformed {
                expected: "change",
                what: "Automerge does not decode it",
            })
    }

    /// Whether changes this document depends on are still missing.
    pub fn is_incomplete(&mut self) -> bool {
        !self.doc.get_missing_deps(&[]).is_empty()
    }

    /// Reads the typed case and its conflicts.
    pub fn read(&self) -> Result<CaseView, CaseError> {
        match self.doc.get(ROOT, SCHEMA_KEY).map_err(doc_error)? {
            Some((Value::Scalar(v), _)) if v.as_ref() == &ScalarValue::Int(SCHEMA) => {}
            Some(_) => return Err(CaseError::Schema("unknown document version".into())),
            None => return Err(CaseError::Schema("not a case document".into())),
        }
        let mut conflicts = Vec::new();
        let json = read_map(&self.doc, &ROOT, "", &mut conflicts)?;
        let case: Case =
            serde_json::from_value(json).map_err(|e| CaseError::Schema(e.to_string()))?;
        Ok(CaseView { case, conflicts })
    }

    /// Sets one field from what a person typed. Returns the change, or
    /// `None` if the field already held that value without conflict.
    pub fn set_field(&mut self, path: &str, text: &str) -> Result<Option<Vec<u8>>, CaseError> {
        let field = fields::lookup(path)?;
        let value = fields::parse_value(field, path, text)?;
        let view = self.read()?;
        let mut json =
            serde_json::to_value(&view.case).map_err(|e| CaseError::Schema(e.to_string()))?;
        let segments: Vec<&str> = path.split('.').collect();
        let slot = json_slot(&mut json, &segments)?;
        let unchanged = *slot == value && !view.conflicts.iter().any(|c| c.path == path);
        if unchanged {
            return Ok(None);
        }
        *slot = value.clone();
        let updated: Case = serde_json::from_value(json).map_err(|e| {
            CaseError::Invalid(ValidationError::UnknownField {
                path: format!("{path}: {e}"),
            })
        })?;
        updated.validate()?;

        let (obj, key) = self.doc_slot(&segments)?;
        match value {
            Json::Null => self.doc.delete(&obj, key).map_err(doc_error)?,
            other => self
                .doc
                .put(&obj, key, scalar(&other)?)
                .map_err(doc_error)?,
        }
        self.commit().map(Some)
    }

    /// Adds a referral. A consent override may only be recorded by an
    /// office device.
    pub fn add_referral(&mut self, referral: &Referral, role: Role) -> Result<Vec<u8>, CaseError> {
        let mut case = self.read()?.case;
        let consented = case.consent.recipients.get(referral.recipient).given;
        if !consented && referral.consent_override.is_some() && !role.is_office() {
            return Err(ValidationError::OverrideRequiresOffice.into());
        }
        case.referrals.push(referral.clone());
        case.validate()?;
        self.append_item("referrals", referral)
    }

    /// Adds a follow-up.
    pub fn add_followup(&mut self, followup: &Followup) -> Result<Vec<u8>, CaseError> {
        let mut case = self.read()?.case;
        case.followups.push(followup.clone());
        case.validate()?;
        self.append_item("followups", followup)
    }

    /// Adds a note.
    pub fn add_note(&mut self, note: &Note) -> Result<Vec<u8>, CaseError> {
        self.append_item("notes", note)
    }

    /// Replaces a note's text; the edit is recorded as character splices so
    /// that concurrent edits of the same note merge.
    pub fn edit_note(&mut self, note_id: &str, text: &str) -> Result<Vec<u8>, CaseError> {
        let (item, _) = self.find_item("notes", note_id)?;
        let text_obj = match self.doc.get(&item, "text").map_err(doc_error)? {
            Some((Value::Object(ObjType::Text), id)) => id,
            _ => return Err(CaseError::Schema("note without text".into())),
        };
        self.doc.update_text(&text_obj, text).map_err(doc_error)?;
        self.commit()
    }

    fn append_item<T: Serialize>(
        &mut self,
        list: &'static str,
        item: &T,
    ) -> Result<Vec<u8>, CaseError> {
        let Json::Object(map) =
            serde_json::to_value(item).map_err(|e| CaseError::Schema(e.to_string()))?
        else {
            return Err(CaseError::Schema("list item is not a map".into()));
        };
        let list_obj = match self.doc.get(ROOT, list).map_err(doc_error)? {
            Some((Value::Object(ObjType::List), id)) => id,
            _ => self
                .doc
                .put_object(ROOT, list, ObjType::List)
                .map_err(doc_error)?,
        };
        let at = self.doc.length(&list_obj);
        let obj = self
            .doc
            .insert_object(&list_obj, at, ObjType::Map)
            .map_err(doc_error)?;
        write_map(&mut self.doc, &obj, &map, &format!("{list}.*"))?;
        self.commit()
    }

    /// Finds the map of the list item with `id`.
    fn find_item(&self, list: &'static str, id: &str) -> Result<(ObjId, usize), CaseError> {
        let unknown = || ValidationError::UnknownItem {
            list,
            id: id.chars().take(40).collect(),
        };
        let Some((Value::Object(ObjType::List), list_obj)) =
            self.doc.get(ROOT, list).map_err(doc_error)?
        else {
            return Err(unknown().into());
        };
        for index in 0..self.doc.length(&list_obj) {
            if let Some((Value::Object(ObjType::Map), item)) =
                self.doc.get(&list_obj, index).map_err(doc_error)?
                && let Some((Value::Scalar(v), _)) = self.doc.get(&item, "id").map_err(doc_error)?
                && v.as_str() == Some(id)
            {
                return Ok((item, index));
            }
        }
        Err(unknown().into())
    }

    /// The map object and key that a field path names in the document.
    fn doc_slot<'p>(&mut self, segments: &[&'p str]) -> Result<(ObjId, &'p str), CaseError> {
        let (key, parents) = segments
            .split_last()
            .ok_or_else(|| CaseError::Schema("empty path".into()))?;
        let mut obj = ROOT;
        let mut i = 0;
        while i < parents.len() {
            let seg = parents[i];
            if seg == "referrals" || seg == "followups" {
                let list: &'static str = if seg == "referrals" {
                    "referrals"
                } else {
                    "followups"
                };
                let id = parents.get(i + 1).copied().unwrap_or_default();
                obj = self.find_item(list, id)?.0;
                i += 2;
                continue;
            }
            obj = match self.doc.get(&obj, seg).map_err(doc_error)? {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => self
                    .doc
                    .put_object(&obj, seg, ObjType::Map)
                    .map_err(doc_error)?,
            };
            i += 1;
        }
        Ok((obj, key))
    }

    fn commit(&mut self) -> Result<Vec<u8>, CaseError> {
        self.doc.commit();
        self.doc
            .get_last_local_change()
            .map(|c| c.raw_bytes().to_vec())
            .ok_or_else(|| CaseError::Corrupt("no change was recorded".into()))
    }

    /// The device that wrote the document's first change (whoever
    /// recorded the intake), if its actor is a device id.
    pub fn creator(&mut self) -> Option<DeviceId> {
        let first = self.doc.get_changes(&[]).into_iter().next()?;
        DeviceId::from_slice(first.actor_id().to_bytes()).ok()
    }

    /// The case id recorded in the document.
    pub fn case_id(&self) -> Result<CaseId, CaseError> {
        Ok(self.read()?.case.case_id)
    }

    /// When the case was created (for sorting lists).
    pub fn created_at(&self) -> Result<DateTime<Utc>, CaseError> {
        Ok(self.read()?.case.created_at)
    }
}

/// Navigates the JSON form of a case to the value a path names.
fn json_slot<'a>(json: &'a mut Json, segments: &[&str]) -> Result<&'a mut Json, CaseError> {
    let mut cur = json;
    let mut i = 0;
    while i < segments.len() {
        let seg = segments[i];
        cur = match cur {
            Json::Object(map) => map.entry(seg.to_owned()).or_insert(Json::Null),
            Json::Array(items) => {
                let list: &'static str = if segments.first() == Some(&"referrals") {
                    "referrals"
                } else {
                    "followups"
                };
                items
                    .iter_mut()
                    .find(|item| item.get("id").and_then(Json::as_str) == Some(seg))
                    .ok_or_else(|| ValidationError::UnknownItem {
                        list,
                        id: seg.chars().take(40).collect(),
                    })?
            }
            _ => return Err(CaseError::Schema(format!("cannot descend into {seg}"))),
        };
        i += 1;
    }
    Ok(cur)
}

fn scalar(value: &Json) -> Result<ScalarValue, CaseError> {
    Ok(match value {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or_default()),
        },
        Json::Null => ScalarValue::Null,
        Json::Array(_) | Json::Object(_) => {
            return Err(CaseError::Schema(
                "nested value where a scalar belongs".into(),
            ));
        }
    })
}

/// Writes a JSON map into a document map. `path` is the pattern of `obj`
/// (list items as `*`), used to make note bodies Automerge text.
fn write_map(
    doc: &mut AutoCommit,
    obj: &ObjId,
    map: &Map<String, Json>,
    path: &str,
) -> Result<(), CaseError> {
    for (key, value) in map {
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Json::Null => {}
            Json::Object(inner) => {
                let child = doc
                    .put_object(obj, key.as_str(), ObjType::Map)
                    .map_err(doc_error)?;
                write_map(doc, &child, inner, &child_path)?;
            }
            Json::Array(items) => {
                let list = doc
                    .put_object(obj, key.as_str(), ObjType::List)
                    .map_err(doc_error)?;
                for (i, item) in items.iter().enumerate() {
                    let Json::Object(inner) = item else {
                        return Err(CaseError::Schema(format!(
                            "{child_path} holds a non-record"
                        )));
                    };
                    let child = doc
                        .insert_object(&list, i, ObjType::Map)
                        .map_err(doc_error)?;
                    write_map(doc, &child, inner, &format!("{child_path}.*"))?;
                }
            }
            Json::String(text) if child_path == "notes.*.text" => {
                let t = doc
                    .put_object(obj, key.as_str(), ObjType::Text)
                    .map_err(doc_error)?;
                doc.splice_text(&t, 0, 0, text).map_err(doc_error)?;
            }
            other => {
                doc.put(obj, key.as_str(), scalar(other)?)
                    .map_err(doc_error)?;
            }
        }
    }
    Ok(())
}

fn to_json(
    doc: &AutoCommit,
    value: &Value<'_>,
    id: &ObjId,
    path: &str,
    conflicts: &mut Vec<Conflict>,
) -> Result<Json, CaseError> {
    Ok(match value {
        Value::Object(ObjType::Map | ObjType::Table) => read_map(doc, id, path, conflicts)?,
        Value::Object(ObjType::List) => {
            let mut items = Vec::new();
            for i in 0..doc.length(id) {
                if let Some((v, item_id)) = doc.get(id, i).map_err(doc_error)? {
                    let item_path = format!("{path}.{}", item_label(doc, &item_id, i));
                    items.push(to_json(doc, &v, &item_id, &item_path, conflicts)?);
                }
            }
            Json::Array(items)
        }
        Value::Object(ObjType::Text) => Json::String(doc.text(id).map_err(doc_error)?),
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(t) => Json::String(t.to_string()),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            ScalarValue::Int(i) => Json::from(*i),
            ScalarValue::Uint(u) => Json::from(*u),
            ScalarValue::F64(f) => Json::from(*f),
            ScalarValue::Timestamp(t) => Json::from(*t),
            ScalarValue::Null => Json::Null,
            other => {
                return Err(CaseError::Schema(format!(
                    "unsupported value at {path}: {other:?}"
                )));
            }
        },
    })
}

/// How a list item is named in a path: its id, or its index if it has none.
fn item_label(doc: &AutoCommit, item: &ObjId, index: usize) -> String {
    match doc.get(item, "id") {
        Ok(Some((Value::Scalar(v), _))) => v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| index.to_string()),
        _ => index.to_string(),
    }
}

fn writer(id: &ObjId) -> Option<DeviceId> {
    match id {
        ObjId::Id(_, actor, _) => DeviceId::from_slice(actor.to_bytes()).ok(),
        ObjId::Root => None,
    }
}

fn read_map(
    doc: &AutoCommit,
    obj: &ObjId,
    path: &str,
    conflicts: &mut Vec<Conflict>,
) -> Result<Json, CaseError> {
    let mut out = Map::new();
    // One pass over the map (a lookup per key costs far more); the
    // conflicting values are fetched only where the map flags a conflict.
    for item in doc.map_range(obj, ..) {
        let key = item.key.to_string();
        if path.is_empty() && key == SCHEMA_KEY {
            continue;
        }
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let winner_id = item.id();
        let winner = item.value.into_value();
        let value = to_json(doc, &winner, &winner_id, &child_path, conflicts)?;
        if item.conflict {
            let all = doc.get_all(obj, key.as_str()).map_err(doc_error)?;
            let mut values = vec![ConflictValue {
                value: value.clone(),
                device: writer(&winner_id),
            }];
            for (v, id) in &all {
                if id != &winner_id {
                    let mut ignored = Vec::new();
                    values.push(ConflictValue {
                        value: to_json(doc, v, id, &child_path, &mut ignored)?,
                        device: writer(id),
                    });
                }
            }
            conflicts.push(Conflict {
                path: child_path,
                values,
            });
        }
        out.insert(key, value);
    }
    Ok(Json::Object(out))
}
