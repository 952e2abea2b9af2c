//! The hostile-relay suite: one test per attack a relay (or whoever runs
//! or impersonates it) can mount, each detected by the client with a
//! specific error or quarantine code and never applied. The table in
//! `docs/auditor-guide.md` lists each attack and the test that covers it.

mod found_in_review;
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

#[test]
fn a_tail_hidden_from_one_reader_is_caught_by_another_devices_witness() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // B saw all of A's log and says so in its next envelope.
    b.record_intake(&case("from b", w.now())).unwrap();
    w.sync(&mut b).unwrap();
    // The relay hides A's seq 2 and 3 from the office, and lies about A's
    // head so the chain itself looks complete.
    let device = a.keys().device_id();
    let first_id = amana_core::envelope::id_of(
        &w.relay
            .store()
            .envelope_at(w.team, device, 1)
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    let result = sync_via(
        &mut w,
        &mut office,
        pages(|page| {
            page.entries.retain(|e| {
                let header = &e.bytes[18..42];
                !(header[..16] == *device.as_bytes()
                    && u64::from_be_bytes(header[16..24].try_into().unwrap()) > 1)
            });
            for head in &mut page.heads {
                if head.device == device {
                    head.seq = 1;
                    head.id = first_id;
                }
            }
        }),
    );
    assert!(
        matches!(
            result,
            Err(SyncError::WitnessedAhead { seq: 3, applied: 1, witness, .. })
                if witness == b.keys().device_id()
        ),
        "{result:?}"
    );
    assert_alarm(&result);
    assert_eq!(notes(&office), ["from b", "one"]);
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
fn a_fork_shown_to_two_devices_is_detected_when_they_exchange_heads() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    // A writes seq 4 (X). Someone with A's key (a stolen backup) signs a
    // different seq 4 (Y); the relay shows X to the office and to A, and
    // Y to B.
    let branch = second_branch_at_four(&mut w, &office, &mut a);
    let device = branch.device;
    let show_y = || show_y(&branch);
    let report = sync_via(&mut w, &mut b, show_y()).unwrap();
    assert!(
        report.quarantined.is_empty(),
        "B's view is consistent on its own"
    );
    assert!(notes(&b).contains(&"branch y".to_owned()));
    // B writes; its envelope carries the heads it applied, A's seq 4 = Y.
    b.record_intake(&case("from b", w.now())).unwrap();
    sync_via(&mut w, &mut b, show_y()).unwrap();

    let b_id = b.keys().device_id();
    for (name, store) in [("office", &mut office), ("field-a", &mut a)] {
        let result = w.sync(store);
        assert!(
            matches!(
                result,
                Err(SyncError::ForkWitnessed { device: d, seq: 4, witness })
                    if d == device && witness == b_id
            ),
            "{name}: {result:?}"
        );
        assert_eq!(
            quarantine_codes(store),
            ["fork_witnessed"],
            "{name}: evidence kept"
        );
        let seen = notes(store);
        assert!(seen.contains(&"branch x".to_owned()), "{name}");
        assert!(
            !seen.contains(&"branch y".to_owned()),
            "{name}: the other branch is never applied"
        );
    }
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

#[test]
fn a_substituted_roster_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut a).unwrap();
    let held = a.roster().unwrap().unwrap();

    // (1) A roster of the relay's own making: a new genesis with an admin
    // key the relay holds, listing A so A would trust it.
    let relay_admin = DeviceKeys::generate();
    let fake_epoch = EpochKey::generate(1);
    let fake = Roster::create(
        held.team(),
        &relay_admin,
        &age::x25519::Identity::generate().to_public(),
        age::encrypt(&fake_epoch.recipient(), b"relay").unwrap(),
        fake_epoch.recipient(),
    )
    .unwrap();
    let fake_ops: Vec<Vec<u8>> = fake.ops().iter().map(|op| op.as_bytes().to_vec()).collect();
    let result = sync_via(
        &mut w,
        &mut a,
        framed("roster", |ops| *ops = fake_ops.clone()),
    );
    assert!(matches!(result, Err(SyncError::Roster(_))), "{result:?}");
    assert_alarm(&result);

    // (2) The genuine roster cut short, before B was added.
    let mut genuine = w.relay.store().roster(w.team).unwrap();
    genuine.pop();
    let result = sync_via(&mut w, &mut a, roster_as(genuine));
    assert!(
        matches!(result, Err(SyncError::RosterRollback { .. })),
        "{result:?}"
    );
    assert_alarm(&result);
    assert_eq!(
        a.roster().unwrap().unwrap().head(),
        held.head(),
        "nothing applied"
    );
}

