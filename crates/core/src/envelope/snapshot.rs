//! Snapshot payloads: what a snapshot envelope carries inside its
//! encryption (client side).
//!
//! ```text
//! payload   = snapshot id 16 ‖ part u32 ‖ parts u32 ‖ floor epoch u32
//!             ‖ count u32 ‖ [cover]*   ‖ count u32 ‖ [tombstone]*
//!             ‖ count u32 ‖ [label]*   ‖ count u32 ‖ [case]*
//! cover     = device 16 ‖ seq u64 ‖ envelope id 32
//! tombstone = case id 16 ‖ shredding device 16 ‖ at u64 ‖ reason u8
//! label     = device 16 ‖ label (str16)
//! case      = case id 16 ‖ len u32 ‖ Automerge save() of the document
//! ```
//!
//! A snapshot is split into parts (one envelope each) of bounded size;
//! every part repeats the covers, tombstones and labels, so each is
//! complete on its own and only the cases are divided. `covers` names, for
//! each device, the last envelope the snapshot's author had applied: a
//! device whose own envelopes under a retired epoch go beyond its cover
//! republishes their changes under the new epoch.

use crate::error::WireError;
use crate::ids::{CaseId, DeviceId, Digest};
use crate::wire::{Reader, put_bytes16};

/// Why a case was shredded. A code, never free text, so the audit trail
/// that outlives the case cannot carry any of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShredReason {
    /// The survivor withdrew consent to keeping the record.
    ConsentWithdrawn,
    /// The survivor asked to be forgotten.
    SurvivorRequest,
    /// Keeping the record endangers someone.
    SafetyRisk,
    /// The case was recorded by mistake.
    EnteredInError,
    /// The case duplicates another.
    Duplicate,
}

impl ShredReason {
    /// Every reason, in code order.
    pub const ALL: [ShredReason; 5] = [
        ShredReason::ConsentWithdrawn,
        ShredReason::SurvivorRequest,
        ShredReason::SafetyRisk,
        ShredReason::EnteredInError,
        ShredReason::Duplicate,
    ];

    /// The byte that encodes it.
    pub fn code(self) -> u8 {
        match self {
            ShredReason::ConsentWithdrawn => 1,
            ShredReason::SurvivorRequest => 2,
            ShredReason::SafetyRisk => 3,
            ShredReason::EnteredInError => 4,
            ShredReason::Duplicate => 5,
        }
    }

    /// The reason for a code byte.
    pub fn from_code(code: u8) -> Option<ShredReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Its name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            ShredReason::ConsentWithdrawn => "consent-withdrawn",
            ShredReason::SurvivorRequest => "survivor-request",
            ShredReason::SafetyRisk => "safety-risk",
            ShredReason::EnteredInError => "entered-in-error",
            ShredReason::Duplicate => "duplicate",
        }
    }
}

/// The record that a case was shredded: all that remains of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The case.
    pub case: CaseId,
    /// The admin device that shredded it.
    pub by: DeviceId,
    /// When (unix seconds).
    pub at: u64,
    /// Why.
    pub reason: ShredReason,
}

/// The last envelope of a device that a snapshot includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cover {
    /// The device.
    pub device: DeviceId,
    /// Its last envelope applied by the snapshot's author.
    pub seq: u64,
    /// That envelope's id.
    pub id: Digest,
}

/// One case's whole document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCase {
    /// The case.
    pub case: CaseId,
    /// Automerge `save()` of its document.
    pub doc: Vec<u8>,
}

/// One part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Identifies the snapshot all parts belong to.
    pub id: [u8; 16],
    /// This part, from 0.
    pub part: u32,
    /// How many parts the snapshot has.
    pub parts: u32,
    /// The epoch it was published under; older epochs are retired.
    pub floor: u32,
    /// What the author had applied, per device.
    pub covers: Vec<Cover>,
    /// Every case ever shredded in the team.
    pub tombstones: Vec<Tombstone>,
    /// Device labels, so they stay readable once old epoch keys are gone.
    pub labels: Vec<(DeviceId, String)>,
    /// The cases in this part.
    pub cases: Vec<SavedCase>,
}

