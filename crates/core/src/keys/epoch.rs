//! Epoch keys: the age X25519 identities that case data is encrypted to.
//!
//! A team has one current epoch; rotating the epoch (on revocation or on
//! demand) makes a new key and new data goes to it only. The public
//! recipient of every epoch is on the roster; the secret reaches devices
//! inside key envelopes (see [`super::delivery`]).

use std::collections::BTreeMap;
use std::fmt;

use age::x25519;

/// The secret key of one epoch.
pub struct EpochKey {
    epoch: u32,
    identity: x25519::Identity,
}

impl EpochKey {
    /// Makes a fresh key for `epoch`.
    pub fn generate(epoch: u32) -> Self {
        Self {
            epoch,
            identity: x25519::Identity::generate(),
        }
    }

    /// Rebuilds an epoch key from its secret string form (`AGE-SECRET-KEY-1…`).
    /// Returns `None` if the text is not an age X25519 identity.
    pub(crate) fn from_secret(epoch: u32, secret: &str) -> Option<Self> {
        secret
            .parse::<x25519::Identity>()
            .ok()
            .map(|identity| Self { epoch, identity })
    }

    /// The secret in its string form, zeroized when dropped. Used only to
    /// seal it into a key envelope or the device store.
    pub(crate) fn secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        super::secret_of(&self.identity)
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The public recipient that data of this epoch is encrypted to.
    pub fn recipient(&self) -> x25519::Recipient {
        self.identity.to_public()
    }

    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn identity(&self) -> &x25519::Identity {
        &self.identity
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .field("recipient", &self.recipient().to_string())
            .finish_non_exhaustive()
    }
}

/// The epoch keys a device holds, by epoch number.
#[derive(Default, Debug)]
pub struct EpochKeyring {
    keys: BTreeMap<u32, EpochKey>,
}

impl EpochKeyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key of its epoch.
    pub fn insert(&mut self, key: EpochKey) {
        self.keys.insert(key.epoch, key);
    }

    /// The key of `epoch`, if held.
    pub fn get(&self, epoch: u32) -> Option<&EpochKey> {
        self.keys.get(&epoch)
    }

    /// The key of the highest epoch held.
    pub fn latest(&self) -> Option<&EpochKey> {
        self.keys.values().next_back()
    }

    /// The epochs whose keys are held, in ascending order.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trip_and_debug_redaction() {
        let key = EpochKey::generate(3);
        let secret = key.secret_bytes();
        let back = EpochKey::from_secret(3, std::str::from_utf8(&secret).unwrap()).unwrap();
        assert_eq!(back.recipient(), key.recipient());
        let shown = format!("{key:?}");
        assert!(!shown.contains("AGE-SECRET-KEY"));
        assert!(EpochKey::from_secret(1, "not a key").is_none());
    }

    #[test]
    fn keyring_latest() {
        let mut ring = EpochKeyring::new();
        assert!(ring.latest().is_none());
        ring.insert(EpochKey::generate(2));
        ring.insert(EpochKey::generate(1));
        assert_eq!(ring.latest().unwrap().epoch(), 2);
        assert_eq!(ring.epochs().collect::<Vec<_>>(), vec![1, 2]);
    }
}