#[test]
fn a_substituted_key_envelope_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    let epoch = office.roster().unwrap().unwrap().current_epoch().epoch;
    let for_b = w
        .relay
        .store()
        .key_envelopes(w.team, b.keys().device_id())
        .unwrap();
    // (1) B's delivery served to A; (2) a key of the relay's own, sealed to
    // A's recipient and signed by a key the relay holds.
    let stranger = DeviceKeys::generate();
    let roster = a.roster().unwrap().unwrap();
    let a_entry = roster.device(&a.keys().device_id()).unwrap().entry.clone();
    let own = KeyEnvelope::seal(
        w.team,
        &EpochKey::generate(epoch),
        a.keys().device_id(),
        &a_entry.recipient,
        &stranger,
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    for substitute in [for_b.clone(), vec![own]] {
        let result = sync_via(
            &mut w,
            &mut a,
            framed("keys", |items| *items = substitute.clone()),
        );
        assert!(
            matches!(result, Err(SyncError::KeyDelivery(_))),
            "{result:?}"
        );
        assert_alarm(&result);
        assert!(
            a.epoch_keys().unwrap().get(epoch).is_none(),
            "no substituted key is kept"
        );
    }
    w.sync(&mut a).unwrap();
    assert!(
        a.epoch_keys().unwrap().get(epoch).is_some(),
        "the genuine delivery still works"
    );
}

#[test]
fn a_downgrade_to_an_old_epoch_is_refused() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // B is revoked and the epoch rotated; A learns of it.
    {
        let mut env = w.env();
        let mut client = RelayClient::new(&mut w.relay, w.team);
        admin::revoke(&mut office, &mut client, &mut env, "field-b").unwrap();
    }
    w.sync(&mut a).unwrap();
    let current = a.roster().unwrap().unwrap().current_epoch().epoch;
    assert!(current > 1);
    let rotation_ops = a.roster().unwrap().unwrap().ops().len();
    // The relay serves the roster from before the revocation, so that A
    // would write under the epoch B can read.
    a.record_intake(&case("after the rotation", w.now()))
        .unwrap();
    let genuine = w.relay.store().roster(w.team).unwrap();
    let before: Vec<Vec<u8>> = genuine[..rotation_ops - 2].to_vec();
    let result = sync_via(&mut w, &mut a, roster_as(before));
    assert!(
        matches!(result, Err(SyncError::RosterRollback { .. })),
        "{result:?}"
    );
    assert_alarm(&result);
    // Nothing was sealed under the old epoch: the relay holds no envelope
    // of A's below the current epoch after the intake.
    let (head, _) = relay_head(&w, a.keys().device_id());
    assert_eq!(head, 3, "nothing was uploaded");
    assert_eq!(a.outbox_len().unwrap(), 1, "the intake waits in the outbox");
    w.sync(&mut a).unwrap();
    let sent = w
        .relay
        .store()
        .envelope_at(w.team, a.keys().device_id(), 4)
        .unwrap()
        .unwrap()
        .bytes;
    let header = amana_core::envelope::EnvelopeHeader::decode(sent.first_chunk().unwrap()).unwrap();
    assert_eq!(header.epoch, current, "sealed under the current epoch");
}

/// Witness entries are carried only by envelopes of other devices; a
/// device never trusts a witness of its own log it did not write.
#[test]
fn a_witness_of_an_envelope_this_device_never_wrote_is_a_fork() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    // The relay (holding B's key, say) makes B claim A's seq 9.
    let b_id = b.keys().device_id();
    let claim = Witness {
        device: a.keys().device_id(),
        seq: 9,
        id: Digest::from_bytes([7; 32]),
    };
    let forged = Forgery::next(&office, b_id, relay_head(&w, b_id)).seal(
        &office,
        &changes_of(&w, "claims"),
        &[claim],
        b.keys(),
    );
    let mut env = w.env();
    let mut client = w.client();
    client.upload(&mut env, b.keys(), &[forged]).unwrap();
    let result = w.sync(&mut a);
    assert!(
        matches!(result, Err(SyncError::ForkWitnessed { seq: 9, witness, .. }) if witness == b_id),
        "{result:?}"
    );
}

