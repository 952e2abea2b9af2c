//! What readers check of each change before applying it.

use super::*;

/// Seals `changes` as the next envelope of `author` (its own key: a
/// stolen device, or a modified build) and stores it at the relay.
fn write_as(
    w: &World,
    reader: &DeviceStore,
    author: &DeviceStore,
    changes: &[amana_core::envelope::seal::CaseChange],
) {
    let id = author.keys().device_id();
    let bytes =
        Forgery::next(reader, id, relay_head(w, id)).seal(reader, changes, &[], author.keys());
    support::hostile::store_directly(w, &bytes);
}

/// One change to `case` made on `author`'s copy of it by `edit`, under
/// `actor`'s name, bypassing every check the writer's build would make.
fn raw_change(
    holder: &DeviceStore,
    case: amana_core::CaseId,
    actor: amana_core::DeviceId,
    edit: impl FnOnce(&mut automerge::AutoCommit),
) -> amana_core::envelope::seal::CaseChange {
    let saved = holder
        .saved_cases()
        .unwrap()
        .into_iter()
        .find(|c| c.case == case)
        .unwrap();
    let mut doc = automerge::AutoCommit::load(&saved.doc)
        .unwrap()
        .with_actor(automerge::ActorId::from(actor.as_bytes()));
    edit(&mut doc);
    doc.commit();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    amana_core::envelope::seal::CaseChange { case, change }
}

/// Readers check every change against its author before applying it: a
/// change under another device's name, one that breaks a case, an office
/// decision from a field device, a volunteer editing a case it did not
/// record. Each is refused with its own code and alarm, the author's chain
/// goes on, and its later honest envelopes still apply. (Before: readers
/// applied any change from any writer.)
#[test]
fn every_reader_checks_each_change_against_its_authors_role() {
    use automerge::transaction::Transactable as _;
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    w.sync(&mut volunteer).unwrap();
    w.sync(&mut office).unwrap();
    let case_of_a = a.cases().unwrap()[0].case.case_id;
    let office_id = office.keys().device_id();
    let a_id = a.keys().device_id();

    // (1) A writes a change under the office's name.
    let forged = raw_change(&a, case_of_a, office_id, |doc| {
        doc.put(automerge::ROOT, "staff_code", "QAY-OF-01").unwrap();
    });
    write_as(&w, &office, &a, &[forged]);
    // (2) A breaks the case's schema.
    let broken = raw_change(&a, case_of_a, a_id, |doc| {
        doc.put(automerge::ROOT, "amana_case", 99).unwrap();
    });
    write_as(&w, &office, &a, &[broken]);
    // (3) A (a field device) records a consent override with its own build
    // told it is an office device.
    let mut with_override = None;
    a.edit_case(case_of_a, |doc| {
        let change = doc.add_referral(&referral_with_override(), Role::Office)?;
        with_override = Some(change.clone());
        Ok(Some(change))
    })
    .unwrap();
    write_as(
        &w,
        &office,
        &a,
        &[amana_core::envelope::seal::CaseChange {
            case: case_of_a,
            change: with_override.unwrap(),
        }],
    );
    // (4) The volunteer changes a case it did not record.
    let meddling = raw_change(&a, case_of_a, volunteer.keys().device_id(), |doc| {
        doc.put(automerge::ROOT, "reported_at", "2020-01-01")
            .unwrap();
    });
    write_as(&w, &office, &volunteer, &[meddling]);
    // (5) And then A writes honestly again.
    let honest = changes_as(&w, a_id, "honest again");
    write_as(&w, &office, &a, &honest);

    let before = office.case(case_of_a).unwrap();
    let report = w.sync(&mut office).unwrap();
    assert_eq!(
        quarantine_codes(&office),
        [
            "forged_actor",
            "invalid_schema",
            "not_permitted",
            "not_permitted"
        ],
        "{:?}",
        report.quarantined
    );
    assert_eq!(
        office.case(case_of_a).unwrap(),
        before,
        "nothing of them applied"
    );
    assert!(
        notes(&office).contains(&"honest again".to_owned()),
        "A's chain goes on"
    );
    let codes = open_codes(&office);
    for code in ["forged_actor", "invalid_schema", "not_permitted"] {
        assert!(codes.contains(&code.to_owned()), "{code}: {codes:?}");
    }
}

/// A snapshot's tombstone must name the admin that signed the snapshot.
#[test]
fn a_snapshot_whose_tombstone_names_another_device_is_refused() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut reader = w.enrol(&mut office, "reader", Role::Office);
    w.sync(&mut reader).unwrap();
    w.sync(&mut office).unwrap();
    let victim = reader.cases().unwrap()[0].case.case_id;
    let roster = office.roster().unwrap().unwrap();
    let office_id = office.keys().device_id();
    let head = relay_head(&w, office_id);
    let snapshot = amana_core::envelope::snapshot::Snapshot {
        id: [1; 16],
        part: 0,
        parts: 1,
        floor: roster.current_epoch().epoch,
        covers: Vec::new(),
        tombstones: vec![amana_core::envelope::snapshot::Tombstone {
            case: victim,
            by: a.keys().device_id(),
            at: w.now(),
            reason: amana_core::envelope::snapshot::ShredReason::EnteredInError,
        }],
        labels: Vec::new(),
        cases: Vec::new(),
    };
    let header = amana_core::envelope::EnvelopeHeader {
        kind: amana_core::envelope::Kind::Snapshot,
        team: w.team,
        device: office_id,
        seq: head.0 + 1,
        prev: head.1,
        epoch: roster.current_epoch().epoch,
        body_len: 0,
    };
    let envelope = amana_core::envelope::seal::seal_snapshot(
        header,
        &amana_core::envelope::seal::SealContext::under(&roster, w.now()),
        &snapshot,
        &roster.current_epoch().recipient,
        office.keys(),
    )
    .unwrap();
    support::hostile::store_directly(&w, envelope.as_bytes());
    w.sync(&mut reader).unwrap();
    assert_eq!(quarantine_codes(&reader), ["invalid_content"]);
    assert!(
        reader
            .cases()
            .unwrap()
            .iter()
            .any(|c| c.case.case_id == victim)
    );
}
