//! `amana-relay audit` and `amana-relay verify-report`.

use std::path::PathBuf;
use std::process::ExitCode;

use amana_core::audit::report;
use amana_sync_server::audit::{self, Options};
use amana_sync_server::relay_key;
use anyhow::Context;
use ed25519_dalek::VerifyingKey;

/// Exit code when the audit ran and found something.
const FINDINGS: u8 = 3;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// A copy of the relay database (its -wal file beside it is read too).
    #[arg(long)]
    db: PathBuf,
    /// A copy of a relay log (standard error of `amana-relay serve`); repeatable.
    #[arg(long = "log")]
    logs: Vec<PathBuf>,
    /// A receipts file exported by a device (`amana receipts export`); repeatable.
    #[arg(long = "receipts")]
    receipts: Vec<PathBuf>,
    /// The relay's receipt key (64 hex digits, printed when the relay starts).
    #[arg(long)]
    relay_key: Option<String>,
    /// The auditor's signing key file (created, mode 0600, if it does not exist).
    #[arg(long)]
    auditor_key: PathBuf,
    /// Where to write the signed JSON report.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The signed report file.
    report: PathBuf,
    /// The auditor key that must have signed it (64 hex digits).
    #[arg(long)]
    signer: Option<String>,
}

fn public_key(hex_key: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("a key is 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).context("not an Ed25519 public key")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn audit(args: AuditArgs) -> ExitCode {
    match run_audit(args) {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(FINDINGS),
        Err(e) => {
            eprintln!("amana-relay audit: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_audit(args: AuditArgs) -> anyhow::Result<bool> {
    let relay_key = args.relay_key.as_deref().map(public_key).transpose()?;
    let signer =
        relay_key::load_or_create(&args.auditor_key).context("the auditor key cannot be used")?;
    let report = audit::run(&Options {
        db: args.db,
        logs: args.logs,
        receipts: args.receipts,
        relay_key,
        now: now(),
    })?;
    let file = report.sign(&signer)?;
    std::fs::write(&args.out, file)
        .with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    print!("{}", report.summary());
    println!(
        "Signed report: {} (auditor key {})",
        args.out.display(),
        hex::encode(signer.verifying_key().as_bytes())
    );
    Ok(report.is_clean())
}

pub fn verify(args: VerifyArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<report::VerifiedReport> {
        let text = std::fs::read_to_string(&args.report)
            .with_context(|| format!("cannot read {}", args.report.display()))?;
        let expected = args.signer.as_deref().map(public_key).transpose()?;
        Ok(report::verify(&text, expected.as_ref())?)
    })();
    match result {
        Ok(verified) => {
            print!("{}", verified.report.summary());
            println!(
                "Signature: valid, by auditor key {}",
                hex::encode(verified.signer.as_bytes())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amana-relay verify-report: {e:#}");
            ExitCode::from(FINDINGS)
        }
    }
}
