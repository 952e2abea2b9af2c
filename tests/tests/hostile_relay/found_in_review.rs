//! Attacks an adversarial review of the hardened protocol found (each was
//! first written as a test that succeeded against the code it reviewed),
//! and what now stops them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amana_core::envelope::seal::SealContext;
use amana_core::keys::DeviceKeys;
use amana_core::roster::Role;
use amana_core::sync::{RelayClient, SyncError, admin};
use amana_core::transport::{Request, Response, Transport, TransportError};
use amana_core::{DeviceId, Digest};
use amana_sync_server::memory::MemoryRelay;

use super::support::hostile::{
    Colluding, Forgery, append, changes_as, pages, quarantine_codes, relay_head, relay_heads,
    store_directly, sync_via,
};
use super::support::{World, case, notes};
use super::{envelope_id_at, hide_tail, open_codes, team_with_three_envelopes};

/// A field device (stolen, not yet revoked) states a roster longer than
/// anyone serves. Only its own envelopes wait; the office raises the alarm
/// and seals nothing while the doubt is open, and can still revoke it,
/// which lifts the doubt.
#[test]
fn a_device_stating_a_roster_nobody_serves_holds_back_only_itself_and_can_be_revoked() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    let id = a.keys().device_id();
    let roster = office.roster().unwrap().unwrap();
    let mut lie = Forgery::next(&office, id, relay_head(&w, id));
    lie.context = Some(SealContext {
        roster_len: roster.ops().len() as u64 + 7,
        ..SealContext::under(&roster, w.now())
    });
    store_directly(
        &w,
        &lie.seal(&office, &changes_as(&w, id, "lie"), &[], a.keys()),
    );
    // B's envelope after it (B wrote without reading the lie).
    let b_id = b.keys().device_id();
    let after = Forgery::next(&office, b_id, relay_head(&w, b_id)).seal(
        &office,
        &changes_as(&w, b_id, "b goes on"),
        &[],
        b.keys(),
    );
    store_directly(&w, &after);
    office.record_intake(&case("office work", w.now())).unwrap();
    let first = w.sync(&mut office);
    assert!(
        matches!(first, Err(SyncError::RosterWithheld { author, .. }) if author == id),
        "{first:?}"
    );
    assert!(
        notes(&office).contains(&"b goes on".to_owned()),
        "the rest of the page applied"
    );
    assert_eq!(
        office.outbox_len().unwrap(),
        1,
        "nothing sealed while in doubt"
    );
    let mut env = w.env();
    let mut client = w.client();
    // Its lie (seq 4) is at the relay but not verified here.
    admin::revoke_dropping_unverified(&mut office, &mut client, &mut env, &id.to_hex()[..8])
        .unwrap();
    w.sync(&mut office).unwrap();
    assert_eq!(
        office.outbox_len().unwrap(),
        0,
        "sealed once the liar is revoked"
    );
}

/// The relay serves A's edit before the office's envelope it builds on.
/// The edit waits (its author's chain stops there) instead of being
/// dropped, and arrives at the next honest sync.
#[test]
fn changes_served_before_what_they_build_on_wait_and_arrive_later() {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    let mut r = w.enrol(&mut office, "office-r", Role::Office);
    w.sync(&mut a).unwrap();
    let c = case("office case", w.now());
    office.record_intake(&c).unwrap();
    w.sync(&mut office).unwrap();
    w.sync(&mut a).unwrap();
    a.edit_case(c.case_id, |doc| {
        doc.add_note(&amana_core::case::Note {
            id: amana_core::case::new_item_id(),
            author: amana_core::case::StaffCode::new("QAY-FO-07").unwrap(),
            at: chrono::DateTime::from_timestamp(w.now() as i64, 0).unwrap(),
            text: "edit by a".into(),
        })
        .map(Some)
    })
    .unwrap();
    w.sync(&mut a).unwrap();
    let a_id = a.keys().device_id();
    // A's envelopes first, the cursors kept in order.
    let reorder = pages(move |page| {
        let mut cursors: Vec<u64> = page.entries.iter().map(|e| e.cursor).collect();
        cursors.sort();
        page.entries
            .sort_by_key(|e| e.bytes[18..34] != *a_id.as_bytes());
        for (e, c) in page.entries.iter_mut().zip(cursors) {
            e.cursor = c;
        }
    });
    sync_via(&mut w, &mut r, reorder).unwrap();
    assert!(!notes(&r).contains(&"edit by a".to_owned()));
    assert!(open_codes(&r).contains(&"missing_dependencies".to_owned()));
    w.advance(7 * 3600);
    w.sync(&mut r).ok();
    w.sync(&mut r).unwrap();
    assert!(
        notes(&r).contains(&"edit by a".to_owned()),
        "{:?}",
        notes(&r)
    );
}

