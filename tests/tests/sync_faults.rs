//! The sync engine facing a relay that fails or lies: 5xx and garbage
//! change nothing stored; a tampered envelope is quarantined (and the
//! rest of that device's chain with it); a device dropped from the
//! relay's heads is an alarm; a revoked device is told so. Every attack
//! of a hostile relay has its own test in `hostile_relay.rs`.

mod support;

use amana_core::framing::Page;
use amana_core::roster::{Role, RosterChange};
use amana_core::sync::{RelayClient, SyncError};
use support::hostile::{is_page, sync_via};
use support::{World, case, notes};

#[test]
fn failing_or_garbled_relays_change_nothing() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    a.record_intake(&case("first", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    let cursor = office.cursor().unwrap();

    let unavailable = sync_via(&mut w, &mut office, |r, resp| {
        if is_page(r) {
            resp.status = 503;
            resp.body = b"<html>Service Unavailable</html>".to_vec();
        }
    });
    assert!(
        matches!(
            unavailable,
            Err(SyncError::RelayUnavailable { status: 503, .. })
        ),
        "{unavailable:?}"
    );
    let garbage = sync_via(&mut w, &mut office, |r, resp| {
        if is_page(r) {
            resp.body = vec![0xff; 37];
        }
    });
    // An answer that arrives whole but does not parse came from the relay
    // (TLS with the pinned key): evidence, not a network fault.
    assert!(
        matches!(garbage, Err(SyncError::RelayMalformed(_))),
        "{garbage:?}"
    );
    let garbage = garbage.unwrap_err();
    assert!(garbage.is_integrity_alarm() && !garbage.is_temporary());
    assert_eq!(office.cursor().unwrap(), cursor);
    assert!(office.quarantined_page(0, 10_000).unwrap().is_empty());
    assert_eq!(notes(&office), vec!["first"]);
}

#[test]
fn a_tampered_envelope_is_quarantined_with_the_rest_of_its_chain() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    a.record_intake(&case("one", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    a.record_intake(&case("two", w.now())).unwrap();
    w.sync(&mut a).unwrap();

    // Flip one bit in the body of the first envelope of the page.
    let report = sync_via(&mut w, &mut office, |r, resp| {
        if is_page(r) && resp.status == 200 {
            let mut page = Page::parse(&resp.body, 100, 100).unwrap();
            if let Some(first) = page.entries.first_mut() {
                let last = first.bytes.len() - 1;
                first.bytes[last] ^= 1;
            }
            resp.body = Page::encode(
                page.next_cursor,
                page.more,
                &page.heads,
                page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
            );
        }
    });
    // Both of A's envelopes are refused: the first fails its signature,
    // the second no longer chains to anything applied; then the relay's
    // head for A is ahead of what was applied.
    match report {
        Err(SyncError::Withheld {
            received: 0,
            relay: 2,
            ..
        }) => {}
        other => panic!("expected Withheld, got {other:?}"),
    }
    let quarantined = office.quarantined_page(0, 10_000).unwrap();
    assert_eq!(quarantined.len(), 2);
    assert!(
        quarantined[0].reason.contains("signature"),
        "{}",
        quarantined[0].reason
    );
    assert!(
        quarantined[1].reason.contains("gap"),
        "{}",
        quarantined[1].reason
    );
    assert!(
        office.cases().unwrap().is_empty(),
        "nothing tampered is applied"
    );
}

#[test]
fn a_revoked_device_is_told_and_refused() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    let mut roster = office.roster().unwrap().unwrap();
    let op = roster
        .append(
            RosterChange::RevokeDevice {
                device: a.keys().device_id(),
                last_seq: 0,
                last_id: amana_core::Digest::ZERO,
            },
            office.keys(),
        )
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut env = w.env();
    let mut client = RelayClient::new(&mut w.relay, w.team);
    client.append_roster(&mut env, office.keys(), &op).unwrap();
    a.record_intake(&case("after revocation", w.now())).unwrap();
    let result = w.sync(&mut a);
    assert!(matches!(result, Err(SyncError::Revoked)), "{result:?}");
    w.sync(&mut office).unwrap();
    assert!(office.cases().unwrap().is_empty());
}

#[test]
fn a_device_dropped_from_the_relays_heads_is_an_alarm() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    a.record_intake(&case("one", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    let device = a.keys().device_id();
    let result = sync_via(&mut w, &mut office, |r, resp| {
        if is_page(r) && resp.status == 200 {
            let mut page = Page::parse(&resp.body, 100, 100).unwrap();
            page.heads.retain(|h| h.device != device);
            resp.body = Page::encode(page.next_cursor, page.more, &page.heads, std::iter::empty());
        }
    });
    assert!(
        matches!(
            result,
            Err(SyncError::Rollback {
                ours: 1,
                relay: 0,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(notes(&office), vec!["one"], "what was applied stays");
}
