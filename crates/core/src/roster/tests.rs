//! Roster verification: every rule, and every single-byte mutation rejected.

use super::*;
use crate::envelope::Kind;
use crate::keys::EpochKey;
use proptest::prelude::*;

struct Team {
    roster: Roster,
    admin: DeviceKeys,
    field: DeviceKeys,
}

fn entry(keys: &DeviceKeys, role: Role) -> DeviceEntry {
    DeviceEntry {
        signing_key: keys.verifying_key(),
        recipient: age::x25519::Identity::generate().to_public(),
        role,
        label: Vec::new(),
    }
}

fn team() -> Team {
    let admin = DeviceKeys::generate();
    let field = DeviceKeys::generate();
    let epoch1 = EpochKey::generate(1);
    let mut roster = Roster::create(
        TeamId::random(),
        &admin,
        &age::x25519::Identity::generate().to_public(),
        Vec::new(),
        epoch1.recipient(),
    )
    .unwrap();
    roster
        .append(RosterChange::AddDevice(entry(&field, Role::Field)), &admin)
        .unwrap();
    roster
        .append(
            RosterChange::RotateEpoch {
                epoch: 2,
                recipient: EpochKey::generate(2).recipient(),
                forget: false,
            },
            &admin,
        )
        .unwrap();
    roster
        .append(
            RosterChange::RevokeDevice {
                device: field.device_id(),
                last_seq: 7,
                last_id: Digest::of(b"seven"),
            },
            &admin,
        )
        .unwrap();
    Team {
        roster,
        admin,
        field,
    }
}

fn encoded(roster: &Roster) -> Vec<Vec<u8>> {
    roster
        .ops()
        .iter()
        .map(|op| op.as_bytes().to_vec())
        .collect()
}

fn header(device: DeviceId, team: TeamId, seq: u64, epoch: u32) -> EnvelopeHeader {
    EnvelopeHeader {
        kind: Kind::Changes,
        team,
        device,
        seq,
        prev: if seq == 1 {
            Digest::ZERO
        } else {
            Digest::of(b"p")
        },
        epoch,
        body_len: 0,
    }
}

#[test]
fn a_valid_chain_verifies_to_the_same_state() {
    let t = team();
    let again = Roster::verify(&encoded(&t.roster)).unwrap();
    assert_eq!(again.head(), t.roster.head());
    assert_eq!(again.current_epoch().epoch, 2);
    assert_eq!(again.active_devices().count(), 1);
    let field = again.device(&t.field.device_id()).unwrap();
    assert_eq!(field.revoked.unwrap().last_seq, 7);
    Roster::verify_pinned(&encoded(&t.roster), t.roster.genesis_hash()).unwrap();
}

#[test]
fn pinned_genesis_mismatch_is_detected() {
    let t = team();
    let other = team();
    assert!(matches!(
        Roster::verify_pinned(&encoded(&t.roster), other.roster.genesis_hash()),
        Err(RosterError::GenesisMismatch { .. })
    ));
}

#[test]
fn empty_and_non_genesis_starts_are_rejected() {
    let t = team();
    let none: Vec<Vec<u8>> = Vec::new();
    assert_eq!(Roster::verify(&none).unwrap_err(), RosterError::Empty);
    let ops = encoded(&t.roster);
    assert_eq!(
        Roster::verify(&ops[1..]).unwrap_err(),
        RosterError::BadGenesis
    );
}

#[test]
fn missing_or_reordered_ops_break_the_chain() {
    let t = team();
    let ops = encoded(&t.roster);
    let skipped = vec![ops[0].clone(), ops[2].clone()];
    assert!(matches!(
        Roster::verify(&skipped),
        Err(RosterError::IndexGap {
            expected: 1,
            found: 2
        })
    ));
    // Same index, but chained to another history.
    let other = team();
    let mut forked = Roster::verify(&ops[..1]).unwrap();
    let foreign = RosterOp::sign(
        t.roster.team(),
        1,
        other.roster.head(),
        RosterChange::AddDevice(entry(&DeviceKeys::generate(), Role::Field)),
        0,
        &t.admin,
    )
    .unwrap();
    assert_eq!(
        forked.apply(foreign.as_bytes()).unwrap_err(),
        RosterError::BrokenChain { index: 1 }
    );
}

