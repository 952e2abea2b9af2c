//! The sync engine against the real relay router in memory: enrolment,
//! offline intakes, convergence, conflicts, the intake role, and sync
//! interrupted at every request.

mod support;

use amana_core::roster::Role;
use amana_core::sync::enrol;
use amana_core::sync::{RelayClient, SyncError};
use amana_sync_server::memory::Fault;
use amana_sync_server::store::RelayStore;
use support::{World, case, new_store, notes};

#[test]
fn a_team_enrols_records_offline_and_converges_with_conflicts_shown_and_resolved() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    for store in [&mut office, &mut a, &mut b] {
        w.sync(store).unwrap();
    }
    assert_eq!(a.membership().unwrap().unwrap().role, Role::Field);

    // A records a case everyone gets.
    let shared = a.record_intake(&case("shared case note", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut b).unwrap();
    assert_eq!(notes(&b), vec!["shared case note"]);

    // Offline: both record and both edit the same field differently.
    a.record_intake(&case("note from A", w.now())).unwrap();
    b.record_intake(&case("note from B", w.now())).unwrap();
    a.edit_case(shared, |doc| doc.set_field("risk.level", "medium"))
        .unwrap();
    b.edit_case(shared, |doc| doc.set_field("risk.level", "low"))
        .unwrap();

    for store in [&mut a, &mut b, &mut office] {
        w.sync(store).unwrap();
    }
    for store in [&mut a, &mut b] {
        w.sync(store).unwrap();
    }
    let expected = vec!["note from A", "note from B", "shared case note"];
    for store in [&office, &a, &b] {
        assert_eq!(notes(store), expected);
        let view = store.case(shared).unwrap();
        let conflict = view
            .conflicts
            .iter()
            .find(|c| c.path == "risk.level")
            .expect("the concurrent edit shows as a conflict");
        let mut values: Vec<String> = conflict
            .values
            .iter()
            .map(|v| v.value.as_str().unwrap_or_default().to_owned())
            .collect();
        values.sort();
        assert_eq!(values, vec!["low", "medium"]);
    }

    // The office resolves it; the conflict disappears everywhere.
    office
        .edit_case(shared, |doc| doc.set_field("risk.level", "high"))
        .unwrap();
    for store in [&mut office, &mut a, &mut b] {
        w.sync(store).unwrap();
    }
    for store in [&office, &a, &b] {
        let view = store.case(shared).unwrap();
        assert!(view.conflicts.is_empty(), "{:?}", view.conflicts);
        assert_eq!(view.case.risk.level.code(), "high");
    }

    // A no-op sync moves nothing, in two requests (the roster after the
    // one held, and one page: no key request while every key is held).
    let report = w.sync(&mut a).unwrap();
    assert_eq!(
        (report.pushed, report.pulled, report.applied_changes),
        (0, 0, 0)
    );
    assert_eq!(report.requests, 2);
    assert!(report.quarantined.is_empty());
}

#[test]
fn invites_are_one_time_expire_and_need_the_right_safety_number() {
    let (mut w, mut office) = World::new();
    let code = w.invite(&mut office, Role::Field, "Field officer");
    let mut first = new_store(&w.dir.path().join("first"));
    let number = enrol::join(&mut first, &mut w.relay, &code).unwrap();

    let mut second = new_store(&w.dir.path().join("second"));
    let reused = enrol::join(&mut second, &mut w.relay, &code);
    assert!(matches!(reused, Err(SyncError::InviteUsed)), "{reused:?}");
    assert!(
        second.membership().unwrap().is_none(),
        "nothing stored on refusal"
    );

    let late = w.invite(&mut office, Role::Field, "Late");
    w.advance(3601);
    let expired = enrol::join(&mut second, &mut w.relay, &late);
    assert!(
        matches!(expired, Err(SyncError::InviteExpired)),
        "{expired:?}"
    );

    // Before approval the device is told to wait, with its number.
    match w.sync(&mut first) {
        Err(SyncError::AwaitingApproval { safety_number }) => assert_eq!(safety_number, number),
        other => panic!("expected AwaitingApproval, got {other:?}"),
    }

    let mut env = w.env();
    let mut client = amana_core::sync::RelayClient::new(&mut w.relay, w.team);
    let pending = enrol::pending(&mut office, &mut client, &mut env).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].binding,
        enrol::Binding::Verified {
            safety_number: number.clone()
        }
    );
    let prefix = first.keys().device_id().to_hex();
    let wrong = enrol::approve(
        &mut office,
        &mut client,
        &mut env,
        &prefix,
        "0000 0000 0000",
    );
    assert!(matches!(wrong, Err(SyncError::SafetyNumberMismatch)));
    assert_eq!(office.roster().unwrap().unwrap().devices().count(), 1);
    enrol::approve(&mut office, &mut client, &mut env, &prefix, &number).unwrap();
    let report = w.sync(&mut first).unwrap();
    assert_eq!(report.epoch_keys_received, 1);
}