/// Heads of devices that are not on the roster: ignored, so they neither
/// raise "withheld" nor make the device fetch the team's log again.
#[test]
fn a_head_the_relay_invents_for_a_device_not_on_the_roster_costs_nothing() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    for n in 0..20 {
        a.record_intake(&case(&format!("x{n}"), w.now())).unwrap();
    }
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    let quiet = w.sync(&mut office).unwrap().bytes_received;
    for round in 0..3u8 {
        let heads = relay_heads(&w);
        let fake = DeviceId::from_bytes([round + 1; 16]);
        sync_via(
            &mut w,
            &mut office,
            pages(move |page| {
                page.heads_as_held = false;
                page.heads = heads.clone();
                page.heads.push(amana_core::framing::PageHead {
                    device: fake,
                    seq: 1,
                    id: Digest::ZERO,
                });
            }),
        )
        .unwrap();
        let after = w.sync(&mut office).unwrap().bytes_received;
        assert!(
            after <= 2 * quiet,
            "round {round}: {after} bytes after, {quiet} quiet"
        );
    }
}

/// Unsigned junk naming an honest device, under an epoch before it joined
/// and at a far seq: refused for its signature (the relay's doing), never
/// for the device's; it does not count as served, so a head claimed at
/// that seq is still "withheld".
#[test]
fn unsigned_junk_frames_no_device_and_hides_no_withholding() {
    let (mut w, mut office) = World::new();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    let mut x = w.enrol(&mut office, "field-x", Role::Field);
    w.sync(&mut x).unwrap();
    x.record_intake(&case("x1", w.now())).unwrap();
    w.sync(&mut x).unwrap();
    w.sync(&mut office).unwrap();
    let xid = x.keys().device_id();
    let mut junk = Forgery::next(&office, xid, relay_head(&w, xid));
    junk.epoch = 1;
    junk.seq = 1_000_000;
    junk.prev = Digest::from_bytes([7; 32]);
    let junk = junk.seal(
        &office,
        &changes_as(&w, xid, "junk"),
        &[],
        &DeviceKeys::generate(),
    );
    sync_via(
        &mut w,
        &mut office,
        pages(move |page| append(page, junk.clone())),
    )
    .unwrap();
    assert_eq!(quarantine_codes(&office), ["bad_signature"]);
    let heads = relay_heads(&w);
    let claimed = sync_via(
        &mut w,
        &mut office,
        pages(move |page| {
            page.heads_as_held = false;
            page.heads = heads.clone();
            for h in &mut page.heads {
                if h.device == xid {
                    h.seq = 1_000_000;
                }
            }
        }),
    );
    assert!(
        matches!(claimed, Err(SyncError::Withheld { .. })),
        "{claimed:?}"
    );
}

