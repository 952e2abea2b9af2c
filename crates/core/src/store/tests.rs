//! Device store: nothing readable at rest, wrong passphrase vs damage,
//! atomic edits, and the sync-engine tables.

use std::path::Path;

use super::*;
use crate::case::testing::{at, case, staff};
use crate::case::{Note, new_item_id};
use crate::envelope::seal::CaseChange;
use crate::ids::DeviceId;
use crate::keys::EpochKey;

const WORK: WorkFactor = WorkFactor::Fixed(4);
const LATIN: &str = "CANARY-LATIN-5f1e2d";
const ARABIC: &str = "كناري-سري-٧٣٩";

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned())
}

/// Every file under `dir` (database, -wal, -shm, journals, temp files)
/// in which `needle` occurs.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(path.display().to_string());
        }
    }
    hits
}

/// Records cases and edits carrying both canaries.
fn write_canaries(store: &mut DeviceStore) {
    for round in 0..3 {
        let id = store
            .record_intake(&case(&format!("{LATIN} {ARABIC} intake {round}")))
            .unwrap();
        store
            .edit_case(id, |doc| {
                doc.add_note(&Note {
                    id: new_item_id(),
                    author: staff("QAY-FO-07"),
                    at: at(60),
                    text: format!("{LATIN} / {ARABIC}"),
                })
                .map(Some)
            })
            .unwrap();
        store
            .edit_case(id, |doc| {
                doc.set_field("status.closure_reason", &format!("{ARABIC} {LATIN}"))
            })
            .unwrap();
    }
}

#[test]
fn nothing_readable_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    write_canaries(&mut store);
    // While the store is open the WAL holds the recent pages.
    assert!(dir.path().join("store.sqlite-wal").exists());
    for canary in [LATIN, ARABIC] {
        assert_eq!(files_containing(dir.path(), canary), Vec::<String>::new());
    }
    drop(store);
    for canary in [LATIN, ARABIC] {
        assert_eq!(files_containing(dir.path(), canary), Vec::<String>::new());
    }
    // And the data is all there after unlocking again.
    let store = DeviceStore::unlock(dir.path(), &pass("pw")).unwrap();
    let cases = store.cases().unwrap();
    assert_eq!(cases.len(), 3);
    assert!(cases[0].case.notes.iter().any(|n| n.text.contains(ARABIC)));
}

/// The same scan finds the canaries when sealing is switched off, so the
/// test above is able to fail.
#[test]
fn the_scan_finds_canaries_when_protection_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create_unsealed_for_tests(dir.path(), DeviceKeys::generate()).unwrap();
    write_canaries(&mut store);
    assert!(!files_containing(dir.path(), LATIN).is_empty());
    assert!(!files_containing(dir.path(), ARABIC).is_empty());
}

#[test]
fn wrong_passphrase_is_not_damage_and_damage_is_not_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    drop(DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("right"), WORK).unwrap());
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("wrong")),
        Err(StoreError::Keystore(KeystoreError::WrongPassphrase))
    ));
    // Truncated database.
    let db = dir.path().join(DATABASE_FILE);
    let original = fs::read(&db).unwrap();
    fs::write(&db, &original[..original.len() / 3]).unwrap();
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("right")),
        Err(StoreError::Corrupt(_))
    ));
    // Garbage database.
    fs::write(&db, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("right")),
        Err(StoreError::Corrupt(_))
    ));
    // Missing database.
    fs::remove_file(&db).unwrap();
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("right")),
        Err(StoreError::Corrupt(_))
    ));
    // Damaged keystore.
    fs::write(
        dir.path().join(KEYSTORE_FILE),
        b"age-encryption.org/v1\n-> x",
    )
    .unwrap();
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("right")),
        Err(StoreError::Keystore(KeystoreError::Corrupt(_)))
    ));
}

