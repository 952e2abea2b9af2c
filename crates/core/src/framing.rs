//! Binary bodies of the relay API (see `docs/relay-api.md`), shared by the
//! relay (which writes pages) and the sync engine (which reads them).
//! Envelopes are opaque bytes; framing them in binary instead of
//! base64-in-JSON keeps the upload within a few bytes of the envelopes.
//!
//! - envelope batch (`application/vnd.amana.envelopes`), roster
//!   (`application/vnd.amana.roster`) and key envelopes
//!   (`application/vnd.amana.keys`): repeated `len u32 ‖ bytes`;
//! - page (`application/vnd.amana.page`): `next_cursor u64 ‖ more u8 ‖
//!   heads u32 ‖ (device 16 ‖ seq u64 ‖ id 32)* ‖ count u32 ‖
//!   (cursor u64 ‖ len u32 ‖ envelope)*`, where a head count of
//!   [`HEADS_AS_HELD`] (and no head records) says the relay's heads are
//!   those whose [`heads_digest`] the device sent with its request.

use crate::ids::{DeviceId, Digest};

/// Media type of an envelope batch.
pub const ENVELOPES: &str = "application/vnd.amana.envelopes";
/// Media type of a roster.
pub const ROSTER: &str = "application/vnd.amana.roster";
/// Media type of a page of envelopes.
pub const PAGE: &str = "application/vnd.amana.page";
/// Media type of a single roster operation.
pub const ROSTER_OP: &str = "application/vnd.amana.roster-op";
/// Media type of a list of key envelopes.
pub const KEYS: &str = "application/vnd.amana.keys";
/// One signed recipient announcement.
pub const RECIPIENT: &str = "application/vnd.amana.recipient";
/// Framed recipient announcements, one per device.
pub const RECIPIENTS: &str = "application/vnd.amana.recipients";

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
    /// Bytes left over after the declared content.
    #[error("{0} unexpected bytes after the end of the body")]
    Trailing(usize),
}

/// Splits a `len u32 ‖ bytes` sequence, refusing more than `max` items.
pub fn split(body: &[u8], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if items.len() == max {
            return Err(FrameError::TooMany { max });
        }
        let (item, tail) = take_frame(rest)?;
        items.push(item.to_vec());
        rest = tail;
    }
    if items.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(items)
}

fn take_frame(body: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (len, tail) = take::<4>(body)?;
    let len = u32::from_be_bytes(len) as usize;
    if tail.len() < len {
        return Err(FrameError::Truncated {
            declared: len,
            available: tail.len(),
        });
    }
    Ok(tail.split_at(len))
}

fn take<const N: usize>(body: &[u8]) -> Result<([u8; N], &[u8]), FrameError> {
    match body.split_first_chunk::<N>() {
        Some((head, tail)) => Ok((*head, tail)),
        None => Err(FrameError::Truncated {
            declared: N,
            available: body.len(),
        }),
    }
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

/// A device's head as the relay reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHead {
    /// The device.
    pub device: DeviceId,
    /// Its last stored seq.
    pub seq: u64,
    /// That envelope's id.
    pub id: Digest,
}

/// The head count that stands for "the heads you hold": the relay's heads
/// have the digest the request carried, so they are not repeated.
pub const HEADS_AS_HELD: u32 = u32::MAX;

/// The digest a device sends of the heads it holds (sorted by device), so
/// that a relay whose heads are the same need not list them: a no-op sync
/// then costs the same for a team of 5 or 50.
pub fn heads_digest(heads: &[PageHead]) -> Digest {
    let mut sorted = heads.to_vec();
    sorted.sort_by_key(|h| h.device);
    let mut data = Vec::with_capacity(16 + sorted.len() * 56);
    data.extend_from_slice(b"amana/v1/heads\0");
    for h in &sorted {
        data.extend_from_slice(h.device.as_bytes());
        data.extend_from_slice(&h.seq.to_be_bytes());
        data.extend_from_slice(h.id.as_bytes());
    }
    Digest::of(&data)
}

/// An envelope in a page, with its team-wide cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageEntry {
    /// The cursor.
    pub cursor: u64,
    /// The envelope bytes.
    pub bytes: Vec<u8>,
}

/// One page of a team's envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The cursor to ask after next time.
    pub next_cursor: u64,
    /// Whether more envelopes follow.
    pub more: bool,
    /// Every device's head at the relay (empty when `heads_as_held`).
    pub heads: Vec<PageHead>,
    /// The relay did not list its heads: they are the ones whose digest the
    /// request carried.
    pub heads_as_held: bool,
    /// The envelopes, in cursor order.
    pub entries: Vec<PageEntry>,
}

impl Page {
    /// Encodes a page.
    pub fn encode<'a>(
        next_cursor: u64,
        more: bool,
        heads: &[PageHead],
        entries: impl Iterator<Item = (u64, &'a [u8])> + Clone,
    ) -> Vec<u8> {
        Self::encode_with(next_cursor, more, Some(heads), entries)
    }

