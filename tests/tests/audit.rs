//! The audit, with the real binaries, on the relay data an end-to-end run
//! leaves: clean through the API (`amana audit`, an auditor device) and
//! offline (`amana-relay audit` on a copy, with the relay's log and the
//! devices' receipts); then exactly one finding for one planted plaintext
//! row, and for one envelope body replaced by something that is not age.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amana_e2e::binary;
use amana_e2e::field::{Relay, case_ids, enrol, free_port, office, record};

fn relay_audit(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(binary("amana-relay"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn report(path: &Path) -> serde_json::Value {
    let out = Command::new(binary("amana-relay"))
        .arg("verify-report")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["report"].clone()
}

/// Copies the relay's database (not its key: an auditor never gets it).
fn copy_of(relay_dir: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for name in ["relay.sqlite", "relay.sqlite-wal"] {
        let from = relay_dir.join(name);
        if from.exists() {
            std::fs::copy(&from, to.join(name)).unwrap();
        }
    }
    to.join("relay.sqlite")
}

/// Runs the offline audit of `db` and returns (exit code, report).
fn offline(root: &Path, db: &Path, extra: &[PathBuf], name: &str) -> (i32, serde_json::Value) {
    let out_path = root.join(format!("{name}.report.json"));
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--db".as_ref(),
        db.as_os_str(),
        "--auditor-key".as_ref(),
        root.join("auditor.key").into_os_string().leak(),
        "--out".as_ref(),
        out_path.as_os_str(),
    ];
    for path in extra {
        let flag = if path.extension().is_some_and(|e| e == "log") {
            "--log"
        } else {
            "--receipts"
        };
        args.push(flag.as_ref());
        args.push(path.as_os_str());
    }
    let out = relay_audit(&args);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, report(&out_path))
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_audit_is_clean_on_real_relay_data_and_finds_exactly_what_is_planted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let a = enrol(root, &office, "field-a", "field");
    let auditor = enrol(root, &office, "auditor", "auditor");
    record(
        root,
        &a,
        "تعرضت الناجية للابتزاز عبر صور خاصة، أحيلت إلى الشرطة المجتمعية",
    );
    record(
        root,
        &a,
        "Follow-up by phone; survivor safe at her aunt's house",
    );
    let gone = record(root, &office, "Recorded twice by mistake");
    a.ok(&["sync"]);
    office.ok(&["sync"]);
    // A shred leaves stubs and a compaction behind, which the audit must
    // recognise as explained.
    office.ok(&["cases", "shred", &gone, "--reason", "duplicate", "--yes"]);
    a.ok(&["sync"]);
    office.ok(&["sync"]);
    assert_eq!(case_ids(&a).len(), 2);

    let receipts: Vec<PathBuf> = [("field-a", &a), ("office", &office)]
        .iter()
        .map(|(name, device)| {
            let path = root.join(format!("{name}.receipts"));
            device.ok(&["receipts", "export", "--out", path.to_str().unwrap()]);
            path
        })
        .collect();

    // Through the API, as the auditor device.
    let remote_path = root.join("remote.report.json");
    let mut args = vec![
        "audit".to_owned(),
        "--out".into(),
        remote_path.display().to_string(),
    ];
    for r in &receipts {
        args.extend(["--receipts".to_owned(), r.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    auditor.ok(&args);
    let remote = report(&remote_path);
    assert_eq!(codes(&remote), Vec::<String>::new(), "{remote:#}");
    assert!(
        remote["checked"]["envelopes"].as_u64().unwrap() >= 3,
        "{remote:#}"
    );
    assert!(
        remote["checked"]["stubs"].as_u64().unwrap() >= 1,
        "{remote:#}"
    );
    assert!(
        remote["checked"]["receipts"].as_u64().unwrap() >= 3,
        "{remote:#}"
    );
    // A file that is not a receipts file is invalid input (exit 2),
    // refused before anything is asked or written.
    let not_receipts = root.join("notes.txt");
    std::fs::write(&not_receipts, "survivor notes").unwrap();
    let never = root.join("never.json");
    let refused = auditor.run(&[
        "audit",
        "--receipts",
        not_receipts.to_str().unwrap(),
        "--out",
        never.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(!never.exists());

    relay.stop();
    let log = root.join("relay.log");
    std::fs::write(&log, relay.log.lock().unwrap().as_bytes()).unwrap();
    let mut extra = receipts.clone();
    extra.push(log.clone());

    // Offline, on a copy: clean.
    let clean_db = copy_of(&relay.dir, &root.join("copy-clean"));
    let (code, clean) = offline(root, &clean_db, &extra, "clean");
    assert_eq!(codes(&clean), Vec::<String>::new(), "{clean:#}");
    assert_eq!(code, 0);
    assert!(clean["checked"]["log_lines"].as_u64().unwrap() > 5);
    assert!(clean["checked"]["bytes_scanned"].as_u64().unwrap() > 10_000);

    // One plaintext row planted in a copy: exactly that finding.
    let planted_db = copy_of(&relay.dir, &root.join("copy-plaintext"));
    {
        let conn = rusqlite::Connection::open(&planted_db).unwrap();
        conn.execute(
            "INSERT INTO join_requests (team, device, signing_key, recipient, invite_id, requested_at)
             SELECT team, randomblob(16), randomblob(32), 'Fatima Hassan, 0770 123 4567, Qayyarah', randomblob(32), 0
             FROM teams",
            [],
        )
        .unwrap();
    }
    let (code, planted) = offline(root, &planted_db, &extra, "plaintext");
    assert_eq!(code, 3);
    assert_eq!(codes(&planted), ["unexpected_value"], "{planted:#}");
    let finding = &planted["findings"][0];
    assert!(
        finding["location"]
            .as_str()
            .unwrap()
            .contains("join_requests")
    );
    assert!(
        !finding["also_at"].as_array().unwrap().is_empty(),
        "the byte scan saw the same row: {finding:#}"
    );
    assert!(
        !planted.to_string().contains("Fatima"),
        "the report quotes nothing"
    );

    // One envelope body replaced by bytes that are not age (same length).
    let blob_db = copy_of(&relay.dir, &root.join("copy-blob"));
    {
        let conn = rusqlite::Connection::open(&blob_db).unwrap();
        let (cursor, mut bytes): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT cursor, envelope FROM envelopes WHERE length(envelope) > 178
                 ORDER BY cursor DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let body = 82 + 64;
        bytes[body..].fill(0);
        bytes[body..body + 8].copy_from_slice(b"%PDF-1.4");
        conn.execute(
            "UPDATE envelopes SET envelope = ?1 WHERE cursor = ?2",
            rusqlite::params![bytes, cursor],
        )
        .unwrap();
    }
    let (code, blob) = offline(root, &blob_db, &extra, "blob");
    assert_eq!(code, 3);
    assert_eq!(codes(&blob), ["not_age"], "{blob:#}");
}
