//! The hostile-relay suite: one test per attack a relay (or whoever runs
//! or impersonates it) can mount, each detected by the client with a
//! specific error or quarantine code and never applied. The table in
//! `docs/auditor-guide.md` lists each attack and the test that covers it.

mod alarms;
mod enrolment;
mod forks;
mod found_in_review;
mod permissions;
mod revocation;
mod roster;
#[path = "../support/mod.rs"]
mod support;

use amana_core::Digest;
use amana_core::envelope::HEADER_LEN;
use amana_core::envelope::seal::Witness;
use amana_core::keys::DeviceKeys;
use amana_core::keys::EpochKey;
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::roster::{Role, Roster};
use amana_core::store::DeviceStore;
use amana_core::sync::{RelayClient, SyncError, admin, enrol};
use amana_core::transport::{Request, Response};
use amana_sync_server::store::RelayStore;
use support::hostile::{
    Forgery, append, changes_as, changes_of, framed, pages, quarantine_codes, relay_head,
    relay_heads, roster_as, sync_via,
};
use support::{World, case, new_store, notes};

/// An office and a field device whose three intakes ("one", "two",
/// "three") are at the relay as seq 1..3 of its log.
pub(crate) fn team_with_three_envelopes() -> (World, DeviceStore, DeviceStore) {
    let (mut w, mut office) = World::new();
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    w.sync(&mut a).unwrap();
    for note in ["one", "two", "three"] {
        a.record_intake(&case(note, w.now())).unwrap();
        w.sync(&mut a).unwrap();
    }
    assert_eq!(relay_head(&w, a.keys().device_id()).0, 3);
    (w, office, a)
}

/// A referral with a consent override: an office decision, which a field
/// device's build may not make.
pub(crate) fn referral_with_override() -> amana_core::case::Referral {
    amana_core::case::Referral {
        id: amana_core::case::new_item_id(),
        service_type: "mhpss".parse().unwrap(),
        recipient: "community_police".parse().unwrap(),
        organisation: amana_core::case::OrgCode::new("POL-01").unwrap(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        accompanied: false,
        status: amana_core::case::codes::ReferralStatus::Referred,
        consent_override: Some(amana_core::case::ConsentOverride {
            reason: amana_core::case::ShortText::new("no reason").unwrap(),
            staff_code: amana_core::case::StaffCode::new("QAY-FO-07").unwrap(),
        }),
    }
}

fn assert_alarm(result: &Result<amana_core::sync::SyncReport, SyncError>) {
    match result {
        Err(e) => assert!(e.is_integrity_alarm(), "not an alarm: {e}"),
        Ok(_) => panic!("the attack went unnoticed"),
    }
}

#[test]
fn a_forged_envelope_is_refused_for_its_signature() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let device = a.keys().device_id();
    // The relay writes seq 4 of A's log itself, with a key of its own.
    let forged = Forgery::next(&office, device, relay_head(&w, device)).seal(
        &office,
        &changes_of(&w, "forged"),
        &[],
        &DeviceKeys::generate(),
    );
    let report = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            append(page, forged.clone());
        }),
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(quarantine_codes(&office), ["bad_signature"]);
    assert_eq!(notes(&office), ["one", "three", "two"]);
}

#[test]
fn envelopes_signed_by_an_unknown_or_a_revoked_key_are_refused() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    b.record_intake(&case("before revocation", w.now()))
        .unwrap();
    w.sync(&mut b).unwrap();
    // B is revoked (its phone was taken); the relay keeps serving what the
    // stolen phone still signs, and something signed by a stranger.
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::revoke(&mut office, &mut client, &mut env, "field-b").unwrap();
    }
    w.sync(&mut office).unwrap();
    let b_id = b.keys().device_id();
    let stolen = Forgery::next(&office, b_id, relay_head(&w, b_id)).seal(
        &office,
        &changes_of(&w, "from the stolen phone"),
        &[],
        b.keys(),
    );
    let stranger = DeviceKeys::generate();
    let unknown = Forgery::next(&office, stranger.device_id(), (0, Digest::ZERO)).seal(
        &office,
        &changes_of(&w, "from a stranger"),
        &[],
        &stranger,
    );
    // The office fetches the roster once more for the stranger (it may
    // have been added meanwhile) and asks for the rest of the page again,
    // where the relay serves the stranger's envelope a second time.
    let mut served = 0;
    let report = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            served += 1;
            if served == 1 {
                append(page, stolen.clone());
            }
            if served <= 2 {
                append(page, unknown.clone());
            }
        }),
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 2, "{:?}", report.quarantined);
    assert_eq!(
        quarantine_codes(&office),
        ["revoked_author", "unknown_author"]
    );
    let seen = notes(&office);
    assert!(seen.contains(&"before revocation".to_owned()));
    assert!(
        !seen
            .iter()
            .any(|n| n.contains("stolen") || n.contains("stranger"))
    );
}

