//! The roster and the keys: substituted, cut short, frozen for one device,
//! forked, or an author sealing under an old one.

use super::*;

#[test]
fn a_substituted_roster_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut a).unwrap();
    let held = a.roster().unwrap().unwrap();

    // (1) A roster of the relay's own making: a new genesis with an admin
    // key the relay holds, listing A so A would trust it.
    let relay_admin = DeviceKeys::generate();
    let fake_epoch = EpochKey::generate(1);
    let fake = Roster::create(
        held.team(),
        &relay_admin,
        &age::x25519::Identity::generate().to_public(),
        age::encrypt(&fake_epoch.recipient(), b"relay").unwrap(),
        fake_epoch.recipient(),
    )
    .unwrap();
    let fake_ops: Vec<Vec<u8>> = fake.ops().iter().map(|op| op.as_bytes().to_vec()).collect();
    let result = sync_via(
        &mut w,
        &mut a,
        framed("roster", |ops| *ops = fake_ops.clone()),
    );
    assert!(matches!(result, Err(SyncError::Roster(_))), "{result:?}");
    assert_alarm(&result);

    // (2) The genuine roster cut short, before B was added.
    let mut genuine = w.relay.store().roster(w.team).unwrap();
    genuine.pop();
    let result = sync_via(&mut w, &mut a, roster_as(genuine));
    assert!(
        matches!(result, Err(SyncError::RosterRollback { .. })),
        "{result:?}"
    );
    assert_alarm(&result);
    assert_eq!(
        a.roster().unwrap().unwrap().head(),
        held.head(),
        "nothing applied"
    );
}

#[test]
fn a_substituted_key_envelope_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    let epoch = office.roster().unwrap().unwrap().current_epoch().epoch;
    let for_b = w
        .relay
        .store()
        .key_envelopes(w.team, b.keys().device_id())
        .unwrap();
    // (1) B's delivery served to A; (2) a key of the relay's own, sealed to
    // A's recipient and signed by a key the relay holds.
    let stranger = DeviceKeys::generate();
    let roster = a.roster().unwrap().unwrap();
    let a_entry = roster.device(&a.keys().device_id()).unwrap().entry.clone();
    let own = KeyEnvelope::seal(
        w.team,
        &EpochKey::generate(epoch),
        a.keys().device_id(),
        &a_entry.recipient,
        &stranger,
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    for substitute in [for_b.clone(), vec![own]] {
        let result = sync_via(
            &mut w,
            &mut a,
            framed("keys", |items| *items = substitute.clone()),
        );
        assert!(
            matches!(result, Err(SyncError::KeyDelivery(_))),
            "{result:?}"
        );
        assert_alarm(&result);
        assert!(
            a.epoch_keys().unwrap().get(epoch).is_none(),
            "no substituted key is kept"
        );
    }
    w.sync(&mut a).unwrap();
    assert!(
        a.epoch_keys().unwrap().get(epoch).is_some(),
        "the genuine delivery still works"
    );
}

#[test]
fn a_downgrade_to_an_old_epoch_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // B is revoked and the epoch rotated; A learns of it.
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::revoke(&mut office, &mut client, &mut env, "field-b").unwrap();
    }
    w.sync(&mut a).unwrap();
    let current = a.roster().unwrap().unwrap().current_epoch().epoch;
    assert!(current > 1);
    let rotation_ops = a.roster().unwrap().unwrap().ops().len();
    // The relay serves the roster from before the revocation, so that A
    // would write under the epoch B can read.
    a.record_intake(&case("after the rotation", w.now()))
        .unwrap();
    let genuine = w.relay.store().roster(w.team).unwrap();
    let before: Vec<Vec<u8>> = genuine[..rotation_ops - 2].to_vec();
    let result = sync_via(&mut w, &mut a, roster_as(before));
    assert!(
        matches!(result, Err(SyncError::RosterRollback { .. })),
        "{result:?}"
    );
    assert_alarm(&result);
    // Nothing was sealed under the old epoch: the relay holds no envelope
    // of A's below the current epoch after the intake.
    let (head, _) = relay_head(&w, a.keys().device_id());
    assert_eq!(head, 3, "nothing was uploaded");
    assert_eq!(a.outbox_len().unwrap(), 1, "the intake waits in the outbox");
    w.sync(&mut a).unwrap();
    let sent = w
        .relay
        .store()
        .envelope_at(w.team, a.keys().device_id(), 4)
        .unwrap()
        .unwrap()
        .bytes;
    let header = amana_core::envelope::EnvelopeHeader::decode(sent.first_chunk().unwrap()).unwrap();
    assert_eq!(header.epoch, current, "sealed under the current epoch");
}