pub(crate) fn encode(out: &mut Vec<u8>, s: &Snapshot) -> Result<(), WireError> {
    out.extend_from_slice(&s.id);
    out.extend_from_slice(&s.part.to_be_bytes());
    out.extend_from_slice(&s.parts.to_be_bytes());
    out.extend_from_slice(&s.floor.to_be_bytes());
    count(out, s.covers.len())?;
    for c in &s.covers {
        out.extend_from_slice(c.device.as_bytes());
        out.extend_from_slice(&c.seq.to_be_bytes());
        out.extend_from_slice(c.id.as_bytes());
    }
    count(out, s.tombstones.len())?;
    for t in &s.tombstones {
        out.extend_from_slice(t.case.as_bytes());
        out.extend_from_slice(t.by.as_bytes());
        out.extend_from_slice(&t.at.to_be_bytes());
        out.push(t.reason.code());
    }
    count(out, s.labels.len())?;
    for (device, label) in &s.labels {
        out.extend_from_slice(device.as_bytes());
        put_bytes16(out, label.as_bytes())?;
    }
    count(out, s.cases.len())?;
    for c in &s.cases {
        out.extend_from_slice(c.case.as_bytes());
        count(out, c.doc.len())?;
        out.extend_from_slice(&c.doc);
    }
    Ok(())
}

fn count(out: &mut Vec<u8>, n: usize) -> Result<(), WireError> {
    let n = u32::try_from(n).map_err(|_| WireError::FieldTooLong {
        len: n,
        max: u32::MAX as usize,
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// A count read from the input, bounded by what the rest of the input can
/// hold (each item takes at least `min` bytes), so a lie cannot make us
/// allocate.
fn bounded(r: &mut Reader<'_>, min: usize) -> Result<usize, WireError> {
    let n = r.u32()? as usize;
    if n > r.remaining() / min {
        return Err(WireError::CountTooLarge {
            count: n,
            remaining: r.remaining(),
        });
    }
    Ok(n)
}

pub(crate) fn decode(payload: &[u8]) -> Result<Snapshot, WireError> {
    let mut r = Reader::new(payload);
    let id = r.array()?;
    let part = r.u32()?;
    let parts = r.u32()?;
    let floor = r.u32()?;
    let mut covers = Vec::new();
    for _ in 0..bounded(&mut r, 56)? {
        covers.push(Cover {
            device: DeviceId::from_bytes(r.array()?),
            seq: r.u64()?,
            id: Digest::from_bytes(r.array()?),
        });
    }
    let mut tombstones = Vec::new();
    for _ in 0..bounded(&mut r, 41)? {
        let case = CaseId::from_bytes(r.array()?);
        let by = DeviceId::from_bytes(r.array()?);
        let at = r.u64()?;
        let code = r.u8()?;
        let reason = ShredReason::from_code(code).ok_or(WireError::InvalidValue("shred reason"))?;
        tombstones.push(Tombstone {
            case,
            by,
            at,
            reason,
        });
    }
    let mut labels = Vec::new();
    for _ in 0..bounded(&mut r, 18)? {
        let device = DeviceId::from_bytes(r.array()?);
        labels.push((device, r.str16()?.to_owned()));
    }
    let mut cases = Vec::new();
    for _ in 0..bounded(&mut r, 20)? {
        let case = CaseId::from_bytes(r.array()?);
        let len = r.u32()? as usize;
        cases.push(SavedCase {
            case,
            doc: r.take(len)?.to_vec(),
        });
    }
    r.finish()?;
    if parts == 0 || part >= parts {
        return Err(WireError::InvalidValue("snapshot part number"));
    }
    Ok(Snapshot {
        id,
        part,
        parts,
        floor,
        covers,
        tombstones,
        labels,
        cases,
    })
}
