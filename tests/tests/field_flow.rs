//! The field flow with the real binaries as separate processes: an office
//! and two field officers enrol over TLS with a pinned relay key; both
//! officers record intakes while the relay is down; after it comes back
//! everyone converges, a concurrent edit shows as a conflict until a later
//! edit resolves it, and no file of the relay or any device holds the
//! cases' text. Also: an intake-role volunteer, and the relay killed in
//! the middle of a sync.

use std::path::Path;

use amana_e2e::field::{
    Device, Proxy, Relay, case_ids, enrol, free_port, office, office_at, record, scan,
};

fn conflict_values(device: &Device, case: &str, path: &str) -> Option<Vec<String>> {
    let view = device.json(&["cases", "show", case]);
    let conflict = view["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)?;
    let mut values: Vec<String> = conflict["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    Some(values)
}

#[test]
fn office_and_two_field_devices_sync_offline_intakes_and_resolve_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let a = enrol(root, &office, "field-a", "field");
    let b = enrol(root, &office, "field-b", "field");

    let canaries = [
        "CANARY-SHARED she was threatened after a phone repair",
        "CANARY-A تهديد بنشر صور معدلة",
        "CANARY-B demands money for deleting the chats",
    ];
    let shared = record(root, &a, canaries[0]);
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    assert_eq!(case_ids(&b), vec![shared.clone()]);

    // The relay goes down; both officers keep working.
    relay.stop();
    let offline = a.run(&["sync"]);
    assert_eq!(
        offline.status.code(),
        Some(4),
        "unreachable relay is exit 4"
    );
    assert!(String::from_utf8_lossy(&offline.stderr).contains("cannot be reached"));
    let case_a = record(root, &a, canaries[1]);
    let case_b = record(root, &b, canaries[2]);
    a.ok(&["cases", "update", &shared[..12], "risk.level", "medium"]);
    b.ok(&["cases", "update", &shared[..12], "risk.level", "low"]);
    let status = a.json(&["status"]);
    assert_eq!(status["unsynced_changes"], 2, "one intake and one edit");

    relay.restart();
    for device in [&a, &b, &office, &a, &b] {
        device.ok(&["sync"]);
    }
    let mut expected = vec![shared.clone(), case_a, case_b];
    expected.sort();
    for device in [&office, &a, &b] {
        assert_eq!(case_ids(device), expected, "{} converged", device.name);
        assert_eq!(
            conflict_values(device, &shared, "risk.level"),
            Some(vec!["low".to_owned(), "medium".to_owned()]),
            "{} shows the conflict",
            device.name
        );
        assert_eq!(device.json(&["status"])["unsynced_changes"], 0);
    }
    let shown = office.ok(&["cases", "show", &shared[..12]]);
    assert!(shown.contains("CONFLICT risk.level"), "{shown}");
    assert!(shown.contains(canaries[0]), "the office reads the note");

    office.ok(&["cases", "update", &shared[..12], "risk.level", "high"]);
    for device in [&office, &a, &b] {
        device.ok(&["sync"]);
    }
    for device in [&office, &a, &b] {
        assert_eq!(conflict_values(device, &shared, "risk.level"), None);
        assert_eq!(
            device.json(&["cases", "show", &shared])["case"]["risk"]["level"],
            "high"
        );
    }

    // Nothing readable in any data directory, nor in the relay's log.
    relay.stop();
    let dirs: Vec<&Path> = vec![&relay.dir, &office.dir, &a.dir, &b.dir];
    let needles: Vec<&str> = canaries
        .iter()
        .flat_map(|c| [*c, &c[c.find(' ').unwrap() + 1..]])
        .collect();
    let (files, hits) = scan(&dirs, &needles);
    assert!(files >= 10, "scanned {files} files");
    assert!(hits.is_empty(), "{hits:#?}");
    let log = relay.log.lock().unwrap().clone();
    assert!(needles.iter().all(|n| !log.contains(n)));
}

#[test]
fn bad_input_gets_specific_messages_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let a = enrol(root, &office, "field-a", "field");
    let case = record(root, &a, "a note");

    // Wrong passphrase: exit 3, nothing opened.
    let wrong = root.join("wrong.pass");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let out = a
        .command(&["status"])
        .env("AMANA_PASSPHRASE_FILE", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("passphrase"));

    // An invalid value lists the accepted ones, in Arabic when asked.
    let out = a.run(&["cases", "update", &case, "risk.level", "extreme"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("medium") && err.contains("Accepted"), "{err}");
    let out = a.run(&[
        "--lang",
        "ar",
        "cases",
        "update",
        &case,
        "risk.level",
        "extreme",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("القيم المقبولة"));

    // Unknown case: exit 2 with a hint.
    let out = a.run(&["cases", "show", "ffffffff"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("amana cases list"));

    // A used invite, a damaged invite.
    let code = office.json(&["team", "invite", "--role", "field", "--label", "x"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = Device::init(root, "first");
    first.ok(&["join", &code]);
    let second = Device::init(root, "second");
    let out = second.run(&["join", &code]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already used"));
    let mut damaged = code.clone();
    damaged.pop();
    let out = second.run(&["join", &damaged]);
    assert_eq!(out.status.code(), Some(2));

    // Not approved yet: exit 5 with the safety number.
    let out = first.run(&["sync"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Safety number"));

    // A field device cannot manage the team.
    let out = a.run(&["team", "invite", "--role", "field", "--label", "y"]);
    assert_eq!(out.status.code(), Some(5));

    // An intake typed at the prompts, from piped answers.
    let answers = [
        "QAY-FO-07",
        "2026-03-14",
        "",
        "3",
        "2",
        "3",
        "no",
        "1",
        "1",
        "1",
        "1",
        "1",
        "no",
        "Qayyarah",
        "",
        "1",
        "2",
        "1",
        "1",
        "yes",
        "3",
        "no",
        "yes",
        "yes",
        "yes",
        "no",
        "no",
        "yes",
        "no",
        "no",
        "typed at the prompt",
    ];
    let out = a.run_with_input(&["intake"], &(answers.join("\n") + "\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(case_ids(&a).len(), 2);
    // Input that ends early stores nothing.
    let out = a.run_with_input(&["intake"], "QAY-FO-07\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(case_ids(&a).len(), 2);
}

#[test]
fn an_intake_volunteer_submits_and_keeps_nothing_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    let office = office(root, &relay);
    let volunteer = enrol(root, &office, "volunteer", "intake");
    let canary = "CANARY-VOLUNTEER handed in at the safe space";
    let case = record(root, &volunteer, canary);
    let out = volunteer.ok(&["sync"]);
    assert!(out.contains("keeps no readable copy"), "{out}");

    let list = volunteer.json(&["cases", "list"]);
    assert_eq!(list["cases"].as_array().unwrap().len(), 0);
    assert_eq!(list["submitted"][0]["case"], case.as_str());
    assert_eq!(list["submitted"][0]["receipted"], true);
    let text = volunteer.ok(&["cases", "list"]);
    assert!(text.contains("submitted, receipt 1"), "{text}");
    assert_eq!(volunteer.json(&["status"])["epoch_keys_held"], 0);
    let out = volunteer.run(&["cases", "show", &case]);
    assert_ne!(out.status.code(), Some(0));

    office.ok(&["sync"]);
    assert_eq!(case_ids(&office), vec![case.clone()]);
    assert!(office.ok(&["cases", "show", &case]).contains(canary));

    // With the volunteer's own keys, no envelope at the relay opens.
    relay.stop();
    let store = volunteer.unlock();
    let roster = store.roster().unwrap().unwrap();
    let keys = store.epoch_keys().unwrap();
    let relay_store =
        amana_sync_server::store::SqliteStore::open(&relay.dir.join("relay.sqlite")).unwrap();
    use amana_sync_server::store::RelayStore;
    let envelopes = relay_store.envelopes_after(roster.team(), 0, 100).unwrap();
    assert!(!envelopes.is_empty());
    for stored in envelopes {
        let env = amana_core::envelope::SealedEnvelope::parse(
            stored.bytes,
            &amana_core::envelope::EnvelopeLimits::default(),
        )
        .unwrap();
        let author = roster.active_key(&env.header().device).copied().unwrap();
        let opened = amana_core::envelope::seal::open(&env, roster.team(), &author, &keys);
        assert!(
            matches!(opened, Err(amana_core::EnvelopeError::UnknownEpoch(1))),
            "{opened:?}"
        );
    }
    let (_, hits) = scan(&[&volunteer.dir], &[canary, "CANARY-VOLUNTEER"]);
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn a_relay_killed_mid_sync_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut relay = Relay::start(&root.join("relay"), free_port());
    // Devices reach the relay through a proxy that can kill it mid-transfer.
    let proxy = Proxy::start(relay.port);
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let office = office_at(root, &url, &relay);
    let a = enrol(root, &office, "field-a", "field");

    let mut notes = Vec::new();
    // Notes of high-entropy text, so the upload stays large after
    // compression.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..40 {
        let mut noise = String::new();
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push_str(&format!("{:x} ", x & 0xffff_ffff));
        }
        let note = format!("CANARY-BULK intake {i:02}: {noise}");
        record(root, &a, &note);
        notes.push(note);
    }
    // Kill the relay (SIGKILL) once 12 KiB of this sync have gone up:
    // in the middle of the upload of the 40 intakes (about 20 KiB).
    let before = proxy.sent();
    proxy.arm(12 * 1024, relay.killer());
    let out = a.run(&["sync"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy.sent() > before + 12 * 1024,
        "the kill happened mid-sync"
    );
    relay.reap();
    assert!(a.json(&["status"])["unsent_envelopes"].as_u64().unwrap() >= 1);

    relay.restart();
    a.ok(&["sync"]);
    office.ok(&["sync"]);
    let status = a.json(&["status"]);
    assert_eq!(status["unsynced_changes"], 0);
    assert_eq!(status["unsent_envelopes"], 0);
    let list = office.json(&["cases", "list"]);
    let cases = list["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 40, "nothing lost");
    let mut ids: Vec<&str> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 40, "nothing duplicated");
    let report = office.json(&["sync"]);
    assert_eq!(report["received"], 0);

    // At the relay: one dense chain per device, each envelope stored once.
    relay.stop();
    use amana_sync_server::store::RelayStore;
    let store =
        amana_sync_server::store::SqliteStore::open(&relay.dir.join("relay.sqlite")).unwrap();
    let team: amana_core::TeamId = office.json(&["status"])["team"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stored = store.envelopes_after(team, 0, 1000).unwrap();
    let heads = store.heads(team).unwrap();
    let total: u64 = heads.iter().map(|h| h.seq).sum();
    assert_eq!(stored.len() as u64, total, "no envelope stored twice");
    let mut needles: Vec<&str> = notes.iter().map(String::as_str).collect();
    needles.push("CANARY-BULK");
    let (_, hits) = scan(&[&relay.dir, &a.dir, &office.dir], &needles);
    assert!(hits.is_empty(), "{hits:?}");
}
