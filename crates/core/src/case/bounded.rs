//! What Automerge may inflate, checked before a received change or saved
//! document reaches it.
//!
//! Automerge 0.12 inflates a compressed change chunk, and every compressed
//! column of a document chunk, with an unbounded `read_to_end`: a few
//! kilobytes from anyone holding a writer key (a stolen tablet before its
//! revocation) would make every reading device allocate gigabytes, on
//! every sync, before the page commits. So every chunk is read here first,
//! following the storage format of the Automerge binary specification:
//!
//! ```text
//! chunk    = magic 85 6f 4a 83 ‖ checksum 4 ‖ type u8 ‖ length uLEB ‖ data
//! type     = 0 document · 1 change · 2 compressed change · 3 bundle
//! document = actors (uLEB count ‖ [uLEB len ‖ bytes]*) ‖ heads (uLEB count ‖ [32]*)
//!            ‖ change columns (uLEB count ‖ [uLEB spec ‖ uLEB len]*)
//!            ‖ op columns (same) ‖ change column data ‖ op column data ‖ head indices
//! ```
//!
//! A compressed change, and each column whose spec has the deflate bit, is
//! inflated into a counting sink that stops one byte past what the
//! [`InflateBudget`] has left: nothing is kept, so the check itself needs a
//! fixed few kilobytes whatever the chunk claims. A chunk that passes is
//! then parsed by Automerge, which inflates the same bytes to the same
//! length. A change chunk (type 1) carries no compressed column (Automerge
//! refuses them there). Bundles are refused: Amana never writes them.

use std::io::Read;

use flate2::read::DeflateDecoder;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
/// The bit of a column spec that marks its data as deflated.
const DEFLATE_BIT: u64 = 0b1000;
const HASH_LEN: u64 = 32;

/// Why received Automerge bytes are refused before Automerge parses them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BoundError {
    /// Its compressed parts inflate beyond what the envelope may expand to.
    #[error("its compressed parts inflate to more than the {limit} bytes its envelope allows")]
    TooLarge {
        /// The envelope's inflation budget, in bytes.
        limit: usize,
    },
    /// Its columns declare more items (operations and their parts) than
    /// the envelope's size allows: a few bytes claiming 2^40 operations.
    #[error("its columns declare more than the {limit} items its envelope allows")]
    TooManyItems {
        /// The envelope's item budget.
        limit: u64,
    },
    /// Not an Automerge chunk of the expected kind.
    #[error("not an Automerge {expected}: {what}")]
    Malformed {
        /// "change" or "saved document".
        expected: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}

/// What the Automerge chunks of one envelope may still cost: bytes to
/// inflate, and column items (operations and their parts) to decode. One
/// budget is shared by all its changes or documents, so a hundred small
/// bombs cost what one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateBudget {
    left: usize,
    limit: usize,
    items_left: u64,
    items: u64,
}

/// Column items an envelope may declare per byte of its body...
pub const ITEMS_PER_BYTE: u64 = 256;
/// ... and at least, and at most.
pub const ITEMS_FLOOR: u64 = 1 << 20;
/// See [`ITEMS_FLOOR`].
pub const ITEMS_CAP: u64 = 16 << 20;

impl InflateBudget {
    /// A budget of `limit` bytes to inflate and `items` column items.
    pub fn new(limit: usize, items: u64) -> Self {
        InflateBudget {
            left: limit,
            limit,
            items_left: items,
            items,
        }
    }

    /// The budget of an envelope whose body is `body_len` bytes and whose
    /// plaintext left `inflate_left` of its inflation limit.
    pub fn for_envelope(inflate_left: usize, body_len: usize) -> Self {
        let items = (body_len as u64)
            .saturating_mul(ITEMS_PER_BYTE)
            .clamp(ITEMS_FLOOR, ITEMS_CAP);
        InflateBudget::new(inflate_left, items)
    }

    /// Bytes left to inflate.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Column items left.
    pub fn items_left(&self) -> u64 {
        self.items_left
    }

