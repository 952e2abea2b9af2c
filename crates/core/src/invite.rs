//! The parts of enrolment the relay checks too: invite ids, the join
//! proof, and the safety number both screens show.
//!
//! The relay stores only an invite's id (a hash of its secret), so a copy
//! of the relay's database cannot be used to join. A join request carries
//! the secret and a signature by the new device's key over the team, the
//! invite and the device's keys, proving the requester holds that key.
//! The admin approves only after comparing the safety number, which
//! commits to the same keys: a relay that swapped them would show a
//! different number.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::ids::{Digest, TeamId};

const INVITE_DOMAIN: &[u8] = b"amana/v1/invite\0";
const JOIN_DOMAIN: &[u8] = b"amana/v1/join\0";
const SAFETY_DOMAIN: &[u8] = b"amana/v1/safety\0";

/// The id under which the relay knows an invite.
pub fn invite_id(secret: &[u8; 16]) -> Digest {
    let mut h = Sha256::new();
    h.update(INVITE_DOMAIN);
    h.update(secret);
    Digest::from_bytes(h.finalize().into())
}

/// What a joining device signs.
pub fn join_message(
    team: TeamId,
    invite: Digest,
    signing_key: &VerifyingKey,
    recipient: &str,
) -> Vec<u8> {
    let mut msg = JOIN_DOMAIN.to_vec();
    msg.extend_from_slice(team.as_bytes());
    msg.extend_from_slice(invite.as_bytes());
    msg.extend_from_slice(signing_key.as_bytes());
    msg.extend_from_slice(recipient.as_bytes());
    msg
}

/// Checks a join proof.
pub fn verify_join_proof(
    team: TeamId,
    invite: Digest,
    signing_key: &VerifyingKey,
    recipient: &str,
    proof: &[u8; 64],
) -> bool {
    signing_key
        .verify(
            &join_message(team, invite, signing_key, recipient),
            &Signature::from_bytes(proof),
        )
        .is_ok()
}

/// The 12-digit number the joining device and the approving admin compare,
/// in groups of four.
pub fn safety_number(team: TeamId, signing_key: &VerifyingKey, recipient: &str) -> String {
    let mut h = Sha256::new();
    h.update(SAFETY_DOMAIN);
    h.update(team.as_bytes());
    h.update(signing_key.as_bytes());
    h.update(recipient.as_bytes());
    let digest = h.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
    let digits = format!("{n:012}");
    format!("{} {} {}", &digits[..4], &digits[4..8], &digits[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn proof_binds_team_invite_and_keys() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let team = TeamId::from_bytes([1; 16]);
        let invite = invite_id(&[2; 16]);
        let proof = key
            .sign(&join_message(team, invite, &key.verifying_key(), "age1x"))
            .to_bytes();
        assert!(verify_join_proof(
            team,
            invite,
            &key.verifying_key(),
            "age1x",
            &proof
        ));
        assert!(!verify_join_proof(
            team,
            invite,
            &key.verifying_key(),
            "age1y",
            &proof
        ));
        let other = TeamId::from_bytes([9; 16]);
        assert!(!verify_join_proof(
            other,
            invite,
            &key.verifying_key(),
            "age1x",
            &proof
        ));
        let other_key = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert!(!verify_join_proof(
            team, invite, &other_key, "age1x", &proof
        ));
    }

    #[test]
    fn safety_number_is_twelve_digits_and_depends_on_every_input() {
        let key = SigningKey::from_bytes(&[5; 32]).verifying_key();
        let team = TeamId::from_bytes([1; 16]);
        let n = safety_number(team, &key, "age1x");
        assert_eq!(n.len(), 14);
        assert!(n.chars().all(|c| c.is_ascii_digit() || c == ' '));
        assert_ne!(n, safety_number(team, &key, "age1y"));
        assert_ne!(n, safety_number(TeamId::from_bytes([2; 16]), &key, "age1x"));
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_ne!(n, safety_number(team, &other, "age1x"));
        assert_eq!(n, safety_number(team, &key, "age1x"));
    }
}
