//! Revocation: the bound a colluding relay would stretch, and what a
//! revoked device still signs.

use super::*;

/// The relay colludes with the thief of B's phone: it reports B's head
/// far ahead of what it serves, and would store a revocation with any
/// bound. The admin takes the bound from what it verified itself (B's seq
/// 1, by id), so everything the thief signs afterwards is refused: beyond
/// the bound, under an epoch begun after the revocation, or as another
/// history up to the bound. (Before: the bound was the relay's 1000, and
/// the thief's later envelopes were applied.)
#[test]
fn a_relay_that_stretches_a_revocation_bound_cannot_let_the_thief_write() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    b.record_intake(&case("before theft", w.now())).unwrap();
    w.sync(&mut b).unwrap();
    let b_id = b.keys().device_id();
    let genuine_head = relay_head(&w, b_id);
    let team = w.team;
    let done = {
        let mut env = w.env();
        let colluding = support::hostile::Colluding {
            relay: &mut w.relay,
            team,
            device: b_id,
            claimed: 1000,
        };
        let mut client = RelayClient::new(colluding, team);
        // The relay's 1000 is more than this admin verified: a plain
        // revocation stops and says so; the person then revokes at what was
        // verified.
        let refused = admin::revoke(&mut office, &mut client, &mut env, "field-b");
        assert!(
            matches!(
                refused,
                Err(SyncError::RevocationBelowRelay { relay: 1000, .. })
            ),
            "{refused:?}"
        );
        admin::revoke_dropping_unverified(&mut office, &mut client, &mut env, "field-b").unwrap()
    };
    assert_eq!(
        done.last_seq, genuine_head.0,
        "the bound this admin verified"
    );
    let roster = office.roster().unwrap().unwrap();
    let revocation = roster.device(&b_id).unwrap().revoked.unwrap();
    assert_eq!(
        (revocation.last_seq, revocation.last_id),
        genuine_head,
        "the bound names the verified envelope"
    );
    w.sync(&mut a).unwrap();
    // The thief writes on: seq 2 under the new epoch (its recipient is
    // public), seq 2 under the old one, and another seq 1 for a reader that
    // never saw the genuine one. The relay serves all of it.
    let after = Forgery::next(&office, b_id, genuine_head).seal(
        &office,
        &changes_of(&w, "thief, new epoch"),
        &[],
        b.keys(),
    );
    let mut old_epoch = Forgery::next(&office, b_id, genuine_head);
    old_epoch.epoch = 1;
    let before = old_epoch.seal(&office, &changes_of(&w, "thief, old epoch"), &[], b.keys());
    let mut rewritten = Forgery::next(&office, b_id, (0, Digest::ZERO));
    rewritten.epoch = 1;
    let other_history = rewritten.seal(
        &office,
        &changes_of(&w, "thief, other history"),
        &[],
        b.keys(),
    );
    for (store, name) in [(&mut office, "office"), (&mut a, "field-a")] {
        let report = sync_via(
            &mut w,
            store,
            pages(|page| {
                append(page, after.clone());
                append(page, before.clone());
            }),
        );
        assert!(report.is_ok(), "{name}: {report:?}");
        assert_eq!(
            quarantine_codes(store),
            ["revoked_author", "revoked_author"],
            "{name}"
        );
        assert!(
            !notes(store).iter().any(|n| n.starts_with("thief")),
            "{name}"
        );
    }
    let mut fresh = w.enrol(&mut office, "fresh", Role::Office);
    let report = sync_via(
        &mut w,
        &mut fresh,
        pages(|page| {
            for entry in &mut page.entries {
                if entry.bytes[18..34] == *b_id.as_bytes()
                    && u64::from_be_bytes(entry.bytes[34..42].try_into().unwrap()) == 1
                {
                    entry.bytes = other_history.clone();
                }
            }
        }),
    );
    assert!(report.is_err(), "the genuine seq 1 is missing: {report:?}");
    assert_eq!(quarantine_codes(&fresh), ["revoked_fork"]);
    assert!(!notes(&fresh).iter().any(|n| n.starts_with("thief")));
}

/// Defence in depth: even under a bound that reaches further (a revocation
/// signed before this version, or by an admin misled some other way), a
/// revoked device's envelope under an epoch that began after its
/// revocation is refused, snapshots included.
#[test]
fn a_revoked_devices_envelopes_under_a_later_epoch_are_refused_whatever_the_bound() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let mut second_admin = w.enrol(&mut office, "admin-2", Role::Admin);
    w.sync(&mut second_admin).unwrap();
    let thief_id = second_admin.keys().device_id();
    // A revocation whose bound lies far ahead, appended as an admin signs it.
    let mut roster = office.roster().unwrap().unwrap();
    let op = roster
        .append(
            amana_core::roster::RosterChange::RevokeDevice {
                device: thief_id,
                last_seq: 1000,
                last_id: Digest::from_bytes([9; 32]),
            },
            office.keys(),
        )
        .unwrap()
        .as_bytes()
        .to_vec();
    {
        let mut env = w.env();
        let mut client = w.client();
        client.append_roster(&mut env, office.keys(), &op).ok();
    }
    if w.relay.store().roster(w.team).unwrap().len() < roster.ops().len() {
        let index = roster.ops().len() as u64 - 1;
        w.relay
            .store()
            .append_roster_op(
                w.team,
                index,
                &op,
                amana_sync_server::store::RosterEffect::None,
            )
            .unwrap();
    }
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    let head = relay_head(&w, thief_id);
    let forged = Forgery::next(&office, thief_id, head).seal(
        &office,
        &changes_of(&w, "thief under the new epoch"),
        &[],
        second_admin.keys(),
    );
    support::hostile::store_directly(&w, &forged);
    let result = w.sync(&mut office);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(quarantine_codes(&office), ["epoch_after_revocation"]);
    assert!(
        !notes(&office)
            .iter()
            .any(|n| n.contains("thief under the new epoch"))
    );
}
