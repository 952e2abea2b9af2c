//! Binary bodies of the relay API (see `docs/relay-api.md`). Envelopes are
//! opaque bytes; framing them in binary instead of base64-in-JSON keeps the
//! upload within a few bytes of the envelopes themselves.
//!
//! - envelope batch (`application/vnd.amana.envelopes`) and roster
//!   (`application/vnd.amana.roster`): repeated `len u32 ‖ bytes`;
//! - page (`application/vnd.amana.page`): `next_cursor u64 ‖ more u8 ‖
//!   heads u32 ‖ (device 16 ‖ seq u64 ‖ id 32)* ‖ count u32 ‖
//!   (cursor u64 ‖ len u32 ‖ envelope)*`.

use crate::store::{Head, StoredEnvelope};

/// Media type of an envelope batch.
pub const ENVELOPES: &str = "application/vnd.amana.envelopes";
/// Media type of a roster.
pub const ROSTER: &str = "application/vnd.amana.roster";
/// Media type of a page of envelopes.
pub const PAGE: &str = "application/vnd.amana.page";
/// Media type of a single roster operation.
pub const ROSTER_OP: &str = "application/vnd.amana.roster-op";

/// Why a framed body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame runs past the end of the body.
    #[error("the body is truncated: a frame declares {declared} bytes but {available} remain")]
    Truncated {
        /// Declared frame length.
        declared: usize,
        /// Bytes left.
        available: usize,
    },
    /// More frames than allowed.
    #[error("the body holds more than {max} items")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// No frames at all.
    #[error("the body is empty")]
    Empty,
}

/// Splits a `len u32 ‖ bytes` sequence, refusing more than `max` items.
pub fn split(body: &[u8], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if items.len() == max {
            return Err(FrameError::TooMany { max });
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(FrameError::Truncated {
                declared: 4,
                available: rest.len(),
            });
        };
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(FrameError::Truncated {
                declared: len,
                available: tail.len(),
            });
        }
        items.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if items.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(items)
}

/// Joins items as `len u32 ‖ bytes`.
pub fn join<B: AsRef<[u8]>>(items: &[B]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.as_ref().len() + 4).sum());
    for item in items {
        out.extend_from_slice(&(item.as_ref().len() as u32).to_be_bytes());
        out.extend_from_slice(item.as_ref());
    }
    out
}

/// Encodes a page.
pub fn page(next_cursor: u64, more: bool, heads: &[Head], envelopes: &[StoredEnvelope]) -> Vec<u8> {
    let size: usize =
        envelopes.iter().map(|e| e.bytes.len() + 12).sum::<usize>() + heads.len() * 56 + 17;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&next_cursor.to_be_bytes());
    out.push(u8::from(more));
    out.extend_from_slice(&(heads.len() as u32).to_be_bytes());
    for h in heads {
        out.extend_from_slice(h.device.as_bytes());
        out.extend_from_slice(&h.seq.to_be_bytes());
        out.extend_from_slice(h.id.as_bytes());
    }
    out.extend_from_slice(&(envelopes.len() as u32).to_be_bytes());
    for e in envelopes {
        out.extend_from_slice(&e.cursor.to_be_bytes());
        out.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join() {
        let items = vec![b"a".to_vec(), Vec::new(), vec![9; 300]];
        assert_eq!(split(&join(&items), 10).unwrap(), items);
        assert_eq!(split(&join(&items), 2), Err(FrameError::TooMany { max: 2 }));
        assert_eq!(split(&[], 2), Err(FrameError::Empty));
        assert!(matches!(
            split(&[0, 0, 0, 9, 1], 2),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            split(&[0, 0], 2),
            Err(FrameError::Truncated { .. })
        ));
    }
}
