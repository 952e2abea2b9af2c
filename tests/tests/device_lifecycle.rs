//! Devices get lost, seized and replaced, with the real binaries:
//! revocation with a new team key, passphrase change, panic wipe, the
//! duress passphrase, the failed-unlock limit and the idle intake form.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use amana_core::envelope::{EnvelopeLimits, SealedEnvelope, Stored, seal};
use amana_core::keys::keystore::{self, Passphrase};
use amana_e2e::field::{Device, Relay, case_ids, enrol, free_port, office, record, scan};
use amana_sync_server::store::{RelayStore, SqliteStore};

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_revoked_device_can_neither_upload_nor_read_what_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let a = enrol(root, &office, "field-a", "field");
    let b = enrol(root, &office, "field-b", "field");
    let before = record(root, &b, "CANARY-BEFORE written by b before it was lost");
    b.ok(&["sync"]);

    // The office revokes b by its label; the team key rotates.
    let done = office.json(&["team", "revoke", "field-b"]);
    assert_eq!(done["already_revoked"], false);
    assert_eq!(done["last_seq"], 1);
    assert_eq!(done["epoch"], 2);
    assert_eq!(done["delivered_to"], 1);
    let devices = office.json(&["team", "devices"]);
    let row = |label: &str| {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["label"] == label)
            .unwrap()
            .clone()
    };
    assert_eq!(row("field-b")["active"], false);
    assert_eq!(row("field-a")["active"], true);

    // b keeps working offline, then tries to sync: refused (exit 5).
    record(root, &b, "CANARY-AFTER written by b after revocation");
    let refused = b.run(&["sync"]);
    assert_eq!(code(&refused), Some(5), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("revoked"));

    // The others keep syncing on the new key; what b wrote before stays.
    let after = record(root, &a, "CANARY-NEW written by a under the new key");
    a.ok(&["sync"]);
    office.ok(&["sync"]);
    a.ok(&["sync"]);
    let mut expected = vec![before.clone(), after.clone()];
    expected.sort();
    assert_eq!(case_ids(&office), expected);
    assert_eq!(case_ids(&a), expected);

    // b's upload never reached the relay, and with b's own keys nothing
    // written after the rotation opens.
    relay.stop();
    let b_store = b.unlock();
    let roster = office.unlock().roster().unwrap().unwrap();
    let b_keys = b_store.epoch_keys().unwrap();
    assert_eq!(b_keys.epochs().collect::<Vec<_>>(), vec![1]);
    let relay_db = SqliteStore::open(&relay.dir.join("relay.sqlite")).unwrap();
    let stored = relay_db.envelopes_after(roster.team(), 0, 1000).unwrap();
    let mut newer = 0;
    for stored in stored {
        let envelope = SealedEnvelope::parse(stored.bytes, &EnvelopeLimits::default()).unwrap();
        let header = envelope.header();
        if header.device == b_store.keys().device_id() {
            assert_eq!(header.seq, 1, "nothing of b's beyond its bound");
        }
        if header.epoch >= 2 {
            newer += 1;
            let author = roster.device(&header.device).unwrap().entry.signing_key;
            assert!(matches!(
                seal::open(&envelope, roster.team(), &author, &b_keys),
                Err(amana_core::EnvelopeError::UnknownEpoch(2))
            ));
        }
    }
    assert!(newer >= 1);
    let (_, hits) = scan(&[&b.dir], &["CANARY-NEW"]);
    assert!(hits.is_empty(), "{hits:?}");

    // Bad input: revoking an unknown device, or itself.
    relay.restart();
    let unknown = office.run(&["team", "revoke", "nobody-by-that-name"]);
    assert_eq!(code(&unknown), Some(2), "{}", stderr(&unknown));
    let me = office.json(&["status"])["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let itself = office.run(&["team", "revoke", &me]);
    assert_eq!(code(&itself), Some(5), "{}", stderr(&itself));
    let again = office.json(&["team", "revoke", "field-b"]);
    assert_eq!(again["already_revoked"], true);
    assert_eq!(
        again["epoch"],
        serde_json::Value::Null,
        "no second rotation"
    );
}

#[test]
fn a_passphrase_change_keeps_every_case() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let device = Device::init(root, "laptop");
    std::fs::write(
        root.join("offline.json"),
        std::fs::read_to_string(amana_e2e::field::intake_file(root, "kept across")).unwrap(),
    )
    .unwrap();
    let case = device.json(&[
        "intake",
        "--from-file",
        root.join("offline.json").to_str().unwrap(),
    ])["case"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_pass = root.join("new.pass");
    std::fs::write(&new_pass, "a brand new passphrase\n").unwrap();
    let out = device
        .command(&["passphrase", "--kdf-log-n", "10"])
        .env("AMANA_NEW_PASSPHRASE_FILE", &new_pass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let old = device.run(&["cases", "list"]);
    assert_eq!(code(&old), Some(3), "the old passphrase no longer opens it");
    let listed = device
        .command(&["--json", "cases", "list"])
        .env("AMANA_PASSPHRASE_FILE", &new_pass)
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&case));
    // A too-short new passphrase changes nothing.
    std::fs::write(root.join("short.pass"), "short\n").unwrap();
    let short = device
        .command(&["passphrase", "--kdf-log-n", "10"])
        .env("AMANA_PASSPHRASE_FILE", &new_pass)
        .env("AMANA_NEW_PASSPHRASE_FILE", root.join("short.pass"))
        .output()
        .unwrap();
    assert_eq!(code(&short), Some(2));
    let still = device
        .command(&["cases", "list"])
        .env("AMANA_PASSPHRASE_FILE", &new_pass)
        .output()
        .unwrap();
    assert!(still.status.success());
}

