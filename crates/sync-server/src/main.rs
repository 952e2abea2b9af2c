//! `amana-relay`: the blind, append-only envelope log.
//!
//! ```text
//! amana-relay serve --listen 0.0.0.0:8443 --db /var/lib/amana/relay.sqlite \
//!                   --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! `amana-relay pin --tls-cert cert.pem` prints the pin that `amana team
//! create --relay-pin` takes (SHA-256 of the certificate's public key).
//!
//! `amana-relay audit --db COPY --auditor-key KEY --out REPORT` audits a copy
//! of the relay's files (`docs/auditor-guide.md`); `amana-relay
//! verify-report REPORT` re-verifies a signed report.
//!
//! Exit codes: 0 clean shutdown (audit: clean; verify-report: valid), 1
//! runtime failure (cannot bind, database unavailable, audit could not
//! run), 2 usage or configuration error, 3 the audit found something (or
//! the report does not verify).

mod audit_cmd;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use amana_sync_server::api::{AppState, system_clock};
use amana_sync_server::config::FileConfig;
use amana_sync_server::relay_key;
use amana_sync_server::server::{self, Transport};
use amana_sync_server::store::SqliteStore;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amana-relay",
    version,
    about = "Amana's blind, append-only envelope relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the relay API.
    Serve(ServeArgs),
    /// Audit a copy of the relay's files: schema, every value, every byte, logs, receipts.
    Audit(audit_cmd::AuditArgs),
    /// Verify the signature of an audit report and print it.
    VerifyReport(audit_cmd::VerifyArgs),
    /// Issue a single-use token that lets an office create one team on this relay.
    TeamToken {
        /// The relay's SQLite database (the same as `serve --db`).
        #[arg(long, env = "AMANA_RELAY_DB")]
        db: PathBuf,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u64).range(1..=24 * 90))]
        valid_hours: u64,
    },
    /// Print the pin of a TLS certificate's key, for `amana team create --relay-pin`.
    Pin {
        /// TLS certificate (PEM); the first certificate is the relay's.
        #[arg(long, env = "AMANA_RELAY_TLS_CERT")]
        tls_cert: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags and AMANA_RELAY_* variables override it.
    #[arg(long, env = "AMANA_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "AMANA_RELAY_LISTEN")]
    listen: Option<String>,
    /// SQLite database; the relay key is kept beside it as `<db>.key`.
    #[arg(long, env = "AMANA_RELAY_DB")]
    db: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "AMANA_RELAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "AMANA_RELAY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP: only behind a TLS-terminating proxy or on loopback.
    #[arg(long, env = "AMANA_RELAY_INSECURE_HTTP")]
    insecure_http: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMANA_RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Pin { tls_cert } => return print_pin(&tls_cert),
        Command::TeamToken { db, valid_hours } => return issue_team_token(&db, valid_hours),
        Command::Audit(args) => return audit_cmd::audit(args),
        Command::VerifyReport(args) => return audit_cmd::verify(args),
    };
    let setup = match prepare(args) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("amana-relay: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("amana-relay: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(setup)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amana-relay: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints a new team-creation token (stdout) and what to do with it
/// (stderr). Exit 0, or 1 if the database cannot be opened or written.
fn issue_team_token(db: &std::path::Path, valid_hours: u64) -> ExitCode {
    let issued = (|| -> anyhow::Result<(amana_core::team_token::TeamToken, u64)> {
        if !db.exists() {
            anyhow::bail!(
                "{} does not exist; give the database `amana-relay serve --db` uses",
                db.display()
            );
        }
        let store = amana_sync_server::store::SqliteStore::open(db)
            .with_context(|| format!("cannot open {}", db.display()))?;
        let token = amana_core::team_token::TeamToken::generate();
        let expires = amana_sync_server::api::system_clock()() + valid_hours * 3600;
        amana_sync_server::store::RelayStore::issue_team_token(&store, token.hash(), expires)
            .context("cannot record the token")?;
        Ok((token, expires))
    })();
    match issued {
        Ok((token, expires)) => {
            println!("{}", token.to_text().as_str());
            eprintln!(
                "Give this token to the office over a safe channel; it creates one team and expires in {valid_hours} hours (unix time {expires}). The office runs `amana team create` and types it when asked."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amana-relay: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn print_pin(path: &std::path::Path) -> ExitCode {
    let pin = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .and_then(|pem| {
            amana_core::pin::certificate_pin_pem(&pem)
                .with_context(|| format!("{} holds no valid certificate", path.display()))
        });
    match pin {
        Ok(pin) => {
            println!("{pin}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amana-relay: {e:#}");
            ExitCode::from(2)
        }
    }
}

struct Setup {
    config: FileConfig,
    listen: String,
    db: PathBuf,
    tls: Option<(Vec<u8>, Vec<u8>)>,
}

fn prepare(args: ServeArgs) -> anyhow::Result<Setup> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))?;
            FileConfig::parse(&text)
                .with_context(|| format!("{} is not a valid configuration", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = args
        .listen
        .or(config.listen.take())
        .unwrap_or_else(|| "127.0.0.1:8443".into());
    let db = args
        .db
        .or(config.db.take().map(PathBuf::from))
        .context("no database given: pass --db PATH (or set db in the configuration)")?;
    let insecure = args.insecure_http || config.insecure_http.unwrap_or(false);
    let cert = args.tls_cert.or(config.tls_cert.take().map(PathBuf::from));
    let key = args.tls_key.or(config.tls_key.take().map(PathBuf::from));
    let tls = match (cert, key, insecure) {
        (Some(cert), Some(key), false) => Some((
            std::fs::read(&cert).with_context(|| format!("cannot read {}", cert.display()))?,
            std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?,
        )),
        (None, None, true) => None,
        (Some(_), Some(_), true) => {
            bail!("give either --tls-cert/--tls-key or --insecure-http, not both")
        }
        _ => bail!(
            "TLS needs both --tls-cert and --tls-key; to serve plain HTTP behind a proxy or on loopback, pass --insecure-http"
        ),
    };
    Ok(Setup {
        config,
        listen,
        db,
        tls,
    })
}

async fn run(setup: Setup) -> anyhow::Result<()> {
    let store = SqliteStore::open(&setup.db)
        .with_context(|| format!("cannot open the database {}", setup.db.display()))?;
    let key_path = setup.db.with_extension("key");
    let key = relay_key::load_or_create(&key_path)?;
    let mut tls_pin = None;
    let transport = match setup.tls {
        Some((cert, key)) => {
            tls_pin = Some(
                amana_core::pin::certificate_pin_pem(&cert)
                    .context("the TLS certificate is not valid")?,
            );
            server::tls_from_pem(&cert, &key)
                .await
                .context("the TLS certificate or key is not valid PEM")?
        }
        None => Transport::InsecureHttp,
    };
    let listener = TcpListener::bind(&setup.listen)
        .with_context(|| format!("cannot listen on {}", setup.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        relay_key = %relay_key::fingerprint(&key.verifying_key()),
        tls_pin = %tls_pin.map_or_else(|| "none (plain HTTP)".to_owned(), |p| p.to_hex()),
        "amana-relay serving"
    );
    let state = Arc::new(AppState::new(
        Arc::new(store),
        key,
        setup.config.limits,
        system_clock(),
    ));
    server::serve(listener, transport, state, shutdown_signal()).await?;
    tracing::info!("amana-relay stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    /// The relay links the format layer only: no client feature.
    #[test]
    fn relay_parses_envelopes_without_the_client_side() {
        let err = amana_core::envelope::SealedEnvelope::parse(
            vec![1; 10],
            &amana_core::envelope::EnvelopeLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, amana_core::EnvelopeError::Truncated { .. }));
    }
}