    /// Inflates `data` (raw deflate), at most what is left, spending what
    /// it inflates to.
    fn inflate(&mut self, data: &[u8], expected: &'static str) -> Result<Vec<u8>, BoundError> {
        let mut out = Vec::new();
        DeflateDecoder::new(data)
            .take(self.left as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| BoundError::Malformed {
                expected,
                what: "a compressed part does not inflate",
            })?;
        if out.len() > self.left {
            return Err(BoundError::TooLarge { limit: self.limit });
        }
        self.left -= out.len();
        Ok(out)
    }

    fn count(&mut self, n: u64) -> Result<(), BoundError> {
        self.items_left = self
            .items_left
            .checked_sub(n)
            .ok_or(BoundError::TooManyItems { limit: self.items })?;
        Ok(())
    }
}

/// Checks one encoded change: a single change chunk, or a compressed
/// change whose inflated size fits the budget, and whose columns declare
/// no more items than the budget allows.
pub fn check_change(bytes: &[u8], budget: &mut InflateBudget) -> Result<(), BoundError> {
    const WHAT: &str = "change";
    let mut input = Input {
        bytes,
        expected: WHAT,
    };
    let (kind, data) = input.chunk()?;
    if !input.bytes.is_empty() {
        return Err(input.malformed("bytes after the change"));
    }
    match kind {
        CHANGE => change_columns(data, budget),
        COMPRESSED_CHANGE => {
            let inflated = budget.inflate(data, WHAT)?;
            change_columns(&inflated, budget)
        }
        _ => Err(input.malformed("a chunk that is not a change")),
    }
}

/// Checks a saved document: one or more document, change or compressed
/// change chunks whose compressed parts together fit the budget, as do the
/// items their columns declare.
pub fn check_saved(bytes: &[u8], budget: &mut InflateBudget) -> Result<(), BoundError> {
    const WHAT: &str = "saved document";
    let mut input = Input {
        bytes,
        expected: WHAT,
    };
    if input.bytes.is_empty() {
        return Err(input.malformed("no chunk"));
    }
    while !input.bytes.is_empty() {
        let (kind, data) = input.chunk()?;
        match kind {
            DOCUMENT => document_columns(data, budget)?,
            CHANGE => change_columns(data, budget)?,
            COMPRESSED_CHANGE => {
                let inflated = budget.inflate(data, WHAT)?;
                change_columns(&inflated, budget)?;
            }
            _ => return Err(input.malformed("a chunk Amana does not accept (a bundle)")),
        }
    }
    Ok(())
}

/// The body of a change chunk: its header fields, then its op columns,
/// whose items are counted (a change carries no compressed column).
fn change_columns(data: &[u8], budget: &mut InflateBudget) -> Result<(), BoundError> {
    let mut input = Input {
        bytes: data,
        expected: "change",
    };
    let deps = input.uleb()?;
    input.take(
        deps.checked_mul(HASH_LEN)
            .ok_or(input.malformed("too many dependencies"))?,
    )?;
    let actor = input.uleb()?;
    input.take(actor)?;
    input.uleb()?; // seq
    input.uleb()?; // start op
    input.uleb()?; // time (signed: only its length matters here)
    let message = input.uleb()?;
    input.take(message)?;
    for _ in 0..input.uleb()? {
        let len = input.uleb()?;
        input.take(len)?;
    }
    let columns = input.columns(1)?;
    for (spec, len) in columns {
        let column = input.take(len)?;
        if spec & DEFLATE_BIT != 0 {
            return Err(input.malformed("a compressed column in a change"));
        }
        count_items(spec, column, budget)?;
    }
    Ok(())
}

/// Every column of a document chunk: deflated ones inflated within the
/// budget, and the items of each counted.
fn document_columns(data: &[u8], budget: &mut InflateBudget) -> Result<(), BoundError> {
    const WHAT: &str = "saved document";
    let mut input = Input {
        bytes: data,
        expected: WHAT,
    };
    for _ in 0..input.uleb()? {
        let len = input.uleb()?;
        input.take(len)?;
    }
    let heads = input.uleb()?;
    input.take(
        heads
            .checked_mul(HASH_LEN)
            .ok_or(input.malformed("too many heads"))?,
    )?;
    let columns = input.columns(2)?;
    for (spec, len) in columns {
        let column = input.take(len)?;
        if spec & DEFLATE_BIT != 0 {
            let inflated = budget.inflate(column, WHAT)?;
            count_items(spec, &inflated, budget)?;
        } else {
            count_items(spec, column, budget)?;
        }
    }
    Ok(())
}

