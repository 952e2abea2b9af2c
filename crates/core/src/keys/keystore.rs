//! The keystore: a device's secret keys, protected by its passphrase.
//!
//! The keystore is an age file encrypted to the passphrase (age's scrypt
//! recipient). We chose age's scrypt over argon2id + an AEAD because it is
//! one audited construction we already depend on, it authenticates the
//! whole file, and its work factor is calibrated to about one second on the
//! device that sets the passphrase. Plaintext layout:
//!
//! ```text
//! "AMANA-KEYSTORE" ‖ version u8 = 3 ‖ Ed25519 seed 32 ‖ sealing key 32 ‖ index key 32
//! ```
//!
//! Version 2 held one storage key from which both store keys were derived
//! with HKDF-SHA256; it is still read, and the device store re-keys itself
//! to version 3 at the first unlock (so that no key it keeps can derive the
//! sealing key of its past). Version 1 also held the age identity that
//! receives epoch keys; those identities now rotate and live in the device
//! store, see [`super::receiving`].
//!
//! A wrong passphrase fails when age unwraps the file key and is reported
//! as [`KeystoreError::WrongPassphrase`]; anything structurally wrong with
//! the file is [`KeystoreError::Corrupt`], so a damaged file is never
//! mistaken for a typo.

use std::io::Read;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::{DeviceKeys, STORAGE_KEY_LEN, StorageKeys};
use crate::agefile::{self, AgeLimits};
use crate::wire::Reader;

const MAGIC: &[u8] = b"AMANA-KEYSTORE";
const VERSION: u8 = 3;
/// The version with one storage key, read for devices set up before 3.
const VERSION_ONE_STORAGE_KEY: u8 = 2;
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

    /// A second copy, for a device store that must re-seal its keystore
    /// later in the same session (both copies are zeroized when dropped).
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.secret())
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
    plaintext.extend_from_slice(Zeroizing::new(keys.signing_key().to_bytes()).as_ref());
    plaintext.extend_from_slice(keys.storage().seal.as_ref());
    plaintext.extend_from_slice(keys.storage().index.as_ref());
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

/// The scrypt work factor `file` was sealed with (read from its stanza),
/// so that re-sealing it costs what it cost before; `Calibrated` if the
/// file does not say.
pub(crate) fn work_factor(file: &[u8]) -> WorkFactor {
    let header = &file[..file.len().min(AgeLimits::ONE_RECIPIENT.max_header_bytes)];
    header
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let mut words = std::str::from_utf8(line.strip_prefix(b"-> scrypt ")?)
                .ok()?
                .split(' ');
            let _salt = words.next()?;
            words.next()?.parse::<u8>().ok()
        })
        .map_or(WorkFactor::Calibrated, WorkFactor::Fixed)
}

/// Decrypts a keystore with `passphrase`.
pub fn open(file: &[u8], passphrase: &Passphrase) -> Result<DeviceKeys, KeystoreError> {
    Ok(open_versioned(file, passphrase)?.0)
}

/// As [`open`], also saying whether the file is of the version with one
/// storage key (whose device store must be re-keyed).
pub(crate) fn open_versioned(
    file: &[u8],
    passphrase: &Passphrase,
) -> Result<(DeviceKeys, bool), KeystoreError> {
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

fn decode(plaintext: &[u8]) -> Result<(DeviceKeys, bool), KeystoreError> {
    let corrupt = |_| KeystoreError::Corrupt("malformed contents");
    let mut r = Reader::new(plaintext);
    if r.take(MAGIC.len()).map_err(corrupt)? != MAGIC {
        return Err(KeystoreError::Corrupt("not an Amana keystore"));
    }
    let version = r.u8().map_err(corrupt)?;
    if version != VERSION && version != VERSION_ONE_STORAGE_KEY {
        return Err(KeystoreError::UnsupportedVersion(version));
    }
    let seed = Zeroizing::new(r.array::<32>().map_err(corrupt)?);
    let first = Zeroizing::new(r.array::<STORAGE_KEY_LEN>().map_err(corrupt)?);
    let storage = if version == VERSION {
        let index = Zeroizing::new(r.array::<STORAGE_KEY_LEN>().map_err(corrupt)?);
        StorageKeys { seal: first, index }
    } else {
        derive_from_one_key(&first)
    };
    r.finish().map_err(corrupt)?;
    Ok((
        DeviceKeys::from_parts(&seed, storage),
        version == VERSION_ONE_STORAGE_KEY,
    ))
}

/// The store keys of a version-2 keystore: both derived from its one
/// storage key, as every store was sealed before version 3.
fn derive_from_one_key(storage_key: &[u8; STORAGE_KEY_LEN]) -> StorageKeys {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, storage_key);
    let mut seal = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
    let mut index = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
    // 32-byte outputs are always within HKDF-SHA256's limit.
    let _ = hk.expand(b"amana/v1/store/seal", seal.as_mut());
    let _ = hk.expand(b"amana/v1/store/index", index.as_mut());
    StorageKeys { seal, index }
}

/// A version-2 keystore of `signing_seed` and one storage key, as devices
/// set up before version 3 have (for the test of the upgrade).
#[cfg(test)]
pub(crate) fn seal_one_storage_key_for_tests(
    signing_seed: &[u8; 32],
    storage_key: &[u8; STORAGE_KEY_LEN],
    passphrase: &Passphrase,
) -> (Vec<u8>, DeviceKeys) {
    let mut plaintext = Zeroizing::new(Vec::new());
    plaintext.extend_from_slice(MAGIC);
    plaintext.push(VERSION_ONE_STORAGE_KEY);
    plaintext.extend_from_slice(signing_seed);
    plaintext.extend_from_slice(storage_key);
    let file = seal_bytes(&plaintext, passphrase, WorkFactor::Fixed(4)).expect("sealing works");
    (
        file,
        DeviceKeys::from_parts(signing_seed, derive_from_one_key(storage_key)),
    )
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
        assert_eq!(*back.storage().seal, *keys.storage().seal);
        assert_eq!(*back.storage().index, *keys.storage().index);
    }

    #[test]
    fn the_work_factor_is_read_back_from_the_file() {
        let file = seal(&DeviceKeys::generate(), &pass("p"), WorkFactor::Fixed(5)).unwrap();
        assert_eq!(work_factor(&file), WorkFactor::Fixed(5));
        assert_eq!(work_factor(b"not an age file"), WorkFactor::Calibrated);
    }

    #[test]
    fn a_version_2_keystore_still_opens_and_says_so() {
        let (file, keys) = seal_one_storage_key_for_tests(&[3; 32], &[4; 32], &pass("p"));
        let (back, one_key) = open_versioned(&file, &pass("p")).unwrap();
        assert!(one_key);
        assert_eq!(back.device_id(), keys.device_id());
        assert_eq!(*back.storage().seal, *keys.storage().seal);
        assert_ne!(*back.storage().seal, *back.storage().index);
        let current = seal(&back, &pass("p"), TEST_WORK).unwrap();
        assert!(!open_versioned(&current, &pass("p")).unwrap().1);
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