#[test]
fn one_bit_altered_in_a_header_or_a_body_is_refused() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let mut reader = w.enrol(&mut office, "reader", Role::Office);
    // In seq 2 of A's log: for the office, a bit of the header (inside
    // its prev field); for the second reader, the last bit of the body.
    for (store, at_end) in [(&mut office, false), (&mut reader, true)] {
        let result = sync_via(
            &mut w,
            store,
            pages(|page| {
                if let Some(second) = page.entries.get_mut(1) {
                    let at = if at_end { second.bytes.len() - 1 } else { 50 };
                    second.bytes[at] ^= 0x01;
                }
            }),
        );
        // The altered envelope fails its signature; the one after it no
        // longer chains to anything applied; and the relay's head for the
        // device is then ahead of what was applied.
        assert!(
            matches!(
                result,
                Err(SyncError::Withheld {
                    received: 1,
                    relay: 3,
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(quarantine_codes(store), ["bad_signature", "gap"]);
        assert_eq!(notes(store), ["one"], "nothing altered is applied");
    }
}

/// Bytes of a header a swap exchanges: everything but `body_len`, which
/// must match the body for the envelope to parse at all.
const SWAPPED: std::ops::Range<usize> = 0..HEADER_LEN - 4;

/// The signature follows the header.
const SIGNATURE: std::ops::Range<usize> = HEADER_LEN..HEADER_LEN + 64;

#[test]
fn swapped_headers_are_refused() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let mut reader = w.enrol(&mut office, "reader", Role::Office);
    // Swap the headers of seq 1 and seq 2 (office), or the headers with
    // their signatures (second reader): either way no signature covers
    // the body it now travels with.
    for (store, with_signature) in [(&mut office, false), (&mut reader, true)] {
        let result = sync_via(
            &mut w,
            store,
            pages(|page| {
                if page.entries.len() >= 2 {
                    let mut spans = vec![SWAPPED];
                    if with_signature {
                        spans.push(SIGNATURE);
                    }
                    for span in spans {
                        let first = page.entries[0].bytes[span.clone()].to_vec();
                        let second = page.entries[1].bytes[span.clone()].to_vec();
                        page.entries[0].bytes[span.clone()].copy_from_slice(&second);
                        page.entries[1].bytes[span].copy_from_slice(&first);
                    }
                }
            }),
        );
        assert!(
            matches!(
                result,
                Err(SyncError::Withheld {
                    received: 0,
                    relay: 3,
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(
            quarantine_codes(store),
            ["bad_signature", "bad_signature", "gap"]
        );
        assert!(store.cases().unwrap().is_empty());
    }
}

#[test]
fn a_replayed_envelope_is_refused() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let report = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            if let Some(first) = page.entries.first().cloned() {
                append(page, first.bytes);
            }
        }),
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(quarantine_codes(&office), ["replay"]);
    assert_eq!(notes(&office), ["one", "three", "two"], "applied once");
}

#[test]
fn an_envelope_withheld_in_the_middle_of_a_chain_is_detected() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    let result = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            if page.entries.len() >= 3 {
                page.entries.remove(1);
            }
        }),
    );
    assert!(
        matches!(
            result,
            Err(SyncError::Withheld {
                received: 1,
                relay: 3,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(quarantine_codes(&office), ["gap"]);
    assert_eq!(notes(&office), ["one"], "nothing after the gap is applied");
}

#[test]
fn a_rolled_back_head_is_detected() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let device = a.keys().device_id();
    // The relay ignores the digest of the heads the office holds (which
    // match its own) and lists heads of its choosing.
    let real = relay_heads(&w);
    let result = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            if page.heads_as_held {
                page.heads = real.clone();
                page.heads_as_held = false;
            }
            for head in &mut page.heads {
                if head.device == device {
                    head.seq = 1;
                }
            }
        }),
    );
    assert!(
        matches!(
            result,
            Err(SyncError::Rollback {
                ours: 3,
                relay: 1,
                ..
            })
        ),
        "{result:?}"
    );
    assert_alarm(&result);
}

/// A's envelope 4 ("branch x", genuine) and another envelope 4 signed
/// with A's key ("branch y": a stolen backup).
struct Branch {
    device: amana_core::DeviceId,
    x: Vec<u8>,
    y: Vec<u8>,
    y_id: Digest,
}