#[test]
fn a_database_from_another_device_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    drop(DeviceStore::create(a.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap());
    drop(DeviceStore::create(b.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap());
    fs::copy(b.path().join(DATABASE_FILE), a.path().join(DATABASE_FILE)).unwrap();
    assert!(matches!(
        DeviceStore::unlock(a.path(), &pass("pw")),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn not_initialised_and_already_initialised() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        DeviceStore::unlock(dir.path(), &pass("pw")),
        Err(StoreError::NotInitialised(_))
    ));
    drop(DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap());
    assert!(matches!(
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK),
        Err(StoreError::AlreadyInitialised(_))
    ));
}

#[test]
fn a_failed_edit_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    let id = store.record_intake(&case("x")).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 1);
    assert!(
        store
            .edit_case(id, |doc| doc.set_field("status.state", "closed"))
            .is_err()
    );
    assert_eq!(store.outbox_len().unwrap(), 1);
    assert!(
        store
            .edit_case(id, |doc| doc.set_field("risk.level", "high"))
            .map(|changed| !changed)
            .unwrap()
    );
    assert!(
        store
            .edit_case(id, |doc| doc.set_field("risk.level", "low"))
            .unwrap()
    );
    assert_eq!(store.outbox_len().unwrap(), 2);
    let unknown = crate::ids::CaseId::random();
    assert!(matches!(
        store.edit_case(unknown, |doc| doc.set_field("risk.level", "low")),
        Err(StoreError::UnknownCase(_))
    ));
}

#[test]
fn passphrase_change_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("old"), WORK).unwrap();
    store.record_intake(&case("x")).unwrap();
    store.change_passphrase(&pass("new"), WORK).unwrap();
    drop(store);
    assert!(DeviceStore::unlock(dir.path(), &pass("old")).is_err());
    assert_eq!(
        DeviceStore::unlock(dir.path(), &pass("new"))
            .unwrap()
            .cases()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn changes_from_other_devices_apply_and_sync_state_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    // A case made elsewhere arrives as changes.
    let remote = case("from the field");
    let (_, change) = crate::case::CaseDoc::create(&remote, DeviceId::from_bytes([4; 16])).unwrap();
    let incoming = CaseChange {
        case: remote.case_id,
        change,
    };
    store.apply_changes(&[incoming.clone(), incoming]).unwrap();
    assert_eq!(store.case(remote.case_id).unwrap().case, remote);
    assert_eq!(
        store.outbox_len().unwrap(),
        0,
        "received changes are not re-sent"
    );

    let head = PeerHead {
        device: DeviceId::from_bytes([4; 16]),
        seq: 9,
        id: Digest::of(b"e"),
    };
    store.set_peer_head(&head).unwrap();
    assert_eq!(store.peer_head(head.device).unwrap(), Some(head));
    store.set_cursor(42).unwrap();
    assert_eq!(store.cursor().unwrap(), 42);
    store
        .quarantine(
            b"bytes",
            "bad_signature: forged",
            quarantine::Vouched::Author,
        )
        .unwrap();
    assert_eq!(store.quarantined_page(0, 1).unwrap()[0].reason, "forged");
    let key = EpochKey::generate(3);
    store.put_epoch_key(&key).unwrap();
    assert_eq!(
        store.epoch_keys().unwrap().get(3).unwrap().recipient(),
        key.recipient()
    );
}

