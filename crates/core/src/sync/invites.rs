//! Invite codes, and the record an admin device keeps of each invite it
//! issued.
//!
//! A code pins everything a new device must not take from the relay on
//! trust (team id, roster genesis hash, relay URL, the SHA-256 of the
//! relay's TLS public key, the relay's receipt key, the role) and carries
//! the invite secret, which never reaches the relay (`crate::invite`).
//! The issuing admin keeps the secret sealed in its store until the invite
//! expires: it needs it to check that a join request's keys are bound to
//! the invite before approving.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::SyncError;
use crate::ids::{Digest, TeamId};
use crate::invite::InviteSecret;
use crate::roster::Role;
use crate::store::{DeviceStore, StoreError};
use crate::wire::{Reader, put_bytes16};

const CODE_PREFIX: &str = "amana2-";
const OLD_PREFIX: &str = "amana1-";
const CODE_VERSION: u8 = 2;
/// Meta entry holding the issued invites (sealed, binary).
const ISSUED: &str = "issued_invites";

/// Everything a new device needs to join, pinned. Not `Clone`: it holds
/// the invite secret.
pub struct InviteCode {
    /// The team.
    pub team: TeamId,
    /// The roster's genesis hash.
    pub genesis: Digest,
    /// The relay's receipt-signing key.
    pub relay_receipt_key: Digest,
    /// SHA-256 of the relay's TLS public key (absent for a loopback relay
    /// without TLS).
    pub tls_pin: Option<Digest>,
    /// The role the device will have.
    pub role: Role,
    /// The invite secret (never sent to the relay).
    pub secret: InviteSecret,
    /// The relay's base URL.
    pub relay_url: String,
}

impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteCode")
            .field("team", &self.team)
            .field("role", &self.role)
            .field("relay_url", &self.relay_url)
            .finish_non_exhaustive()
    }
}

impl InviteCode {
    /// The code as text: `amana2-` and URL-safe base64 of the fields and a
    /// 4-byte checksum, so a mistyped code is caught before it is sent.
    /// The text holds the secret: it is zeroized when dropped.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(vec![CODE_VERSION]);
        bytes.extend_from_slice(self.team.as_bytes());
        bytes.extend_from_slice(self.genesis.as_bytes());
        bytes.extend_from_slice(self.relay_receipt_key.as_bytes());
        match self.tls_pin {
            Some(pin) => {
                bytes.push(1);
                bytes.extend_from_slice(pin.as_bytes());
            }
            None => bytes.push(0),
        }
        bytes.push(self.role.code());
        bytes.extend_from_slice(self.secret.expose());
        bytes.push(self.relay_url.len() as u8);
        bytes.extend_from_slice(self.relay_url.as_bytes());
        let check = Sha256::digest(&bytes[..]);
        bytes.extend_from_slice(&check[..4]);
        Zeroizing::new(format!(
            "{CODE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&bytes[..])
        ))
    }

    /// Parses a code as printed by [`InviteCode::encode`] (surrounding
    /// whitespace and line breaks are ignored).
    pub fn parse(text: &str) -> Result<InviteCode, SyncError> {
        let compact: Zeroizing<String> = Zeroizing::new(text.split_whitespace().collect());
        if compact.starts_with(OLD_PREFIX) {
            return Err(SyncError::InviteMalformed(
                "it was made by an earlier version of Amana; ask the office for a new one",
            ));
        }
        let body = compact
            .strip_prefix(CODE_PREFIX)
            .ok_or(SyncError::InviteMalformed("it must start with amana2-"))?;
        let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(body).map_err(|_| {
            SyncError::InviteMalformed("it contains characters that do not belong")
        })?);
        let (payload, check) = bytes
            .split_at_checked(bytes.len().saturating_sub(4))
            .ok_or(SyncError::InviteMalformed("it is too short"))?;
        if bytes.len() < 4 || Sha256::digest(payload)[..4] != *check {
            return Err(SyncError::InviteMalformed("the checksum does not match"));
        }
        let mut r = Reader::new(payload);
        let short = |_| SyncError::InviteMalformed("it is truncated");
        if r.u8().map_err(short)? != CODE_VERSION {
            return Err(SyncError::InviteMalformed(
                "it was made by another version of Amana; ask the office for a new one",
            ));
        }
        let team = TeamId::from_bytes(r.array().map_err(short)?);
        let genesis = Digest::from_bytes(r.array().map_err(short)?);
        let relay_receipt_key = Digest::from_bytes(r.array().map_err(short)?);
        let tls_pin = match r.u8().map_err(short)? {
            0 => None,
            1 => Some(Digest::from_bytes(r.array().map_err(short)?)),
            _ => return Err(SyncError::InviteMalformed("unknown pin flag")),
        };
        let role = Role::from_code(r.u8().map_err(short)?)
            .ok_or(SyncError::InviteMalformed("unknown role"))?;
        let secret = InviteSecret::from_bytes(r.array().map_err(short)?);
        let url_len = r.u8().map_err(short)? as usize;
        let url = r.take(url_len).map_err(short)?;
        let relay_url = String::from_utf8(url.to_vec())
            .map_err(|_| SyncError::InviteMalformed("the relay address is not text"))?;
        if r.remaining() != 0 {
            return Err(SyncError::InviteMalformed("it has trailing bytes"));
        }
        Ok(InviteCode {
            team,
            genesis,
            relay_receipt_key,
            tls_pin,
            role,
            secret,
            relay_url,
        })
    }
}

