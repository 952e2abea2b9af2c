//! What stands between a passphrase prompt and the keys: the duress
//! passphrase and the failed-attempt limit.
//!
//! - **Duress slot** (`guard.age`): an age file encrypted to a passphrase,
//!   made exactly like the keystore (same scrypt work). Every device has
//!   one from `amana init`; until a duress passphrase is set it is sealed
//!   to a random passphrase nobody knows, so its presence says nothing.
//!   When a passphrase fails to open the keystore but opens this slot, the
//!   device is wiped and the caller gets the very error a wrong passphrase
//!   gives: whoever forced the passphrase out of an officer sees a typo.
//! - **Lockout** (`lockout.json`, plaintext): an optional limit of failed
//!   unlocks after which the device wipes itself, and the running count.
//!   It is off by default. It only counts attempts made through Amana: a
//!   copy of the directory can be attacked offline, where only the
//!   passphrase's strength and scrypt's cost help.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StoreError, wipe};
use crate::keys::keystore::{self, KeystoreError, Passphrase, WorkFactor};

/// File name of the duress slot in a data directory.
pub const GUARD_FILE: &str = "guard.age";
/// File name of the failed-unlock counter and limit.
pub const LOCKOUT_FILE: &str = "lockout.json";
const GUARD_CONTENT: &[u8] = b"AMANA-DURESS-SLOT v1";

/// The failed-unlock limit and count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockout {
    /// Wipe after this many failed unlocks in a row; `None`: never.
    pub wipe_after: Option<u32>,
    /// Failed unlocks since the last successful one.
    pub failures: u32,
}

impl Lockout {
    /// Attempts left before the wipe, if a limit is set.
    pub fn remaining(&self) -> Option<u32> {
        self.wipe_after.map(|n| n.saturating_sub(self.failures))
    }
}