#[test]
fn an_intake_device_hands_cases_in_and_keeps_nothing_readable() {
    let (mut w, mut office) = World::new();
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    w.sync(&mut volunteer).unwrap();
    let id = volunteer
        .record_intake(&case("volunteer canary note", w.now()))
        .unwrap();
    let report = w.sync(&mut volunteer).unwrap();
    assert_eq!(report.pushed, 1);
    assert_eq!(report.forgotten_cases, 1);
    assert!(volunteer.cases().unwrap().is_empty());
    assert!(volunteer.case(id).is_err());
    let subs = volunteer.submissions().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].case, id);
    assert!(subs[0].receipted);
    assert!(volunteer.epoch_keys().unwrap().is_empty());

    w.sync(&mut office).unwrap();
    assert_eq!(notes(&office), vec!["volunteer canary note"]);

    // The relay refuses to hand the team's envelopes to an intake device.
    let mut env = w.env();
    let mut client = amana_core::sync::RelayClient::new(&mut w.relay, w.team);
    let page = client.page(&mut env, volunteer.keys(), 0, 10);
    assert!(
        matches!(&page, Err(SyncError::Refused { code, .. }) if code == "not_a_reader"),
        "{page:?}"
    );
}

/// Sets up an office and a field device with `n` sealed but unreceipted
/// envelopes, then runs a sync in which request `fail_at` fails with
/// `fault`, then a clean sync, and checks nothing was lost or duplicated.
fn interrupted_sync(fail_at: u64, fault: Fault) -> bool {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    let mut expected = Vec::new();
    // 25 envelopes waiting, more than one upload batch of 20: each sync
    // seals one envelope and its upload is dropped.
    for i in 0..25 {
        let note = format!("intake {i:02}");
        a.record_intake(&case(&note, w.now())).unwrap();
        expected.push(note);
        let start = w.relay.requests();
        w.relay.set_faults(move |n, r| {
            if n > start && r.path.ends_with("/envelopes") {
                Fault::DropRequest
            } else {
                Fault::None
            }
        });
        assert!(w.sync(&mut a).is_err());
    }
    w.relay.clear_faults();
    assert_eq!(a.unreceipted().unwrap().len(), 25);

    let start = w.relay.requests();
    w.relay.set_faults(move |n, _| {
        if n == start + fail_at {
            fault
        } else {
            Fault::None
        }
    });
    let first = w.sync(&mut a);
    let office_first = w.sync(&mut office);
    let hit = w.relay.requests() >= start + fail_at;
    w.relay.clear_faults();
    let _ = (first, office_first);
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();

    assert_eq!(notes(&office), expected, "fail_at {fail_at} {fault:?}");
    assert!(a.unreceipted().unwrap().is_empty());
    assert_eq!(a.receipts().unwrap().len(), 25, "one receipt per envelope");
    let heads = w.relay.store().heads(w.team).unwrap();
    let a_head = heads
        .iter()
        .find(|h| h.device == a.keys().device_id())
        .unwrap();
    assert_eq!(a_head.seq, 25, "no envelope stored twice");
    let total = w
        .relay
        .store()
        .envelopes_after(w.team, 0, 1000)
        .unwrap()
        .len();
    assert_eq!(total, 25);
    assert!(office.quarantined_page(0, 10_000).unwrap().is_empty());
    hit
}

