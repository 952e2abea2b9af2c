//! The parts of enrolment both sides compute: the invite secret and what
//! derives from it, the join proof, the key binding and the safety number.
//!
//! An invite code carries a 16-byte secret that never reaches the relay.
//! From it (HKDF-SHA256, salted with the team id) derive:
//!
//! - the **redemption token**, which the joining device sends to redeem
//!   the invite; the relay knows the invite beforehand only by the token's
//!   hash (the invite id), so a copy of its database cannot be used to join;
//! - the **binding key**, which never leaves the two devices: the joining
//!   device MACs its keys with it (HMAC-SHA256), and the admin that issued
//!   the invite checks the MAC before approving. The relay sees the token
//!   and can sign a join proof for keys of its own, but it cannot produce
//!   the MAC, so a substituted request fails with certainty, whatever it
//!   tries offline;
//! - the **safety number** people compare, an HMAC under the same key: a
//!   second, human check, which the relay cannot grind either.
//!
//! The join proof (a signature by the new device's key over the team, the
//! invite and its keys) shows the relay, which checks it, that the
//! requester holds the signing key it names.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::ids::{Digest, TeamId};

const INVITE_DOMAIN: &[u8] = b"amana/v2/invite\0";
const JOIN_DOMAIN: &[u8] = b"amana/v2/join\0";

/// Length of a redemption token.
pub const TOKEN_LEN: usize = 16;

/// The id under which the relay knows an invite: the hash of its
/// redemption token.
pub fn invite_id(token: &[u8; TOKEN_LEN]) -> Digest {
    let mut h = Sha256::new();
    h.update(INVITE_DOMAIN);
    h.update(token);
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

#[cfg(feature = "client")]
mod binding;
#[cfg(feature = "client")]
pub use binding::{InviteSecret, KEY_MAC_LEN};

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
        let vk = key.verifying_key();
        assert!(verify_join_proof(team, invite, &vk, "age1x", &proof));
        assert!(!verify_join_proof(team, invite, &vk, "age1y", &proof));
        let other = TeamId::from_bytes([9; 16]);
        assert!(!verify_join_proof(other, invite, &vk, "age1x", &proof));
        let other_key = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert!(!verify_join_proof(
            team, invite, &other_key, "age1x", &proof
        ));
    }
}