/// The lockout state of `dir` (the default if none was written, or if the
/// file is unreadable: a damaged counter must not lock the officer out).
pub fn lockout(dir: &Path) -> Lockout {
    fs::read(dir.join(LOCKOUT_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

pub(super) fn write_lockout(dir: &Path, lockout: &Lockout) -> Result<(), StoreError> {
    let json = serde_json::to_vec(lockout).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    super::write_atomically(&dir.join(LOCKOUT_FILE), &json)
}

/// Seals the duress slot to `passphrase`, or to a random one for a decoy.
pub(super) fn seal_slot(
    passphrase: Option<&Passphrase>,
    work: WorkFactor,
) -> Result<Vec<u8>, KeystoreError> {
    match passphrase {
        Some(p) => keystore::seal_bytes(GUARD_CONTENT, p, work),
        None => keystore::seal_bytes(GUARD_CONTENT, &Passphrase::random(), work),
    }
}

/// Whether `passphrase` opens the duress slot of `dir`.
pub(super) fn is_duress(dir: &Path, passphrase: &Passphrase) -> bool {
    fs::read(dir.join(GUARD_FILE))
        .ok()
        .and_then(|file| keystore::open_bytes(&file, passphrase).ok())
        .is_some_and(|content| content.as_slice() == GUARD_CONTENT)
}

/// Called when `passphrase` did not open the keystore: wipes on the duress
/// passphrase or at the limit, otherwise counts the failure. Returns the
/// error to show, which is the same for a typo and for the duress wipe.
pub(super) fn after_wrong_passphrase(dir: &Path, passphrase: &Passphrase) -> StoreError {
    let mut state = lockout(dir);
    let typo = |state: &Lockout| match state.remaining() {
        Some(remaining) => StoreError::WrongPassphraseLimited { remaining },
        None => StoreError::Keystore(KeystoreError::WrongPassphrase),
    };
    if is_duress(dir, passphrase) {
        // What a typo would have shown, counted as one.
        let shown = Lockout {
            failures: state.failures + 1,
            ..state
        };
        wipe::wipe(dir);
        return typo(&shown);
    }
    state.failures += 1;
    if state.remaining() == Some(0) {
        let report = wipe::wipe(dir);
        return StoreError::LockedOut {
            attempts: state.failures,
            keys_destroyed: report.keys_destroyed(),
        };
    }
    // If the counter cannot be written the attempt still fails; the limit
    // is a deterrent, not the protection.
    let _ = write_lockout(dir, &state);
    typo(&state)
}

/// Called after a successful unlock: the count starts again.
pub(super) fn after_unlock(dir: &Path) -> Result<(), StoreError> {
    let state = lockout(dir);
    if state.failures > 0 {
        write_lockout(
            dir,
            &Lockout {
                failures: 0,
                ..state
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::DeviceKeys;
    use crate::store::{DeviceStore, KEYSTORE_FILE};

    const WORK: WorkFactor = WorkFactor::Fixed(4);

    fn pass(text: &str) -> Passphrase {
        Passphrase::new(text.to_owned())
    }

    fn device(dir: &Path) -> DeviceStore {
        DeviceStore::create(dir, DeviceKeys::generate(), &pass("the real one"), WORK).unwrap()
    }

    #[test]
    fn every_device_has_a_slot_that_opens_with_nothing_until_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = device(dir.path());
        assert!(dir.path().join(GUARD_FILE).exists());
        assert!(!is_duress(dir.path(), &pass("the real one")));
        assert!(matches!(
            store.set_duress(Some(&pass("the real one")), WORK),
            Err(StoreError::DuressIsPassphrase)
        ));
        store.set_duress(Some(&pass("under duress")), WORK).unwrap();
        assert!(matches!(
            store.change_passphrase(&pass("under duress"), WORK),
            Err(StoreError::PassphraseIsDuress)
        ));
        store.set_duress(None, WORK).unwrap();
        assert!(!is_duress(dir.path(), &pass("under duress")));
    }

    #[test]
    fn the_duress_passphrase_wipes_and_looks_like_a_typo() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("dev");
        device(&data)
            .set_duress(Some(&pass("under duress")), WORK)
            .unwrap();
        let typo = DeviceStore::unlock(&data, &pass("a typo")).unwrap_err();
        assert!(data.join(KEYSTORE_FILE).exists());
        let duress = DeviceStore::unlock(&data, &pass("under duress")).unwrap_err();
        assert_eq!(typo.to_string(), duress.to_string());
        assert!(!data.exists(), "the whole directory is gone");
        assert!(matches!(
            DeviceStore::unlock(&data, &pass("the real one")),
            Err(StoreError::NotInitialised(_))
        ));
    }

    #[test]
    fn the_failure_limit_counts_resets_and_wipes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("dev");
        device(&data).set_wipe_after(Some(3)).unwrap();
        for remaining in [2, 1] {
            assert!(matches!(
                DeviceStore::unlock(&data, &pass("wrong")),
                Err(StoreError::WrongPassphraseLimited { remaining: r }) if r == remaining
            ));
        }
        // A success starts the count again.
        DeviceStore::unlock(&data, &pass("the real one")).unwrap();
        assert_eq!(lockout(&data).failures, 0);
        for _ in 0..2 {
            DeviceStore::unlock(&data, &pass("wrong")).unwrap_err();
        }
        assert!(matches!(
            DeviceStore::unlock(&data, &pass("wrong")),
            Err(StoreError::LockedOut {
                attempts: 3,
                keys_destroyed: true
            })
        ));
        assert!(!data.exists());
    }

    #[test]
    fn without_a_limit_failures_only_count() {
        let dir = tempfile::tempdir().unwrap();
        device(dir.path());
        for _ in 0..5 {
            assert!(matches!(
                DeviceStore::unlock(dir.path(), &pass("wrong")),
                Err(StoreError::Keystore(KeystoreError::WrongPassphrase))
            ));
        }
        assert_eq!(lockout(dir.path()).failures, 5);
        assert!(dir.path().join(KEYSTORE_FILE).exists());
    }
}