/// A relay answering `clock_skew` with a time years away: refused as the
/// relay's lie (receipt times are the device's own clock anyway).
#[test]
fn a_relay_clock_years_away_is_refused() {
    struct Skewed<'a> {
        relay: &'a mut MemoryRelay,
        clock: Arc<AtomicU64>,
    }
    impl Transport for Skewed<'_> {
        fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
            if request.authorization.is_some() {
                return Ok(Response {
                    status: 401,
                    content_type: Some("application/json".into()),
                    body: serde_json::to_vec(&serde_json::json!({
                        "error": {"code": "clock_skew", "message": "skew"},
                        "server_time": self.clock.load(Ordering::SeqCst) + 10 * 365 * 86_400,
                    }))
                    .unwrap(),
                });
            }
            self.relay.send(request)
        }
    }
    let (mut w, _office, mut a) = team_with_three_envelopes();
    let mut env = w.env();
    let team = w.team;
    let clock = w.clock.clone();
    let mut client = RelayClient::new(
        Skewed {
            relay: &mut w.relay,
            clock,
        },
        team,
    );
    let result = amana_core::sync::sync(&mut a, &mut client, &mut env, &mut |_| {});
    assert!(
        matches!(result, Err(SyncError::RelayMalformed(_))),
        "{result:?}"
    );
}

/// Junk at 300 different seqs: one alarm, not 300.
#[test]
fn junk_at_many_seqs_raises_one_alarm() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let id = a.keys().device_id();
    let junk: Vec<Vec<u8>> = (0..300u64)
        .map(|s| {
            let mut f = Forgery::next(&office, id, relay_head(&w, id));
            f.seq = 100 + s;
            f.prev = Digest::from_bytes([7; 32]);
            f.seal(&office, &[], &[], &DeviceKeys::generate())
        })
        .collect();
    sync_via(
        &mut w,
        &mut office,
        pages(move |page| {
            for j in &junk {
                append(page, j.clone());
            }
        }),
    )
    .ok();
    assert_eq!(office.open_alarms().unwrap().len(), 1);
}

/// A page whose next cursor lies beyond what it holds: refused whole, the
/// cursor unchanged, and what comes later still arrives.
#[test]
fn a_next_cursor_beyond_the_page_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let cursor = office.cursor().unwrap();
    let result = sync_via(
        &mut w,
        &mut office,
        |request: &Request, response: &mut Response| {
            if super::support::hostile::is_page(request) && response.status == 200 {
                let page = amana_core::framing::Page::parse(&response.body, 1000, 1000).unwrap();
                response.body = amana_core::framing::Page::encode_with(
                    1 << 40,
                    page.more,
                    (!page.heads_as_held).then_some(page.heads.as_slice()),
                    page.entries.iter().map(|e| (e.cursor, e.bytes.as_slice())),
                );
            }
        },
    );
    assert!(
        matches!(result, Err(SyncError::RelayMalformed(_))),
        "{result:?}"
    );
    assert_eq!(office.cursor().unwrap(), cursor);
    a.record_intake(&case("later", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).unwrap();
    assert!(notes(&office).contains(&"later".to_owned()));
}

/// A thief's envelope reached R but was hidden from the admin, who revoked
/// with the bound it saw: R raises the alarm when it learns the bound.
#[test]
fn an_envelope_applied_beyond_a_revocation_learnt_later_raises_an_alarm() {
    let (mut w, mut office, mut s) = team_with_three_envelopes();
    let mut r = w.enrol(&mut office, "field-r", Role::Field);
    w.sync(&mut r).unwrap();
    w.sync(&mut office).unwrap();
    s.record_intake(&case("written by the thief", w.now()))
        .unwrap();
    w.sync(&mut s).unwrap();
    w.sync(&mut r).unwrap();
    let sid = s.keys().device_id();
    let third = (3, envelope_id_at(&w, sid, 3));
    {
        let mut env = w.env();
        let team = w.team;
        let colluding = Colluding {
            relay: &mut w.relay,
            team,
            device: sid,
            claimed: 3,
        };
        let mut hiding = HideTail {
            inner: colluding,
            device: sid,
            keep: third,
        };
        let mut client = RelayClient::new(&mut hiding, team);
        admin::revoke(&mut office, &mut client, &mut env, &sid.to_hex()[..8]).unwrap();
    }
    let _ = w.sync(&mut r);
    assert!(
        open_codes(&r).contains(&"revoked_author".to_owned()),
        "{:?}",
        open_codes(&r)
    );
}

