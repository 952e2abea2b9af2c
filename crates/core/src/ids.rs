//! Identifiers shared by every part of Amana: teams, devices, cases and
//! SHA-256 digests (envelope ids, roster hashes).
//!
//! Every identifier is random or derived from a public key; none is ever
//! derived from anything about a survivor or an officer.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::IdError;

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the identifier in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Reads the identifier from a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    what: stringify!($name),
                    expected: $len,
                    found: bytes.len(),
                })?;
                Ok(Self(array))
            }

            /// Lower-case hexadecimal form, as shown to people and in JSON.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(s.trim()).map_err(|_| IdError::NotHex {
                    what: stringify!($name),
                })?;
                Self::from_slice(&bytes)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// A team: 128 random bits chosen by the admin who creates it.
    TeamId,
    16
);
byte_id!(
    /// A device: the first 16 bytes of SHA-256 of its Ed25519 public key.
    DeviceId,
    16
);
byte_id!(
    /// A case: 128 random bits chosen by the device that records the intake.
    CaseId,
    16
);
byte_id!(
    /// A SHA-256 digest: envelope ids, roster operation hashes, body hashes.
    Digest,
    32
);

impl TeamId {
    /// A fresh random team id.
    pub fn random() -> Self {
        Self(crate::random::bytes())
    }
}

impl CaseId {
    /// A fresh random case id.
    pub fn random() -> Self {
        Self(crate::random::bytes())
    }
}

impl DeviceId {
    /// The id of the device whose Ed25519 public key is `key`.
    pub fn for_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        let hash = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash[..16]);
        Self(id)
    }
}

impl Digest {
    /// The all-zero digest: the `prev` of the first envelope or roster operation.
    pub const ZERO: Digest = Digest([0u8; 32]);

    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Whether this is the all-zero digest.
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = TeamId::from_bytes([7; 16]);
        assert_eq!(id.to_hex().parse::<TeamId>().unwrap(), id);
        assert!(matches!(
            "zz".parse::<TeamId>(),
            Err(IdError::NotHex { .. })
        ));
        assert!(matches!(
            "0102".parse::<TeamId>(),
            Err(IdError::Length {
                expected: 16,
                found: 2,
                ..
            })
        ));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(CaseId::random(), CaseId::random());
        assert_ne!(TeamId::random(), TeamId::random());
    }
}
