//! The invite secret and the keys derived from it (client side: the relay
//! never holds the secret, so it never computes these).

use ed25519_dalek::VerifyingKey;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::{TOKEN_LEN, invite_id};
use crate::ids::{Digest, TeamId};

/// Length of the MAC that binds a join request's keys to its invite.
pub const KEY_MAC_LEN: usize = 32;
/// Length of the secret in an invite code.
pub const SECRET_LEN: usize = 16;

const TOKEN_INFO: &[u8] = b"amana/v2/invite-token";
const BINDING_INFO: &[u8] = b"amana/v2/invite-binding";
const MAC_DOMAIN: &[u8] = b"amana/v2/join-mac\0";
const SAFETY_DOMAIN: &[u8] = b"amana/v2/safety\0";

/// The secret an invite code carries. Never sent to the relay, never
/// `Clone`, never printed; zeroized when dropped.
pub struct InviteSecret([u8; SECRET_LEN]);

impl InviteSecret {
    /// A fresh secret from the operating system's randomness.
    pub fn generate() -> Self {
        InviteSecret(crate::random::bytes())
    }

    /// The secret from its bytes (an invite code or a stored record).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        InviteSecret(bytes)
    }

    /// The bytes, for encoding the code or sealing the record.
    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    fn derive<const N: usize>(&self, team: TeamId, info: &[u8]) -> Zeroizing<[u8; N]> {
        let hk = Hkdf::<Sha256>::new(Some(team.as_bytes()), &self.0);
        let mut out = Zeroizing::new([0u8; N]);
        #[allow(clippy::expect_used)]
        hk.expand(info, out.as_mut())
            .expect("HKDF-SHA256 yields up to 8160 bytes");
        out
    }

    /// The token that redeems the invite at the relay of `team`.
    pub fn token(&self, team: TeamId) -> [u8; TOKEN_LEN] {
        *self.derive::<TOKEN_LEN>(team, TOKEN_INFO)
    }

    /// The id under which the relay knows the invite.
    pub fn invite_id(&self, team: TeamId) -> Digest {
        invite_id(&self.token(team))
    }

    fn mac(
        &self,
        team: TeamId,
        domain: &[u8],
        signing_key: &VerifyingKey,
        recipient: &str,
    ) -> [u8; 32] {
        let key = self.derive::<32>(team, BINDING_INFO);
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
            .expect("HMAC takes keys of any length");
        mac.update(domain);
        mac.update(team.as_bytes());
        mac.update(self.invite_id(team).as_bytes());
        mac.update(signing_key.as_bytes());
        mac.update(recipient.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The MAC a joining device sends over its keys.
    pub fn key_mac(
        &self,
        team: TeamId,
        signing_key: &VerifyingKey,
        recipient: &str,
    ) -> [u8; KEY_MAC_LEN] {
        self.mac(team, MAC_DOMAIN, signing_key, recipient)
    }

    /// Whether `mac` binds these keys to this invite (compared in
    /// constant time).
    pub fn verify_key_mac(
        &self,
        team: TeamId,
        signing_key: &VerifyingKey,
        recipient: &str,
        mac: &[u8],
    ) -> bool {
        let key = self.derive::<32>(team, BINDING_INFO);
        #[allow(clippy::expect_used)]
        let mut check = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
            .expect("HMAC takes keys of any length");
        check.update(MAC_DOMAIN);
        check.update(team.as_bytes());
        check.update(self.invite_id(team).as_bytes());
        check.update(signing_key.as_bytes());
        check.update(recipient.as_bytes());
        check.verify_slice(mac).is_ok()
    }

    /// The 12-digit number both screens show, in groups of four: keyed by
    /// the invite secret, so nobody without the code can compute it.
    pub fn safety_number(
        &self,
        team: TeamId,
        signing_key: &VerifyingKey,
        recipient: &str,
    ) -> String {
        let digest = self.mac(team, SAFETY_DOMAIN, signing_key, recipient);
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 1_000_000_000_000;
        let digits = format!("{n:012}");
        format!("{} {} {}", &digits[..4], &digits[4..8], &digits[8..])
    }
}

impl Drop for InviteSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(n: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[n; 32]).verifying_key()
    }

    #[test]
    fn the_mac_binds_team_invite_and_both_keys() {
        let team = TeamId::from_bytes([1; 16]);
        let secret = InviteSecret::from_bytes([2; 16]);
        let mac = secret.key_mac(team, &key(5), "age1x");
        assert!(secret.verify_key_mac(team, &key(5), "age1x", &mac));
        assert!(!secret.verify_key_mac(team, &key(6), "age1x", &mac));
        assert!(!secret.verify_key_mac(team, &key(5), "age1y", &mac));
        assert!(!secret.verify_key_mac(TeamId::from_bytes([9; 16]), &key(5), "age1x", &mac));
        let other = InviteSecret::from_bytes([3; 16]);
        assert!(!other.verify_key_mac(team, &key(5), "age1x", &mac));
        assert!(!secret.verify_key_mac(team, &key(5), "age1x", &mac[..31]));
    }

    #[test]
    fn nothing_the_relay_sees_gives_the_binding_key_away() {
        let team = TeamId::from_bytes([1; 16]);
        let secret = InviteSecret::from_bytes([2; 16]);
        // The relay sees the token and the invite id; neither is the secret,
        // and the MAC differs from a MAC keyed by either.
        let token = secret.token(team);
        assert_ne!(&token, secret.expose());
        assert_eq!(secret.invite_id(team), invite_id(&token));
        let as_if_token = InviteSecret::from_bytes(token);
        let mac = secret.key_mac(team, &key(5), "age1x");
        assert_ne!(as_if_token.key_mac(team, &key(5), "age1x"), mac);
        // The same secret for another team redeems nothing there.
        assert_ne!(secret.token(TeamId::from_bytes([9; 16])), token);
    }

    #[test]
    fn the_safety_number_is_twelve_digits_keyed_by_the_secret() {
        let team = TeamId::from_bytes([1; 16]);
        let secret = InviteSecret::from_bytes([2; 16]);
        let n = secret.safety_number(team, &key(5), "age1x");
        assert_eq!(n.len(), 14);
        assert!(n.chars().all(|c| c.is_ascii_digit() || c == ' '));
        assert_eq!(n, secret.safety_number(team, &key(5), "age1x"));
        assert_ne!(n, secret.safety_number(team, &key(5), "age1y"));
        assert_ne!(n, secret.safety_number(team, &key(6), "age1x"));
        let other = InviteSecret::from_bytes([3; 16]);
        assert_ne!(n, other.safety_number(team, &key(5), "age1x"));
        assert_eq!(format!("{secret:?}"), "InviteSecret(…)");
    }
}
