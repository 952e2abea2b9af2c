//! Alarms: kept through later errors, raised again while the relay keeps
//! tampering, closed only by an admin; recovery once it stops; what is an
//! alarm and what is "retry later".

use super::*;

/// B witnessed all of A's log; the relay hides A's tail from the office
/// and answers the office's second page with 503. The claim B's witness
/// makes is kept with the page that brought it, so the next pull (the
/// relay still hiding the tail) raises the alarm. (Before: the claim lived
/// in memory, the 503 ended the sync with "retry later", and the next sync
/// never saw the witness again.)
#[test]
fn a_witness_claim_survives_a_failed_page_and_the_next_pull_raises_its_alarm() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    b.record_intake(&case("from b", w.now())).unwrap();
    w.sync(&mut b).unwrap();
    let device = a.keys().device_id();
    let keep = (1, envelope_id_at(&w, device, 1));
    let mut pages_served = 0;
    let first = sync_via(&mut w, &mut office, |request, response| {
        if !support::hostile::is_page(request) || response.status != 200 {
            return;
        }
        pages_served += 1;
        if pages_served > 1 {
            response.status = 503;
            response.body = b"busy".to_vec();
            return;
        }
        let mut page = amana_core::framing::Page::parse(&response.body, 1000, 1000).unwrap();
        hide_tail(&mut page, device, keep);
        // Cut the page after B's envelope, so another one must follow.
        page.more = true;
        response.body = amana_core::framing::Page::encode_with(
            page.next_cursor,
            page.more,
            (!page.heads_as_held).then_some(page.heads.as_slice()),
            page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
        );
    });
    assert!(
        matches!(first, Err(SyncError::RelayUnavailable { status: 503, .. })),
        "{first:?}"
    );
    assert!(first.unwrap_err().is_temporary());
    let second = sync_via(
        &mut w,
        &mut office,
        pages(|page| hide_tail(page, device, keep)),
    );
    assert!(
        matches!(
            second,
            Err(SyncError::WitnessedAhead { seq: 3, applied: 1, witness, .. })
                if witness == b.keys().device_id()
        ),
        "{second:?}"
    );
    assert_eq!(open_codes(&office), ["witnessed_ahead"]);
}

/// A fork is witnessed on the first page; the second page request fails.
/// The alarm was recorded with the page that showed it: it is open after
/// the failed sync, still open after an honest one (which ends without an
/// error of its own), and closes only when an admin acknowledges it.
#[test]
fn an_alarm_raised_before_a_later_error_stays_raised_until_an_admin_acknowledges_it() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    // B is shown another envelope 4 of A's (signed with A's key, a stolen
    // backup), and witnesses it in its own next envelope.
    let branch = second_branch_at_four(&mut w, &office, &mut a);
    let show_y = || show_y(&branch);
    sync_via(&mut w, &mut b, show_y()).unwrap();
    b.record_intake(&case("from b", w.now())).unwrap();
    sync_via(&mut w, &mut b, show_y()).unwrap();
    // The office reads B's witnessing envelope on a page of its own; the
    // page after it fails.
    let mut pages_served = 0;
    let result = sync_via(&mut w, &mut office, |request, response| {
        if !support::hostile::is_page(request) || response.status != 200 {
            return;
        }
        pages_served += 1;
        if pages_served > 1 {
            response.status = 503;
            response.body = b"busy".to_vec();
            return;
        }
        let mut page = amana_core::framing::Page::parse(&response.body, 1000, 1000).unwrap();
        page.more = true;
        response.body = amana_core::framing::Page::encode_with(
            page.next_cursor,
            page.more,
            (!page.heads_as_held).then_some(page.heads.as_slice()),
            page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
        );
    });
    assert!(
        matches!(result, Err(SyncError::RelayUnavailable { .. })),
        "{result:?}"
    );
    assert_eq!(open_codes(&office), ["fork_witnessed"]);
    w.sync(&mut office).unwrap();
    let open = office.open_alarms().unwrap();
    assert_eq!(open.len(), 1, "still raised after an honest sync");
    let id = open[0].id.to_hex();
    let done =
        amana_core::sync::alarms::acknowledge(&mut office, &[id[..8].to_owned()], w.now()).unwrap();
    assert_eq!(done, [open[0].id]);
    assert!(office.open_alarms().unwrap().is_empty());
    assert_eq!(office.alarms().unwrap().len(), 1, "the history stays");
}

