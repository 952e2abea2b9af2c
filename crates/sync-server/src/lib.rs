//! amana-relay: a blind, append-only store of signed, encrypted envelopes.
//!
//! The relay links only the format layer of `amana-core` (parsing and
//! signature checks); it holds no key that decrypts anything and stores
//! only what `docs/relay-schema.md` lists.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod config;
pub mod ingest;
pub mod memory;
pub mod peers;
pub mod relay_key;
pub mod server;
pub mod store;