#[test]
fn own_log_outbox_and_receipts() {
    use crate::envelope::seal::seal;
    use crate::envelope::{EnvelopeHeader, Kind};

    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    store.record_intake(&case("a")).unwrap();
    store.record_intake(&case("b")).unwrap();
    let pending = store.outbox(10).unwrap();
    assert_eq!(pending.len(), 2);
    let epoch = EpochKey::generate(1);
    let header = EnvelopeHeader {
        kind: Kind::Changes,
        team: TeamId::random(),
        device: store.keys().device_id(),
        seq: 1,
        prev: Digest::ZERO,
        epoch: 1,
        body_len: 0,
    };
    let changes: Vec<_> = pending.iter().map(|e| e.change.clone()).collect();
    let context = crate::envelope::seal::SealContext {
        roster_len: 1,
        roster_head: Digest::ZERO,
        sealed_at: 0,
        pulled_at: 0,
    };
    let contents = crate::envelope::seal::Contents::changes(context, &changes);
    let env = seal(header, &contents, &epoch.recipient(), store.keys()).unwrap();
    let ids: Vec<i64> = pending.iter().map(|e| e.id).collect();
    store.commit_envelope(&env, &ids, &[]).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 0);
    assert_eq!(store.own_head().unwrap(), Some((1, env.id())));
    assert_eq!(store.unreceipted().unwrap(), vec![env.as_bytes().to_vec()]);
    // The same seq cannot be written twice with other bytes.
    assert!(store.commit_envelope(&env, &[], &[]).is_err());
    store.add_receipt(1, b"receipt").unwrap();
    assert!(store.unreceipted().unwrap().is_empty());
    assert_eq!(store.receipts().unwrap(), vec![b"receipt".to_vec()]);
}

#[test]
fn the_case_list_reads_sealed_views_that_match_the_documents_conflicts_included() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create(dir.path(), DeviceKeys::generate(), &pass("pw"), WORK).unwrap();
    // Many cases from elsewhere (enough to be built on several threads),
    // one of them edited concurrently by two other devices.
    let (a, b) = (DeviceId::from_bytes([4; 16]), DeviceId::from_bytes([5; 16]));
    let mut incoming = Vec::new();
    let mut shared = None;
    for i in 0..40 {
        let remote = case(&format!("remote case {i}"));
        let (mut doc, change) = crate::case::CaseDoc::create(&remote, a).unwrap();
        incoming.push(CaseChange {
            case: remote.case_id,
            change: change.clone(),
        });
        if i == 0 {
            let mut other = crate::case::CaseDoc::load(&doc.save(), b).unwrap();
            for (edited, level) in [(&mut doc, "medium"), (&mut other, "low")] {
                let change = edited.set_field("risk.level", level).unwrap().unwrap();
                incoming.push(CaseChange {
                    case: remote.case_id,
                    change,
                });
            }
            shared = Some(remote.case_id);
        }
    }
    store.apply_changes(&incoming).unwrap();
    store.record_intake(&case("recorded here")).unwrap();
    let listed = store.cases().unwrap();
    assert_eq!(listed.len(), 41);
    for view in &listed {
        assert_eq!(
            view,
            &store.case(view.case.case_id).unwrap(),
            "view = document"
        );
    }
    let conflicted = listed
        .iter()
        .find(|v| Some(v.case.case_id) == shared)
        .unwrap();
    assert_eq!(conflicted.conflicts.len(), 1);
    assert_eq!(conflicted.conflicts[0].path, "risk.level");

    // A row without a view (written before views were kept) is read from
    // its document.
    store
        .conn
        .execute("UPDATE cases SET view_sealed = NULL", [])
        .unwrap();
    assert_eq!(store.cases().unwrap(), listed);
}

/// No lifetime counter at rest: SQLite's AUTOINCREMENT kept, in plaintext,
/// the largest id the outbox, receipts and quarantine ever used (how much
/// a device has done). After activity, nothing of that is left.
#[test]
fn the_database_keeps_no_lifetime_counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        DeviceStore::create_unsealed_for_tests(dir.path(), DeviceKeys::generate()).unwrap();
    for n in 0..5u8 {
        store
            .quarantine(&[n; 40], "malformed: junk", quarantine::Vouched::Nobody)
            .unwrap();
    }
    let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        tables.iter().all(|sql| !sql.contains("AUTOINCREMENT")),
        "{tables:?}"
    );
    let counters: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if counters > 0 {
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_sequence", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