/// The relay answers A's roster requests with "nothing new" after a
/// revocation and rotation, so that A would keep sealing to the epoch the
/// revoked device reads. The office's next envelope states the longer
/// roster; A fetches the roster again, the relay still hides it, and A
/// raises the alarm and seals nothing. (Before: A sealed its intake under
/// the old epoch and the revoked device opened it.)
#[test]
fn a_roster_frozen_for_one_device_is_detected_and_it_seals_nothing_to_the_old_epoch() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut r = w.enrol(&mut office, "field-r", Role::Field);
    w.sync(&mut r).unwrap();
    w.sync(&mut a).unwrap();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::revoke(&mut office, &mut client, &mut env, "field-r").unwrap();
    }
    office
        .record_intake(&case("after the revocation", w.now()))
        .unwrap();
    w.sync(&mut office).unwrap();
    a.record_intake(&case("must not reach r", w.now())).unwrap();
    let head_before = relay_head(&w, a.keys().device_id());
    let frozen = sync_via(&mut w, &mut a, framed("roster", |ops| ops.clear()));
    assert!(
        matches!(frozen, Err(SyncError::RosterWithheld { author, .. }) if author == office.keys().device_id()),
        "{frozen:?}"
    );
    assert_alarm(&frozen);
    assert_eq!(
        relay_head(&w, a.keys().device_id()),
        head_before,
        "nothing sealed or sent"
    );
    assert_eq!(a.outbox_len().unwrap(), 1, "the intake waits");
    assert_eq!(open_codes(&a), ["roster_withheld"]);
    // Honest again: A gets the roster and seals to the new epoch only.
    w.sync(&mut a).unwrap();
    let (seq, _) = relay_head(&w, a.keys().device_id());
    let sent = w
        .relay
        .store()
        .envelope_at(w.team, a.keys().device_id(), seq)
        .unwrap()
        .unwrap()
        .bytes;
    let envelope = amana_core::envelope::SealedEnvelope::parse(sent, &Default::default()).unwrap();
    let opened_by_r = amana_core::envelope::seal::open(
        &envelope,
        w.team,
        &a.keys().verifying_key(),
        &r.epoch_keys().unwrap(),
    );
    assert!(
        matches!(opened_by_r, Err(amana_core::EnvelopeError::UnknownEpoch(_))),
        "the revoked device holds no key for it: {opened_by_r:?}"
    );
}

/// A shred's forgetting rotation hidden from A the same way: the admin's
/// snapshot, which follows it, states the longer roster.
#[test]
fn a_hidden_forget_rotation_is_detected_by_the_snapshot_that_follows_it() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
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
    let result = sync_via(&mut w, &mut a, framed("roster", |ops| ops.clear()));
    assert!(
        matches!(result, Err(SyncError::RosterWithheld { .. })),
        "{result:?}"
    );
    w.sync(&mut a).unwrap();
    assert!(a.cases().unwrap().iter().all(|c| c.case.case_id != victim));
}

