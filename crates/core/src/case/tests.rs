//! Case documents: round trips, rules, conflicts and convergence.

use super::testing::*;
use super::*;
use crate::ids::DeviceId;
use crate::roster::Role;
use codes::*;
use proptest::prelude::*;

fn device(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

fn referral(recipient: Recipient, with_override: bool) -> Referral {
    Referral {
        id: new_item_id(),
        service_type: ServiceType::Mhpss,
        recipient,
        organisation: OrgCode::new("MHPSS-01").unwrap(),
        date: date(2026, 3, 15),
        accompanied: true,
        status: ReferralStatus::Referred,
        consent_override: with_override.then(|| ConsentOverride {
            reason: ShortText::new("imminent danger, survivor unreachable").unwrap(),
            staff_code: staff("QAY-OF-01"),
        }),
    }
}

#[test]
fn create_and_read_back_the_same_case() {
    let case = case("first meeting at the safe space، بخير");
    let (mut doc, change) = CaseDoc::create(&case, device(1)).unwrap();
    assert!(!change.is_empty());
    let view = doc.read().unwrap();
    assert_eq!(view.case, case);
    assert!(view.conflicts.is_empty());
    let reloaded = CaseDoc::load(&doc.save(), device(1)).unwrap();
    assert_eq!(reloaded.read().unwrap().case, case);
    let rebuilt = CaseDoc::from_changes(&[change], device(2)).unwrap();
    assert_eq!(rebuilt.read().unwrap().case, case);
}

#[test]
fn intake_rules() {
    let mut minor = case("x");
    minor.survivor.age_band = AgeBand::Age12To17;
    assert_eq!(
        minor.validate(),
        Err(ValidationError::MinorFlagMismatch {
            age_band: AgeBand::Age12To17
        })
    );
    minor.survivor.is_minor = true;
    minor.survivor.minor_consent = MinorConsent::None;
    assert_eq!(minor.validate(), Err(ValidationError::MinorWithoutConsent));
    minor.survivor.minor_consent = MinorConsent::Assent;
    assert_eq!(minor.validate(), Ok(()));

    let mut late = case("x");
    late.incident_date = Some(date(2026, 4, 1));
    assert_eq!(late.validate(), Err(ValidationError::IncidentAfterReport));

    let mut half = case("x");
    half.consent.recipients.legal_aid.given = true;
    assert_eq!(
        half.validate(),
        Err(ValidationError::ConsentIncomplete {
            recipient: Recipient::LegalAid
        })
    );
    assert_eq!(case("x").reporting_delay(), Some(ReportingDelay::Days6To14));
}

#[test]
fn referrals_need_consent_or_an_office_override() {
    let (mut doc, _) = CaseDoc::create(&case("x"), device(1)).unwrap();
    // Consent recorded for MHPSS: fine from a field device.
    doc.add_referral(&referral(Recipient::Mhpss, false), Role::Field)
        .unwrap();
    // No consent for police.
    assert!(matches!(
        doc.add_referral(&referral(Recipient::CommunityPolice, false), Role::Field),
        Err(CaseError::Invalid(
            ValidationError::ReferralWithoutConsent { .. }
        ))
    ));
    assert!(matches!(
        doc.add_referral(&referral(Recipient::CommunityPolice, true), Role::Field),
        Err(CaseError::Invalid(ValidationError::OverrideRequiresOffice))
    ));
    doc.add_referral(&referral(Recipient::CommunityPolice, true), Role::Office)
        .unwrap();
    assert_eq!(doc.read().unwrap().case.referrals.len(), 2);
}

#[test]
fn set_field_validates_and_lists_accepted_values() {
    let (mut doc, _) = CaseDoc::create(&case("x"), device(1)).unwrap();
    assert!(doc.set_field("risk.level", "low").unwrap().is_some());
    assert_eq!(doc.read().unwrap().case.risk.level, RiskLevel::Low);
    assert!(
        doc.set_field("risk.level", "منخفض").unwrap().is_none(),
        "same value: no change"
    );
    match doc.set_field("risk.level", "extreme") {
        Err(CaseError::Invalid(ValidationError::InvalidValue { accepted, .. })) => {
            assert_eq!(accepted, RiskLevel::CHOICES)
        }
        other => panic!("unexpected {other:?}"),
    }
    // A rule across fields: closing needs a reason and an approver.
    assert!(matches!(
        doc.set_field("status.state", "closed"),
        Err(CaseError::Invalid(ValidationError::ClosureIncomplete))
    ));
    assert!(matches!(
        doc.set_field("survivor.name", "x"),
        Err(CaseError::Invalid(ValidationError::UnknownField { .. }))
    ));
    // Nothing of the failed edits was written.
    assert_eq!(doc.read().unwrap().case.status.state, CaseState::Open);
    // List items by id.
    let r = referral(Recipient::Mhpss, false);
    doc.add_referral(&r, Role::Field).unwrap();
    doc.set_field(&format!("referrals.{}.status", r.id), "provided_by_agency")
        .unwrap();
    assert_eq!(
        doc.read().unwrap().case.referrals[0].status,
        ReferralStatus::ProvidedByAgency
    );
    assert!(matches!(
        doc.set_field("referrals.nope.status", "referred"),
        Err(CaseError::Invalid(ValidationError::UnknownItem { .. }))
    ));
}

#[test]
fn concurrent_scalar_writes_become_a_conflict_that_a_later_edit_resolves() {
    let (doc, first) = CaseDoc::create(&case("x"), device(1)).unwrap();
    drop(doc);
    let mut a = CaseDoc::from_changes(std::slice::from_ref(&first), device(1)).unwrap();
    let mut b = CaseDoc::from_changes(&[first], device(2)).unwrap();
    let ca = a.set_field("risk.level", "medium").unwrap().unwrap();
    let cb = b.set_field("risk.level", "low").unwrap().unwrap();
    a.apply_changes(&[cb]).unwrap();
    b.apply_changes(&[ca]).unwrap();

    let (va, vb) = (a.read().unwrap(), b.read().unwrap());
    assert_eq!(va, vb, "both devices show the same state");
    assert_eq!(va.conflicts.len(), 1);
    let conflict = &va.conflicts[0];
    assert_eq!(conflict.path, "risk.level");
    let mut shown: Vec<_> = conflict
        .values
        .iter()
        .map(|v| (v.value.as_str().unwrap().to_owned(), v.device.unwrap()))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        vec![
            ("low".to_owned(), device(2)),
            ("medium".to_owned(), device(1))
        ]
    );

    // Writing the field again resolves it everywhere, even with a value
    // that was one of the candidates.
    let fix = a.set_field("risk.level", "medium").unwrap().unwrap();
    b.apply_changes(&[fix]).unwrap();
    assert!(b.read().unwrap().conflicts.is_empty());
    assert_eq!(b.read().unwrap().case.risk.level, RiskLevel::Medium);
}

