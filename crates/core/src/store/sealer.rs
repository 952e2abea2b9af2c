//! Column sealing: how every payload in the device store is encrypted.
//!
//! The device's two random storage keys (in the keystore): a sealing key
//! for XChaCha20-Poly1305 and an index key for HMAC-SHA256 lookup keys. A sealed value is `nonce 24 ‖ ciphertext`, the
//! plaintext padded first (so sizes leak little), and the associated data
//! names the table and row, so a sealed value moved to another row or
//! table fails to open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::StoreError;
use crate::keys::StorageKeys;
use crate::padding;

const NONCE_LEN: usize = 24;
const AAD_DOMAIN: &[u8] = b"amana/v1/store\0";

/// Seals and opens store values; derives lookup keys.
pub(crate) struct Sealer {
    aead: XChaCha20Poly1305,
    index_key: Zeroizing<[u8; 32]>,
    #[cfg(test)]
    plaintext_for_tests: bool,
}

impl Sealer {
    pub(crate) fn new(keys: &StorageKeys) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(keys.seal.as_ref())),
            index_key: Zeroizing::new(*keys.index),
            #[cfg(test)]
            plaintext_for_tests: false,
        }
    }

    /// A sealer that stores plaintext: only for the test proving that the
    /// at-rest canary scan can find something.
    #[cfg(test)]
    pub(crate) fn plaintext_for_tests(keys: &StorageKeys) -> Self {
        Self {
            plaintext_for_tests: true,
            ..Self::new(keys)
        }
    }

    fn aad(table: &str, row: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + table.len() + 1 + row.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.extend_from_slice(table.as_bytes());
        aad.push(0);
        aad.extend_from_slice(row);
        aad
    }

    /// Seals `plaintext` for `row` of `table`.
    pub(crate) fn seal(&self, table: &str, row: &[u8], plaintext: &[u8]) -> Vec<u8> {
        #[cfg(test)]
        if self.plaintext_for_tests {
            return plaintext.to_vec();
        }
        let padded = Zeroizing::new(padding::pad(plaintext));
        let nonce_bytes: [u8; NONCE_LEN] = crate::random::bytes();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let aad = Self::aad(table, row);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ciphertext = self
            .aead
            .encrypt(
                nonce,
                Payload {
                    msg: &padded,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value sealed for `row` of `table`.
    pub(crate) fn open(
        &self,
        table: &'static str,
        row: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        #[cfg(test)]
        if self.plaintext_for_tests {
            return Ok(Zeroizing::new(sealed.to_vec()));
        }
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::Corrupt(format!(
                "a value in {table} is truncated"
            )));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = Self::aad(table, row);
        let padded = Zeroizing::new(
            self.aead
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    StoreError::Corrupt(format!("a value in {table} fails authentication"))
                })?,
        );
        let data = padding::unpad(&padded)
            .ok_or_else(|| StoreError::Corrupt(format!("a value in {table} has bad padding")))?;
        Ok(Zeroizing::new(data.to_vec()))
    }

    /// A lookup key for `value` in the namespace `kind`.
    pub(crate) fn index(&self, kind: &str, value: &[u8]) -> Vec<u8> {
        #[cfg(test)]
        if self.plaintext_for_tests {
            return value.to_vec();
        }
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.index_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sealer {
        fn of(byte: u8) -> Sealer {
            Sealer::new(&StorageKeys {
                seal: Zeroizing::new([byte; 32]),
                index: Zeroizing::new([byte.wrapping_add(100); 32]),
            })
        }
    }

    #[test]
    fn sealed_values_are_bound_to_their_row() {
        let sealer = Sealer::of(7);
        let sealed = sealer.seal("cases", b"row1", b"secret");
        assert_eq!(&*sealer.open("cases", b"row1", &sealed).unwrap(), b"secret");
        assert!(sealer.open("cases", b"row2", &sealed).is_err());
        assert!(sealer.open("outbox", b"row1", &sealed).is_err());
        assert!(Sealer::of(8).open("cases", b"row1", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(sealer.open("cases", b"row1", &flipped).is_err());
        assert!(sealer.open("cases", b"row1", &sealed[..10]).is_err());
    }

    #[test]
    fn index_keys_are_stable_and_keyed() {
        let a = Sealer::of(1);
        assert_eq!(a.index("case", b"x"), a.index("case", b"x"));
        assert_ne!(a.index("case", b"x"), a.index("device", b"x"));
        assert_ne!(a.index("case", b"x"), Sealer::of(2).index("case", b"x"));
    }
}
