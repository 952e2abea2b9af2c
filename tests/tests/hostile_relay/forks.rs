//! Forks and hidden tails: the relay showing devices different histories
//! of a log, or keeping part of one from some of them (witnesses, stated
//! pull times, a shred's snapshot that never comes).

use super::*;

#[test]
fn a_tail_hidden_from_one_reader_is_caught_by_another_devices_witness() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // B saw all of A's log and says so in its next envelope.
    b.record_intake(&case("from b", w.now())).unwrap();
    w.sync(&mut b).unwrap();
    // The relay hides A's seq 2 and 3 from the office, and lies about A's
    // head so the chain itself looks complete.
    let device = a.keys().device_id();
    let first_id = amana_core::envelope::id_of(
        &w.relay
            .store()
            .envelope_at(w.team, device, 1)
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    let result = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            page.entries.retain(|e| {
                let header = &e.bytes[18..42];
                !(header[..16] == *device.as_bytes()
                    && u64::from_be_bytes(header[16..24].try_into().unwrap()) > 1)
            });
            for head in &mut page.heads {
                if head.device == device {
                    head.seq = 1;
                    head.id = first_id;
                }
            }
        }),
    );
    assert!(
        matches!(
            result,
            Err(SyncError::WitnessedAhead { seq: 3, applied: 1, witness, .. })
                if witness == b.keys().device_id()
        ),
        "{result:?}"
    );
    assert_alarm(&result);
    assert_eq!(notes(&office), ["from b", "one"]);
}

#[test]
fn a_fork_shown_to_two_devices_is_detected_when_they_exchange_heads() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    // A writes seq 4 (X). Someone with A's key (a stolen backup) signs a
    // different seq 4 (Y); the relay shows X to the office and to A, and
    // Y to B.
    let branch = second_branch_at_four(&mut w, &office, &mut a);
    let device = branch.device;
    let show_y = || show_y(&branch);
    let report = sync_via(&mut w, &mut b, show_y()).unwrap();
    assert!(
        report.quarantined.is_empty(),
        "B's view is consistent on its own"
    );
    assert!(notes(&b).contains(&"branch y".to_owned()));
    // B writes; its envelope carries the heads it applied, A's seq 4 = Y.
    b.record_intake(&case("from b", w.now())).unwrap();
    sync_via(&mut w, &mut b, show_y()).unwrap();

    let b_id = b.keys().device_id();
    for (name, store) in [("office", &mut office), ("field-a", &mut a)] {
        let result = w.sync(store);
        assert!(
            matches!(
                result,
                Err(SyncError::ForkWitnessed { device: d, seq: 4, witness })
                    if d == device && witness == b_id
            ),
            "{name}: {result:?}"
        );
        assert_eq!(
            quarantine_codes(store),
            ["fork_witnessed"],
            "{name}: evidence kept"
        );
        let seen = notes(store);
        assert!(seen.contains(&"branch x".to_owned()), "{name}");
        assert!(
            !seen.contains(&"branch y".to_owned()),
            "{name}: the other branch is never applied"
        );
    }
}

/// Witness entries are carried only by envelopes of other devices; a
/// device never trusts a witness of its own log it did not write.
#[test]
fn a_witness_of_an_envelope_this_device_never_wrote_is_a_fork() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // The relay (holding B's key, say) makes B claim A's seq 9.
    let b_id = b.keys().device_id();
    let claim = Witness {
        device: a.keys().device_id(),
        seq: 9,
        id: Digest::from_bytes([7; 32]),
    };
    let forged = Forgery::next(&office, b_id, relay_head(&w, b_id)).seal(
        &office,
        &changes_of(&w, "claims"),
        &[claim],
        b.keys(),
    );
    let mut env = w.env();
    let mut client = w.client();
    client.upload(&mut env, b.keys(), &[forged]).unwrap();
    let result = w.sync(&mut a);
    assert!(
        matches!(result, Err(SyncError::ForkWitnessed { seq: 9, witness, .. }) if witness == b_id),
        "{result:?}"
    );
}

/// The relay serves A its own envelopes and receipts but keeps A's seq 4
/// and 5 from every other device, with heads to match, so no witness
/// elsewhere can catch it. A notices: the office and B complete pulls well
/// after those envelopes were receipted, and their envelopes still witness
/// A's log at 3. (Before: nobody noticed, ever.)
#[test]
fn a_tail_withheld_from_everyone_else_is_noticed_by_its_writer() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    for note in ["four", "five"] {
        a.record_intake(&case(note, w.now())).unwrap();
        w.sync(&mut a).unwrap();
    }
    let device = a.keys().device_id();
    let keep = (3, envelope_id_at(&w, device, 3));
    w.advance(2 * 3600);
    for (store, note) in [(&mut office, "from the office"), (&mut b, "from b")] {
        store.record_intake(&case(note, w.now())).unwrap();
        sync_via(&mut w, store, pages(|page| hide_tail(page, device, keep))).unwrap();
        assert!(!notes(store).contains(&"four".to_owned()));
    }
    let noticed = w.sync(&mut a);
    assert!(
        matches!(noticed, Err(SyncError::OwnTailWithheld { seq: 4, .. })),
        "{noticed:?}"
    );
    assert_eq!(open_codes(&a), ["own_tail_withheld"]);
    // The office sees A's log as the relay shows it (3): the lie is
    // consistent there, which is why A's own view is the one that counts.
    let views = amana_core::sync::tail::log_views(&office).unwrap();
    assert_eq!(views[&device].relay, 3);
    assert_eq!(views[&device].behind_since, 0);
}

/// Honest timing is no alarm: another device that synced before A's
/// envelope was receipted (or within the margin) is not held against it.
#[test]
fn a_device_that_synced_before_the_envelope_was_sent_is_no_evidence() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    a.record_intake(&case("four", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    // The office wrote, from a pull that began before A's seq 4 existed.
    office.record_intake(&case("office", w.now())).unwrap();
    let device = a.keys().device_id();
    let keep = (3, envelope_id_at(&w, device, 3));
    sync_via(
        &mut w,
        &mut office,
        pages(|page| hide_tail(page, device, keep)),
    )
    .unwrap();
    w.advance(600);
    w.sync(&mut a).unwrap();
    assert!(a.open_alarms().unwrap().is_empty());
}

/// A shred's rotation reaches A but the office's snapshot never does (the
/// relay hides the office's log from the snapshot on, heads to match).
/// Two days on, A raises the alarm.
#[test]
fn a_shred_whose_snapshot_never_arrives_raises_an_alarm() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    w.sync(&mut a).unwrap();
    let office_id = office.keys().device_id();
    let before = relay_head(&w, office_id);
    let victim = office.cases().unwrap()[0].case.case_id;
    {
        let mut env = w.env();
        let mut client = w.client();
        amana_core::sync::shred::shred(
            &mut office,
            &mut client,
            &mut env,
            &victim.to_hex(),
            amana_core::envelope::snapshot::ShredReason::ConsentWithdrawn,
            &mut |_| {},
        )
        .unwrap();
    }
    let hide = |page: &mut amana_core::framing::Page| hide_tail(page, office_id, before);
    sync_via(&mut w, &mut a, pages(hide)).unwrap();
    assert!(a.open_alarms().unwrap().is_empty(), "not yet");
    w.advance(49 * 3600);
    let late = sync_via(&mut w, &mut a, pages(hide));
    assert!(
        matches!(late, Err(SyncError::SnapshotMissing { .. })),
        "{late:?}"
    );
    assert_eq!(open_codes(&a), ["snapshot_missing"]);
}
