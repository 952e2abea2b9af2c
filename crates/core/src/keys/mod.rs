//! Device identities and team epoch keys.
//!
//! A device holds an Ed25519 signing key (its identity; the device id is
//! derived from the public half) and a random storage key that protects its
//! device store, both in the keystore; and short-lived age X25519
//! identities that receive epoch keys ([`receiving`]), in the device store.
//! None of these types is `Clone`, none prints its secret in `Debug`, and
//! all of them zeroize their secret bytes when dropped.

pub mod announce;
pub mod delivery;
mod epoch;
#[cfg(feature = "client")]
pub mod keystore;

pub mod receiving;

pub use epoch::{EpochKey, EpochKeyring};
pub use receiving::ReceivingKey;

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::ids::DeviceId;

/// The secret string form of an age identity (`AGE-SECRET-KEY-1…`),
/// zeroized when dropped; for sealing it into a key envelope or the store.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
fn secret_of(identity: &age::x25519::Identity) -> Zeroizing<Vec<u8>> {
    use age::secrecy::ExposeSecret;
    Zeroizing::new(identity.to_string().expose_secret().as_bytes().to_vec())
}

/// Length of the device storage key.
pub const STORAGE_KEY_LEN: usize = 32;

/// The secret keys of one device.
pub struct DeviceKeys {
    signing: SigningKey,
    storage_key: Zeroizing<[u8; STORAGE_KEY_LEN]>,
}

impl DeviceKeys {
    /// Generates a fresh device identity from the operating system's randomness.
    pub fn generate() -> Self {
        let seed = Zeroizing::new(crate::random::bytes::<32>());
        Self {
            signing: SigningKey::from_bytes(&seed),
            storage_key: Zeroizing::new(crate::random::bytes()),
        }
    }

    /// Rebuilds a device identity from its parts (used by the keystore).
    #[cfg(feature = "client")]
    pub(crate) fn from_parts(signing_seed: &[u8; 32], storage_key: &[u8; STORAGE_KEY_LEN]) -> Self {
        Self {
            signing: SigningKey::from_bytes(signing_seed),
            storage_key: Zeroizing::new(*storage_key),
        }
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::for_key(&self.signing.verifying_key())
    }

    /// The public half of the signing key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn storage_key(&self) -> &[u8; STORAGE_KEY_LEN] {
        &self.storage_key
    }
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("device", &self.device_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let keys = DeviceKeys::generate();
        let shown = format!("{keys:?}");
        assert!(shown.contains(&keys.device_id().to_hex()));
        assert!(!shown.contains(&hex::encode(keys.signing.to_bytes())));
    }

    #[test]
    fn device_id_is_derived_from_public_key() {
        let keys = DeviceKeys::generate();
        assert_eq!(keys.device_id(), DeviceId::for_key(&keys.verifying_key()));
    }
}
