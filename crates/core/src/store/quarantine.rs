//! Refused envelopes, kept as evidence within bounds a relay cannot push.
//!
//! Every refused envelope is kept (sealed) with its record (`code:
//! message`), but a hostile relay serves refusals without end and a device
//! whose disk fills cannot record intakes. So the quarantine is bounded,
//! and what leaves it is summarised, never silently dropped:
//!
//! - at most [`KEEP_WHOLE_BYTES`] of whole envelopes; past it the oldest
//!   are reduced to their stub (header, signature and the body's hash:
//!   still proof of who signed what);
//! - at most [`KEEP_ROWS`] rows; past it the oldest are removed and
//!   counted, by code, in a summary that `amana status` shows.
//!
//! Both take evidence nobody signed first, then what the relay can make
//! from genuine envelopes (replays, gaps: [`Vouched::RelayMade`]), and only
//! then what an author did or a fork shows ([`Vouched::Author`]): a relay
//! cannot flush that out by re-serving envelopes.
//!
//! Listings are paged ([`DeviceStore::quarantined_page`]).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{DeviceStore, Sealer, StoreError};
use crate::envelope::{HEADER_LEN, SIGNATURE_LEN, STUB_LEN};
use crate::ids::Digest;

/// Most bytes of whole envelopes kept.
pub const KEEP_WHOLE_BYTES: i64 = 16 * 1024 * 1024;
/// Most rows kept (whole or reduced to a stub).
pub const KEEP_ROWS: i64 = 2_000;
const SUMMARY: &str = "quarantine_summary";

/// An envelope refused by a client-side check, kept for inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedEnvelope {
    /// Position in the quarantine.
    pub id: i64,
    /// The refusal's stable code (`bad_signature`, `gap`, …; see
    /// `crate::sync::Rejection::code`).
    pub code: String,
    /// Why it was refused, in words.
    pub reason: String,
    /// The envelope bytes as received, or (when `whole` is false) its
    /// stub: the first header and signature bytes and the SHA-256 of the
    /// rest.
    pub envelope: Vec<u8>,
    /// Whether `envelope` is whole.
    pub whole: bool,
    /// Who vouches for it.
    pub vouched: Vouched,
}

/// Who vouches for a quarantined envelope, which decides what leaves the
/// quarantine first when it is full (stored in the `signed` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Vouched {
    /// No roster device's signature: junk a relay makes for free.
    Nobody = 0,
    /// Signed, but refused for what the relay did with it (a replay, a
    /// gap, a dropped body, a withheld roster): a relay re-serving genuine
    /// envelopes makes as many as it likes.
    RelayMade = 1,
    /// Refused for its author's sake, or evidence of a fork: what the
    /// office must see.
    Author = 2,
}

impl Vouched {
    fn from_column(value: i64) -> Vouched {
        match value {
            0 => Vouched::Nobody,
            1 => Vouched::RelayMade,
            _ => Vouched::Author,
        }
    }
}

/// The evidence removed from the quarantine to keep it within bounds:
/// how many rows of each code.
pub type QuarantineSummary = BTreeMap<String, u64>;

impl DeviceStore {
    /// Keeps a refused envelope with its record (`code: message`).
    pub fn quarantine(
        &mut self,
        envelope: &[u8],
        reason: &str,
        vouched: Vouched,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        quarantine_in(&tx, &self.sealer, envelope, reason, vouched)?;
        tx.commit()?;
        Ok(())
    }

    /// Number of quarantined envelopes kept, and of those summarised away.
    pub fn quarantine_len(&self) -> Result<(u64, u64), StoreError> {
        let kept: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))?;
        let summarised = self.quarantine_summary()?.values().sum();
        Ok((kept as u64, summarised))
    }

    /// At most `limit` quarantined envelopes after position `after`, oldest
    /// first.
    pub fn quarantined_page(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<QuarantinedEnvelope>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, entry_sealed, whole, signed FROM quarantine
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sealed, whole, signed) = row?;
            let plain = self.sealer.open("quarantine", &id.to_be_bytes(), &sealed)?;
            let (record, envelope) = split_entry(&plain)?;
            let (code, reason) = record.split_once(": ").unwrap_or(("unknown", &record));
            out.push(QuarantinedEnvelope {
                id,
                code: code.to_owned(),
                reason: reason.to_owned(),
                envelope: envelope.to_vec(),
                whole,
                vouched: Vouched::from_column(signed),
            });
        }
        Ok(out)
    }

    /// What was summarised away, by code.
    pub fn quarantine_summary(&self) -> Result<QuarantineSummary, StoreError> {
        read_summary(&self.conn, &self.sealer)
    }
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("quarantine record unreadable".into())
}