    /// Encodes a page; `None` for heads stands for the heads the requester
    /// holds ([`HEADS_AS_HELD`]).
    pub fn encode_with<'a>(
        next_cursor: u64,
        more: bool,
        heads: Option<&[PageHead]>,
        entries: impl Iterator<Item = (u64, &'a [u8])> + Clone,
    ) -> Vec<u8> {
        let listed = heads.unwrap_or_default();
        let size: usize =
            entries.clone().map(|(_, b)| b.len() + 12).sum::<usize>() + listed.len() * 56 + 17;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&next_cursor.to_be_bytes());
        out.push(u8::from(more));
        let count = heads.map_or(HEADS_AS_HELD, |h| h.len() as u32);
        out.extend_from_slice(&count.to_be_bytes());
        for h in listed {
            out.extend_from_slice(h.device.as_bytes());
            out.extend_from_slice(&h.seq.to_be_bytes());
            out.extend_from_slice(h.id.as_bytes());
        }
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_be_bytes());
        let mut count = 0u32;
        for (cursor, bytes) in entries {
            out.extend_from_slice(&cursor.to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
            count += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        out
    }

    /// Parses a page, refusing more than `max_heads` heads or `max_entries`
    /// envelopes (a hostile relay must not make the client allocate at will).
    pub fn parse(body: &[u8], max_heads: usize, max_entries: usize) -> Result<Page, FrameError> {
        let (next_cursor, rest) = take::<8>(body)?;
        let (more, rest) = take::<1>(rest)?;
        let (head_count, mut rest) = take::<4>(rest)?;
        let head_count = u32::from_be_bytes(head_count);
        let heads_as_held = head_count == HEADS_AS_HELD;
        let head_count = if heads_as_held {
            0
        } else {
            head_count as usize
        };
        if head_count > max_heads {
            return Err(FrameError::TooMany { max: max_heads });
        }
        let mut heads = Vec::with_capacity(head_count);
        for _ in 0..head_count {
            let (device, tail) = take::<16>(rest)?;
            let (seq, tail) = take::<8>(tail)?;
            let (id, tail) = take::<32>(tail)?;
            heads.push(PageHead {
                device: DeviceId::from_bytes(device),
                seq: u64::from_be_bytes(seq),
                id: Digest::from_bytes(id),
            });
            rest = tail;
        }
        let (count, mut rest) = take::<4>(rest)?;
        let count = u32::from_be_bytes(count) as usize;
        if count > max_entries {
            return Err(FrameError::TooMany { max: max_entries });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let (cursor, tail) = take::<8>(rest)?;
            let (bytes, tail) = take_frame(tail)?;
            entries.push(PageEntry {
                cursor: u64::from_be_bytes(cursor),
                bytes: bytes.to_vec(),
            });
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(FrameError::Trailing(rest.len()));
        }
        Ok(Page {
            next_cursor: u64::from_be_bytes(next_cursor),
            more: more[0] != 0,
            heads,
            heads_as_held,
            entries,
        })
    }
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

    #[test]
    fn page_round_trip_and_every_truncation_fails() {
        let heads = [PageHead {
            device: DeviceId::from_bytes([7; 16]),
            seq: 3,
            id: Digest::from_bytes([9; 32]),
        }];
        let envs: Vec<(u64, Vec<u8>)> = vec![(4, vec![1, 2, 3]), (9, vec![])];
        let bytes = Page::encode(9, true, &heads, envs.iter().map(|(c, b)| (*c, &b[..])));
        let page = Page::parse(&bytes, 10, 10).unwrap();
        assert_eq!(page.next_cursor, 9);
        assert!(page.more);
        assert_eq!(page.heads, heads);
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.entries[0].bytes, vec![1, 2, 3]);
        for cut in 0..bytes.len() {
            assert!(Page::parse(&bytes[..cut], 10, 10).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Page::parse(&long, 10, 10), Err(FrameError::Trailing(1)));
        assert_eq!(
            Page::parse(&bytes, 0, 10),
            Err(FrameError::TooMany { max: 0 })
        );
        assert_eq!(
            Page::parse(&bytes, 10, 1),
            Err(FrameError::TooMany { max: 1 })
        );
    }

    #[test]
    fn a_page_can_say_its_heads_are_the_ones_held() {
        let bytes = Page::encode_with(5, false, None, std::iter::empty());
        assert_eq!(bytes.len(), 17, "no head records");
        let page = Page::parse(&bytes, 0, 10).unwrap();
        assert!(page.heads_as_held);
        assert!(page.heads.is_empty());
        // An empty list is not the same answer.
        let listed = Page::parse(&Page::encode(5, false, &[], std::iter::empty()), 0, 10).unwrap();
        assert!(!listed.heads_as_held);
    }

    #[test]
    fn the_heads_digest_ignores_order_and_sees_every_field() {
        let head = |d: u8, seq: u64, id: u8| PageHead {
            device: DeviceId::from_bytes([d; 16]),
            seq,
            id: Digest::from_bytes([id; 32]),
        };
        let heads = [head(1, 3, 7), head(2, 5, 8)];
        let digest = heads_digest(&heads);
        assert_eq!(heads_digest(&[heads[1], heads[0]]), digest);
        for other in [
            vec![head(1, 3, 7)],
            vec![head(1, 3, 7), head(2, 6, 8)],
            vec![head(1, 3, 7), head(2, 5, 9)],
            vec![head(1, 3, 7), head(3, 5, 8)],
            vec![],
        ] {
            assert_ne!(heads_digest(&other), digest, "{other:?}");
        }
    }
}