/// One tampered page (an envelope left out, the relay's next cursor kept)
/// breaks A's chain on the office. Once the relay serves honestly again,
/// the next sync fetches again from the last good cursor and the office
/// gets everything; the alarm stays as history. (Before: every later sync
/// exited 6 and the omitted case never arrived.)
#[test]
fn a_device_recovers_by_itself_once_the_relay_stops_tampering() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let omit_second = || {
        pages(|page| {
            if page.entries.len() >= 3 {
                page.entries.remove(1);
            }
        })
    };
    let tampered = sync_via(&mut w, &mut office, omit_second());
    assert!(
        matches!(
            tampered,
            Err(SyncError::Withheld {
                received: 1,
                relay: 3,
                ..
            })
        ),
        "{tampered:?}"
    );
    assert_eq!(quarantine_codes(&office), ["gap"]);
    w.sync(&mut office).unwrap();
    assert_eq!(notes(&office), ["one", "three", "two"]);
    assert_eq!(
        quarantine_codes(&office),
        ["gap"],
        "what came back from before the rewind is passed over, not replayed"
    );
    // A's later work arrives too, and the office is whole from here on.
    a.record_intake(&case("four", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    assert_eq!(notes(&office).len(), 4);
    assert_eq!(quarantine_codes(&office), ["gap"], "the evidence stays");
    let open = open_codes(&office);
    assert!(
        open.contains(&"gap".to_owned()) && open.contains(&"withheld".to_owned()),
        "{open:?}"
    );
}

#[test]
fn a_relay_that_keeps_tampering_keeps_raising_the_alarm() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    for round in 1..=3 {
        let result = sync_via(
            &mut w,
            &mut office,
            pages(|page| {
                if let Some(i) = page
                    .entries
                    .iter()
                    .position(|e| u64::from_be_bytes(e.bytes[34..42].try_into().unwrap()) == 2)
                {
                    page.entries.remove(i);
                }
            }),
        );
        assert!(
            matches!(result, Err(SyncError::Withheld { received: 1, .. })),
            "round {round}: {result:?}"
        );
        assert_eq!(notes(&office), ["one"], "round {round}");
        let withheld = office
            .open_alarms()
            .unwrap()
            .into_iter()
            .find(|a| a.code == "withheld")
            .unwrap();
        assert_eq!(withheld.sightings, round, "one alarm, seen again");
    }
}

/// The rule (docs/sync.md, "Alarms"): an answer that arrives whole (so,
/// with TLS pinned, from the relay) and fails a check is an integrity
/// alarm, exit 6; only transport failures and 5xx are "retry later".
/// (Before: a truncated page and an old page replayed both read as "retry
/// later", exit 4.)
#[test]
fn tampering_that_arrives_intact_is_an_alarm_and_only_transport_failures_are_retry_later() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let mut reader = w.enrol(&mut office, "reader", Role::Office);
    // A page as the relay answered it to another device earlier.
    let mut old_page = Vec::new();
    sync_via(&mut w, &mut reader, |request, response| {
        if support::hostile::is_page(request) && old_page.is_empty() {
            old_page = response.body.clone();
        }
    })
    .unwrap();
    // A page of another team on the same relay.
    let mut other = new_store(&w.dir.path().join("other-office"));
    let other_team = enrol::create_team(
        &mut other,
        &mut w.relay,
        "http://127.0.0.1:1",
        None,
        "Other",
        None,
    )
    .unwrap();
    other
        .record_intake(&case("other team's case", w.now()))
        .unwrap();
    let mut other_page = Vec::new();
    {
        let mut env = w.env();
        let hostile = support::hostile::Hostile {
            relay: &mut w.relay,
            rewrite: |request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    other_page = response.body.clone();
                }
            },
        };
        let mut client = RelayClient::new(hostile, other_team);
        amana_core::sync::sync(&mut other, &mut client, &mut env, &mut |_| {}).unwrap();
        // The other team's own envelope is on its next page.
        amana_core::sync::sync(&mut other, &mut client, &mut env, &mut |_| {}).unwrap();
    }
    w.sync(&mut office).unwrap();
    type Rewrite = Box<dyn FnMut(&Request, &mut Response)>;
    let cases: Vec<(&str, Rewrite, bool)> = vec![
        (
            "another team's page served verbatim",
            Box::new(move |request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    response.body = other_page.clone();
                }
            }),
            true,
        ),
        (
            "truncated page",
            Box::new(|request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    let n = response.body.len();
                    response.body.truncate(n.saturating_sub(10).max(1));
                }
            }),
            true,
        ),
        (
            "old page replayed verbatim",
            Box::new(move |request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    response.body = old_page.clone();
                }
            }),
            true,
        ),
        (
            "a page of another media type",
            Box::new(|request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    response.content_type = Some("text/html".into());
                }
            }),
            true,
        ),
        (
            "503",
            Box::new(|request: &Request, response: &mut Response| {
                if support::hostile::is_page(request) {
                    response.status = 503;
                    response.body = b"<html>busy</html>".to_vec();
                }
            }),
            false,
        ),
    ];
    for (what, rewrite, alarm) in cases {
        let mut rewrite = rewrite;
        let result = sync_via(&mut w, &mut office, |q, r| rewrite(q, r));
        let e = result.expect_err(what);
        assert_eq!(e.is_integrity_alarm(), alarm, "{what}: {e}");
        assert_eq!(e.is_temporary(), !alarm, "{what}: {e}");
    }
    let open = open_codes(&office);
    assert!(open.contains(&"relay_malformed".to_owned()), "{open:?}");
    assert!(
        open.iter()
            .all(|c| c == "relay_malformed" || c == "rollback"),
        "{open:?}"
    );
}