/// The relay swaps a joining device's keys for its own, holds the
/// genuine request back, and has ground keys whose safety number matches
/// the one on the genuine screen. The admin's check of the invite MAC
/// refuses the substitute before the number is even compared, so no epoch
/// key ever reaches the relay. (Before the binding, approving gave the
/// relay the team key: the number was computed from public values only.)
#[test]
fn a_relay_that_substitutes_a_joining_devices_keys_is_refused_even_with_a_matching_safety_number() {
    let (mut w, mut office) = World::new();
    let relay_signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let relay_receiving = amana_core::keys::ReceivingKey::generate(0);
    let relay_device = amana_core::DeviceId::for_key(&relay_signing.verifying_key());
    // Both keys swapped in the join request (the relay signs the proof
    // for its own key with the token it saw), or only the recipient in the
    // pending list (the relay answers the admin with a recipient of its
    // own beside the device's genuine signing key).
    for swap_signing in [true, false] {
        let code = w.invite(&mut office, Role::Field, "field-a");
        let mut genuine = new_store(&w.dir.path().join(format!("genuine-{swap_signing}")));
        let team = w.team;
        let recipient = relay_receiving.recipient().to_string();
        let shown = if swap_signing {
            let swap = support::hostile::SwapJoinKeys {
                relay: &mut w.relay,
                team,
                signing: Some(relay_signing.clone()),
                recipient: recipient.clone(),
            };
            enrol::join(&mut genuine, swap, &code).unwrap()
        } else {
            enrol::join(&mut genuine, &mut w.relay, &code).unwrap()
        };
        let mut env = w.env();
        let hostile = support::hostile::Hostile {
            relay: &mut w.relay,
            rewrite: |request: &Request, response: &mut Response| {
                if !swap_signing && request.path.ends_with("/pending") {
                    let mut body: serde_json::Value =
                        serde_json::from_slice(&response.body).unwrap();
                    for item in body["pending"].as_array_mut().unwrap() {
                        item["recipient"] = recipient.clone().into();
                    }
                    response.body = body.to_string().into_bytes();
                }
            },
        };
        let mut client = RelayClient::new(hostile, team);
        let invite = code.secret.invite_id(team);
        let pending: Vec<_> = enrol::pending(&mut office, &mut client, &mut env)
            .unwrap()
            .into_iter()
            .filter(|p| p.device.invite == invite)
            .collect();
        let [listed] = pending.as_slice() else {
            panic!("{pending:?}")
        };
        assert_eq!(listed.binding, enrol::Binding::Substituted);
        assert_eq!(listed.device.recipient, recipient);
        // The relay's best case: the admin's number for its keys equals the
        // genuine one (as if its search had succeeded), and the admin types it.
        let listed_device = listed.device.device;
        let matching =
            code.secret
                .safety_number(w.team, &listed.device.signing_key, &listed.device.recipient);
        let before = office.roster().unwrap().unwrap().ops().len();
        for typed in [shown.as_str(), matching.as_str()] {
            let result = enrol::approve(
                &mut office,
                &mut client,
                &mut env,
                &listed_device.to_hex(),
                typed,
            );
            assert!(
                matches!(result, Err(SyncError::JoinSubstituted { device }) if device == listed_device),
                "{result:?}"
            );
            assert!(result.unwrap_err().is_integrity_alarm());
        }
        assert_eq!(office.roster().unwrap().unwrap().ops().len(), before);
        for device in [relay_device, listed_device] {
            assert!(
                w.relay
                    .store()
                    .key_envelopes(w.team, device)
                    .unwrap()
                    .is_empty(),
                "no epoch key is delivered to the substitute"
            );
        }
    }
    // A fresh invite over an honest path still enrols the device.
    let mut a = w.enrol(&mut office, "field-a", Role::Field);
    assert_eq!(w.sync(&mut a).unwrap().epoch_keys_received, 1);
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
        admin::revoke(&mut office, &mut client, &mut env, "field-b").unwrap()
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

/// The relay answers A's roster requests with "nothing new" after a
/// revocation and rotation, so that A would keep sealing to the epoch the
/// revoked device reads. The office's next envelope states the longer
/// roster; A fetches the roster again, the relay still hides it, and A
/// raises the alarm and seals nothing. (Before: A sealed its intake under
/// the old epoch and the revoked device opened it.)
#[test]
fn a_roster_frozen_for_one_device_is_detected_and_it_seals_nothing_to_the_old_epoch() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut r = w.enrol(&mut office, "field-r", Role::Field);
    w.sync(&mut r).unwrap();
    w.sync(&mut a).unwrap();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::revoke(&mut office, &mut client, &mut env, "field-r").unwrap();
    }
    office
        .record_intake(&case("after the revocation", w.now()))
        .unwrap();
    w.sync(&mut office).unwrap();
    a.record_intake(&case("must not reach r", w.now())).unwrap();
    let head_before = relay_head(&w, a.keys().device_id());
    let frozen = sync_via(&mut w, &mut a, framed("roster", |ops| ops.clear()));
    assert!(
        matches!(frozen, Err(SyncError::RosterWithheld { author, .. }) if author == office.keys().device_id()),
        "{frozen:?}"
    );
    assert_alarm(&frozen);
    assert_eq!(
        relay_head(&w, a.keys().device_id()),
        head_before,
        "nothing sealed or sent"
    );
    assert_eq!(a.outbox_len().unwrap(), 1, "the intake waits");
    assert_eq!(open_codes(&a), ["roster_withheld"]);
    // Honest again: A gets the roster and seals to the new epoch only.
    w.sync(&mut a).unwrap();
    let (seq, _) = relay_head(&w, a.keys().device_id());
    let sent = w
        .relay
        .store()
        .envelope_at(w.team, a.keys().device_id(), seq)
        .unwrap()
        .unwrap()
        .bytes;
    let envelope = amana_core::envelope::SealedEnvelope::parse(sent, &Default::default()).unwrap();
    let opened_by_r = amana_core::envelope::seal::open(
        &envelope,
        w.team,
        &a.keys().verifying_key(),
        &r.epoch_keys().unwrap(),
    );
    assert!(
        matches!(opened_by_r, Err(amana_core::EnvelopeError::UnknownEpoch(_))),
        "the revoked device holds no key for it: {opened_by_r:?}"
    );
}

