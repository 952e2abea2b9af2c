//! The pin of a relay's TLS key: SHA-256 of the certificate's
//! SubjectPublicKeyInfo. Invite codes carry it, so a field device trusts
//! exactly that key and needs no certificate authority; renewing the
//! certificate with the same key keeps the pin.

use crate::ids::Digest;

/// Why a certificate could not be pinned.
#[derive(Debug, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct PinError(String);

/// The pin of a DER-encoded certificate.
pub fn certificate_pin(der: &[u8]) -> Result<Digest, PinError> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| PinError(e.to_string()))?;
    Ok(Digest::of(cert.subject_public_key_info().as_ref()))
}

/// The pin of the first certificate in a PEM file (the relay's own
/// certificate comes first in a chain).
pub fn certificate_pin_pem(pem: &[u8]) -> Result<Digest, PinError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| PinError(e.to_string()))?;
    certificate_pin(&der)
}

/// The pin as people type it: 64 hex digits.
pub fn parse_pin(text: &str) -> Option<Digest> {
    text.trim().trim_start_matches("sha256:").parse().ok()
}