#[test]
fn a_sync_interrupted_at_any_request_resumes_without_loss_or_duplicates() {
    for fault in [Fault::DropRequest, Fault::DropResponse] {
        let mut n = 1;
        while interrupted_sync(n, fault) {
            n += 1;
        }
        assert!(n > 5, "the interrupted syncs made {n} requests");
    }
}

#[test]
fn a_cut_connection_is_retried_within_the_sync_and_an_upload_that_arrived_is_not_sent_again() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    for i in 0..12 {
        a.record_intake(&case(&format!("cut intake {i:02}"), w.now()))
            .unwrap();
    }
    // The first upload arrives but its answer is lost; the first page
    // after that is lost on its way.
    let start = w.relay.requests();
    let uploads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = uploads.clone();
    let (mut dropped_upload, mut dropped_page) = (false, false);
    w.relay.set_faults(move |n, r| {
        if n <= start {
            return Fault::None;
        }
        if r.path.ends_with("/envelopes") {
            seen.lock().unwrap().push(r.body.clone());
            if !dropped_upload {
                dropped_upload = true;
                return Fault::DropResponse;
            }
        }
        if r.path.contains("/envelopes?") && !dropped_page {
            dropped_page = true;
            return Fault::DropRequest;
        }
        Fault::None
    });
    let report = w.sync(&mut a).expect("one sync rides out both cuts");
    w.relay.clear_faults();
    assert!(report.sealed >= 2, "small envelopes: {report:?}");
    assert_eq!(report.pushed, report.sealed);
    assert!(a.unreceipted().unwrap().is_empty());
    assert_eq!(a.receipts().unwrap().len(), report.sealed);
    // Every envelope went up once: the one whose answer was lost was
    // receipted from the relay's receipts, not uploaded again.
    let sent = uploads.lock().unwrap();
    let mut bodies: Vec<&Vec<u8>> = sent.iter().collect();
    bodies.dedup();
    assert_eq!(bodies.len(), sent.len(), "no upload sent twice");
    w.sync(&mut office).unwrap();
    assert_eq!(notes(&office).len(), 12);
}

#[test]
fn a_page_keeps_to_the_byte_budget_a_device_asks_for() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    for i in 0..30 {
        a.record_intake(&case(&format!("page intake {i:02}"), w.now()))
            .unwrap();
    }
    let sealed = w.sync(&mut a).unwrap().sealed;
    assert!(sealed > 3);
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    let whole = client.page(&mut env, office.keys(), 0, 1000).unwrap();
    let first = whole.entries[0].bytes.len();
    // A budget below one envelope still gets one; a budget of two gets two.
    let one = client
        .page_within(&mut env, office.keys(), 0, 1000, 1, &[])
        .unwrap();
    assert_eq!((one.entries.len(), one.more), (1, true));
    let two_bytes = first + whole.entries[1].bytes.len();
    let two = client
        .page_within(&mut env, office.keys(), 0, 1000, two_bytes, &[])
        .unwrap();
    assert_eq!((two.entries.len(), two.more), (2, true));
    assert_eq!(two.next_cursor, whole.entries[1].cursor);
    let all = client
        .page_within(&mut env, office.keys(), 0, 1000, usize::MAX, &[])
        .unwrap();
    assert_eq!((all.entries.len(), all.more), (whole.entries.len(), false));
    assert!(!all.heads_as_held, "no digest of held heads was sent");

    // A device holding exactly the relay's heads is not sent them again;
    // one holding others gets the relay's list.
    let held = whole.heads.clone();
    assert!(!held.is_empty());
    let mut after_all = |held: &[_]| {
        client
            .page_within(
                &mut env,
                office.keys(),
                whole.next_cursor,
                1000,
                usize::MAX,
                held,
            )
            .unwrap()
    };
    let same = after_all(&held);
    assert!(same.entries.is_empty());
    assert!(same.heads_as_held);
    assert_eq!(same.heads, held);
    let stale = after_all(&held[1..]);
    assert!(!stale.heads_as_held);
    assert_eq!(stale.heads, whole.heads);
}
