//! The audit report: findings, counts, and an Ed25519 signature an auditor
//! can archive and re-verify later without any Amana key.
//!
//! ```text
//! file      = {"report": REPORT, "signature": {"algorithm": "ed25519",
//!              "public_key": hex, "value": hex}}
//! signature = Ed25519(auditor key, "amana/v1/audit-report\0" ‖ JSON(REPORT))
//! ```
//!
//! `JSON(REPORT)` is the compact serialization of the `report` value as it
//! appears in the file (object keys in the order serde_json writes them),
//! so a verifier re-serializes the parsed value and checks the signature
//! over the same bytes.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

const DOMAIN: &[u8] = b"amana/v1/audit-report\0";
/// The `format` every report carries.
pub const FORMAT: &str = "amana-audit-report/1";

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The relay holds something it must not, or lost or altered
    /// something: an incident.
    Alarm,
    /// Something to look at that does not by itself show a leak or a loss
    /// (for example a documented column the database lacks).
    Warning,
}

/// One thing the audit found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code (`docs/auditor-guide.md` lists them).
    pub code: String,
    /// How serious.
    pub severity: Severity,
    /// Where: table and key, file and offset, team/device/seq.
    pub location: String,
    /// What, in words. Never quotes more than a short excerpt of what it
    /// found.
    pub detail: String,
    /// Other places the same bytes were seen (a planted row also shows in
    /// the raw file and the WAL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_at: Vec<String>,
}

impl Finding {
    /// An alarm.
    pub fn alarm(code: &str, location: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            code: code.to_owned(),
            severity: Severity::Alarm,
            location: location.into(),
            detail: detail.into(),
            also_at: Vec::new(),
        }
    }

    /// A warning.
    pub fn warning(code: &str, location: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..Finding::alarm(code, location, detail)
        }
    }
}

/// A file the audit read, identified by its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// What it is (`database`, `wal`, `log`, `receipts`, `relay`).
    pub kind: String,
    /// Path or URL as given.
    pub name: String,
    /// Size in bytes (0 for a relay URL).
    pub bytes: u64,
    /// SHA-256 of the content, hex (empty for a relay URL).
    pub sha256: String,
}

/// What an audit checked and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`FORMAT`].
    pub format: String,
    /// The program and version that wrote it.
    pub tool: String,
    /// `offline` (a copy of the relay's files) or `remote` (the relay's API).
    pub mode: String,
    /// Unix seconds when the audit ran.
    pub generated_at: u64,
    /// The relay's receipt key (hex), when known.
    pub relay_key: Option<String>,
    /// What was read.
    pub subjects: Vec<Subject>,
    /// How many of each thing were checked (`envelopes`, `stubs`,
    /// `roster_ops`, `receipts`, `bytes_scanned`, …).
    pub checked: BTreeMap<String, u64>,
    /// Everything found; empty means clean.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether nothing at all was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Number of alarms.
    pub fn alarms(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Alarm)
            .count()
    }

    /// The human summary printed beside the signed file.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let what: Vec<String> = self
            .subjects
            .iter()
            .map(|s| format!("{} {}", s.kind, s.name))
            .collect();
        let _ = writeln!(out, "Audit ({}) of {}", self.mode, what.join(", "));
        let counts: Vec<String> = self
            .checked
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect();
        let _ = writeln!(out, "Checked: {}", counts.join(", "));
        if self.is_clean() {
            let _ = writeln!(out, "Result: CLEAN (no findings)");
            return out;
        }
        let _ = writeln!(
            out,
            "Result: {} finding(s), {} alarm(s)",
            self.findings.len(),
            self.alarms()
        );
        for f in &self.findings {
            let severity = match f.severity {
                Severity::Alarm => "ALARM",
                Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "  {severity} {} at {}: {}",
                f.code, f.location, f.detail
            );
            if !f.also_at.is_empty() {
                let _ = writeln!(out, "    also at: {}", f.also_at.join("; "));
            }
        }
        out
    }

    /// Signs the report and returns the file to archive (pretty JSON).
    pub fn sign(&self, key: &SigningKey) -> Result<String, ReportError> {
        self.sign_with(&key.verifying_key(), |msg| key.sign(msg).to_bytes())
    }

    /// Signs with a key held elsewhere: `sign` returns the Ed25519
    /// signature of the message it is given, by the key `public`.
    pub fn sign_with(
        &self,
        public: &VerifyingKey,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<String, ReportError> {
        let value =
            serde_json::to_value(self).map_err(|e| ReportError::Malformed(e.to_string()))?;
        let signature = sign(&signed_bytes(&value)?);
        let file = serde_json::json!({
            "report": value,
            "signature": {
                "algorithm": "ed25519",
                "public_key": hex::encode(public.as_bytes()),
                "value": hex::encode(signature),
            },
        });
        serde_json::to_string_pretty(&file).map_err(|e| ReportError::Malformed(e.to_string()))
    }
}