/// An invite this admin device issued, as it keeps it (sealed in its
/// store, until it expires). Not `Clone`: it holds the secret.
#[derive(Debug)]
pub struct IssuedInvite {
    /// The invite id (what the relay knows).
    pub id: Digest,
    /// The role it grants.
    pub role: Role,
    /// The label the device will carry.
    pub label: String,
    /// Expiry (unix seconds).
    pub expires_at: u64,
    /// The secret, to check a join request's binding.
    pub secret: InviteSecret,
}

/// What the office sees of an invite (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteInfo {
    /// The invite id.
    pub id: Digest,
    /// The role it grants.
    pub role: Role,
    /// The label the device will carry.
    pub label: String,
    /// Expiry (unix seconds).
    pub expires_at: u64,
}

impl IssuedInvite {
    /// What may be shown of it.
    pub fn info(&self) -> InviteInfo {
        InviteInfo {
            id: self.id,
            role: self.role,
            label: self.label.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// How long after an invite expires its record (and secret) is kept: a
/// device that joined in time may be approved later.
pub const APPROVAL_GRACE_SECS: u64 = 30 * 24 * 3600;

/// The invites this device issued whose record is still kept at `now`
/// (until [`APPROVAL_GRACE_SECS`] after they expire).
pub fn issued_invites(store: &DeviceStore, now: u64) -> Result<Vec<IssuedInvite>, SyncError> {
    let Some(bytes) = store.meta(ISSUED)? else {
        return Ok(Vec::new());
    };
    let bad = |_| SyncError::Store(StoreError::Corrupt("invite records unreadable".into()));
    let unknown_role = || SyncError::Store(StoreError::Corrupt("invite records unreadable".into()));
    let mut r = Reader::new(&bytes);
    let count = r.u16().map_err(bad)?;
    let mut out = Vec::with_capacity(usize::from(count).min(r.remaining() / 57));
    for _ in 0..count {
        let id = Digest::from_bytes(r.array().map_err(bad)?);
        let role = Role::from_code(r.u8().map_err(bad)?).ok_or_else(unknown_role)?;
        let expires_at = r.u64().map_err(bad)?;
        let secret = InviteSecret::from_bytes(r.array().map_err(bad)?);
        let label = r.str16().map_err(bad)?.to_owned();
        if expires_at.saturating_add(APPROVAL_GRACE_SECS) > now {
            out.push(IssuedInvite {
                id,
                role,
                label,
                expires_at,
                secret,
            });
        }
    }
    r.finish().map_err(bad)?;
    Ok(out)
}

/// Replaces the stored invites with `invites`.
pub(super) fn store_invites(
    store: &mut DeviceStore,
    invites: &[IssuedInvite],
) -> Result<(), SyncError> {
    let mut out = Zeroizing::new((invites.len() as u16).to_be_bytes().to_vec());
    for i in invites.iter().take(u16::MAX as usize) {
        out.extend_from_slice(i.id.as_bytes());
        out.push(i.role.code());
        out.extend_from_slice(&i.expires_at.to_be_bytes());
        out.extend_from_slice(i.secret.expose());
        let label: String = i.label.chars().take(100).collect();
        put_bytes16(&mut out, label.as_bytes())
            .map_err(|e| SyncError::Seal(crate::error::EnvelopeError::Payload(e)))?;
    }
    store.put_meta(ISSUED, &out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> InviteCode {
        InviteCode {
            team: TeamId::from_bytes([1; 16]),
            genesis: Digest::from_bytes([2; 32]),
            relay_receipt_key: Digest::from_bytes([3; 32]),
            tls_pin: Some(Digest::from_bytes([4; 32])),
            role: Role::Field,
            secret: InviteSecret::from_bytes([5; 16]),
            relay_url: "https://relay.example.org:8443".into(),
        }
    }

    fn same(a: &InviteCode, b: &InviteCode) -> bool {
        a.team == b.team
            && a.genesis == b.genesis
            && a.relay_receipt_key == b.relay_receipt_key
            && a.tls_pin == b.tls_pin
            && a.role == b.role
            && a.secret.expose() == b.secret.expose()
            && a.relay_url == b.relay_url
    }

    #[test]
    fn invite_code_round_trips_with_and_without_pin() {
        let c = code();
        let text = c.encode();
        assert!(text.starts_with("amana2-"));
        assert!(same(&InviteCode::parse(&text).unwrap(), &c));
        let spaced = format!("  {}\n{}  ", &text[..20], &text[20..]);
        assert!(same(&InviteCode::parse(&spaced).unwrap(), &c));
        let mut no_pin = code();
        no_pin.tls_pin = None;
        assert!(same(&InviteCode::parse(&no_pin.encode()).unwrap(), &no_pin));
    }

    #[test]
    fn damaged_invite_codes_are_refused() {
        let text = code().encode();
        for i in 7..text.len() {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let damaged: String = chars.into_iter().collect();
            assert!(
                matches!(
                    InviteCode::parse(&damaged),
                    Err(SyncError::InviteMalformed(_))
                ),
                "position {i}"
            );
        }
        for cut in 0..text.len() {
            assert!(InviteCode::parse(&text[..cut]).is_err());
        }
        assert!(InviteCode::parse("hello").is_err());
    }

    #[test]
    fn a_code_of_the_earlier_format_says_so() {
        let old = format!("amana1-{}", &code().encode()[7..]);
        match InviteCode::parse(&old) {
            Err(SyncError::InviteMalformed(why)) => assert!(why.contains("earlier version")),
            other => panic!("{other:?}"),
        }
    }
}
