//! Crypto-shredding a case against the real relay router in memory: the
//! case is gone from every device and no key any device still holds opens
//! it, in the relay's data or in a copy taken before the shred; every
//! other case, and every change written around the shred, survives.

mod support;

use std::collections::BTreeSet;

use amana_core::envelope::seal;
use amana_core::envelope::snapshot::ShredReason;
use amana_core::envelope::{EnvelopeLimits, STUB_LEN, Stored};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::roster::{Role, Roster};
use amana_core::store::DeviceStore;
use amana_core::sync::{RelayClient, SyncError, shred};
use amana_core::{CaseId, DeviceId, TeamId};
use amana_sync_server::memory::Fault;
use amana_sync_server::store::RelayStore;
use support::{World, case, notes};

/// What a copy of the relay's data holds that matters here.
struct RelayCopy {
    envelopes: Vec<Vec<u8>>,
    deliveries: Vec<(DeviceId, Vec<u8>)>,
}

fn copy_relay(w: &World, devices: &[DeviceId]) -> RelayCopy {
    let envelopes = w
        .relay
        .store()
        .page(w.team, 0, 100_000, usize::MAX)
        .unwrap()
        .envelopes;
    let mut deliveries = Vec::new();
    for device in devices {
        for bytes in w.relay.store().key_envelopes(w.team, *device).unwrap() {
            deliveries.push((*device, bytes));
        }
    }
    RelayCopy {
        envelopes: envelopes.into_iter().map(|e| e.bytes).collect(),
        deliveries,
    }
}

/// Every case id any key `store` holds can read out of `copy`: epoch keys
/// it keeps, plus any epoch key its receiving keys can still open.
fn readable_cases(
    store: &DeviceStore,
    roster: &Roster,
    team: TeamId,
    copy: &RelayCopy,
) -> BTreeSet<CaseId> {
    let me = store.keys().device_id();
    let mut keys = store.epoch_keys().unwrap();
    let receiving = store.receiving_keys().unwrap();
    for (device, bytes) in &copy.deliveries {
        if *device == me
            && let Ok((key, _)) = KeyEnvelope::parse(bytes.clone())
                .unwrap()
                .open(roster, me, &receiving)
        {
            keys.insert(key);
        }
    }
    let mut cases = BTreeSet::new();
    for bytes in &copy.envelopes {
        let Stored::Whole(envelope) =
            Stored::parse(bytes.clone(), &EnvelopeLimits::default()).unwrap()
        else {
            continue;
        };
        let author = roster
            .device(&envelope.header().device)
            .unwrap()
            .entry
            .signing_key;
        if let Ok(opened) = seal::open(&envelope, team, &author, &keys) {
            cases.extend(opened.changes.iter().map(|c| c.case));
            if let Some(part) = opened.snapshot {
                cases.extend(part.cases.iter().map(|c| c.case));
            }
        }
    }
    cases
}