/// A transport that hides a device's tail from its pages.
struct HideTail<T: Transport> {
    inner: T,
    device: DeviceId,
    keep: (u64, Digest),
}

impl<T: Transport> Transport for HideTail<T> {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        let mut response = self.inner.send(request)?;
        let (device, keep) = (self.device, self.keep);
        pages(move |page| hide_tail(page, device, keep))(request, &mut response);
        Ok(response)
    }
}

/// An intake device never reads the team's envelopes, so a relay that
/// keeps the roster from before a revocation from it keeps it sealing to
/// the old epoch, and it cannot notice. Every reader does: the revocation
/// states when it was signed, and the volunteer's envelope, sealed hours
/// later, states a roster without it.
#[test]
fn an_intake_device_kept_on_an_old_roster_is_noticed_by_every_reader() {
    let (mut w, mut office) = World::new();
    let mut lost = w.enrol(&mut office, "field-lost", Role::Field);
    let mut volunteer = w.enrol(&mut office, "cpt-1", Role::Intake);
    w.sync(&mut lost).unwrap();
    w.sync(&mut volunteer).unwrap();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::revoke(&mut office, &mut client, &mut env, "field-lost").unwrap();
    }
    w.advance(3 * 3600);
    volunteer
        .record_intake(&case("new survivor", w.now()))
        .unwrap();
    sync_via(
        &mut w,
        &mut volunteer,
        super::support::hostile::framed("roster", |ops| ops.clear()),
    )
    .unwrap();
    let result = w.sync(&mut office);
    assert!(
        matches!(
            result,
            Err(SyncError::SealedAfterRosterChange { hours: 3, .. })
        ),
        "{result:?}"
    );
    assert!(open_codes(&office).contains(&"stale_roster".to_owned()));
}

/// Pages that are empty and say more follows, without end: an alarm, not
/// a pull that quietly ends as if complete.
#[test]
fn empty_pages_that_say_more_follows_are_an_alarm() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let result = sync_via(
        &mut w,
        &mut office,
        |request: &Request, response: &mut Response| {
            if super::support::hostile::is_page(request) && response.status == 200 {
                let after = super::support::hostile::asked_after(request);
                response.body = amana_core::framing::Page::encode_with(
                    after,
                    true,
                    None,
                    std::iter::empty::<(u64, &[u8])>(),
                );
            }
        },
    );
    assert!(
        matches!(result, Err(SyncError::RelayMalformed(_))),
        "{result:?}"
    );
}

/// A change that builds on one every reader refused (a field device's
/// consent override) waits once, then, fetched again after the back-off
/// and still missing its dependency, is refused: the author's chain goes
/// on and its later, independent work arrives.
#[test]
fn a_change_built_on_a_refused_one_is_refused_after_one_retry_and_the_chain_goes_on() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let case_of_a = a.cases().unwrap()[0].case.case_id;
    let referral = crate::referral_with_override();
    // A build that thinks it is an office device.
    a.edit_case(case_of_a, |doc| {
        doc.add_referral(&referral, Role::Office).map(Some)
    })
    .unwrap();
    w.sync(&mut a).unwrap();
    let note = |text: &str| amana_core::case::Note {
        id: amana_core::case::new_item_id(),
        author: amana_core::case::StaffCode::new("QAY-FO-07").unwrap(),
        at: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        text: text.into(),
    };
    a.edit_case(case_of_a, |doc| {
        doc.add_note(&note("built on it")).map(Some)
    })
    .unwrap();
    w.sync(&mut a).unwrap();
    w.sync(&mut office).ok();
    assert!(quarantine_codes(&office).contains(&"not_permitted".to_owned()));
    assert!(!notes(&office).contains(&"built on it".to_owned()));
    a.record_intake(&case("independent", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    w.advance(7 * 3600);
    w.sync(&mut office).ok();
    w.sync(&mut office).ok();
    assert!(
        notes(&office).contains(&"independent".to_owned()),
        "A's chain goes on: {:?} {:?}",
        notes(&office),
        quarantine_codes(&office)
    );
    assert!(!notes(&office).contains(&"built on it".to_owned()));
}