/// No file under `dir`, read raw or opened with the old passphrase, gives
/// anything back.
fn nothing_recoverable(dir: &Path, passphrase: &Passphrase, canary: &str) {
    let (_, hits) = scan(&[dir], &[canary]);
    assert!(hits.is_empty(), "{hits:?}");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                keystore::open_bytes(&bytes, passphrase).is_err(),
                "{} opens with the old passphrase",
                path.display()
            );
        }
    }
}

#[test]
fn wipe_duress_and_lockout_leave_nothing_recoverable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let canary = "CANARY-WIPE she reported the account used to threaten her";
    // Devices live apart from the intake files the test writes.
    let devices = root.join("devices");
    std::fs::create_dir(&devices).unwrap();

    // Panic wipe.
    let device = Device::init(&devices, "seized");
    record(root, &device, canary);
    let without_yes = device.run(&["wipe"]);
    assert_eq!(
        code(&without_yes),
        Some(2),
        "needs --yes without a terminal"
    );
    assert!(device.dir.join("keystore.age").exists());
    let report = device.json(&["wipe", "--yes"]);
    assert_eq!(report["keys_destroyed"], true);
    assert_eq!(report["complete"], true);
    assert_eq!(report["steps"][0]["file"], "keystore.age", "keys first");
    assert!(!device.dir.exists());
    nothing_recoverable(&devices, &device.passphrase(), canary);
    let after = device.run(&["cases", "list"]);
    assert_eq!(code(&after), Some(2), "{}", stderr(&after));
    assert!(stderr(&after).contains("no Amana device"));
    let twice = device.ok(&["wipe", "--yes"]);
    assert!(twice.contains("Nothing to wipe"));

    // The duress passphrase wipes and answers like a typo.
    let device = Device::init(&devices, "coerced");
    record(root, &device, canary);
    let duress = root.join("duress.pass");
    std::fs::write(&duress, "the passphrase that wipes\n").unwrap();
    let set = device
        .command(&["duress", "set", "--kdf-log-n", "10"])
        .env("AMANA_DURESS_PASSPHRASE_FILE", &duress)
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", stderr(&set));
    std::fs::write(root.join("typo.pass"), "not the passphrase\n").unwrap();
    let typo = device
        .command(&["status"])
        .env("AMANA_PASSPHRASE_FILE", root.join("typo.pass"))
        .output()
        .unwrap();
    assert!(device.dir.join("keystore.age").exists());
    let forced = device
        .command(&["status"])
        .env("AMANA_PASSPHRASE_FILE", &duress)
        .output()
        .unwrap();
    assert_eq!(code(&forced), Some(3));
    assert_eq!(
        stderr(&forced),
        stderr(&typo),
        "indistinguishable from a typo"
    );
    assert!(!device.dir.exists());
    nothing_recoverable(&devices, &device.passphrase(), canary);

    // The failed-unlock limit.
    let device = Device::init(&devices, "guessed");
    record(root, &device, canary);
    device.ok(&["lockout", "--wipe-after", "3"]);
    for left in ["2 attempt", "1 attempt"] {
        let out = device
            .command(&["status"])
            .env("AMANA_PASSPHRASE_FILE", root.join("typo.pass"))
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(3));
        assert!(stderr(&out).contains(left), "{}", stderr(&out));
    }
    let last = device
        .command(&["status"])
        .env("AMANA_PASSPHRASE_FILE", root.join("typo.pass"))
        .output()
        .unwrap();
    assert_eq!(code(&last), Some(3));
    assert!(stderr(&last).contains("wiped"), "{}", stderr(&last));
    assert!(!device.dir.exists());
    nothing_recoverable(&devices, &device.passphrase(), canary);
}

#[test]
fn an_intake_form_left_alone_is_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::init(tmp.path(), "laptop");
    let mut child = device
        .command(&["intake", "--idle-secs", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One answer, then the officer walks away with the form open.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1\n").unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("nothing was saved"),
        "{}",
        stderr(&out)
    );
    assert!(case_ids(&device).is_empty());
}

