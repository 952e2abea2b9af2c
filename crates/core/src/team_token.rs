//! Team-creation tokens: what lets someone create a team on a relay.
//!
//! `POST /v1/teams` is the one route where nobody is known yet, so anyone
//! on the internet could fill a relay's `max_teams`. The relay's operator
//! issues a single-use, expiring token (`amana-relay team-token`) and gives
//! it to the office, which passes it to `amana team create`; the relay
//! keeps only the token's SHA-256 and consumes it in the transaction that
//! creates the team.
//!
//! ```text
//! token = "amana-team-" ‖ hex(16 random bytes)
//! ```

use zeroize::Zeroizing;

use crate::ids::Digest;

const PREFIX: &str = "amana-team-";
const LEN: usize = 16;

/// A team-creation token. Never `Clone`, never printed by `Debug`.
pub struct TeamToken(Zeroizing<[u8; LEN]>);

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a team token: it starts with \"amana-team-\" followed by 32 hex digits; ask the relay's operator for one (`amana-relay team-token`)"
)]
pub struct BadTeamToken;

impl TeamToken {
    /// A fresh token.
    pub fn generate() -> Self {
        TeamToken(Zeroizing::new(crate::random::bytes()))
    }

    /// Parses a token as printed (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, BadTeamToken> {
        let hex = text.trim().strip_prefix(PREFIX).ok_or(BadTeamToken)?;
        let mut bytes = Zeroizing::new([0u8; LEN]);
        hex::decode_to_slice(hex, &mut bytes[..]).map_err(|_| BadTeamToken)?;
        Ok(TeamToken(bytes))
    }

    /// The token as printed and typed.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}", hex::encode(&self.0[..])))
    }

    /// What the relay stores and compares.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.0[..])
    }
}

impl std::fmt::Debug for TeamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TeamToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_and_only_its_hash_is_compared() {
        let token = TeamToken::generate();
        let text = token.to_text();
        assert!(text.starts_with(PREFIX) && text.len() == PREFIX.len() + 32);
        let again = TeamToken::parse(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(again.hash(), token.hash());
        assert_ne!(TeamToken::generate().hash(), token.hash());
        assert_eq!(format!("{token:?}"), "TeamToken(…)");
        for bad in [
            "",
            "amana-team-",
            "amana-team-zz",
            &text[1..],
            &format!("{}00", text.as_str()),
        ] {
            assert!(TeamToken::parse(bad).is_err(), "{bad}");
        }
    }
}