fn shred_case(w: &mut World, office: &mut DeviceStore, id: CaseId) -> shred::Shredded {
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    shred::shred(
        office,
        &mut client,
        &mut env,
        &id.to_hex(),
        ShredReason::ConsentWithdrawn,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn a_shredded_case_is_unrecoverable_everywhere_and_nothing_else_is_lost() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    let doomed = a
        .record_intake(&case("CANARY-SHRED she withdrew consent", w.now()))
        .unwrap();
    let kept = a.record_intake(&case("kept case note", w.now())).unwrap();
    for store in [&mut a, &mut office, &mut b, &mut volunteer] {
        w.sync(store).unwrap();
    }
    let from_volunteer = volunteer
        .record_intake(&case("volunteer case note", w.now()))
        .unwrap();
    w.sync(&mut volunteer).unwrap();
    for store in [&mut office, &mut b] {
        w.sync(store).unwrap();
    }

    // b edits both cases; its envelope (epoch 1) is sealed but the upload
    // is lost, so the relay has not seen it when the office shreds.
    b.edit_case(doomed, |doc| doc.set_field("risk.level", "high"))
        .unwrap();
    b.edit_case(kept, |doc| doc.set_field("risk.level", "medium"))
        .unwrap();
    w.relay.set_faults(|_, request| {
        if request.path.ends_with("/envelopes") && !request.body.is_empty() {
            Fault::DropRequest
        } else {
            Fault::None
        }
    });
    assert!(w.sync(&mut b).is_err());
    w.relay.clear_faults();
    assert_eq!(b.unreceipted().unwrap().len(), 1);

    let devices: Vec<DeviceId> = [&office, &a, &b, &volunteer]
        .iter()
        .map(|s| s.keys().device_id())
        .collect();
    let before = copy_relay(&w, &devices);
    // Positive control: before the shred, a's keys read the case there.
    let roster_before = office.roster().unwrap().unwrap();
    assert!(readable_cases(&a, &roster_before, w.team, &before).contains(&doomed));

    let done = shred_case(&mut w, &mut office, doomed);
    assert_eq!(done.tombstone.case, doomed);
    assert_eq!(done.epoch, 2);
    assert_eq!(done.cases_kept, 2);
    assert_eq!(done.epochs_retired, 1);
    assert!(done.bodies_dropped_at_relay > 0);
    assert!(office.case(doomed).is_err());
    assert_eq!(
        office.epoch_keys().unwrap().epochs().collect::<Vec<_>>(),
        vec![2]
    );

    // Everyone syncs (a twice, b in between: b re-sends its uncovered
    // change to the kept case under the new epoch).
    let report_a = w.sync(&mut a).unwrap();
    assert_eq!(report_a.cases_shredded, 1);
    assert_eq!(report_a.epochs_retired, 1);
    // Forgetting reaches the disk: the store was re-keyed, nothing owed.
    assert!(report_a.store_rekeyed);
    assert!(!a.rekey_owed().unwrap());
    let report_b = w.sync(&mut b).unwrap();
    assert_eq!(report_b.republished, 1, "the change to the kept case");
    assert_eq!(report_b.epochs_retired, 1);
    assert!(report_b.store_rekeyed);
    for store in [&mut volunteer, &mut a, &mut office] {
        w.sync(store).unwrap();
    }
    // The relay holds only stubs of epoch-1 envelopes, including b's,
    // which arrived after the compaction: it keeps no body of a retired
    // epoch.
    let stored = w
        .relay
        .store()
        .page(w.team, 0, 100_000, usize::MAX)
        .unwrap()
        .envelopes;
    let b_id = b.keys().device_id();
    let mut late_stub = false;
    for e in &stored {
        let form = Stored::parse(e.bytes.clone(), &EnvelopeLimits::default()).unwrap();
        assert_eq!(
            form.header().epoch < 2,
            e.bytes.len() == STUB_LEN,
            "old epochs as stubs, new ones whole"
        );
        late_stub |= form.header().device == b_id && form.header().epoch == 1;
    }
    assert!(late_stub);

    // The case is gone, its tombstone kept; the rest is intact everywhere.
    for store in [&office, &a, &b] {
        assert!(store.case(doomed).is_err());
        let tombstones = store.tombstones().unwrap();
        assert_eq!(tombstones.len(), 1);
        assert_eq!(tombstones[0].by, office.keys().device_id());
        assert_eq!(tombstones[0].reason, ShredReason::ConsentWithdrawn);
        assert_eq!(notes(store), vec!["kept case note", "volunteer case note"]);
        assert_eq!(
            store.case(kept).unwrap().case.risk.level.code(),
            "medium",
            "b's change written before the shred survived"
        );
        assert!(store.case(from_volunteer).is_ok());
        assert!(store.epoch_keys().unwrap().get(1).is_none());
    }

    // No key any device holds opens the case, from the relay's data now or
    // from the copy taken before the shred.
    let after = copy_relay(&w, &devices);
    let roster = office.roster().unwrap().unwrap();
    for store in [&office, &a, &b, &volunteer] {
        for copy in [&before, &after] {
            let readable = readable_cases(store, &roster, w.team, copy);
            assert!(!readable.contains(&doomed), "{:?}", store);
        }
    }
    // (The keys still work: the kept case reads from the relay's data.)
    assert!(readable_cases(&a, &roster, w.team, &after).contains(&kept));
    // The relay no longer holds key envelopes of the retired epoch.
    for device in &devices {
        for bytes in w.relay.store().key_envelopes(w.team, *device).unwrap() {
            assert!(KeyEnvelope::parse(bytes).unwrap().epoch >= 2);
        }
    }

    // A device joining now bootstraps from the snapshot.
    let mut late = w.enrol(&mut office, "field-late", Role::Field);
    let report = w.sync(&mut late).unwrap();
    assert!(report.skipped_retired > 0, "old envelopes are passed over");
    assert_eq!(notes(&late), vec!["kept case note", "volunteer case note"]);
    assert!(late.case(doomed).is_err());
    assert_eq!(late.tombstones().unwrap().len(), 1);
    assert!(late.labels().unwrap().values().any(|l| l == "field-a"));
    // Labels sealed to the retired key stay usable where they were read.
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    let revoked =
        amana_core::sync::admin::revoke(&mut office, &mut client, &mut env, "field-a").unwrap();
    assert_eq!(revoked.device, a.keys().device_id());
}

#[test]
fn shredding_refusals_change_nothing() {
    let (mut w, mut office) = World::new();
    let mut second = w.enrol(&mut office, "office-2", Role::Office);
    let mut field = w.enrol(&mut office, "field-a", Role::Field);
    let id = field.record_intake(&case("a case", w.now())).unwrap();
    for store in [&mut field, &mut office, &mut second] {
        w.sync(store).unwrap();
    }
    let attempt = |w: &mut World, store: &mut DeviceStore, prefix: &str| {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        shred::shred(
            store,
            &mut client,
            &mut env,
            prefix,
            ShredReason::EnteredInError,
            &mut |_| {},
        )
    };
    for store in [&mut field, &mut second] {
        assert!(matches!(
            attempt(&mut w, store, &id.to_hex()),
            Err(SyncError::NotPermitted { .. })
        ));
    }
    assert!(matches!(
        attempt(&mut w, &mut office, "ffffffff"),
        Err(SyncError::Store(_))
    ));
    // Nothing is retired, so the relay has nothing to compact.
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    let refused = client.compact(&mut env, office.keys(), 1);
    assert!(
        matches!(&refused, Err(SyncError::Refused { code, .. }) if code == "nothing_to_compact"),
        "{refused:?}"
    );
    let refused = client.compact(&mut env, field.keys(), 1);
    assert!(
        matches!(&refused, Err(SyncError::Refused { code, .. }) if code == "not_an_admin"),
        "{refused:?}"
    );
    for store in [&mut field, &mut office, &mut second] {
        w.sync(store).unwrap();
        assert!(store.case(id).is_ok());
        assert!(store.tombstones().unwrap().is_empty());
    }
    assert_eq!(
        office.roster().unwrap().unwrap().current_epoch().epoch,
        1,
        "no rotation happened"
    );
}