/// A shred's forgetting rotation hidden from A the same way: the admin's
/// snapshot, which follows it, states the longer roster.
#[test]
fn a_hidden_forget_rotation_is_detected_by_the_snapshot_that_follows_it() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    let victim = office.cases().unwrap()[0].case.case_id;
    {
        let mut env = w.env();
        let mut client = w.client();
        amana_core::sync::shred::shred(
            &mut office,
            &mut client,
            &mut env,
            &victim.to_hex(),
            amana_core::envelope::snapshot::ShredReason::ConsentWithdrawn,
            &mut |_| {},
        )
        .unwrap();
    }
    let result = sync_via(&mut w, &mut a, framed("roster", |ops| ops.clear()));
    assert!(
        matches!(result, Err(SyncError::RosterWithheld { .. })),
        "{result:?}"
    );
    w.sync(&mut a).unwrap();
    assert!(a.cases().unwrap().iter().all(|c| c.case.case_id != victim));
}

/// Someone with a second admin's key signs another operation at the same
/// position of the roster, and the relay shows that branch to B only (a
/// new epoch whose key the relay holds). B's next envelope states its
/// branch; the office sees two rosters the first time it reads it, and B
/// sees them as soon as it reads the office's.
#[test]
fn two_roster_branches_are_detected_the_first_time_a_device_sees_both() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let admin2 = w.enrol(&mut office, "admin-2", Role::Admin);
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    let genuine_prefix = w.relay.store().roster(w.team).unwrap();
    // The genuine branch goes on with a rotation by the office.
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    // The other branch: the same position, signed with admin-2's key,
    // adding a device of the relay's.
    let mut forked = Roster::verify(&genuine_prefix).unwrap();
    let relay_device = DeviceKeys::generate();
    let epoch_recipient = forked.current_epoch().recipient.clone();
    forked
        .append(
            amana_core::roster::RosterChange::AddDevice(amana_core::roster::DeviceEntry {
                signing_key: relay_device.verifying_key(),
                recipient: age::x25519::Identity::generate().to_public(),
                role: Role::Field,
                label: age::encrypt(&epoch_recipient, b"relay").unwrap(),
            }),
            admin2.keys(),
        )
        .unwrap();
    let branch: Vec<Vec<u8>> = forked.ops().iter().map(|o| o.as_bytes().to_vec()).collect();
    b.record_intake(&case("sealed on the other branch", w.now()))
        .unwrap();
    sync_via(&mut w, &mut b, roster_as(branch.clone())).unwrap();
    let result = w.sync(&mut office);
    assert!(
        matches!(result, Err(SyncError::RosterForkWitnessed { author, .. }) if author == b.keys().device_id()),
        "{result:?}"
    );
    assert!(open_codes(&office).contains(&"roster_fork".to_owned()));
    // B reads the office's envelope (sealed on the genuine branch, under
    // an epoch B's branch does not have) and stops sealing.
    office
        .record_intake(&case("on the genuine branch", w.now()))
        .unwrap();
    w.sync(&mut office).ok();
    b.record_intake(&case("held back", w.now())).unwrap();
    let seen_by_b = sync_via(&mut w, &mut b, roster_as(branch));
    assert!(
        seen_by_b.as_ref().is_err_and(SyncError::roster_in_doubt),
        "{seen_by_b:?}"
    );
    assert_eq!(
        b.outbox_len().unwrap(),
        1,
        "nothing more sealed on the doubtful branch"
    );
    let _ = &mut a;
}

