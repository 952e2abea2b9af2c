//! Revocation and epoch rotation against the real relay router in memory.

mod support;

use amana_core::envelope::seal;
use amana_core::envelope::{EnvelopeLimits, SealedEnvelope};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::admin;
use amana_core::sync::{RelayClient, SyncError};
use amana_core::{EnvelopeError, TeamId};
use amana_sync_server::store::RelayStore;
use support::{World, case, notes};

fn revoke(w: &mut World, admin_dev: &mut DeviceStore, which: &str) -> admin::Revocation {
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    admin::revoke(admin_dev, &mut client, &mut env, which).unwrap()
}

fn revoke_err(w: &mut World, admin_dev: &mut DeviceStore, which: &str) -> SyncError {
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    admin::revoke(admin_dev, &mut client, &mut env, which).unwrap_err()
}

/// Every envelope the relay holds for `team`.
fn stored(w: &World, team: TeamId) -> Vec<SealedEnvelope> {
    let envelopes = w
        .relay
        .store()
        .page(team, 0, 10_000, usize::MAX)
        .unwrap()
        .envelopes;
    envelopes
        .into_iter()
        .map(|e| SealedEnvelope::parse(e.bytes, &EnvelopeLimits::default()).unwrap())
        .collect()
}

#[test]
fn a_revoked_device_is_locked_out_and_cannot_read_the_new_epoch() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    for store in [&mut office, &mut a, &mut b] {
        w.sync(store).unwrap();
    }
    b.record_intake(&case("written by b before revocation", w.now()))
        .unwrap();
    w.sync(&mut b).unwrap();
    // b records more while the office revokes it: never uploaded.
    b.record_intake(&case("written by b after revocation", w.now()))
        .unwrap();

    let b_id = b.keys().device_id();
    let done = revoke(&mut w, &mut office, &b_id.to_hex()[..8]);
    assert_eq!(done.device, b_id);
    assert_eq!(done.last_seq, 1, "b's one uploaded envelope stays valid");
    assert!(!done.already_revoked);
    let rotation = done.rotation.expect("revocation rotates the epoch");
    assert_eq!(rotation.epoch, 2);
    assert_eq!(rotation.delivered_to, 1, "only a gets the new key");

    // b can no longer sync, and the relay refuses its upload outright.
    assert!(matches!(w.sync(&mut b), Err(SyncError::Revoked)));
    let pending = b.unreceipted().unwrap();
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    let outcome = client.upload(&mut env, b.keys(), &pending).unwrap();
    assert!(outcome.accepted.is_empty());
    assert!(
        matches!(&outcome.refused, Some(SyncError::Revoked)),
        "{outcome:?}"
    );

    // The others keep syncing, on the new epoch.
    a.record_intake(&case("written by a after rotation", w.now()))
        .unwrap();
    w.sync(&mut a).unwrap();
    assert!(a.epoch_keys().unwrap().get(2).is_some());
    w.sync(&mut office).unwrap();
    assert_eq!(
        notes(&office),
        vec![
            "written by a after rotation",
            "written by b before revocation"
        ]
    );
    assert_eq!(notes(&a), notes(&office));

    // With its own keys, b opens nothing written after the rotation...
    let b_keys = b.epoch_keys().unwrap();
    let roster = office.roster().unwrap().unwrap();
    let mut after_rotation = 0;
    for envelope in stored(&w, w.team) {
        if envelope.header().epoch < 2 {
            continue;
        }
        after_rotation += 1;
        let author = roster.device(&envelope.header().device).unwrap();
        assert!(matches!(
            seal::open(&envelope, w.team, &author.entry.signing_key, &b_keys),
            Err(EnvelopeError::UnknownEpoch(2))
        ));
    }
    assert_eq!(after_rotation, 1);
    // ...and no key envelope of the new epoch is addressed to it or opens
    // with its identity.
    let mut deliveries = w.relay.store().key_envelopes(w.team, b_id).unwrap();
    deliveries.extend(
        w.relay
            .store()
            .key_envelopes(w.team, a.keys().device_id())
            .unwrap(),
    );
    for bytes in deliveries {
        let delivery = KeyEnvelope::parse(bytes).unwrap();
        if delivery.epoch >= 2 {
            assert!(
                delivery
                    .open(&roster, b_id, &b.receiving_keys().unwrap())
                    .is_err()
            );
        }
    }
}

