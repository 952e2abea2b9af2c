//! Integrity alarms on the device: what a sync (or enrolment, or an admin
//! operation) detected that may be an attack, kept until an admin device
//! acknowledges it.
//!
//! An alarm is recorded where it is detected, in the same transaction as
//! what detecting it changed (a pulled page and its evidence commit with
//! the alarm), so no later error, crash or restart can lose it. The same
//! detection repeated while the alarm is open updates that alarm (its last
//! sighting and message) instead of adding another; once acknowledged, a
//! new detection raises a new alarm.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::{DeviceStore, StoreError};
use crate::ids::DeviceId;

/// An alarm's id: random, chosen by the device that raised it; it names
/// the alarm in reports and acknowledgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlarmId(#[serde(with = "hex_bytes")] pub [u8; 16]);

impl AlarmId {
    /// A fresh id.
    pub fn random() -> Self {
        AlarmId(crate::random::bytes())
    }

    /// Hex, as shown and typed.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for AlarmId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("an alarm id is 32 hex digits"))
    }
}

/// What was detected, before it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlarm {
    /// Stable code (`fork_witnessed`, `roster_withheld`, …; listed in
    /// `docs/auditor-guide.md`).
    pub code: String,
    /// The device whose log or request it concerns, if one.
    pub device: Option<DeviceId>,
    /// The seq it concerns, if one.
    pub seq: Option<u64>,
    /// What happened, in words (no case content ever).
    pub message: String,
}

/// Who acknowledged an alarm, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The admin device.
    pub by: DeviceId,
    /// When (unix seconds).
    pub at: u64,
}

/// A recorded alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its id.
    pub id: AlarmId,
    /// The device that raised it.
    pub raised_by: DeviceId,
    /// Stable code.
    pub code: String,
    /// The device it concerns.
    pub device: Option<DeviceId>,
    /// The seq it concerns.
    pub seq: Option<u64>,
    /// What happened (the latest sighting's words).
    pub message: String,
    /// First seen (unix seconds, the raising device's clock).
    pub first_seen: u64,
    /// Last seen.
    pub last_seen: u64,
    /// How many times it was seen while open.
    pub sightings: u32,
    /// Whether this device has sent it to the office in an envelope.
    pub reported: bool,
    /// Set once an admin device acknowledged it.
    pub acknowledged: Option<Acknowledgement>,
}

impl Alarm {
    /// Whether it is still raised.
    pub fn is_open(&self) -> bool {
        self.acknowledged.is_none()
    }
}

/// A stored alarm and its row.
type Row = (i64, Alarm);

fn read_all(conn: &Connection, sealer: &super::Sealer) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, entry_sealed FROM alarms ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sealed) = row?;
        let plain = sealer.open("alarms", &id.to_be_bytes(), &sealed)?;
        let alarm: Alarm = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Corrupt("an alarm record is unreadable".into()))?;
        out.push((id, alarm));
    }
    Ok(out)
}

fn write(
    conn: &Connection,
    sealer: &super::Sealer,
    row: i64,
    alarm: &Alarm,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(alarm).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sealed = sealer.seal("alarms", &row.to_be_bytes(), &json);
    conn.execute(
        "INSERT INTO alarms (id, entry_sealed) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET entry_sealed = excluded.entry_sealed",
        params![row, sealed],
    )?;
    Ok(())
}

/// Records `new`, raised by `raised_by` at `now`, on `conn` (the store's
/// connection or an open transaction): an open alarm of the same device,
/// code, subject and seq is updated; otherwise a new one is added.
/// Returns its id.
pub(super) fn raise_in(
    conn: &Connection,
    sealer: &super::Sealer,
    raised_by: DeviceId,
    new: &NewAlarm,
    now: u64,
) -> Result<AlarmId, StoreError> {
    let rows = read_all(conn, sealer)?;
    if let Some((row, mut open)) = rows.into_iter().find(|(_, a)| {
        a.is_open()
            && a.raised_by == raised_by
            && a.code == new.code
            && a.device == new.device
            && a.seq == new.seq
    }) {
        open.last_seen = open.last_seen.max(now);
        open.sightings = open.sightings.saturating_add(1);
        open.message.clone_from(&new.message);
        write(conn, sealer, row, &open)?;
        return Ok(open.id);
    }
    let next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM alarms", [], |r| {
        r.get(0)
    })?;
    let alarm = Alarm {
        id: AlarmId::random(),
        raised_by,
        code: new.code.clone(),
        device: new.device,
        seq: new.seq,
        message: new.message.clone(),
        first_seen: now,
        last_seen: now,
        sightings: 1,
        reported: false,
        acknowledged: None,
    };
    write(conn, sealer, next, &alarm)?;
    Ok(alarm.id)
}

