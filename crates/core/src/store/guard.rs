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
//! - **Order** ([`Attempt`]): unlocks are serialised by a file lock; each
//!   is counted before any key is derived; the duress slot is tried before
//!   the keystore. So killing the process, or racing two unlocks, skips
//!   neither the count nor the wipe.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StoreError, wipe};
use crate::keys::keystore::{self, KeystoreError, Passphrase, WorkFactor};

/// File name of the duress slot in a data directory.
pub const GUARD_FILE: &str = "guard.age";
/// File name of the failed-unlock counter and limit.
pub const LOCKOUT_FILE: &str = "lockout.json";
/// File name of the lock that serialises unlocks.
pub const UNLOCK_LOCK: &str = "unlock.lock";
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

/// Writes the keystore and the duress slot (each given, or its bytes as
/// they are), both as new files at the same moment with the same times:
/// neither the modification nor the change time of one says that it alone
/// changed, so the files do not tell a passphrase change from setting a
/// duress passphrase, or when one was set.
pub(super) fn write_secrets(
    dir: &Path,
    keystore: Option<&[u8]>,
    slot: Option<&[u8]>,
) -> Result<(), StoreError> {
    let keystore_path = dir.join(super::KEYSTORE_FILE);
    let slot_path = dir.join(GUARD_FILE);
    let keystore = match keystore {
        Some(bytes) => bytes.to_vec(),
        None => fs::read(&keystore_path)?,
    };
    let slot = match slot {
        Some(bytes) => bytes.to_vec(),
        None => fs::read(&slot_path)?,
    };
    super::write_atomically(&slot_path, &slot)?;
    super::write_atomically(&keystore_path, &keystore)?;
    let now = std::time::SystemTime::now();
    let times = fs::FileTimes::new().set_modified(now).set_accessed(now);
    for path in [&slot_path, &keystore_path] {
        File::options().write(true).open(path)?.set_times(times)?;
    }
    Ok(())
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

/// One unlock in progress: unlocks of a directory are serialised (a lock
/// on `unlock.lock`, held until this is dropped) and each is counted as a
/// failure, durably, before any passphrase is tried. Killing the process
/// at any moment therefore leaves the attempt counted; only a passphrase
/// that opens the keystore takes the count back.
pub(super) struct Attempt {
    dir: PathBuf,
    /// The count before this attempt.
    before: Lockout,
    _lock: Option<File>,
}

/// Begins an unlock of `dir`: waits for any other unlock of it to end,
/// wipes if earlier attempts already reached the limit (one killed before
/// it could wipe), and counts this one.
pub(super) fn begin_attempt(dir: &Path) -> Result<Attempt, StoreError> {
    let before = lockout(dir);
    // Without a limit, a directory that cannot hold the lock (read-only,
    // or a file system without locks) must not keep the officer out; with
    // one, an unlock that cannot be serialised and counted would bypass it.
    let lock = match super::private_file(&dir.join(UNLOCK_LOCK)).and_then(|f| {
        f.lock()?;
        Ok(f)
    }) {
        Ok(lock) => Some(lock),
        Err(_) if before.wipe_after.is_none() => None,
        Err(e) => return Err(e),
    };
    // Read again under the lock: another unlock may have just counted.
    let before = if lock.is_some() { lockout(dir) } else { before };
    if before.remaining() == Some(0) {
        let report = wipe::wipe(dir);
        return Err(StoreError::LockedOut {
            attempts: before.failures,
            keys_destroyed: report.keys_destroyed(),
        });
    }
    let counted = Lockout {
        failures: before.failures.saturating_add(1),
        ..before
    };
    match write_lockout(dir, &counted) {
        Ok(()) => {}
        // A limit that cannot be counted would be no limit.
        Err(e) if before.wipe_after.is_some() => return Err(e),
        // Without one, the count is information only.
        Err(_) => {}
    }
    Ok(Attempt {
        dir: dir.to_owned(),
        before,
        _lock: lock,
    })
}

impl Attempt {
    /// Tries `passphrase`: the duress slot first, so that no moment exists
    /// at which the keystore has refused it and the wipe has not begun
    /// (the price: a successful unlock runs scrypt twice, as a failed one
    /// always did). Every answer costs both runs, so the time does not
    /// tell a duress passphrase from a typo. Returns the opened keys, or
    /// the error to show, which is the same for a typo and for the duress
    /// wipe. The flag says whether the keystore is of version 2.
    pub(super) fn try_passphrase(
        self,
        keystore_bytes: &[u8],
        passphrase: &Passphrase,
    ) -> Result<(crate::keys::DeviceKeys, bool), StoreError> {
        let counted = Lockout {
            failures: self.before.failures.saturating_add(1),
            ..self.before
        };
        let typo = match counted.remaining() {
            Some(remaining) => StoreError::WrongPassphraseLimited { remaining },
            None => StoreError::Keystore(KeystoreError::WrongPassphrase),
        };
        if is_duress(&self.dir, passphrase) {
            wipe::wipe(&self.dir);
            // Then the keystore's scrypt, on the bytes read before the
            // wipe, as for a typo: the answer must not come a second early.
            let _ = keystore::open(keystore_bytes, passphrase);
            return Err(typo);
        }
        match keystore::open_versioned(keystore_bytes, passphrase) {
            Ok(keys) => {
                // Taking the count back is a courtesy; a read-only
                // directory must not keep the officer out.
                let _ = write_lockout(
                    &self.dir,
                    &Lockout {
                        failures: 0,
                        ..self.before
                    },
                );
                Ok(keys)
            }
            Err(KeystoreError::WrongPassphrase) if counted.remaining() == Some(0) => {
                let report = wipe::wipe(&self.dir);
                Err(StoreError::LockedOut {
                    attempts: counted.failures,
                    keys_destroyed: report.keys_destroyed(),
                })
            }
            Err(KeystoreError::WrongPassphrase) => Err(typo),
            Err(e) => {
                // Not a passphrase that failed (a damaged keystore): not
                // counted.
                let _ = write_lockout(&self.dir, &self.before);
                Err(e.into())
            }
        }
    }
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
        let mut store = device(dir.path());
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

    /// A process killed while it derives keys (here: an attempt begun and
    /// dropped) has already counted the attempt, and the next unlock at
    /// the limit wipes before trying anything. (Before: the count was
    /// written after both scrypt runs, so each kill was a free guess.)
    #[test]
    fn an_attempt_is_counted_before_any_key_is_derived() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("dev");
        device(&data).set_wipe_after(Some(2)).unwrap();
        for counted in 1..=2 {
            drop(begin_attempt(&data).unwrap());
            assert_eq!(lockout(&data).failures, counted);
        }
        assert!(matches!(
            DeviceStore::unlock(&data, &pass("the real one")),
            Err(StoreError::LockedOut { attempts: 2, .. })
        ));
        assert!(!data.exists(), "wiped, even for the right passphrase");
    }

    /// Two unlocks at once cannot both read the count before either
    /// writes it: with a limit of two, two wrong passphrases typed at
    /// once wipe. (Before: both counted one, and neither wiped.)
    #[test]
    fn parallel_unlocks_are_counted_one_after_the_other() {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("dev");
            device(&data).set_wipe_after(Some(2)).unwrap();
            let start = std::sync::Barrier::new(2);
            let outcomes: Vec<StoreError> = std::thread::scope(|s| {
                let tries: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            DeviceStore::unlock(&data, &pass("wrong")).unwrap_err()
                        })
                    })
                    .collect();
                tries.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(
                outcomes
                    .iter()
                    .any(|e| matches!(e, StoreError::LockedOut { attempts: 2, .. })),
                "{outcomes:?}"
            );
            assert!(!data.join(KEYSTORE_FILE).exists());
        }
    }

    /// The duress slot is tried before the keystore: even when the
    /// keystore cannot be read at all, the duress passphrase wipes.
    /// (Before: the keystore came first, and its error ended the unlock
    /// with nothing wiped; a kill between the two runs did the same.)
    #[test]
    fn the_duress_slot_is_tried_before_the_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("dev");
        device(&data)
            .set_duress(Some(&pass("under duress")), WORK)
            .unwrap();
        fs::write(data.join(KEYSTORE_FILE), b"age-encryption.org/v1\n damaged").unwrap();
        DeviceStore::unlock(&data, &pass("under duress")).unwrap_err();
        assert!(!data.exists(), "wiped");
    }

    /// Setting a duress passphrase leaves no trace in the files' times:
    /// the keystore and the slot are written anew together, with the same
    /// times. (Before: only `guard.age` changed, dating the duress
    /// passphrase.)
    #[test]
    fn the_files_do_not_date_a_duress_passphrase() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = device(dir.path());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        store.set_duress(Some(&pass("under duress")), WORK).unwrap();
        let keystore = fs::metadata(dir.path().join(KEYSTORE_FILE)).unwrap();
        let slot = fs::metadata(dir.path().join(GUARD_FILE)).unwrap();
        assert_eq!(keystore.modified().unwrap(), slot.modified().unwrap());
        assert!(
            keystore.ctime().abs_diff(slot.ctime()) <= 1,
            "written together"
        );
        assert!(DeviceStore::unlock(dir.path(), &pass("the real one")).is_ok());
    }
}
