//! The sync engine and enrolment over the relay.
//!
//! - [`client`]: the relay API as typed calls, signed with the device key.
//! - [`engine`]: one sync: refresh the roster and epoch keys, push the
//!   outbox, pull and verify every new envelope.
//! - [`enrol`]: creating a team, joining, approving; [`invites`]: invite
//!   codes and the issuing admin's record of them.
//! - [`admin`]: revoking devices, rotating the epoch, delivering its key.
//! - [`alarms`]: integrity alarms: recorded where detected, reported to
//!   the office, acknowledged by an admin device.
//! - [`audit`]: the remote audit and the receipts a device exports.
//! - [`shred`]: crypto-shredding a case and retiring old epochs.
//! - [`tail`]: the team's view of every log, and the alarms when this
//!   device's tail or a shred's snapshot does not reach the team.
//! - `http` (feature `http`): the HTTPS transport with a pinned relay key.
//!
//! The engine reads no clock and draws no request nonces itself: the
//! caller passes an [`Env`], so tests drive it deterministically. (age draws
//! its own ephemeral keys from the operating system when sealing; those
//! never affect what the engine decides.)

pub mod admin;
pub mod alarm_words;
pub mod alarms;
pub mod audit;
pub mod client;
pub mod engine;
pub mod enrol;
mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod invites;
mod keys;
mod permissions;
mod pull;
mod rejection;
pub mod shred;
pub mod tail;
mod verify;
mod witness;

pub use client::RelayClient;
pub use engine::{Progress, SyncReport, sync};
pub use error::SyncError;
pub use rejection::Rejection;

/// Time and randomness for the engine.
pub struct Env {
    now: Box<dyn Fn() -> u64 + Send>,
    nonce: Box<dyn FnMut() -> [u8; 16] + Send>,
}

impl Env {
    /// An environment from a clock (unix seconds) and a nonce source.
    pub fn new(
        now: impl Fn() -> u64 + Send + 'static,
        nonce: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Self {
        Env {
            now: Box::new(now),
            nonce: Box::new(nonce),
        }
    }

    /// The current time in unix seconds.
    pub fn now(&self) -> u64 {
        (self.now)()
    }

    fn nonce(&mut self) -> [u8; 16] {
        (self.nonce)()
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}
