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

use std::io::{self, Read};

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
    /// Not an Automerge chunk of the expected kind.
    #[error("not an Automerge {expected}: {what}")]
    Malformed {
        /// "change" or "saved document".
        expected: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}

/// How many bytes the Automerge chunks of one envelope may still inflate
/// to: one budget shared by all its changes or documents, so a hundred
/// small bombs cost what one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateBudget {
    left: usize,
    limit: usize,
}

impl InflateBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        InflateBudget { left: limit, limit }
    }

    /// What is left.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Inflates `data` (raw deflate) into a sink, spending what it
    /// inflates to; stops one byte past what is left.
    fn spend(&mut self, data: &[u8], expected: &'static str) -> Result<(), BoundError> {
        let mut limited = DeflateDecoder::new(data).take(self.left as u64 + 1);
        let inflated =
            io::copy(&mut limited, &mut io::sink()).map_err(|_| BoundError::Malformed {
                expected,
                what: "a compressed part does not inflate",
            })?;
        let inflated = usize::try_from(inflated).unwrap_or(usize::MAX);
        if inflated > self.left {
            return Err(BoundError::TooLarge { limit: self.limit });
        }
        self.left -= inflated;
        Ok(())
    }
}

/// Checks one encoded change: a single change chunk, or a compressed
/// change whose inflated size fits the budget.
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
        CHANGE => Ok(()),
        COMPRESSED_CHANGE => budget.spend(data, WHAT),
        _ => Err(input.malformed("a chunk that is not a change")),
    }
}

/// Checks a saved document: one or more document, change or compressed
/// change chunks whose compressed parts together fit the budget.
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
            CHANGE => {}
            COMPRESSED_CHANGE => budget.spend(data, WHAT)?,
            _ => return Err(input.malformed("a chunk Amana does not accept (a bundle)")),
        }
    }
    Ok(())
}

/// Spends the budget on every deflated column of a document chunk.
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
    let mut columns = Vec::new();
    for _ in 0..2 {
        for _ in 0..input.uleb()? {
            let spec = input.uleb()?;
            let len = input.uleb()?;
            columns.push((spec, len));
        }
    }
    for (spec, len) in columns {
        let column = input.take(len)?;
        if spec & DEFLATE_BIT != 0 {
            budget.spend(column, WHAT)?;
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
