//! The keystore: a device's secret keys, protected by its passphrase.
//!
//! The keystore is an age file encrypted to the passphrase (age's scrypt
//! recipient). We chose age's scrypt over argon2id + an AEAD because it is
//! one audited construction we already depend on, it authenticates the
//! whole file, and its work factor is calibrated to about one second on the
//! device that sets the passphrase. Plaintext layout:
//!
//! ```text
//! "AMANA-KEYSTORE" ‖ version u8 = 2 ‖ Ed25519 seed 32 ‖ storage key 32
//! ```
//!
//! (Version 1 also held the age identity that receives epoch keys; those
//! identities now rotate and live in the device store, see
//! [`super::receiving`].)
//!
//! ```text
//! ```
//!
//! A wrong passphrase fails when age unwraps the file key and is reported
//! as [`KeystoreError::WrongPassphrase`]; anything structurally wrong with
//! the file is [`KeystoreError::Corrupt`], so a damaged file is never
//! mistaken for a typo.

use std::io::Read;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::{DeviceKeys, STORAGE_KEY_LEN};
use crate::agefile::{self, AgeLimits};
use crate::wire::Reader;

const MAGIC: &[u8] = b"AMANA-KEYSTORE";
const VERSION: u8 = 2;
/// Largest scrypt work factor accepted when unlocking (2^22: a few seconds
/// and 4 GiB at most; refuses files crafted to exhaust the device).
const MAX_LOG_N: u8 = 22;

/// A passphrase. Never `Clone`, never printed.
pub struct Passphrase(SecretString);

impl Passphrase {
    /// Wraps a passphrase typed by a person.
    pub fn new(text: String) -> Self {
        Self(SecretString::from(text))
    }

    /// A random passphrase nobody knows (for a decoy slot).
    pub fn random() -> Self {
        let bytes = Zeroizing::new(crate::random::bytes::<32>());
        Self::new(hex::encode(&bytes[..]))
    }

    fn secret(&self) -> SecretString {
        use age::secrecy::ExposeSecret;
        SecretString::from(self.0.expose_secret().to_owned())
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// How much scrypt work protects a new keystore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkFactor {
    /// About one second on this device (age's calibration). Use this in
    /// production.
    Calibrated,
    /// A fixed `log2(N)`; low values are for tests only.
    Fixed(u8),
}

/// Why a keystore could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The passphrase does not open the keystore.
    #[error("wrong passphrase: try again, checking the keyboard language and caps lock")]
    WrongPassphrase,
    /// The keystore file is damaged or not a keystore.
    #[error("the keystore is damaged ({0}); restore the device from the office or re-enrol it")]
    Corrupt(&'static str),
    /// The keystore demands more work than this device accepts.
    #[error(
        "the keystore asks for scrypt work 2^{0}, above the accepted maximum; it was not made by Amana"
    )]
    ExcessiveWork(u8),
    /// The keystore was written by a newer version.
    #[error("keystore version {0} is not supported; update Amana")]
    UnsupportedVersion(u8),
    /// age failed to encrypt (should not happen).
    #[error("could not encrypt the keystore")]
    Encrypt,
}

/// Encrypts the device keys to `passphrase`.
pub fn seal(
    keys: &DeviceKeys,
    passphrase: &Passphrase,
    work: WorkFactor,
) -> Result<Vec<u8>, KeystoreError> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(160));
    plaintext.extend_from_slice(MAGIC);
    plaintext.push(VERSION);
    plaintext.extend_from_slice(&keys.signing_key().to_bytes());
    plaintext.extend_from_slice(keys.storage_key());
    seal_bytes(&plaintext, passphrase, work)
}

/// Encrypts any secret to a passphrase, the way the keystore is (also used
/// for the duress slot, which must cost the same to try).
pub fn seal_bytes(
    plaintext: &[u8],
    passphrase: &Passphrase,
    work: WorkFactor,
) -> Result<Vec<u8>, KeystoreError> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.secret());
    if let WorkFactor::Fixed(log_n) = work {
        recipient.set_work_factor(log_n.clamp(1, MAX_LOG_N));
    }
    age::encrypt(&recipient, plaintext).map_err(|_| KeystoreError::Encrypt)
}

