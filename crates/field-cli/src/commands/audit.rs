//! `amana audit` and `amana receipts export`.

use std::path::Path;

use amana_core::audit::ReceiptFile;
use amana_core::store::StoreError;
use amana_core::sync::{RelayClient, audit};
use anyhow::Context;
use serde_json::json;

use crate::app::{self, App};
use crate::cli::AuditArgs;
use crate::exit::Alarm;

/// Writes this device's receipts.
pub fn export_receipts(app: &App, out: &Path) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let file = audit::export_receipts(&store)?;
    std::fs::write(out, file.encode())
        .with_context(|| format!("cannot write {}", out.display()))?;
    if app.json {
        println!(
            "{}",
            json!({"receipts": file.receipts.len(), "file": out.display().to_string()})
        );
    } else {
        println!(
            "Wrote {} receipt(s) to {}. Give the file to the auditor; it holds no case data.",
            file.receipts.len(),
            out.display()
        );
    }
    Ok(())
}

/// Audits the relay through its API.
pub fn remote(app: &App, args: AuditArgs) -> anyhow::Result<()> {
    // Bad input fails before the passphrase is asked for.
    let mut receipts = Vec::new();
    for path in &args.receipts {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        receipts.push(ReceiptFile::parse(&path.display().to_string(), &text)?);
    }
    let store = app.unlock()?;
    let mut membership = store.membership()?.ok_or(StoreError::NotMember)?;
    if let Some(url) = args.relay {
        membership.relay_url = url;
    }
    let mut client = RelayClient::new(app::transport(&membership)?, membership.team);
    let mut env = app::system_env();
    let report = audit::remote(
        &store,
        &mut client,
        &mut env,
        &membership.relay_url,
        &receipts,
    )?;
    let file = audit::sign_report(&report, store.keys())?;
    std::fs::write(&args.out, file)
        .with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    if app.json {
        println!(
            "{}",
            json!({
                "clean": report.is_clean(),
                "findings": report.findings,
                "checked": report.checked,
                "report": args.out.display().to_string(),
            })
        );
    } else {
        print!("{}", report.summary());
        println!(
            "Signed report: {} (signed by this device, {})",
            args.out.display(),
            store.keys().device_id()
        );
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(Alarm(format!(
            "the audit found {} problem(s) at the relay; keep the report and tell the office",
            report.findings.len()
        ))
        .into())
    }
}