#[test]
fn concurrent_list_additions_and_note_edits_merge() {
    let (_, first) = CaseDoc::create(&case("Survivor came with her aunt."), device(1)).unwrap();
    let mut a = CaseDoc::from_changes(std::slice::from_ref(&first), device(1)).unwrap();
    let mut b = CaseDoc::from_changes(&[first], device(2)).unwrap();
    let note_id = a.read().unwrap().case.notes[0].id.clone();
    let c1 = a
        .edit_note(&note_id, "Survivor came with her aunt. Felt safe.")
        .unwrap();
    let c2 = b
        .edit_note(&note_id, "Today: Survivor came with her aunt.")
        .unwrap();
    let c3 = a
        .add_followup(&Followup {
            id: new_item_id(),
            date: date(2026, 3, 20),
            kind: FollowupType::Call,
            outcome: ShortText::new("ok").unwrap(),
            next_due: Some(date(2026, 4, 1)),
        })
        .unwrap();
    let c4 = b
        .add_referral(&referral(Recipient::Mhpss, false), Role::Field)
        .unwrap();
    a.apply_changes(&[c2, c4]).unwrap();
    b.apply_changes(&[c1, c3]).unwrap();
    let (va, vb) = (a.read().unwrap(), b.read().unwrap());
    assert_eq!(va, vb);
    assert_eq!(
        va.case.notes[0].text,
        "Today: Survivor came with her aunt. Felt safe."
    );
    assert_eq!(va.case.referrals.len(), 1);
    assert_eq!(va.case.followups.len(), 1);
    assert!(va.conflicts.is_empty());
}