/// A device (its key stolen, or a broken build) seals under an epoch its
/// own stated roster says is over, or states a roster older than one it
/// had seen from others: both are alarms, the content (authentic) is kept.
#[test]
fn an_envelope_sealed_under_an_old_epoch_or_an_old_roster_is_an_alarm() {
    let (mut w, mut office, a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    let old_roster = office.roster().unwrap().unwrap();
    {
        let mut env = w.env();
        let mut client = w.client();
        admin::rotate(&mut office, &mut client, &mut env).unwrap();
    }
    office
        .record_intake(&case("office after rotation", w.now()))
        .unwrap();
    w.sync(&mut office).unwrap();
    w.sync(&mut b).unwrap();
    let a_id = a.keys().device_id();
    // (1) The current roster stated, the old epoch used.
    let mut old_epoch = Forgery::next(&office, a_id, relay_head(&w, a_id));
    old_epoch.epoch = 1;
    let first = old_epoch.seal(&office, &changes_as(&w, a_id, "old epoch"), &[], a.keys());
    support::hostile::store_directly(&w, &first);
    let result = w.sync(&mut b);
    assert!(
        matches!(result, Err(SyncError::StaleEpoch { epoch: 1, .. })),
        "{result:?}"
    );
    // (2) The old roster stated (to its epoch), while witnessing the
    // office's envelope written under the new one.
    let office_id = office.keys().device_id();
    let office_head = relay_head(&w, office_id);
    let mut old_view = Forgery::next(&office, a_id, relay_head(&w, a_id));
    old_view.epoch = 1;
    old_view.context = Some(amana_core::envelope::seal::SealContext::under(
        &old_roster,
        w.now(),
    ));
    let witness = Witness {
        device: office_id,
        seq: office_head.0,
        id: office_head.1,
    };
    let second = old_view.seal(
        &office,
        &changes_as(&w, a_id, "old roster"),
        &[witness],
        a.keys(),
    );
    support::hostile::store_directly(&w, &second);
    let result = w.sync(&mut b);
    assert!(
        matches!(result, Err(SyncError::StaleRoster { .. })),
        "{result:?}"
    );
    let codes = open_codes(&b);
    assert!(
        codes.contains(&"stale_epoch".to_owned()) && codes.contains(&"stale_roster".to_owned()),
        "{codes:?}"
    );
}

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
        let change = doc.add_referral(
            &amana_core::case::Referral {
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
            },
            Role::Office,
        )?;
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

/// The relay serves A its own envelopes and receipts but keeps A's seq 4
/// and 5 from every other device, with heads to match, so no witness
/// elsewhere can catch it. A notices: the office and B complete pulls well
/// after those envelopes were receipted, and their envelopes still witness
/// A's log at 3. (Before: nobody noticed, ever.)
#[test]
fn a_tail_withheld_from_everyone_else_is_noticed_by_its_writer() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    let mut b = w.enrol(&mut office, "field-b", Role::Field);
    w.sync(&mut b).unwrap();
    w.sync(&mut office).unwrap();
    for note in ["four", "five"] {
        a.record_intake(&case(note, w.now())).unwrap();
        w.sync(&mut a).unwrap();
    }
    let device = a.keys().device_id();
    let keep = (3, envelope_id_at(&w, device, 3));
    w.advance(2 * 3600);
    for (store, note) in [(&mut office, "from the office"), (&mut b, "from b")] {
        store.record_intake(&case(note, w.now())).unwrap();
        sync_via(&mut w, store, pages(|page| hide_tail(page, device, keep))).unwrap();
        assert!(!notes(store).contains(&"four".to_owned()));
    }
    let noticed = w.sync(&mut a);
    assert!(
        matches!(noticed, Err(SyncError::OwnTailWithheld { seq: 4, .. })),
        "{noticed:?}"
    );
    assert_eq!(open_codes(&a), ["own_tail_withheld"]);
    // The office sees A's log as the relay shows it (3): the lie is
    // consistent there, which is why A's own view is the one that counts.
    let views = amana_core::sync::tail::log_views(&office).unwrap();
    assert_eq!(views[&device].relay, 3);
    assert_eq!(views[&device].behind_since, 0);
}

