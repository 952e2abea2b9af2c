//! The HTTPS transport: reqwest (blocking) over rustls with the ring
//! provider, trusting exactly the relay key pinned in the invite code
//! instead of certificate authorities. Plain HTTP is accepted only for a
//! relay on this machine (loopback), as the demo and tests use.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::ids::Digest;
use crate::pin::certificate_pin;
use crate::transport::{Method, Request, Response, Transport, TransportError};

/// Largest response body accepted (a page of envelopes is far smaller).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// HTTPS to one relay.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    base: String,
    mismatch: Arc<AtomicBool>,
}

impl HttpTransport {
    /// A transport to `base_url`. An `https` URL needs the relay's key pin;
    /// an `http` URL must name a loopback address.
    pub fn new(base_url: &str, pin: Option<Digest>) -> Result<Self, TransportError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| TransportError::Config(format!("`{base}` is not a URL: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // reqwest is built without a default provider; make ring the one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mismatch = Arc::new(AtomicBool::new(false));
        let builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("amana/", env!("CARGO_PKG_VERSION")));
        let builder = match url.scheme() {
            "https" => {
                let pin = pin.ok_or_else(|| {
                    TransportError::Config(
                        "no TLS key pin for this relay; enrol again with an invite code".into(),
                    )
                })?;
                let verifier = PinnedKey {
                    pin,
                    algorithms: provider.signature_verification_algorithms,
                    mismatch: mismatch.clone(),
                };
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TransportError::Config(e.to_string()))?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth();
                builder.use_preconfigured_tls(config)
            }
            "http" if is_loopback(&url) => builder,
            "http" => {
                return Err(TransportError::Config(
                    "plain http is allowed only for a relay on this machine; use https".into(),
                ));
            }
            other => {
                return Err(TransportError::Config(format!(
                    "unsupported scheme `{other}`; use https"
                )));
            }
        };
        let client = builder
            .build()
            .map_err(|e| TransportError::Config(e.to_string()))?;
        Ok(HttpTransport {
            client,
            base,
            mismatch,
        })
    }

    fn failed(&self, e: &reqwest::Error) -> TransportError {
        if self.mismatch.load(Ordering::SeqCst) {
            return TransportError::PinMismatch;
        }
        if e.is_connect() {
            TransportError::Unreachable {
                url: self.base.clone(),
                reason: root_cause(e),
            }
        } else {
            TransportError::Interrupted(root_cause(e))
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Transport for HttpTransport {
    fn send(&mut self, request: &Request) -> Result<Response, TransportError> {
        let url = format!("{}{}", self.base, request.path);
        let mut builder = match request.method {
            Method::Get => self.client.get(&url),
            Method::Post => self.client.post(&url).body(request.body.clone()),
        };
        if let Some(ct) = request.content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(auth) = &request.authorization {
            builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        }
        let response = builder.send().map_err(|e| self.failed(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        response
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| TransportError::Interrupted(root_cause(&e)))?;
        if body.len() > MAX_RESPONSE {
            return Err(TransportError::ResponseTooLarge {
                limit: MAX_RESPONSE,
            });
        }
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

/// Trusts exactly one public key, whatever certificate carries it.
#[derive(Debug)]
struct PinnedKey {
    pin: Digest,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: Arc<AtomicBool>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match certificate_pin(end_entity) {
            Ok(pin) if pin == self.pin => Ok(ServerCertVerified::assertion()),
            _ => {
                self.mismatch.store(true, Ordering::SeqCst);
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