fn second_branch_at_four(w: &mut World, office: &DeviceStore, a: &mut DeviceStore) -> Branch {
    a.record_intake(&case("branch x", w.now())).unwrap();
    w.sync(a).unwrap();
    let device = a.keys().device_id();
    let y = Forgery::next(office, device, (3, envelope_id_at(w, device, 3))).seal(
        office,
        &changes_as(w, device, "branch y"),
        &[],
        a.keys(),
    );
    let x = w
        .relay
        .store()
        .envelope_at(w.team, device, 4)
        .unwrap()
        .unwrap()
        .bytes;
    Branch {
        device,
        x,
        y_id: amana_core::envelope::id_of(&y).unwrap(),
        y,
    }
}

/// Shows branch y instead of x, with heads to match.
fn show_y(branch: &Branch) -> impl FnMut(&Request, &mut Response) + '_ {
    pages(move |page| {
        for entry in &mut page.entries {
            if entry.bytes == branch.x {
                entry.bytes = branch.y.clone();
            }
        }
        for head in &mut page.heads {
            if head.device == branch.device {
                head.id = branch.y_id;
            }
        }
    })
}

#[test]
fn another_teams_envelopes_are_refused() {
    let (mut w, mut office, _a) = team_with_three_envelopes();
    // A second team on the same relay.
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
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, other_team);
        amana_core::sync::sync(&mut other, &mut client, &mut env, &mut |_| {}).unwrap();
    }
    let foreign = w
        .relay
        .store()
        .envelope_at(other_team, other.keys().device_id(), 1)
        .unwrap()
        .unwrap()
        .bytes;
    let report = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            append(page, foreign.clone());
        }),
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(quarantine_codes(&office), ["wrong_team"]);
    assert_eq!(notes(&office), ["one", "three", "two"]);
}

/// The remote audit sees what a lying relay serves: a withheld envelope,
/// an altered one, a head that does not match, and receipts it no longer
/// honours.
#[test]
fn the_remote_audit_reports_what_a_lying_relay_serves() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let auditor = w.enrol(&mut office, "auditor", Role::Auditor);
    let receipts = amana_core::sync::audit::export_receipts(&a).unwrap();
    let audit = |w: &mut World, rewrite: &mut dyn FnMut(&Request, &mut Response)| {
        let mut env = w.env();
        let team = w.team;
        let hostile = support::hostile::Hostile {
            relay: &mut w.relay,
            rewrite: |req: &Request, resp: &mut Response| rewrite(req, resp),
        };
        let mut client = RelayClient::new(hostile, team);
        amana_core::sync::audit::remote(
            &auditor,
            &mut client,
            &mut env,
            "memory",
            std::slice::from_ref(&receipts),
        )
        .unwrap()
    };
    let honest = audit(&mut w, &mut |_, _| {});
    assert!(honest.is_clean(), "{}", honest.summary());
    assert_eq!(honest.checked["receipts"], 3);

    let lying = audit(
        &mut w,
        &mut pages(|page| {
            if page.entries.len() >= 3 {
                page.entries.remove(1);
                let last = page.entries[1].bytes.len() - 1;
                page.entries[1].bytes[last] ^= 1;
            }
        }),
    );
    let codes: Vec<&str> = lying.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "chain_gap",
            "bad_signature",
            "head_mismatch",
            "receipted_missing"
        ],
        "{}",
        lying.summary()
    );
    assert!(
        lying.findings[1].also_at[0].contains("receipt 3"),
        "the receipt confirms the altered envelope: {}",
        lying.summary()
    );
    // The signed report verifies, and names the auditor device's key.
    let file = amana_core::sync::audit::sign_report(&lying, auditor.keys()).unwrap();
    let verified =
        amana_core::audit::report::verify(&file, Some(&auditor.keys().verifying_key())).unwrap();
    assert_eq!(verified.report, lying);
}

/// Hides device `device`'s envelopes after `keep` from a page and lists its
/// head as `keep` (with that envelope's id), so the page looks whole.
pub(crate) fn hide_tail(
    page: &mut amana_core::framing::Page,
    device: amana_core::DeviceId,
    keep: (u64, Digest),
) {
    page.entries.retain(|e| {
        let header = &e.bytes[18..42];
        !(header[..16] == *device.as_bytes()
            && u64::from_be_bytes(header[16..24].try_into().unwrap()) > keep.0)
    });
    if page.heads_as_held {
        return;
    }
    for head in &mut page.heads {
        if head.device == device {
            head.seq = keep.0;
            head.id = keep.1;
        }
    }
}

pub(crate) fn envelope_id_at(w: &World, device: amana_core::DeviceId, seq: u64) -> Digest {
    amana_core::envelope::id_of(
        &w.relay
            .store()
            .envelope_at(w.team, device, seq)
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap()
}

pub(crate) fn open_codes(store: &DeviceStore) -> Vec<String> {
    store
        .open_alarms()
        .unwrap()
        .into_iter()
        .map(|a| a.code)
        .collect()
}