/// Every note text that the keys `device` holds can read out of the relay
/// database at `db`: its epoch keys, plus any its receiving keys open from
/// the key envelopes stored there.
fn readable_notes(device: &Device, db: &Path) -> Vec<String> {
    use amana_core::case::CaseDoc;
    use amana_core::keys::delivery::KeyEnvelope;
    use std::collections::BTreeMap;
    let store = device.unlock();
    let roster = store.roster().unwrap().unwrap();
    let me = store.keys().device_id();
    let relay = SqliteStore::open(db).unwrap();
    let mut keys = store.epoch_keys().unwrap();
    let receiving = store.receiving_keys().unwrap();
    for bytes in relay.key_envelopes(roster.team(), me).unwrap() {
        if let Ok((key, _)) = KeyEnvelope::parse(bytes)
            .unwrap()
            .open(&roster, me, &receiving)
        {
            keys.insert(key);
        }
    }
    let mut changes: BTreeMap<_, Vec<Vec<u8>>> = BTreeMap::new();
    let mut docs = Vec::new();
    for stored in relay.envelopes_after(roster.team(), 0, 100_000).unwrap() {
        let Stored::Whole(envelope) =
            Stored::parse(stored.bytes, &EnvelopeLimits::default()).unwrap()
        else {
            continue;
        };
        let author = roster
            .device(&envelope.header().device)
            .unwrap()
            .entry
            .signing_key;
        if let Ok(opened) = seal::open(&envelope, roster.team(), &author, &keys) {
            for c in opened.changes {
                changes.entry(c.case).or_default().push(c.change);
            }
            for c in opened.snapshot.into_iter().flat_map(|s| s.cases) {
                docs.push(CaseDoc::load(&c.doc, me).unwrap());
            }
        }
    }
    for batch in changes.values() {
        docs.push(CaseDoc::from_changes(batch, me).unwrap());
    }
    let mut notes: Vec<String> = docs
        .iter()
        .filter_map(|d| d.read().ok())
        .flat_map(|v| v.case.notes.into_iter().map(|n| n.text))
        .collect();
    notes.sort();
    notes.dedup();
    notes
}

#[test]
fn a_shredded_case_leaves_no_readable_trace_in_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let a = enrol(root, &office, "field-a", "field");
    let b = enrol(root, &office, "field-b", "field");
    let canary = "CANARY-SHREDDED she asked that her record be destroyed";
    let doomed = record(root, &a, canary);
    let kept = record(root, &a, "kept: follow-up with legal aid");
    for device in [&a, &office, &b] {
        device.ok(&["sync"]);
    }

    // An operator's backup of the relay, taken before the shred.
    relay.stop();
    let backup = root.join("relay-backup.sqlite");
    std::fs::copy(relay.dir.join("relay.sqlite"), &backup).unwrap();
    relay.restart();
    assert!(
        readable_notes(&b, &backup).iter().any(|n| n == canary),
        "positive control: before the shred, b's keys read the case"
    );

    // Refusals first: a field device, a missing confirmation.
    let refused = a.run(&[
        "cases",
        "shred",
        &doomed,
        "--reason",
        "consent-withdrawn",
        "--yes",
    ]);
    assert_eq!(code(&refused), Some(5), "{}", stderr(&refused));
    let unconfirmed = office.run(&["cases", "shred", &doomed, "--reason", "consent-withdrawn"]);
    assert_eq!(code(&unconfirmed), Some(2), "{}", stderr(&unconfirmed));

    let done = office.json(&[
        "cases",
        "shred",
        &doomed[..10],
        "--reason",
        "consent-withdrawn",
        "--yes",
    ]);
    assert_eq!(done["case"], doomed.as_str());
    assert_eq!(done["epoch"], 2);
    assert_eq!(done["epochs_retired"], 1);
    assert_eq!(
        done["bodies_dropped_at_relay"], 1,
        "a's one envelope of epoch 1"
    );
    for device in [&a, &b, &office] {
        let report = device.json(&["sync"]);
        assert_eq!(report["quarantined"].as_array().unwrap().len(), 0);
    }
    for device in [&office, &a, &b] {
        assert_eq!(case_ids(device), vec![kept.clone()], "{}", device.name);
        let trail = device.json(&["cases", "shredded"]);
        assert_eq!(trail[0]["case"], doomed.as_str());
        assert_eq!(trail[0]["reason"], "consent-withdrawn");
        assert!(device.ok(&["cases", "show", &kept]).contains("legal aid"));
    }

    // Nothing any device holds reads the case: not from the relay's data,
    // not from the backup. Raw files hold no trace either.
    relay.stop();
    let live = relay.dir.join("relay.sqlite");
    for device in [&office, &a, &b] {
        for db in [&live, &backup] {
            let notes = readable_notes(device, db);
            assert!(
                !notes.iter().any(|n| n == canary),
                "{} via {}",
                device.name,
                db.display()
            );
        }
        assert!(
            readable_notes(device, &live)
                .iter()
                .any(|n| n.contains("legal aid")),
            "the kept case still reads"
        );
    }
    let (_, hits) = scan(
        &[&office.dir, &a.dir, &b.dir, &relay.dir, &backup],
        &[canary, "CANARY-SHREDDED"],
    );
    assert!(hits.is_empty(), "{hits:?}");
}