/// A field device's alarm travels to the office inside its next envelope
/// (it seals one for it: it had nothing else to send), the admin
/// acknowledges it there, and the acknowledgement closes it on the field
/// device at its next sync.
#[test]
fn a_field_devices_alarm_reaches_the_office_and_closes_when_an_admin_acknowledges_it() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let stranger = DeviceKeys::generate();
    let forged = Forgery::next(&a, stranger.device_id(), (0, Digest::ZERO)).seal(
        &a,
        &changes_of(&w, "from a stranger"),
        &[],
        &stranger,
    );
    let head_before = relay_head(&w, a.keys().device_id()).0;
    // Stored as a relay that takes anything would store it.
    support::hostile::store_directly(&w, &forged);
    w.sync(&mut a).unwrap();
    let raised = a.open_alarms().unwrap();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].code, "unknown_author");
    assert!(raised[0].reported, "sent in A's next envelope");
    assert_eq!(
        relay_head(&w, a.keys().device_id()).0,
        head_before + 1,
        "an envelope of notices alone"
    );
    // The office hears of it (it raises one of its own about the same
    // envelope, too).
    w.sync(&mut office).unwrap();
    let at_office: Vec<_> = office
        .open_alarms()
        .unwrap()
        .into_iter()
        .filter(|x| x.raised_by == a.keys().device_id())
        .collect();
    assert_eq!(at_office.len(), 1, "{at_office:?}");
    assert_eq!(at_office[0].raised_by, a.keys().device_id());
    assert_eq!(at_office[0].id, raised[0].id);
    // A field device may not acknowledge.
    assert!(matches!(
        amana_core::sync::alarms::acknowledge(&mut a, &[raised[0].id.to_hex()], w.now()),
        Err(amana_core::sync::alarms::AcknowledgeError::NotAdmin)
    ));
    amana_core::sync::alarms::acknowledge(&mut office, &[raised[0].id.to_hex()], w.now()).unwrap();
    assert!(
        office
            .open_alarms()
            .unwrap()
            .iter()
            .all(|x| x.raised_by == office.keys().device_id())
    );
    w.sync(&mut office).unwrap();
    assert_eq!(a.open_alarms().unwrap().len(), 1, "not before A syncs");
    w.sync(&mut a).unwrap();
    assert!(a.open_alarms().unwrap().is_empty());
    let closed = &a.alarms().unwrap()[0];
    assert_eq!(
        closed.acknowledged.map(|k| k.by),
        Some(office.keys().device_id())
    );
}

/// An acknowledgement only counts from an admin: a field device (or the
/// relay with a field device's key) cannot close another device's alarm.
#[test]
fn an_acknowledgement_from_a_device_that_is_not_an_admin_closes_nothing() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let b = w.enrol(&mut office, "field-b", Role::Field);
    let stranger = DeviceKeys::generate();
    let forged = Forgery::next(&a, stranger.device_id(), (0, Digest::ZERO)).seal(
        &a,
        &changes_of(&w, "from a stranger"),
        &[],
        &stranger,
    );
    support::hostile::store_directly(&w, &forged);
    w.sync(&mut a).unwrap();
    let id = a.open_alarms().unwrap()[0].id;
    // B's key signs an envelope carrying an acknowledgement of A's alarm.
    let b_id = b.keys().device_id();
    let head = relay_head(&w, b_id);
    let roster = a.roster().unwrap().unwrap();
    let header = amana_core::envelope::EnvelopeHeader {
        kind: amana_core::envelope::Kind::Changes,
        team: w.team,
        device: b_id,
        seq: head.0 + 1,
        prev: head.1,
        epoch: roster.current_epoch().epoch,
        body_len: 0,
    };
    let ack = [amana_core::envelope::seal::Notice::Ack {
        raised_by: a.keys().device_id(),
        id: id.0,
    }];
    let contents = amana_core::envelope::seal::Contents {
        context: amana_core::envelope::seal::SealContext::under(&roster, w.now()),
        changes: &[],
        witnesses: &[],
        notices: &ack,
    };
    let envelope = amana_core::envelope::seal::seal(
        header,
        &contents,
        &roster.current_epoch().recipient,
        b.keys(),
    )
    .unwrap();
    let mut env = w.env();
    let mut client = w.client();
    client
        .upload(&mut env, b.keys(), &[envelope.into_bytes()])
        .unwrap();
    let result = w.sync(&mut a);
    assert!(result.is_ok(), "{result:?} {:?}", quarantine_codes(&a));
    assert_eq!(a.open_alarms().unwrap().len(), 1, "still open");
}