/// Someone with a second admin's key signs another operation at the same
/// position of the roster, and the relay shows that branch to B only (a
/// new epoch whose key the relay holds). B's next envelope states its
/// branch; the office sees two rosters the first time it reads it, and B
/// sees them as soon as it reads the office's.
#[test]
fn two_roster_branches_are_detected_the_first_time_a_device_sees_both() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let admin2 = w.enrol(&mut office, "admin-2", Role::Admin);
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    let genuine_prefix = w.relay.store().roster(w.team).unwrap();
    // The genuine branch goes on with a rotation by the office.
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    // The other branch: the same position, signed with admin-2's key,
    // adding a device of the relay's.
    let mut forked = Roster::verify(&genuine_prefix).unwrap();
    let relay_device = DeviceKeys::generate();
    let epoch_recipient = forked.current_epoch().recipient.clone();
    forked
        .append(
            amana_core::roster::RosterChange::AddDevice(amana_core::roster::DeviceEntry {
                signing_key: relay_device.verifying_key(),
                recipient: age::x25519::Identity::generate().to_public(),
                role: Role::Field,
                label: age::encrypt(&epoch_recipient, b"relay").unwrap(),
            }),
            admin2.keys(),
        )
        .unwrap();
    let branch: Vec<Vec<u8>> = forked.ops().iter().map(|o| o.as_bytes().to_vec()).collect();
    b.record_intake(&case("sealed on the other branch", w.now()))
        .unwrap();
    sync_via(&mut w, &mut b, roster_as(branch.clone())).unwrap();
    let result = w.sync(&mut office);
    assert!(
        matches!(result, Err(SyncError::RosterForkWitnessed { author, .. }) if author == b.keys().device_id()),
        "{result:?}"
    );
    assert!(open_codes(&office).contains(&"roster_fork".to_owned()));
    // B reads the office's envelope (sealed on the genuine branch, under
    // an epoch B's branch does not have) and stops sealing.
    office
        .record_intake(&case("on the genuine branch", w.now()))
        .unwrap();
    w.sync(&mut office).ok();
    b.record_intake(&case("held back", w.now())).unwrap();
    let seen_by_b = sync_via(&mut w, &mut b, roster_as(branch));
    assert!(
        seen_by_b.as_ref().is_err_and(SyncError::roster_in_doubt),
        "{seen_by_b:?}"
    );
    assert_eq!(
        b.outbox_len().unwrap(),
        1,
        "nothing more sealed on the doubtful branch"
    );
    let _ = &mut a;
}

/// A device (its key stolen, or a broken build) seals under an epoch its
/// own stated roster says is over, or states a roster older than one it
/// had seen from others: both are alarms, the content (authentic) is kept.
#[test]
fn an_envelope_sealed_under_an_old_epoch_or_an_old_roster_is_an_alarm() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    let old_roster = office.roster().unwrap().unwrap();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    office
        .record_intake(&case("office after rotation", w.now()))
        .unwrap();
    w.sync(&mut office).unwrap();
    w.sync(&mut b).unwrap();
    let a_id = a.keys().device_id();
    // (1) The current roster stated, the old epoch used.
    let mut old_epoch = Forgery::next(&office, a_id, relay_head(&w, a_id));
    old_epoch.epoch = 1;
    let first = old_epoch.seal(&office, &changes_as(&w, a_id, "old epoch"), &[], a.keys());
    support::hostile::store_directly(&w, &first);
    let result = w.sync(&mut b);
    assert!(
        matches!(result, Err(SyncError::StaleEpoch { epoch: 1, .. })),
        "{result:?}"
    );
    // (2) The old roster stated (to its epoch), while witnessing the
    // office's envelope written under the new one.
    let office_id = office.keys().device_id();
    let office_head = relay_head(&w, office_id);
    let mut old_view = Forgery::next(&office, a_id, relay_head(&w, a_id));
    old_view.epoch = 1;
    old_view.context = Some(amana_core::envelope::seal::SealContext::under(
        &old_roster,
        w.now(),
    ));
    let witness = Witness {
        device: office_id,
        seq: office_head.0,
        id: office_head.1,
    };
    let second = old_view.seal(
        &office,
        &changes_as(&w, a_id, "old roster"),
        &[witness],
        a.keys(),
    );
    support::hostile::store_directly(&w, &second);
    let result = w.sync(&mut b);
    assert!(
        matches!(result, Err(SyncError::StaleRoster { .. })),
        "{result:?}"
    );
    let codes = open_codes(&b);
    assert!(
        codes.contains(&"stale_epoch".to_owned()) && codes.contains(&"stale_roster".to_owned()),
        "{codes:?}"
    );
}