/// A report whose signature verified.
#[derive(Debug)]
pub struct VerifiedReport {
    /// The report.
    pub report: Report,
    /// The key that signed it.
    pub signer: VerifyingKey,
}

/// Why a report file does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Not a report file.
    #[error("not an Amana audit report ({0}); check the file is the one the audit wrote")]
    Malformed(String),
    /// The signature does not verify: the report was changed after signing.
    #[error(
        "the report's signature does not verify: it was changed after it was signed; do not rely on it"
    )]
    BadSignature,
    /// Signed by another key than the expected one.
    #[error(
        "the report was signed by key {found}, not by the expected {expected}; ask who wrote it"
    )]
    UnexpectedSigner {
        /// The key expected (hex).
        expected: String,
        /// The key found (hex).
        found: String,
    },
}

fn signed_bytes(value: &serde_json::Value) -> Result<Vec<u8>, ReportError> {
    let mut out = DOMAIN.to_vec();
    serde_json::to_writer(&mut out, value).map_err(|e| ReportError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Verifies a report file; with `expected`, also that this key signed it.
pub fn verify(file: &str, expected: Option<&VerifyingKey>) -> Result<VerifiedReport, ReportError> {
    let malformed = |what: &str| ReportError::Malformed(what.to_owned());
    let parsed: serde_json::Value =
        serde_json::from_str(file).map_err(|e| ReportError::Malformed(e.to_string()))?;
    let value = parsed
        .get("report")
        .ok_or_else(|| malformed("no `report`"))?;
    let signature = parsed
        .get("signature")
        .ok_or_else(|| malformed("no `signature`"))?;
    if signature.get("algorithm").and_then(|a| a.as_str()) != Some("ed25519") {
        return Err(malformed("the signature algorithm is not ed25519"));
    }
    let hex_field = |name: &str| {
        signature
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| malformed("a signature field is not hex"))
    };
    let key: [u8; 32] = hex_field("public_key")?
        .try_into()
        .map_err(|_| malformed("the public key is not 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| malformed("not an Ed25519 key"))?;
    let sig: [u8; 64] = hex_field("value")?
        .try_into()
        .map_err(|_| malformed("the signature is not 64 bytes"))?;
    key.verify_strict(&signed_bytes(value)?, &Signature::from_bytes(&sig))
        .map_err(|_| ReportError::BadSignature)?;
    if let Some(expected) = expected
        && expected != &key
    {
        return Err(ReportError::UnexpectedSigner {
            expected: hex::encode(expected.as_bytes()),
            found: hex::encode(key.as_bytes()),
        });
    }
    let report: Report =
        serde_json::from_value(value.clone()).map_err(|e| ReportError::Malformed(e.to_string()))?;
    if report.format != FORMAT {
        return Err(malformed("unknown report format"));
    }
    Ok(VerifiedReport {
        report,
        signer: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            format: FORMAT.into(),
            tool: "test".into(),
            mode: "offline".into(),
            generated_at: 1_780_000_000,
            relay_key: None,
            subjects: vec![],
            checked: BTreeMap::from([("envelopes".into(), 3)]),
            findings: vec![Finding::alarm("not_age", "envelopes team/device/1", "x")],
        }
    }

    #[test]
    fn a_signed_report_verifies_and_any_edit_breaks_it() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let file = report().sign(&key).unwrap();
        let verified = verify(&file, Some(&key.verifying_key())).unwrap();
        assert_eq!(verified.report, report());
        // Drop the finding: the signature no longer covers the report.
        let edited = file.replace("\"not_age\"", "\"no_age\"");
        assert_eq!(
            verify(&edited, None).unwrap_err(),
            ReportError::BadSignature
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(
            verify(&file, Some(&other.verifying_key())),
            Err(ReportError::UnexpectedSigner { .. })
        ));
        assert!(matches!(verify("{}", None), Err(ReportError::Malformed(_))));
    }
}
