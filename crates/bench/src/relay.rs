//! The relay under measurement: the real router, store and server code,
//! on a loopback port, with TLS (a fresh certificate, pinned the way field
//! devices pin the real one) or plain HTTP. It runs in a thread of the
//! bench, or as a child process of its own when its memory is measured.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use amana_core::Digest;
use amana_sync_server::api::{AppState, system_clock};
use amana_sync_server::config::Limits;
use amana_sync_server::server::{self, Transport};
use amana_sync_server::store::{RelayStore, SqliteStore};
use anyhow::{Context, Result, bail};
use tokio::sync::oneshot;

/// A TLS certificate for the loopback address and its key pin.
pub struct Certificate {
    /// PEM of the certificate.
    pub cert: String,
    /// PEM of its private key.
    pub key: String,
    /// SHA-256 of its public key, as devices pin it.
    pub pin: Digest,
}

impl Certificate {
    /// A fresh self-signed certificate for 127.0.0.1.
    pub fn generate() -> Result<Certificate> {
        let made =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let pin = amana_core::pin::certificate_pin(made.cert.der())
            .map_err(|e| anyhow::anyhow!("pin of the bench certificate: {e}"))?;
        Ok(Certificate {
            cert: made.cert.pem(),
            key: made.signing_key.serialize_pem(),
            pin,
        })
    }
}

/// Serves the relay with its store at `db` on `listener` until `stop`.
async fn serve(
    db: &Path,
    tls: Option<(&str, &str)>,
    listener: TcpListener,
    limits: Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Arc::new(SqliteStore::open(db).context("opening the relay database")?);
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key)?;
    let state = Arc::new(AppState::new(
        store as Arc<dyn RelayStore>,
        ed25519_dalek::SigningKey::from_bytes(&key),
        limits,
        system_clock(),
    ));
    let transport = match tls {
        Some((cert, key)) => server::tls_from_pem(cert.as_bytes(), key.as_bytes()).await?,
        None => Transport::InsecureHttp,
    };
    server::serve(listener, transport, state, stop).await?;
    Ok(())
}

/// The default limits, but for the per-device request rate: a benchmark
/// device may sync more often than a minute's budget allows.
fn bench_limits() -> Limits {
    Limits {
        requests_per_minute: 1_000_000,
        // Every simulated device connects from 127.0.0.1.
        max_requests_per_peer: 1_000_000,
        max_connections_per_peer: 1_000_000,
        // Benchmark teams are made by the benchmark itself.
        open_team_creation: true,
        ..Limits::default()
    }
}

/// The relay's own defaults, as deployed (per-address bounds included),
/// but for the request rate of the one measured device and team creation:
/// what the barrage benchmark attacks.
fn guarded_limits() -> Limits {
    Limits {
        requests_per_minute: 1_000_000,
        open_team_creation: true,
        ..Limits::default()
    }
}

/// A relay in a thread of this process.
pub struct Relay {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The TLS key pin, if it serves HTTPS.
    pub pin: Option<Digest>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Relay {
    /// Starts a relay storing into `db`, with TLS if `tls`.
    pub fn start(db: &Path, tls: bool) -> Result<Relay> {
        let certificate = tls.then(Certificate::generate).transpose()?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let db = db.to_owned();
        let pin = certificate.as_ref().map(|c| c.pin);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let pem = certificate
                    .as_ref()
                    .map(|c| (c.cert.as_str(), c.key.as_str()));
                serve(&db, pem, listener, bench_limits(), async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Ok(Relay {
            port,
            pin,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The relay's URL.
    pub fn url(&self) -> String {
        url(self.port, self.pin.is_some())
    }
}

/// The URL of a relay (or a proxy) on a loopback port.
pub fn url(port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{port}")
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A relay in a child process (this binary, `amana-bench relay`), so its
/// memory is its own.
pub struct ChildRelay {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The TLS key pin.
    pub pin: Digest,
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl ChildRelay {
    /// Starts the child with its store at `db` (TLS with a fresh
    /// certificate written to `dir`).
    pub fn start(dir: &Path, db: &Path) -> Result<ChildRelay> {
        let certificate = Certificate::generate()?;
        let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
        std::fs::write(&cert, &certificate.cert)?;
        std::fs::write(&key, &certificate.key)?;
        let mut child = Command::new(std::env::current_exe()?);
        child.arg("relay").arg(db).arg(&cert).arg(&key);
        Self::spawn(child, certificate.pin)
    }

    /// Starts the child on plain HTTP (as behind a TLS proxy) with the
    /// relay's deployed limits ([`guarded_limits`]): what raw sockets
    /// attack in the barrage benchmark.
    pub fn start_guarded(db: &Path) -> Result<ChildRelay> {
        let mut child = Command::new(std::env::current_exe()?);
        child.arg("relay").arg(db).arg("guarded");
        Self::spawn(child, Digest::ZERO)
    }

    fn spawn(mut command: Command, pin: Digest) -> Result<ChildRelay> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the relay child process")?;
        let mut stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the relay child said {line:?}"))?;
        Ok(ChildRelay {
            port,
            pin,
            child,
            _stdout: stdout,
        })
    }

    /// The relay's URL.
    pub fn url(&self) -> String {
        url(self.port, self.pin != Digest::ZERO)
    }

    /// The child's resident set now and at its peak, in bytes
    /// (`VmRSS`, `VmHWM` of /proc).
    pub fn rss(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} in /proc status"))?;
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} value"))?;
            Ok(kib * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        // Closing its stdin stops it; kill it if it lingers.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `amana-bench relay DB CERT KEY`: what the child process runs. Prints
/// `listening PORT` and serves until its standard input closes.
pub fn child_main(args: &[String]) -> Result<()> {
    let (db, tls, limits) = match args {
        [db, cert, key] => (
            db,
            Some((
                std::fs::read_to_string(cert)?,
                std::fs::read_to_string(key)?,
            )),
            bench_limits(),
        ),
        [db, mode] if mode == "guarded" => (db, None, guarded_limits()),
        _ => {
            bail!("usage: amana-bench relay DB (CERT KEY | guarded) (started by the bench itself)")
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut out = std::io::stdout();
    writeln!(out, "listening {port}")?;
    out.flush()?;
    let db = PathBuf::from(db);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stop = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        let pem = tls.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
        serve(&db, pem, listener, limits, stop).await
    })
}