#[test]
fn garbage_changes_and_documents_are_errors() {
    let (mut doc, _) = CaseDoc::create(&case("x"), device(1)).unwrap();
    assert!(matches!(
        doc.apply_changes(&[b"not a change".to_vec()]),
        Err(CaseError::BadChange(_))
    ));
    assert!(matches!(
        CaseDoc::load(b"garbage", device(1)),
        Err(CaseError::Corrupt(_))
    ));
    // An Automerge document that is not a case.
    let mut other = automerge::AutoCommit::new();
    let bytes = other.save();
    let loaded = CaseDoc::load(&bytes, device(1)).unwrap();
    assert!(matches!(loaded.read(), Err(CaseError::Schema(_))));
}

/// Edits one of three devices may make, as data for the property test.
#[derive(Clone, Debug)]
enum Edit {
    Risk(usize, &'static str),
    Note(usize, String),
    Followup(usize),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            0..3usize,
            prop::sample::select(vec!["high", "medium", "low"])
        )
            .prop_map(|(d, v)| Edit::Risk(d, v)),
        (0..3usize, "[a-z ]{0,12}").prop_map(|(d, t)| Edit::Note(d, t)),
        (0..3usize).prop_map(Edit::Followup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Devices that exchange the same set of changes, in any order and
    /// with duplicates, reach identical case state (conflicts included).
    #[test]
    fn same_changes_in_any_order_converge(
        edits in proptest::collection::vec(edit_strategy(), 1..12),
        seed in any::<u64>(),
    ) {
        let (_, first) = CaseDoc::create(&case("base"), device(9)).unwrap();
        let mut writers: Vec<CaseDoc> = (0..3)
            .map(|d| CaseDoc::from_changes(std::slice::from_ref(&first), device(d)).unwrap())
            .collect();
        let note_id = writers[0].read().unwrap().case.notes[0].id.clone();
        let mut changes = vec![first];
        for edit in edits {
            let change = match edit {
                Edit::Risk(d, v) => writers[d].set_field("risk.level", v).unwrap(),
                Edit::Note(d, t) => Some(writers[d].edit_note(&note_id, &t).unwrap()),
                Edit::Followup(d) => Some(writers[d].add_followup(&Followup {
                    id: new_item_id(),
                    date: date(2026, 3, 20),
                    kind: FollowupType::Visit,
                    outcome: ShortText::new("seen").unwrap(),
                    next_due: None,
                }).unwrap()),
            };
            changes.extend(change);
        }
        // Two receivers: one in order, one shuffled with duplicates, in
        // several batches.
        let mut shuffled = changes.clone();
        shuffled.extend(changes.iter().take(3).cloned());
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let in_order = CaseDoc::from_changes(&changes, device(20)).unwrap();
        let mut any_order = CaseDoc::from_changes(&[], device(21)).unwrap();
        for batch in shuffled.chunks(3) {
            any_order.apply_changes(batch).unwrap();
        }
        prop_assert!(!any_order.is_incomplete());
        prop_assert_eq!(in_order.read().unwrap(), any_order.read().unwrap());
    }
}
