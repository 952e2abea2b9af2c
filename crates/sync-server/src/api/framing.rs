//! Binary bodies of the relay API: the formats live in
//! `amana_core::framing` (the sync engine reads what the relay writes);
//! this module maps the relay's stored types onto them.

pub use amana_core::framing::{
    ENVELOPES, FrameError, KEYS, PAGE, PageHead, RECIPIENT, RECIPIENTS, ROSTER, ROSTER_OP, join,
    split,
};

use amana_core::Digest;
use amana_core::framing::heads_digest;

use crate::store::{Head, StoredEnvelope};

/// Encodes a page. When `held` (the digest of the heads the requesting
/// device holds) is that of the relay's heads, they are not listed.
pub fn page(
    next_cursor: u64,
    more: bool,
    heads: &[Head],
    held: Option<Digest>,
    envelopes: &[StoredEnvelope],
) -> Vec<u8> {
    let heads: Vec<PageHead> = heads
        .iter()
        .map(|h| PageHead {
            device: h.device,
            seq: h.seq,
            id: h.id,
        })
        .collect();
    let as_held = held.is_some_and(|d| d == heads_digest(&heads));
    amana_core::framing::Page::encode_with(
        next_cursor,
        more,
        (!as_held).then_some(heads.as_slice()),
        envelopes.iter().map(|e| (e.cursor, e.bytes.as_slice())),
    )
}