#[test]
fn two_admins_revoking_resolve_to_one_revocation_and_one_rotation() {
    let (mut w, mut office) = World::new();
    let mut second = w.enrol(&mut office, "office-2", Role::Admin);
    let mut c = w.enrol(&mut office, "field-c", Role::Field);
    for store in [&mut office, &mut second, &mut c] {
        w.sync(store).unwrap();
    }
    let c_id = c.keys().device_id().to_hex();
    let first = revoke(&mut w, &mut office, &c_id);
    assert_eq!(first.rotation.map(|r| r.epoch), Some(2));
    // The second admin acted on the same device: it is told, and no
    // second revocation or rotation is made.
    let again = revoke(&mut w, &mut second, "field-c");
    assert!(again.already_revoked);
    assert_eq!(again.revoked_by, office.keys().device_id());
    assert_eq!(again.rotation, None);
    let roster = second.roster().unwrap().unwrap();
    assert_eq!(roster.current_epoch().epoch, 2);
    assert_eq!(
        roster.ops().len(),
        5,
        "genesis, 2 adds, revoke, rotate, and no more"
    );

    // Admins revoking each other: whoever reaches the relay first wins,
    // and the other is then revoked and can sign nothing.
    let office_id = office.keys().device_id().to_hex();
    revoke(&mut w, &mut second, &office_id);
    assert!(matches!(
        revoke_err(&mut w, &mut office, &second.keys().device_id().to_hex()),
        SyncError::Revoked
    ));
    // Both admins' epoch keys ended up with the survivor.
    w.sync(&mut second).unwrap();
    let keys = second.epoch_keys().unwrap();
    assert_eq!(keys.epochs().collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn revocation_refusals_change_nothing() {
    let (mut w, mut office) = World::new();
    let mut field = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut field).unwrap();
    let before = office.roster().unwrap().unwrap().ops().len();
    let me = office.keys().device_id().to_hex();
    assert!(matches!(
        revoke_err(&mut w, &mut office, &me),
        SyncError::RevokeSelf
    ));
    assert!(matches!(
        revoke_err(&mut w, &mut office, "ffffffffffff"),
        SyncError::UnknownDevice(_)
    ));
    assert!(matches!(
        revoke_err(&mut w, &mut office, "ab"),
        SyncError::UnknownDevice(_)
    ));
    assert!(matches!(
        revoke_err(&mut w, &mut field, &me),
        SyncError::NotPermitted { .. }
    ));
    w.sync(&mut office).unwrap();
    assert_eq!(office.roster().unwrap().unwrap().ops().len(), before);
}

#[test]
fn rotation_on_demand_reaches_every_reader_and_intake_devices_follow() {
    let (mut w, mut office) = World::new();
    let mut field = w.enrol(&mut office, "field-a", Role::Field);
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    for store in [&mut field, &mut volunteer] {
        w.sync(store).unwrap();
    }
    // A delivery that fails is retried by the admin's next sync.
    w.relay.set_faults(|_, request| {
        if request.path.ends_with("/keys") {
            amana_sync_server::memory::Fault::DropRequest
        } else {
            amana_sync_server::memory::Fault::None
        }
    });
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    assert!(admin::rotate(&mut office, &mut client, &mut env).is_err());
    w.relay.clear_faults();
    // The rotation itself reached the relay; the field device cannot read
    // epoch 2 until the office syncs and delivers.
    volunteer
        .record_intake(&case("sealed to epoch 2", w.now()))
        .unwrap();
    w.sync(&mut volunteer).unwrap();
    assert!(matches!(
        w.sync(&mut field),
        Err(SyncError::MissingEpochKey(2))
    ));
    w.sync(&mut office).unwrap();
    w.sync(&mut field).unwrap();
    assert_eq!(notes(&field), vec!["sealed to epoch 2"]);
    let epochs: Vec<u32> = stored(&w, w.team)
        .iter()
        .map(|e| e.header().epoch)
        .collect();
    assert_eq!(epochs, vec![2], "the intake device sealed to the new epoch");
}

#[test]
fn receiving_keys_are_replaced_once_used_so_old_deliveries_never_open_again() {
    let (mut w, mut office) = World::new();
    let mut field = w.enrol(&mut office, "field-a", Role::Field);
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    let generations = |s: &DeviceStore| -> Vec<u32> {
        s.receiving_keys()
            .unwrap()
            .iter()
            .map(|k| k.generation())
            .collect()
    };
    assert_eq!(generations(&field), vec![0]);
    w.sync(&mut field).unwrap();
    w.sync(&mut volunteer).unwrap();
    // Generation 0 opened the first delivery: replaced by 1, announced.
    assert_eq!(generations(&field), vec![1]);
    assert_eq!(
        generations(&volunteer),
        vec![0],
        "an intake device gets no keys"
    );
    let announced = w.relay.store().announcements(w.team).unwrap();
    assert_eq!(announced.len(), 1);
    let first = amana_core::keys::announce::Announcement::parse(announced[0].clone()).unwrap();
    assert_eq!((first.generation, first.have_epoch), (1, 1));

    // Each rotation goes to the newest announced key and replaces it.
    for epoch in [2, 3] {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
        w.sync(&mut field).unwrap();
        assert!(field.epoch_keys().unwrap().get(epoch).is_some());
    }
    assert_eq!(generations(&field), vec![3]);
    w.sync(&mut office).unwrap();

    // Every delivery ever stored for the field device, as an old copy of
    // the relay would hold them: none opens with what it holds now.
    let roster = office.roster().unwrap().unwrap();
    let field_id = field.keys().device_id();
    let held = field.receiving_keys().unwrap();
    let deliveries = w.relay.store().key_envelopes(w.team, field_id).unwrap();
    assert_eq!(deliveries.len(), 3);
    for bytes in deliveries {
        let delivery = KeyEnvelope::parse(bytes).unwrap();
        assert_eq!(
            delivery.open(&roster, field_id, &held).unwrap_err(),
            amana_core::KeyEnvelopeError::DecryptFailed,
            "epoch {}",
            delivery.epoch
        );
    }
    // A device joining now still gets every key, at its generation 0.
    let mut late = w.enrol(&mut office, "field-late", Role::Field);
    w.sync(&mut late).unwrap();
    assert_eq!(
        late.epoch_keys().unwrap().epochs().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(generations(&late), vec![1]);
}