fn entry(record: &str, envelope: &[u8]) -> Vec<u8> {
    let mut plain = (record.len() as u32).to_be_bytes().to_vec();
    plain.extend_from_slice(record.as_bytes());
    plain.extend_from_slice(envelope);
    plain
}

fn split_entry(plain: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let (len, rest) = plain.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let (record, envelope) = rest
        .split_at_checked(u32::from_be_bytes(*len) as usize)
        .ok_or_else(corrupt)?;
    Ok((String::from_utf8_lossy(record).into_owned(), envelope))
}

/// The stub of envelope bytes: header and signature, and the SHA-256 of
/// the rest (for an envelope, exactly its stub form).
fn reduce(envelope: &[u8]) -> Vec<u8> {
    let prefix = HEADER_LEN + SIGNATURE_LEN;
    if envelope.len() <= STUB_LEN {
        return envelope.to_vec();
    }
    let mut out = envelope[..prefix].to_vec();
    out.extend_from_slice(Digest::of(&envelope[prefix..]).as_bytes());
    out
}

/// Keeps one refused envelope, then brings the quarantine back within its
/// bounds (inside the caller's transaction).
pub(super) fn quarantine_in(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    envelope: &[u8],
    record: &str,
    vouched: Vouched,
) -> Result<(), StoreError> {
    let next: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM quarantine", [], |r| {
        r.get(0)
    })?;
    let sealed = sealer.seal("quarantine", &next.to_be_bytes(), &entry(record, envelope));
    tx.execute(
        "INSERT INTO quarantine (id, entry_sealed, whole, signed) VALUES (?1, ?2, 1, ?3)",
        params![next, sealed, vouched as i64],
    )?;
    reduce_oldest(tx, sealer)?;
    summarise_oldest(tx, sealer)
}

/// Reduces the oldest whole envelopes (unsigned first) to stubs until the
/// whole ones fit [`KEEP_WHOLE_BYTES`].
fn reduce_oldest(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    loop {
        let whole: i64 = tx.query_row(
            "SELECT COALESCE(SUM(length(entry_sealed)), 0) FROM quarantine WHERE whole = 1",
            [],
            |r| r.get(0),
        )?;
        if whole <= KEEP_WHOLE_BYTES {
            return Ok(());
        }
        let Some((id, sealed)) = tx
            .query_row(
                "SELECT id, entry_sealed FROM quarantine WHERE whole = 1
                 ORDER BY signed, id LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
        else {
            return Ok(());
        };
        let plain = sealer.open("quarantine", &id.to_be_bytes(), &sealed)?;
        let (record, envelope) = split_entry(&plain)?;
        let reduced = sealer.seal(
            "quarantine",
            &id.to_be_bytes(),
            &entry(&record, &reduce(envelope)),
        );
        tx.execute(
            "UPDATE quarantine SET entry_sealed = ?2, whole = 0 WHERE id = ?1",
            params![id, reduced],
        )?;
    }
}

/// Removes the oldest rows (unsigned first) beyond [`KEEP_ROWS`], counting
/// each in the summary by its code.
fn summarise_oldest(tx: &Transaction<'_>, sealer: &Sealer) -> Result<(), StoreError> {
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))?;
    if rows <= KEEP_ROWS {
        return Ok(());
    }
    let mut summary = read_summary(tx, sealer)?;
    let mut stmt =
        tx.prepare("SELECT id, entry_sealed FROM quarantine ORDER BY signed, id LIMIT ?1")?;
    let oldest = stmt
        .query_map([rows - KEEP_ROWS], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, sealed) in oldest {
        let plain = sealer.open("quarantine", &id.to_be_bytes(), &sealed)?;
        let (record, _) = split_entry(&plain)?;
        let code = record.split_once(": ").map_or("unknown", |(c, _)| c);
        *summary.entry(code.to_owned()).or_default() += 1;
        tx.execute("DELETE FROM quarantine WHERE id = ?1", [id])?;
    }
    let encoded = serde_json::to_vec(&summary).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    super::put_meta_in(tx, sealer, SUMMARY, &encoded)
}

fn read_summary(
    conn: &rusqlite::Connection,
    sealer: &Sealer,
) -> Result<QuarantineSummary, StoreError> {
    match super::meta_in(conn, sealer, SUMMARY)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| corrupt()),
        None => Ok(QuarantineSummary::new()),
    }
}

#[cfg(test)]
mod tests;
