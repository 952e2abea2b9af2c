//! Receiving keys: the age X25519 identities a device receives epoch keys
//! with.
//!
//! They are kept apart from the device's long-lived keys because they do
//! not live long. A device starts with generation 0 (its recipient is on
//! the roster). Once a generation has opened a delivered epoch key, the
//! device makes the next one, announces its recipient to the team (signed,
//! see [`super::announce`]) and destroys every older generation. So an old
//! copy of the relay's data, which still holds the key envelopes, never
//! meets an identity that can open them: the shredding guarantee in
//! `docs/threat-model.md` rests on this.

use std::fmt;

use age::x25519;

/// One generation of a device's receiving identity.
pub struct ReceivingKey {
    generation: u32,
    identity: x25519::Identity,
}

impl ReceivingKey {
    /// A fresh identity for `generation`.
    pub fn generate(generation: u32) -> Self {
        Self {
            generation,
            identity: x25519::Identity::generate(),
        }
    }

    /// Rebuilds a key from its secret string form (`AGE-SECRET-KEY-1…`);
    /// `None` if the text is not an age X25519 identity.
    pub fn from_secret(generation: u32, secret: &str) -> Option<Self> {
        secret
            .parse::<x25519::Identity>()
            .ok()
            .map(|identity| Self {
                generation,
                identity,
            })
    }

    /// The secret in its string form, zeroized when dropped.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        super::secret_of(&self.identity)
    }

    /// The generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The public recipient epoch keys are encrypted to.
    pub fn recipient(&self) -> x25519::Recipient {
        self.identity.to_public()
    }

    pub(crate) fn identity(&self) -> &x25519::Identity {
        &self.identity
    }
}

impl fmt::Debug for ReceivingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivingKey")
            .field("generation", &self.generation)
            .field("recipient", &self.recipient().to_string())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redacted_debug() {
        let key = ReceivingKey::generate(3);
        let secret = key.secret_bytes();
        let back = ReceivingKey::from_secret(3, std::str::from_utf8(&secret).unwrap()).unwrap();
        assert_eq!(back.recipient(), key.recipient());
        assert!(!format!("{key:?}").contains("AGE-SECRET-KEY"));
        assert!(ReceivingKey::from_secret(0, "nope").is_none());
    }
}
