//! Panic wipe: destroying a device's data directory.
//!
//! Keys go first, then data, each file in its own step so that one failure
//! (a file held open, a read-only directory) never stops the rest. Every
//! payload in the database is sealed with the storage key inside the
//! keystore, so once the keystore and the duress slot are gone nothing left
//! in the directory is decryptable, even if a later step fails or the
//! flash keeps an old copy of a block.
//!
//! Each file is overwritten with random bytes, flushed, truncated and then
//! unlinked. On flash storage an overwrite is not guaranteed to reach the
//! same cells (wear levelling); the guarantee rests on the keys being gone,
//! and the overwrite only narrows what a forensic reader might find.
//!
//! Only files Amana creates are touched: a directory given by mistake (a
//! home directory, say) loses nothing of anyone else's.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{DATABASE_FILE, KEYSTORE_FILE, guard};

/// The files of a data directory, in the order they are destroyed: every
/// key first, then the data, then bookkeeping.
pub const WIPE_ORDER: &[&str] = &[
    KEYSTORE_FILE,
    "keystore.tmp",
    guard::GUARD_FILE,
    "guard.tmp",
    "store.sqlite-wal",
    "store.sqlite-shm",
    "store.sqlite-journal",
    DATABASE_FILE,
    super::rekey::NEXT_DATABASE,
    "store.next.sqlite-journal",
    super::rekey::PENDING,
    "rekey.tmp",
    guard::LOCKOUT_FILE,
    "lockout.tmp",
    guard::UNLOCK_LOCK,
    super::rekey::STORE_LOCK,
    super::rekey::UPGRADE_LOCK,
];

/// The files holding keys; destroying them is what makes the rest
/// unreadable.
const KEY_FILES: &[&str] = &[
    KEYSTORE_FILE,
    "keystore.tmp",
    guard::GUARD_FILE,
    "guard.tmp",
];

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WipeOutcome {
    /// Overwritten and removed.
    Destroyed {
        /// Its size.
        bytes: u64,
    },
    /// It was not there.
    Absent,
    /// It could not be destroyed; the reason says why.
    Failed(String),
}

/// One step of a wipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WipeStep {
    /// The file name inside the data directory.
    pub file: &'static str,
    /// What happened.
    pub outcome: WipeOutcome,
}

/// What a wipe did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WipeReport {
    /// The data directory.
    pub dir: PathBuf,
    /// One step per known file, in order.
    pub steps: Vec<WipeStep>,
    /// Whether the directory itself was removed (it was empty afterwards).
    pub removed_dir: bool,
    /// Files in the directory that are not Amana's, left alone.
    pub left_alone: Vec<String>,
}

impl WipeReport {
    /// Whether anything was there to destroy.
    pub fn found_anything(&self) -> bool {
        self.steps
            .iter()
            .any(|s| !matches!(s.outcome, WipeOutcome::Absent))
    }

    /// Whether every key file was destroyed (the guarantee that matters).
    pub fn keys_destroyed(&self) -> bool {
        self.steps
            .iter()
            .filter(|s| KEY_FILES.contains(&s.file))
            .all(|s| !matches!(s.outcome, WipeOutcome::Failed(_)))
    }

    /// Whether every step succeeded.
    pub fn complete(&self) -> bool {
        self.steps
            .iter()
            .all(|s| !matches!(s.outcome, WipeOutcome::Failed(_)))
    }
}

/// Destroys every Amana file in `dir`. Never fails as a whole: each
/// step's outcome is in the report.
pub fn wipe(dir: &Path) -> WipeReport {
    let steps = WIPE_ORDER
        .iter()
        .map(|file| WipeStep {
            file,
            outcome: destroy(&dir.join(file)),
        })
        .collect();
    let left_alone: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let removed_dir = left_alone.is_empty() && dir.exists() && fs::remove_dir(dir).is_ok();
    WipeReport {
        dir: dir.to_owned(),
        steps,
        removed_dir,
        left_alone,
    }
}

pub(crate) fn destroy(path: &Path) -> WipeOutcome {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return WipeOutcome::Absent,
        Err(e) => return WipeOutcome::Failed(e.to_string()),
    };
    if !meta.is_file() {
        return WipeOutcome::Failed("not a regular file; left in place".into());
    }
    let bytes = meta.len();
    // Overwriting is best effort: a failure here must not keep the file
    // from being removed.
    let overwrite = overwrite(path, bytes);
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent()
                && let Ok(dir) = fs::File::open(parent)
            {
                let _ = dir.sync_all();
            }
            match overwrite {
                Ok(()) => WipeOutcome::Destroyed { bytes },
                Err(e) => WipeOutcome::Failed(format!("removed, but not overwritten first: {e}")),
            }
        }
        Err(e) => WipeOutcome::Failed(e.to_string()),
    }
}

fn overwrite(path: &Path, len: u64) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(0))?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        crate::random::fill(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    file.set_len(0)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroys_known_files_keys_first_and_leaves_others() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("amana");
        fs::create_dir(&data).unwrap();
        for file in [KEYSTORE_FILE, DATABASE_FILE, "store.sqlite-wal"] {
            fs::write(data.join(file), b"secret canary bytes").unwrap();
        }
        fs::write(data.join("notes.txt"), b"not ours").unwrap();
        let report = wipe(&data);
        assert_eq!(report.steps[0].file, KEYSTORE_FILE);
        assert_eq!(
            report.steps[0].outcome,
            WipeOutcome::Destroyed { bytes: 19 }
        );
        assert!(report.complete() && report.keys_destroyed());
        assert_eq!(report.left_alone, vec!["notes.txt".to_owned()]);
        assert!(!report.removed_dir);
        assert!(!data.join(KEYSTORE_FILE).exists());
        assert!(!data.join(DATABASE_FILE).exists());
        assert!(data.join("notes.txt").exists());
    }

    #[test]
    fn one_failing_step_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEYSTORE_FILE), b"k").unwrap();
        fs::write(dir.path().join(DATABASE_FILE), b"d").unwrap();
        // Something that cannot be removed as a file, before the database.
        fs::create_dir(dir.path().join("store.sqlite-wal")).unwrap();
        let report = wipe(dir.path());
        let outcome = |name| {
            report
                .steps
                .iter()
                .find(|s| s.file == name)
                .unwrap()
                .outcome
                .clone()
        };
        assert!(matches!(
            outcome("store.sqlite-wal"),
            WipeOutcome::Failed(_)
        ));
        assert_eq!(outcome(DATABASE_FILE), WipeOutcome::Destroyed { bytes: 1 });
        assert!(report.keys_destroyed());
        assert!(!report.complete());
    }

    #[test]
    fn wiping_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("amana");
        fs::create_dir(&data).unwrap();
        fs::write(data.join(KEYSTORE_FILE), b"k").unwrap();
        let first = wipe(&data);
        assert!(first.found_anything() && first.removed_dir);
        let second = wipe(&data);
        assert!(!second.found_anything());
        assert!(second.complete());
    }
}
