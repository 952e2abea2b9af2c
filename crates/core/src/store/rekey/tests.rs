//! Re-keying: copies of the files taken before a shred or a passphrase
//! change (standing in for blocks carved from the flash) open with no key
//! the device keeps afterwards; an interrupted re-key is finished or undone;
//! a store open elsewhere defers it; every sealed column is covered.

use std::path::Path;

use super::*;
use crate::case::testing::case;
use crate::envelope::snapshot::{ShredReason, Tombstone};
use crate::ids::{CaseId, DeviceId};
use crate::keys::DeviceKeys;

const WORK: WorkFactor = WorkFactor::Fixed(4);
const CANARY: &str = "CANARY-REKEY-91c3";

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned())
}

/// A device with two cases carrying the canary; returns the first's id.
fn device(dir: &Path) -> (DeviceStore, CaseId) {
    let mut store = DeviceStore::create(dir, DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    let first = store
        .record_intake(&case(&format!("{CANARY} first")))
        .unwrap();
    store
        .record_intake(&case(&format!("{CANARY} second")))
        .unwrap();
    (store, first)
}

/// Copies the database, its WAL and the keystore as they are now, into a
/// fresh directory: what someone carving the flash could find later.
fn carve(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for file in [DATABASE_FILE, "store.sqlite-wal", KEYSTORE_FILE] {
        if dir.join(file).exists() {
            fs::copy(dir.join(file), copy.path().join(file)).unwrap();
        }
    }
    assert!(
        copy.path().join("store.sqlite-wal").exists(),
        "the WAL was copied"
    );
    copy
}

/// How many sealed values of the carved database open with `sealer`, and
/// whether any of them holds the canary.
fn opens_with(carved: &Path, sealer: &Sealer) -> (usize, bool) {
    let conn = Connection::open(carved.join(DATABASE_FILE)).unwrap();
    let (mut opened, mut canary) = (0, false);
    for c in SEALED {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {}, {} FROM {} WHERE {} IS NOT NULL",
                c.key, c.sealed, c.table, c.sealed
            ))
            .unwrap();
        let rows: Vec<(rusqlite::types::Value, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (key, sealed) in rows {
            if let Ok(plain) = sealer.open(c.sealed_as, &row_bytes(c.row, &key).unwrap(), &sealed) {
                opened += 1;
                canary |= plain.windows(CANARY.len()).any(|w| w == CANARY.as_bytes());
            }
        }
    }
    (opened, canary)
}

fn tombstone(case: CaseId) -> Tombstone {
    Tombstone {
        case,
        by: DeviceId::from_bytes([9; 16]),
        at: 1_700_000_000,
        reason: ShredReason::SurvivorRequest,
    }
}

#[test]
fn after_a_shred_the_carved_files_open_with_no_key_the_device_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, first) = device(dir.path());
    let carved = carve(dir.path());
    // Control: before the re-key, the device's own key opens the copy and
    // finds the case (this is what a seized device gave up before).
    let (opened, canary) = opens_with(carved.path(), &store.sealer);
    assert!(opened > 5 && canary, "the probe finds the copied data");

    store.shred_case(&tombstone(first)).unwrap();
    assert!(store.rekey_owed().unwrap());
    assert!(store.settle_rekey().unwrap());
    assert!(!store.rekey_owed().unwrap());

    assert_eq!(opens_with(carved.path(), &store.sealer), (0, false));
    // The keystore the device keeps now opens to a key that opens nothing
    // of the copy either (the copy of the old keystore needs the old file).
    let keystore = fs::read(dir.path().join(KEYSTORE_FILE)).unwrap();
    let now = keystore::open(&keystore, &pass("pw")).unwrap();
    assert_eq!(
        opens_with(carved.path(), &Sealer::new(now.storage())),
        (0, false)
    );
    assert_ne!(
        fs::read(carved.path().join(KEYSTORE_FILE)).unwrap(),
        keystore,
        "the keystore was replaced"
    );
    // Nothing of the old state is left in the directory.
    for gone in [NEXT_DATABASE, PENDING, "store.next.sqlite-journal"] {
        assert!(!dir.path().join(gone).exists(), "{gone} is left");
    }
    // And everything else is still there, now and after unlocking again.
    assert_eq!(store.cases().unwrap().len(), 1);
    assert!(store.shredded_cases().unwrap().contains(&first));
    drop(store);
    let store = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
    assert_eq!(store.cases().unwrap().len(), 1);
    assert_eq!(store.tombstones().unwrap().len(), 1);
}

