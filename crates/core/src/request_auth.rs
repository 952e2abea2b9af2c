//! Authentication of requests to the relay.
//!
//! Every request except team creation, health and the relay's public key
//! carries an `Authorization` header:
//!
//! ```text
//! Authorization: Amana device=<hex 16>, ts=<unix seconds>, nonce=<hex 16>,
//!                      body=<hex 32>, sig=<hex 64>
//! sig = Ed25519(device, "amana/v1/request\0" ‖ METHOD ‖ "\n" ‖ path-and-query ‖ "\n"
//!               ‖ hex(SHA-256(body)) ‖ "\n" ‖ ts ‖ "\n" ‖ nonce)
//! ```
//!
//! `body` repeats the SHA-256 of the body that the signature covers, so the
//! relay can check the signature from the headers alone before it reads a
//! large body ([`RequestAuth::verify_declared`]), then check the body it
//! reads against it. It is optional for small bodies (older clients).
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
    /// The body's SHA-256, when declared.
    body: Option<Digest>,
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

fn message(method: &str, path: &str, body: &Digest, ts: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(method.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(path.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(body.to_hex().as_bytes());
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
    let digest = Digest::of(body);
    let sig = device
        .signing_key()
        .sign(&message(method, path_and_query, &digest, ts, &nonce));
    format!(
        "{SCHEME}device={}, ts={ts}, nonce={}, body={}, sig={}",
        device.device_id(),
        hex::encode(nonce),
        digest.to_hex(),
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
        let mut body = None;
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
                "body" => {
                    let bytes =
                        hex::decode(value).map_err(|_| RequestAuthError::Malformed("body"))?;
                    body = Some(Digest::from_bytes(
                        bytes
                            .try_into()
                            .map_err(|_| RequestAuthError::Malformed("body"))?,
                    ));
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
            body,
        })
    }

    /// Whether the header declares the body's digest.
    pub fn declares_body(&self) -> bool {
        self.body.is_some()
    }

    /// Checks the signature from the headers alone, over the body digest
    /// the header declares (before the body is read). The body must then
    /// pass [`RequestAuth::verify`], which checks it against the digest.
    pub fn verify_declared(
        &self,
        key: &VerifyingKey,
        method: &str,
        path_and_query: &str,
    ) -> Result<(), RequestAuthError> {
        let digest = self
            .body
            .ok_or(RequestAuthError::Malformed("body digest missing"))?;
        self.verify_digest(key, method, path_and_query, &digest)
    }

    fn verify_digest(
        &self,
        key: &VerifyingKey,
        method: &str,
        path_and_query: &str,
        digest: &Digest,
    ) -> Result<(), RequestAuthError> {
        if DeviceId::for_key(key) != self.device {
            return Err(RequestAuthError::BadSignature);
        }
        key.verify_strict(
            &message(method, path_and_query, digest, self.ts, &self.nonce),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| RequestAuthError::BadSignature)
    }

    /// Checks the signature over this request with the device's key.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), RequestAuthError> {
        let digest = Digest::of(body);
        if self.body.is_some_and(|declared| declared != digest) {
            return Err(RequestAuthError::BadSignature);
        }
        self.verify_digest(key, method, path_and_query, &digest)
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
        // From the headers alone, then against the body read.
        auth.verify_declared(&keys.verifying_key(), "POST", "/v1/teams/ab/envelopes")
            .unwrap();
        assert_eq!(
            auth.verify_declared(&keys.verifying_key(), "POST", "/v1/teams/cd/envelopes"),
            Err(RequestAuthError::BadSignature)
        );
        // A header that declares another body than it signed.
        let forged = header.replace(
            &format!("body={}", Digest::of(b"body").to_hex()),
            &format!("body={}", Digest::of(b"bodY").to_hex()),
        );
        let forged = RequestAuth::parse(&forged).unwrap();
        assert_eq!(
            forged.verify_declared(&keys.verifying_key(), "POST", "/v1/teams/ab/envelopes"),
            Err(RequestAuthError::BadSignature)
        );
        assert_eq!(
            forged.verify(
                &keys.verifying_key(),
                "POST",
                "/v1/teams/ab/envelopes",
                b"bodY"
            ),
            Err(RequestAuthError::BadSignature)
        );
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
