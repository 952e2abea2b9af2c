//! Binary bodies of the relay API: the formats live in
//! `amana_core::framing` (the sync engine reads what the relay writes);
//! this module maps the relay's stored types onto them.

pub use amana_core::framing::{
    ENVELOPES, FrameError, KEYS, PAGE, PageHead, RECIPIENT, RECIPIENTS, ROSTER, ROSTER_OP, join,
    split,
};

use crate::store::{Head, StoredEnvelope};

/// Encodes a page.
pub fn page(next_cursor: u64, more: bool, heads: &[Head], envelopes: &[StoredEnvelope]) -> Vec<u8> {
    let heads: Vec<PageHead> = heads
        .iter()
        .map(|h| PageHead {
            device: h.device,
            seq: h.seq,
            id: h.id,
        })
        .collect();
    amana_core::framing::Page::encode(
        next_cursor,
        more,
        &heads,
        envelopes.iter().map(|e| (e.cursor, e.bytes.as_slice())),
    )
}
