//! Amana core: the sealed case log.
//!
//! - [`ids`], [`envelope`], [`roster`], [`keys`], [`receipt`] and [`agefile`]: the wire
//!   formats and their checks; [`audit`]: checking a relay's log without keys. This is all the relay links (build with
//!   `default-features = false`): it parses and verifies, never decrypts.
//! - With the `client` feature (default): sealing and opening envelopes,
//!   the case model and its Automerge documents, the passphrase-protected
//!   keystore and the encrypted device store.
//!
//! The crate does no network or terminal I/O and reads no clock or
//! environment: times are passed in by the caller.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agefile;
pub mod audit;
#[cfg(feature = "client")]
pub mod case;
pub mod envelope;
pub mod error;
pub mod framing;
pub mod ids;
pub mod invite;
pub mod keys;
#[cfg(feature = "client")]
mod padding;
#[cfg(feature = "pin")]
pub mod pin;
mod random;
pub mod receipt;
pub mod request_auth;
pub mod roster;
#[cfg(feature = "client")]
pub mod store;
#[cfg(feature = "client")]
pub mod sync;
pub mod team_token;
pub mod transport;
mod wire;

pub use error::{
    AgeFileError, AnnouncementError, AuthorError, EnvelopeError, IdError, KeyEnvelopeError,
    RosterError, WireError,
};
pub use ids::{CaseId, DeviceId, Digest, TeamId};