/// Decrypts a keystore with `passphrase`.
pub fn open(file: &[u8], passphrase: &Passphrase) -> Result<DeviceKeys, KeystoreError> {
    decode(&open_bytes(file, passphrase)?)
}

/// Decrypts a file made by [`seal_bytes`].
pub fn open_bytes(
    file: &[u8],
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    agefile::check_structure(file, AgeLimits::ONE_RECIPIENT)
        .map_err(|_| KeystoreError::Corrupt("not an age file"))?;
    let decryptor = age::Decryptor::new_buffered(file)
        .map_err(|_| KeystoreError::Corrupt("unreadable header"))?;
    if !decryptor.is_scrypt() {
        return Err(KeystoreError::Corrupt("not passphrase-protected"));
    }
    let mut identity = age::scrypt::Identity::new(passphrase.secret());
    identity.set_max_work_factor(MAX_LOG_N);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::ExcessiveWork { required, .. } => {
                KeystoreError::ExcessiveWork(required)
            }
            age::DecryptError::InvalidHeader => KeystoreError::Corrupt("malformed header"),
            age::DecryptError::InvalidMac => KeystoreError::Corrupt("header MAC mismatch"),
            _ => KeystoreError::WrongPassphrase,
        })?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| KeystoreError::Corrupt("payload does not decrypt"))?;
    Ok(plaintext)
}

fn decode(plaintext: &[u8]) -> Result<DeviceKeys, KeystoreError> {
    let corrupt = |_| KeystoreError::Corrupt("malformed contents");
    let mut r = Reader::new(plaintext);
    if r.take(MAGIC.len()).map_err(corrupt)? != MAGIC {
        return Err(KeystoreError::Corrupt("not an Amana keystore"));
    }
    let version = r.u8().map_err(corrupt)?;
    if version != VERSION {
        return Err(KeystoreError::UnsupportedVersion(version));
    }
    let seed = Zeroizing::new(r.array::<32>().map_err(corrupt)?);
    let storage = Zeroizing::new(r.array::<STORAGE_KEY_LEN>().map_err(corrupt)?);
    r.finish().map_err(corrupt)?;
    Ok(DeviceKeys::from_parts(&seed, &storage))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_WORK: WorkFactor = WorkFactor::Fixed(4);

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned())
    }

    #[test]
    fn round_trip_keeps_every_key() {
        let keys = DeviceKeys::generate();
        let file = seal(&keys, &pass("correct horse"), TEST_WORK).unwrap();
        let back = open(&file, &pass("correct horse")).unwrap();
        assert_eq!(back.device_id(), keys.device_id());
        assert_eq!(back.storage_key(), keys.storage_key());
    }

    #[test]
    fn wrong_passphrase_is_specific() {
        let keys = DeviceKeys::generate();
        let file = seal(&keys, &pass("right"), TEST_WORK).unwrap();
        assert!(matches!(
            open(&file, &pass("wrong")),
            Err(KeystoreError::WrongPassphrase)
        ));
        // Arabic passphrases work like any other.
        let file = seal(&keys, &pass("كلمة السر"), TEST_WORK).unwrap();
        assert!(open(&file, &pass("كلمة السر")).is_ok());
    }

    #[test]
    fn damage_is_not_reported_as_wrong_passphrase() {
        let keys = DeviceKeys::generate();
        let file = seal(&keys, &pass("p"), TEST_WORK).unwrap();
        for cut in [0, 10, file.len() / 2, file.len() - 1] {
            assert!(
                matches!(
                    open(&file[..cut], &pass("p")),
                    Err(KeystoreError::Corrupt(_))
                ),
                "truncated at {cut}"
            );
        }
        // Flip a byte of the encrypted payload (the last byte).
        let mut damaged = file.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open(&damaged, &pass("p")),
            Err(KeystoreError::Corrupt(_))
        ));
        assert!(matches!(
            open(b"garbage", &pass("p")),
            Err(KeystoreError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_files_not_made_with_a_passphrase() {
        let other = age::x25519::Identity::generate();
        let file = age::encrypt(&other.to_public(), b"x").unwrap();
        assert!(matches!(
            open(&file, &pass("p")),
            Err(KeystoreError::Corrupt(_))
        ));
    }

    #[test]
    fn debug_of_passphrase_is_redacted() {
        assert_eq!(format!("{:?}", pass("secret")), "Passphrase(<redacted>)");
    }
}
