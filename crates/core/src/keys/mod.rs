//! Device identities and team epoch keys.
//!
//! A device holds an Ed25519 signing key (its identity; the device id is
//! derived from the public half) and random storage keys that protect its
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

/// Length of each device storage key.
pub const STORAGE_KEY_LEN: usize = 32;

/// The two keys of the device store: one seals values, one makes lookup
/// keys. The sealing key is replaced at every re-key (a forgetting rotation,
/// a passphrase change); the index key stays, since row keys are made from
/// it (`docs/device-store.md`, "Re-keying").
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) struct StorageKeys {
    pub(crate) seal: Zeroizing<[u8; STORAGE_KEY_LEN]>,
    pub(crate) index: Zeroizing<[u8; STORAGE_KEY_LEN]>,
}

impl StorageKeys {
    fn generate() -> Self {
        Self {
            seal: Zeroizing::new(crate::random::bytes()),
            index: Zeroizing::new(crate::random::bytes()),
        }
    }
}

/// The secret keys of one device.
pub struct DeviceKeys {
    signing: SigningKey,
    storage: StorageKeys,
}

impl DeviceKeys {
    /// Generates a fresh device identity from the operating system's randomness.
    pub fn generate() -> Self {
        let seed = Zeroizing::new(crate::random::bytes::<32>());
        Self {
            signing: SigningKey::from_bytes(&seed),
            storage: StorageKeys::generate(),
        }
    }

    /// Rebuilds a device identity from its parts (used by the keystore).
    #[cfg(feature = "client")]
    pub(crate) fn from_parts(signing_seed: &[u8; 32], storage: StorageKeys) -> Self {
        Self {
            signing: SigningKey::from_bytes(signing_seed),
            storage,
        }
    }

    /// The same identity and index key with a new random sealing key: what
    /// a re-key of the device store seals under.
    #[cfg(feature = "client")]
    pub(crate) fn with_new_sealing_key(&self) -> Self {
        let seed = Zeroizing::new(self.signing.to_bytes());
        Self {
            signing: SigningKey::from_bytes(&seed),
            storage: StorageKeys {
                seal: Zeroizing::new(crate::random::bytes()),
                index: Zeroizing::new(*self.storage.index),
            },
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
    pub(crate) fn storage(&self) -> &StorageKeys {
        &self.storage
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
