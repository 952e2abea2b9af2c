//! `amana audit`: the remote audit, through the relay's API, by a device
//! of the team (an `auditor` device reads envelopes and writes nothing),
//! and the receipts a device exports for any audit to replay.
//!
//! The remote audit sees what the relay serves: the roster, every stored
//! envelope and the heads. It checks them as [`crate::audit::LogAudit`]
//! does, and the roster against the genesis this device pinned when it
//! joined. What only the relay's files show (schema, raw bytes, logs) is
//! the offline audit's (`amana-relay audit`).

use ed25519_dalek::{Signer, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{Env, RelayClient, SyncError};
use crate::audit::receipts::ReceiptFile;
use crate::audit::report::{FORMAT, Finding, Report, ReportError, Subject};
use crate::audit::{LogAudit, StoredEnvelope};
use crate::keys::DeviceKeys;
use crate::store::{DeviceStore, StoreError};
use crate::transport::Transport;

/// Envelopes per page requested.
const PAGE: usize = 500;

/// This device's receipts, with the relay key it pinned.
pub fn export_receipts(store: &DeviceStore) -> Result<ReceiptFile, SyncError> {
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let relay_key = pinned_relay_key(membership.relay_receipt_key)?;
    Ok(ReceiptFile {
        name: format!("receipts of device {}", store.keys().device_id()),
        relay_key,
        receipts: store.receipts()?,
    })
}

fn pinned_relay_key(key: Option<crate::Digest>) -> Result<VerifyingKey, SyncError> {
    key.and_then(|k| VerifyingKey::from_bytes(k.as_bytes()).ok())
        .ok_or_else(|| StoreError::Corrupt("the pinned relay key is missing".into()).into())
}

/// Audits the team's log as the relay serves it, and replays `receipts`.
pub fn remote<T: Transport>(
    store: &DeviceStore,
    client: &mut RelayClient<T>,
    env: &mut Env,
    relay: &str,
    receipts: &[ReceiptFile],
) -> Result<Report, SyncError> {
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    let relay_key = pinned_relay_key(membership.relay_receipt_key)?;
    let keys = store.keys();
    let ops = client.roster(env, keys)?;
    let mut audit = LogAudit::new(membership.team, &ops);
    let mut extra = Vec::new();
    if let Some(roster) = audit.roster() {
        if roster.genesis_hash() != membership.genesis {
            extra.push(Finding::alarm(
                "roster_substituted",
                "roster",
                "the relay's roster starts from another genesis than the one this device joined",
            ));
        }
        if let Some(held) = store.roster()?
            && (held.ops().len() > ops.len()
                || held
                    .ops()
                    .iter()
                    .zip(&ops)
                    .any(|(a, b)| a.as_bytes() != b.as_slice()))
        {
            extra.push(Finding::alarm(
                "roster_rollback",
                "roster",
                format!(
                    "the relay's roster ({} operations) does not extend the {} this device verified",
                    ops.len(),
                    held.ops().len()
                ),
            ));
        }
    }
    let mut digest = Sha256::new();
    let mut bytes = 0u64;
    let mut cursor = 0;
    loop {
        let page = client.page(env, keys, cursor, PAGE)?;
        for entry in &page.entries {
            if entry.cursor <= cursor {
                return Err(SyncError::RelayMalformed(format!(
                    "envelope cursors out of order ({} after {cursor})",
                    entry.cursor
                )));
            }
            digest.update(&entry.bytes);
            bytes += entry.bytes.len() as u64;
            audit.envelope(StoredEnvelope {
                cursor: entry.cursor,
                bytes: &entry.bytes,
                recorded: None,
            });
            cursor = entry.cursor;
        }
        cursor = cursor.max(page.next_cursor);
        if !page.more {
            let heads: Vec<_> = page.heads.iter().map(|h| (h.device, h.seq, h.id)).collect();
            audit.heads(&heads);
            break;
        }
    }
    let mut subjects = vec![Subject {
        kind: "relay".into(),
        name: format!("{relay} team {}", membership.team),
        bytes,
        sha256: hex::encode(digest.finalize()),
    }];
    for file in receipts {
        let text = file.encode();
        subjects.push(Subject {
            kind: "receipts".into(),
            name: file.name.clone(),
            bytes: text.len() as u64,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        });
        audit.receipts(file, Some(&relay_key));
    }
    let (mut findings, checked) = audit.finish();
    findings.splice(0..0, extra);
    Ok(Report {
        format: FORMAT.into(),
        tool: format!("amana audit {}", env!("CARGO_PKG_VERSION")),
        mode: "remote".into(),
        generated_at: env.now(),
        relay_key: Some(hex::encode(relay_key.as_bytes())),
        subjects,
        checked,
        findings,
    })
}

/// Signs a report with this device's key (the report's own signing
/// domain; verifiable against the device's key on the team roster).
pub fn sign_report(report: &Report, keys: &DeviceKeys) -> Result<String, ReportError> {
    report.sign_with(&keys.verifying_key(), |msg| {
        keys.signing_key().sign(msg).to_bytes()
    })
}
