//! Enrolment through a hostile relay: substituted join requests.

use super::*;

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