#[test]
fn non_admin_signers_are_rejected() {
    let admin = DeviceKeys::generate();
    let field = DeviceKeys::generate();
    let mut roster = Roster::create(
        TeamId::random(),
        &admin,
        &age::x25519::Identity::generate().to_public(),
        Vec::new(),
        EpochKey::generate(1).recipient(),
    )
    .unwrap();
    roster
        .append(RosterChange::AddDevice(entry(&field, Role::Field)), &admin)
        .unwrap();
    let err = roster
        .append(
            RosterChange::AddDevice(entry(&DeviceKeys::generate(), Role::Admin)),
            &field,
        )
        .unwrap_err();
    assert!(matches!(err, RosterError::NotAdmin { index: 2, .. }));
    // An outsider's key is no better.
    let err = roster
        .append(
            RosterChange::RotateEpoch {
                epoch: 2,
                recipient: EpochKey::generate(2).recipient(),
                forget: false,
            },
            &DeviceKeys::generate(),
        )
        .unwrap_err();
    assert!(matches!(err, RosterError::NotAdmin { .. }));
}

#[test]
fn unknown_duplicate_and_revoked_devices() {
    let mut t = team();
    let stranger = DeviceKeys::generate().device_id();
    assert!(matches!(
        t.roster.append(
            RosterChange::RevokeDevice {
                device: stranger,
                last_seq: 0,
                last_id: Digest::ZERO,
            },
            &t.admin
        ),
        Err(RosterError::UnknownDevice { .. })
    ));
    assert!(matches!(
        t.roster.append(
            RosterChange::RevokeDevice {
                device: t.field.device_id(),
                last_seq: 0,
                last_id: Digest::ZERO,
            },
            &t.admin
        ),
        Err(RosterError::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        t.roster.append(
            RosterChange::AddDevice(entry(&t.field, Role::Field)),
            &t.admin
        ),
        Err(RosterError::DuplicateDevice { .. })
    ));
    assert!(matches!(
        t.roster.append(
            RosterChange::RevokeDevice {
                device: t.admin.device_id(),
                last_seq: 0,
                last_id: Digest::ZERO,
            },
            &t.admin
        ),
        Err(RosterError::LastAdmin { .. })
    ));
    assert!(matches!(
        t.roster.append(
            RosterChange::RotateEpoch {
                epoch: 9,
                recipient: EpochKey::generate(9).recipient(),
                forget: false,
            },
            &t.admin
        ),
        Err(RosterError::EpochGap {
            expected: 3,
            found: 9,
            ..
        })
    ));
    // A failed append leaves the roster as it was.
    assert_eq!(t.roster.next_index(), 4);
}

#[test]
fn revoked_admin_can_no_longer_sign() {
    let admin = DeviceKeys::generate();
    let second = DeviceKeys::generate();
    let mut roster = Roster::create(
        TeamId::random(),
        &admin,
        &age::x25519::Identity::generate().to_public(),
        Vec::new(),
        EpochKey::generate(1).recipient(),
    )
    .unwrap();
    roster
        .append(RosterChange::AddDevice(entry(&second, Role::Admin)), &admin)
        .unwrap();
    roster
        .append(
            RosterChange::RevokeDevice {
                device: admin.device_id(),
                last_seq: 0,
                last_id: Digest::ZERO,
            },
            &second,
        )
        .unwrap();
    assert!(matches!(
        roster.append(
            RosterChange::AddDevice(entry(&DeviceKeys::generate(), Role::Field)),
            &admin
        ),
        Err(RosterError::NotAdmin { .. })
    ));
}

#[test]
fn labels_must_be_encrypted() {
    let mut t = team();
    let mut plain = entry(&DeviceKeys::generate(), Role::Field);
    plain.label = b"Officer Layla".to_vec();
    assert!(matches!(
        t.roster.append(RosterChange::AddDevice(plain), &t.admin),
        Err(RosterError::LabelNotEncrypted { .. })
    ));
    let mut sealed = entry(&DeviceKeys::generate(), Role::Field);
    sealed.label = age::encrypt(&t.roster.current_epoch().recipient, b"Officer 2").unwrap();
    t.roster
        .append(RosterChange::AddDevice(sealed), &t.admin)
        .unwrap();
}

#[test]
fn envelope_authors_are_checked_against_the_roster() {
    let t = team();
    let team_id = t.roster.team();
    let admin = t.admin.device_id();
    let field = t.field.device_id();
    assert!(t.roster.check_author(&header(admin, team_id, 1, 2)).is_ok());
    // The revoked field device: valid up to seq 7, rejected above.
    assert!(t.roster.check_author(&header(field, team_id, 7, 1)).is_ok());
    assert!(matches!(
        t.roster.check_author(&header(field, team_id, 8, 1)),
        Err(AuthorError::Revoked {
            seq: 8,
            last_seq: 7,
            ..
        })
    ));
    assert!(matches!(
        t.roster.check_author(&header(admin, team_id, 1, 3)),
        Err(AuthorError::UnknownEpoch {
            epoch: 3,
            current: 2
        })
    ));
    let stranger = DeviceKeys::generate().device_id();
    assert!(matches!(
        t.roster.check_author(&header(stranger, team_id, 1, 1)),
        Err(AuthorError::UnknownDevice(_))
    ));
}

#[test]
fn auditors_cannot_write_and_late_joiners_cannot_use_old_epochs() {
    let mut t = team();
    let auditor = DeviceKeys::generate();
    let late = DeviceKeys::generate();
    t.roster
        .append(
            RosterChange::AddDevice(entry(&auditor, Role::Auditor)),
            &t.admin,
        )
        .unwrap();
    t.roster
        .append(RosterChange::AddDevice(entry(&late, Role::Field)), &t.admin)
        .unwrap();
    let team_id = t.roster.team();
    assert!(matches!(
        t.roster
            .check_author(&header(auditor.device_id(), team_id, 1, 2)),
        Err(AuthorError::CannotWrite(_))
    ));
    assert!(matches!(
        t.roster
            .check_author(&header(late.device_id(), team_id, 1, 1)),
        Err(AuthorError::EpochBeforeJoin { .. })
    ));
}

fn mutation_strategy() -> impl Strategy<Value = (usize, usize, u8)> {
    (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        1u8..=255,
    )
        .prop_map(|(op, byte, xor)| (op.index(4), byte.index(usize::MAX), xor))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Flipping any bits of any single byte of any operation makes the whole
    /// chain fail to verify.
    #[test]
    fn every_single_byte_mutation_is_rejected((op, byte, xor) in mutation_strategy()) {
        let t = team();
        let mut ops = encoded(&t.roster);
        let target = &mut ops[op];
        let at = byte % target.len();
        target[at] ^= xor;
        prop_assert!(Roster::verify(&ops).is_err(), "mutation of op {} byte {} accepted", op, at);
    }
}

/// The exhaustive version over one roster: every byte position, one flip.
#[test]
fn every_byte_position_is_protected() {
    let t = team();
    let ops = encoded(&t.roster);
    for op in 0..ops.len() {
        for at in 0..ops[op].len() {
            let mut mutated = ops.clone();
            mutated[op][at] ^= 0x01;
            assert!(
                Roster::verify(&mutated).is_err(),
                "flip of op {op} byte {at} was accepted"
            );
        }
    }
}

#[test]
fn a_forgetting_rotation_round_trips_and_retires_older_epochs() {
    let t = team();
    let mut roster = t.roster;
    assert_eq!(roster.retired_below(), 1);
    let base = roster.current_epoch().epoch;
    for (epoch, forget) in [(base + 1, false), (base + 2, true), (base + 3, false)] {
        roster
            .append(
                RosterChange::RotateEpoch {
                    epoch,
                    recipient: EpochKey::generate(epoch).recipient(),
                    forget,
                },
                &t.admin,
            )
            .unwrap();
    }
    assert_eq!(roster.retired_below(), base + 2);
    let ops: Vec<Vec<u8>> = roster.ops().iter().map(|o| o.as_bytes().to_vec()).collect();
    let again = Roster::verify(&ops).unwrap();
    assert_eq!(again.retired_below(), base + 2);
    assert!(again.epoch(base + 2).unwrap().forgets_older);
    assert!(!again.epoch(base + 3).unwrap().forgets_older);
}