/// Counts the items a column declares, from its encoding (the low three
/// bits of its spec): run-length encoded values (group, actor, integer,
/// delta, string, value metadata: a signed count, then one value for a
/// run, `-count` values for a literal run, or a null count), boolean runs
/// (alternating counts), or raw value bytes (no items of their own). A run
/// of 2^40 costs 2^40, whatever its few bytes.
fn count_items(spec: u64, column: &[u8], budget: &mut InflateBudget) -> Result<(), BoundError> {
    const RAW: u64 = 7;
    const BOOLEAN: u64 = 4;
    const STRING: u64 = 5;
    let kind = spec & 0b111;
    let mut input = Input {
        bytes: column,
        expected: "column",
    };
    if kind == RAW {
        return Ok(());
    }
    while !input.bytes.is_empty() {
        if kind == BOOLEAN {
            let run = input.uleb()?;
            budget.count(run)?;
            continue;
        }
        let count = input.sleb()?;
        let value = |input: &mut Input<'_>| -> Result<(), BoundError> {
            if kind == STRING {
                let len = input.uleb()?;
                input.take(len).map(drop)
            } else {
                input.uleb().map(drop)
            }
        };
        match count {
            0 => {
                let nulls = input.uleb()?;
                budget.count(nulls)?;
            }
            run if run > 0 => {
                budget.count(run as u64)?;
                value(&mut input)?;
            }
            literal => {
                let n = literal.unsigned_abs();
                budget.count(n)?;
                for _ in 0..n {
                    value(&mut input)?;
                }
            }
        }
    }
    Ok(())
}

/// A cursor over received bytes; every length is checked against what is
/// left before anything is taken.
struct Input<'a> {
    bytes: &'a [u8],
    expected: &'static str,
}

impl<'a> Input<'a> {
    fn malformed(&self, what: &'static str) -> BoundError {
        BoundError::Malformed {
            expected: self.expected,
            what,
        }
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], BoundError> {
        let len = usize::try_from(len).map_err(|_| self.malformed("a length beyond the data"))?;
        let (taken, rest) = self
            .bytes
            .split_at_checked(len)
            .ok_or(self.malformed("a length beyond the data"))?;
        self.bytes = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 of at most 64 bits.
    fn uleb(&mut self) -> Result<u64, BoundError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte, rest @ ..] = self.bytes else {
                return Err(self.malformed("a truncated number"));
            };
            self.bytes = rest;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("a number beyond 64 bits"))
    }

    /// `groups` lists of column specs and lengths.
    fn columns(&mut self, groups: usize) -> Result<Vec<(u64, u64)>, BoundError> {
        let mut columns = Vec::new();
        for _ in 0..groups {
            for _ in 0..self.uleb()? {
                let spec = self.uleb()?;
                let len = self.uleb()?;
                columns.push((spec, len));
            }
        }
        Ok(columns)
    }

    /// A signed LEB128 of at most 64 bits.
    fn sleb(&mut self) -> Result<i64, BoundError> {
        let mut value = 0i64;
        let mut shift = 0;
        loop {
            let [byte, rest @ ..] = self.bytes else {
                return Err(self.malformed("a truncated number"));
            };
            self.bytes = rest;
            if shift >= 64 {
                return Err(self.malformed("a number beyond 64 bits"));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// One chunk: its type and data.
    fn chunk(&mut self) -> Result<(u8, &'a [u8]), BoundError> {
        let magic = self.take(4)?;
        if magic != MAGIC {
            return Err(self.malformed("no Automerge magic bytes"));
        }
        self.take(4)?; // checksum: Automerge verifies it
        let kind = self.take(1)?[0];
        let len = self.uleb()?;
        Ok((kind, self.take(len)?))
    }
}

#[cfg(test)]
mod tests;