impl DeviceStore {
    /// Records an alarm this device detected (see [`raise_in`]).
    pub fn raise_alarm(&mut self, new: &NewAlarm, now: u64) -> Result<AlarmId, StoreError> {
        let tx = self.conn.transaction()?;
        let id = raise_in(&tx, &self.sealer, self.keys.device_id(), new, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Every alarm this device holds, oldest first: its own, and on an
    /// admin device those other devices reported.
    pub fn alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        Ok(read_all(&self.conn, &self.sealer)?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// The alarms still raised.
    pub fn open_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        Ok(self.alarms()?.into_iter().filter(Alarm::is_open).collect())
    }

    /// This device's own alarms not yet reported to the office.
    pub fn unreported_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        let me = self.keys.device_id();
        Ok(self
            .alarms()?
            .into_iter()
            .filter(|a| a.raised_by == me && !a.reported)
            .collect())
    }

    /// Marks this device's alarms `ids` as reported.
    pub fn mark_alarms_reported(&mut self, ids: &[AlarmId]) -> Result<(), StoreError> {
        self.update_alarms(|a| {
            if ids.contains(&a.id) && !a.reported {
                a.reported = true;
                true
            } else {
                false
            }
        })
    }

    /// Keeps alarms another device reported (on an admin device): one
    /// record per (raising device, id), updated if seen again.
    pub fn keep_reported_alarms(&mut self, reported: &[Alarm]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        keep_reported_in(&tx, &self.sealer, reported)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks the alarms `(raising device, id)` acknowledged by admin
    /// device `by` at `at`. Returns how many were open.
    pub fn acknowledge_alarms(
        &mut self,
        which: &[(DeviceId, AlarmId)],
        by: DeviceId,
        at: u64,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = acknowledge_in(&tx, &self.sealer, which, by, at)?;
        tx.commit()?;
        Ok(n)
    }

    fn update_alarms(
        &mut self,
        mut change: impl FnMut(&mut Alarm) -> bool,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (row, mut alarm) in read_all(&tx, &self.sealer)? {
            if change(&mut alarm) {
                write(&tx, &self.sealer, row, &alarm)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// See [`DeviceStore::keep_reported_alarms`], on an open transaction.
pub(super) fn keep_reported_in(
    conn: &Connection,
    sealer: &super::Sealer,
    reported: &[Alarm],
) -> Result<(), StoreError> {
    let rows = read_all(conn, sealer)?;
    let mut next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM alarms", [], |r| {
        r.get(0)
    })?;
    for alarm in reported {
        match rows
            .iter()
            .find(|(_, a)| a.raised_by == alarm.raised_by && a.id == alarm.id)
        {
            Some((row, held)) => {
                let mut updated = alarm.clone();
                updated.acknowledged = held.acknowledged;
                updated.reported = true;
                write(conn, sealer, *row, &updated)?;
            }
            None => {
                let mut kept = alarm.clone();
                kept.reported = true;
                write(conn, sealer, next, &kept)?;
                next += 1;
            }
        }
    }
    Ok(())
}

/// See [`DeviceStore::acknowledge_alarms`], on an open transaction.
pub(super) fn acknowledge_in(
    conn: &Connection,
    sealer: &super::Sealer,
    which: &[(DeviceId, AlarmId)],
    by: DeviceId,
    at: u64,
) -> Result<usize, StoreError> {
    let mut acknowledged = 0;
    for (row, mut alarm) in read_all(conn, sealer)? {
        if alarm.is_open() && which.contains(&(alarm.raised_by, alarm.id)) {
            alarm.acknowledged = Some(Acknowledgement { by, at });
            write(conn, sealer, row, &alarm)?;
            acknowledged += 1;
        }
    }
    Ok(acknowledged)
}