/// Honest timing is no alarm: another device that synced before A's
/// envelope was receipted (or within the margin) is not held against it.
#[test]
fn a_device_that_synced_before_the_envelope_was_sent_is_no_evidence() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    a.record_intake(&case("four", w.now())).unwrap();
    w.sync(&mut a).unwrap();
    // The office wrote, from a pull that began before A's seq 4 existed.
    office.record_intake(&case("office", w.now())).unwrap();
    let device = a.keys().device_id();
    let keep = (3, envelope_id_at(&w, device, 3));
    sync_via(
        &mut w,
        &mut office,
        pages(|page| hide_tail(page, device, keep)),
    )
    .unwrap();
    w.advance(600);
    w.sync(&mut a).unwrap();
    assert!(a.open_alarms().unwrap().is_empty());
}

/// A shred's rotation reaches A but the office's snapshot never does (the
/// relay hides the office's log from the snapshot on, heads to match).
/// Two days on, A raises the alarm.
#[test]
fn a_shred_whose_snapshot_never_arrives_raises_an_alarm() {
    let (mut w, mut office, mut a) = team_with_three_envelopes();
    w.sync(&mut office).unwrap();
    w.sync(&mut a).unwrap();
    let office_id = office.keys().device_id();
    let before = relay_head(&w, office_id);
    let victim = office.cases().unwrap()[0].case.case_id;
    {
        let mut env = w.env();
        let mut client = w.client();
        amana_core::sync::shred::shred(
            &mut office,
            &mut client,
            &mut env,
            &victim.to_hex(),
            amana_core::envelope::snapshot::ShredReason::ConsentWithdrawn,
            &mut |_| {},
        )
        .unwrap();
    }
    let hide = |page: &mut amana_core::framing::Page| hide_tail(page, office_id, before);
    sync_via(&mut w, &mut a, pages(hide)).unwrap();
    assert!(a.open_alarms().unwrap().is_empty(), "not yet");
    w.advance(49 * 3600);
    let late = sync_via(&mut w, &mut a, pages(hide));
    assert!(
        matches!(late, Err(SyncError::SnapshotMissing { .. })),
        "{late:?}"
    );
    assert_eq!(open_codes(&a), ["snapshot_missing"]);
}
