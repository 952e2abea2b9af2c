//! The relay's own Ed25519 key, which signs receipts. Created on first
//! start and kept beside the database (`relay.key`, mode 0600); its public
//! half is what devices pin and auditors verify receipts against. An
//! auditor's report-signing key (`amana-relay audit --auditor-key`) is the
//! same kind of file.

use std::fs;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Why the relay key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayKeyError {
    /// Reading or writing the key file failed.
    #[error("cannot read or write the key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The key file is not 32 bytes.
    #[error(
        "the key file {0} is damaged (expected 32 bytes); restore it from backup, or remove it to start a new identity"
    )]
    Damaged(String),
}

/// Loads the key at `path`, creating it if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<SigningKey, RelayKeyError> {
    let io = |source| RelayKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let seed: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| RelayKeyError::Damaged(path.display().to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(seed.as_mut()).map_err(|e| io(std::io::Error::other(e)))?;
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(io)?;
            file.write_all(seed.as_ref()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io(e)),
    }
}

/// The hex form of a relay public key, as printed for operators and pinned
/// in invites.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}