#[test]
fn after_a_passphrase_change_the_carved_files_open_with_nothing_it_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = device(dir.path());
    let carved = carve(dir.path());
    store.change_passphrase(&pass("new one"), WORK).unwrap();

    let old_keystore = fs::read(carved.path().join(KEYSTORE_FILE)).unwrap();
    assert!(keystore::open(&old_keystore, &pass("new one")).is_err());
    assert_eq!(opens_with(carved.path(), &store.sealer), (0, false));
    // Control: the old passphrase with the old keystore still opens the old
    // copy; that is what the re-key takes away from the new passphrase.
    let old = keystore::open(&old_keystore, &pass("pw")).unwrap();
    assert!(opens_with(carved.path(), &Sealer::new(old.storage())).1);

    drop(store);
    assert!(DeviceStore::unlock(dir.path(), &pass("pw")).is_err());
    let store = DeviceStore::unlock(dir.path(), &pass("new one")).unwrap();
    assert_eq!(store.cases().unwrap().len(), 2);
}

#[test]
fn a_rekey_killed_before_its_commit_is_undone_and_after_it_is_finished() {
    for crash in [Crash::BeforeCommit, Crash::AfterCommit] {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, first) = device(dir.path());
        store.shred_case(&tombstone(first)).unwrap();
        CRASH_AT.set(Some(crash));
        assert!(store.settle_rekey().is_err());
        CRASH_AT.set(None);
        drop(store);
        assert!(dir.path().join(NEXT_DATABASE).exists());
        assert!(dir.path().join(PENDING).exists());

        let mut store = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
        assert!(!dir.path().join(NEXT_DATABASE).exists(), "{crash:?}");
        assert!(!dir.path().join(PENDING).exists(), "{crash:?}");
        assert_eq!(store.cases().unwrap().len(), 1, "{crash:?}");
        // Killed before the commit, the re-key is still owed and ran at
        // this unlock; killed after it, it was finished there.
        assert!(!store.rekey_owed().unwrap(), "{crash:?}");
        store.record_intake(&case("after the crash")).unwrap();
        drop(store);
        let store = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
        assert_eq!(store.cases().unwrap().len(), 2, "{crash:?}");
    }
}

#[test]
fn a_store_open_elsewhere_defers_the_rekey_and_refuses_a_passphrase_change() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, first) = device(dir.path());
    let other = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
    store.shred_case(&tombstone(first)).unwrap();
    assert!(!store.settle_rekey().unwrap());
    assert!(store.rekey_owed().unwrap());
    assert!(matches!(
        store.change_passphrase(&pass("new"), WORK),
        Err(StoreError::InUse)
    ));
    // The other process still reads and writes the one file.
    assert_eq!(other.cases().unwrap().len(), 1);
    drop(other);
    assert!(store.settle_rekey().unwrap());
    assert_eq!(store.cases().unwrap().len(), 1);
    drop(store);
    assert!(DeviceStore::unlock(dir.path(), &pass("pw")).is_ok());
}

#[test]
fn a_device_with_a_version_2_keystore_is_rekeyed_at_its_first_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let (file, keys) = keystore::seal_one_storage_key_for_tests(&[5; 32], &[6; 32], &pass("pw"));
    let legacy = Sealer::new(keys.storage());
    let mut store = DeviceStore::create(dir.path(), keys, &pass("pw"), WORK).unwrap();
    store.record_intake(&case(CANARY)).unwrap();
    drop(store);
    guard::write_secrets(dir.path(), Some(&file), None).unwrap();
    let carved = carve_closed(dir.path());
    assert!(opens_with(carved.path(), &legacy).1, "the control opens");

    let store = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
    let keystore = fs::read(dir.path().join(KEYSTORE_FILE)).unwrap();
    assert!(!keystore::open_versioned(&keystore, &pass("pw")).unwrap().1);
    assert_eq!(opens_with(carved.path(), &store.sealer), (0, false));
    assert_eq!(store.cases().unwrap().len(), 1);
}

/// The database and the keystore of `dir` (a closed store has no WAL).
fn carve_closed(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for file in [DATABASE_FILE, KEYSTORE_FILE] {
        fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    }
    copy
}

#[test]
fn every_sealed_column_of_the_schema_is_resealed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = device(dir.path());
    let tables: Vec<String> = store
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut missing = Vec::new();
    for table in &tables {
        let columns: Vec<String> = store
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for column in columns.iter().filter(|c| c.ends_with("_sealed")) {
            if !SEALED
                .iter()
                .any(|c| c.table == table.as_str() && c.sealed == column.as_str())
            {
                missing.push(format!("{table}.{column}"));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
    assert!(SEALED.len() >= 15);
}
