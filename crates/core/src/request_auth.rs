//! Authentication of requests to the relay.
//!
//! Every request except team creation, health and the relay's public key
//! carries an `Authorization` header:
//!
//! ```text
//! Authorization: Amana device=<hex 16>, ts=<unix seconds>, nonce=<hex 16>, sig=<hex 64>
//! sig = Ed25519(device, "amana/v1/request\0" ‖ METHOD ‖ "\n" ‖ path-and-query ‖ "\n"
//!               ‖ hex(SHA-256(body)) ‖ "\n" ‖ ts ‖ "\n" ‖ nonce)
//! ```
//!
//! The relay accepts a request if the device is active on the team's
//! roster, the signature verifies, `ts` is within the allowed skew of the
//! relay's clock, and the nonce was not used before (nonces are remembered
//! past the skew window, so a captured request can never be replayed).
//! A device whose clock is wrong gets the relay's time in the refusal and
//! signs again with the corrected time.

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::ids::{DeviceId, Digest};
use crate::keys::DeviceKeys;

const DOMAIN: &[u8] = b"amana/v1/request\0";
const SCHEME: &str = "Amana ";

/// A parsed `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAuth {
    /// The signing device.
    pub device: DeviceId,
    /// Its clock (corrected by the relay's offset if it was told one).
    pub ts: u64,
    /// Random, single use.
    pub nonce: [u8; 16],
    signature: [u8; 64],
}

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestAuthError {
    /// The header is missing or not of this scheme.
    #[error("the request is not signed: an Amana Authorization header is required")]
    Missing,
    /// A field is missing or malformed.
    #[error("the Authorization header is malformed ({0})")]
    Malformed(&'static str),
    /// The signature does not verify.
    #[error("the request signature does not verify")]
    BadSignature,
}

fn message(method: &str, path: &str, body: &[u8], ts: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(method.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(path.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(Digest::of(body).to_hex().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(ts.to_string().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(hex::encode(nonce).as_bytes());
    msg
}

/// Signs a request; returns the `Authorization` header value.
pub fn sign(
    device: &DeviceKeys,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    ts: u64,
    nonce: [u8; 16],
) -> String {
    let sig = device
        .signing_key()
        .sign(&message(method, path_and_query, body, ts, &nonce));
    format!(
        "{SCHEME}device={}, ts={ts}, nonce={}, sig={}",
        device.device_id(),
        hex::encode(nonce),
        hex::encode(sig.to_bytes())
    )
}

impl RequestAuth {
    /// Parses a header value.
    pub fn parse(header: &str) -> Result<Self, RequestAuthError> {
        let rest = header
            .strip_prefix(SCHEME)
            .ok_or(RequestAuthError::Missing)?;
        let (mut device, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or(RequestAuthError::Malformed("expected key=value"))?;
            match key {
                "device" => {
                    device = Some(
                        value
                            .parse()
                            .map_err(|_| RequestAuthError::Malformed("device"))?,
                    )
                }
                "ts" => {
                    ts = Some(
                        value
                            .parse()
                            .map_err(|_| RequestAuthError::Malformed("ts"))?,
                    )
                }
                "nonce" => {
                    let bytes =
                        hex::decode(value).map_err(|_| RequestAuthError::Malformed("nonce"))?;
                    nonce = Some(
                        bytes
                            .try_into()
                            .map_err(|_| RequestAuthError::Malformed("nonce"))?,
                    );
                }
                "sig" => {
                    let bytes =
                        hex::decode(value).map_err(|_| RequestAuthError::Malformed("sig"))?;
                    sig = Some(
                        bytes
                            .try_into()
                            .map_err(|_| RequestAuthError::Malformed("sig"))?,
                    );
                }
                _ => return Err(RequestAuthError::Malformed("unknown field")),
            }
        }
        Ok(Self {
            device: device.ok_or(RequestAuthError::Malformed("device missing"))?,
            ts: ts.ok_or(RequestAuthError::Malformed("ts missing"))?,
            nonce: nonce.ok_or(RequestAuthError::Malformed("nonce missing"))?,
            signature: sig.ok_or(RequestAuthError::Malformed("sig missing"))?,
        })
    }

    /// Checks the signature over this request with the device's key.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), RequestAuthError> {
        if DeviceId::for_key(key) != self.device {
            return Err(RequestAuthError::BadSignature);
        }
        key.verify_strict(
            &message(method, path_and_query, body, self.ts, &self.nonce),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| RequestAuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify() {
        let keys = DeviceKeys::generate();
        let header = sign(
            &keys,
            "POST",
            "/v1/teams/ab/envelopes",
            b"body",
            1000,
            [7; 16],
        );
        let auth = RequestAuth::parse(&header).unwrap();
        assert_eq!(auth.device, keys.device_id());
        assert_eq!(auth.ts, 1000);
        auth.verify(
            &keys.verifying_key(),
            "POST",
            "/v1/teams/ab/envelopes",
            b"body",
        )
        .unwrap();
        for (m, p, b) in [
            ("GET", "/v1/teams/ab/envelopes", &b"body"[..]),
            ("POST", "/v1/teams/cd/envelopes", b"body"),
            ("POST", "/v1/teams/ab/envelopes", b"bodY"),
        ] {
            assert_eq!(
                auth.verify(&keys.verifying_key(), m, p, b),
                Err(RequestAuthError::BadSignature)
            );
        }
        let other = DeviceKeys::generate();
        assert!(
            auth.verify(
                &other.verifying_key(),
                "POST",
                "/v1/teams/ab/envelopes",
                b"body"
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            RequestAuth::parse("Bearer x"),
            Err(RequestAuthError::Missing)
        );
        assert!(matches!(
            RequestAuth::parse("Amana device=zz"),
            Err(RequestAuthError::Malformed(_))
        ));
        assert!(matches!(
            RequestAuth::parse("Amana ts=1"),
            Err(RequestAuthError::Malformed(_))
        ));
    }
}
