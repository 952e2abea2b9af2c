//! Running a team of real processes: an `amana-relay` with a fresh TLS
//! certificate on a fixed loopback port (so it can be stopped and started
//! again at the same address), `amana` devices each with its own data
//! directory and passphrase file, a byte-counting TCP proxy that can cut
//! the relay off mid-transfer, and a scanner for plaintext in files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::binary;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay process and what it needs to start again.
pub struct Relay {
    /// Its data directory.
    pub dir: PathBuf,
    /// The port it listens on.
    pub port: u16,
    /// The TLS key pin (hex), as `amana-relay pin` prints it.
    pub pin: String,
    child: Option<Child>,
    /// Everything the relay logged.
    pub log: Arc<Mutex<String>>,
}

impl Relay {
    /// Makes a certificate and starts the relay on `port`.
    pub fn start(dir: &Path, port: u16) -> Relay {
        std::fs::create_dir_all(dir).unwrap();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        let out = Command::new(binary("amana-relay"))
            .args(["pin", "--tls-cert"])
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "amana-relay pin failed");
        let pin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mut relay = Relay {
            dir: dir.to_owned(),
            port,
            pin,
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        relay.restart();
        relay
    }

    /// A team token from `amana-relay team-token`, written to a file in
    /// `root` (the way an operator hands it over).
    pub fn team_token(&self, root: &Path) -> PathBuf {
        let out = Command::new(binary("amana-relay"))
            .args(["team-token", "--db"])
            .arg(self.dir.join("relay.sqlite"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "amana-relay team-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = root.join("team-token");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    /// The URL devices use.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts the relay process (again) on its port and waits until it serves.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the relay is already running");
        for _attempt in 0..50 {
            let mut child = Command::new(binary("amana-relay"))
                .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
                .arg("--db")
                .arg(self.dir.join("relay.sqlite"))
                .arg("--tls-cert")
                .arg(self.dir.join("cert.pem"))
                .arg("--tls-key")
                .arg(self.dir.join("key.pem"))
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stderr = BufReader::new(child.stderr.take().unwrap());
            let mut serving = false;
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                self.log.lock().unwrap().push_str(&line);
                if line.contains("amana-relay serving") {
                    serving = true;
                    break;
                }
                line.clear();
            }
            let log = self.log.clone();
            std::thread::spawn(move || {
                let mut rest = String::new();
                while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
                    log.lock().unwrap().push_str(&rest);
                    rest.clear();
                }
            });
            if serving {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous process.
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the relay did not start:\n{}", self.log.lock().unwrap());
    }

    /// Kills the relay at once (SIGKILL), as a crash or power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A handle that kills the relay from another thread.
    pub fn killer(&self) -> impl Fn() + Send + Sync + 'static {
        let pid = self.child.as_ref().map(|c| c.id()).expect("running");
        move || {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// Stops the relay gracefully (SIGTERM) and checks it exits 0.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert_eq!(child.wait().unwrap().code(), Some(0));
        }
    }

    /// Forgets a relay killed from another thread.
    pub fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `amana` device: a data directory and a passphrase file.
pub struct Device {
    /// Its name in the test.
    pub name: String,
    /// Its data directory.
    pub dir: PathBuf,
    passphrase: PathBuf,
}

impl Device {
    /// Runs `amana init` in a new directory under `root`.
    pub fn init(root: &Path, name: &str) -> Device {
        let passphrase = root.join(format!("{name}.pass"));
        std::fs::write(&passphrase, format!("passphrase of {name} for tests\n")).unwrap();
        let device = Device {
            name: name.to_owned(),
            dir: root.join(name),
            passphrase,
        };
        device.ok(&["init", "--kdf-log-n", "10"]);
        device
    }

    /// The passphrase, as a test run in-process types it.
    pub fn passphrase(&self) -> amana_core::keys::keystore::Passphrase {
        amana_core::keys::keystore::Passphrase::new(format!(
            "passphrase of {} for tests",
            self.name
        ))
    }

    /// Opens the device store in this process, as an attacker holding the
    /// passphrase and the directory would.
    pub fn unlock(&self) -> amana_core::store::DeviceStore {
        amana_core::store::DeviceStore::unlock(&self.dir, &self.passphrase()).unwrap()
    }

    /// The command with this device's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("amana"));
        cmd.args(args)
            .env("AMANA_HOME", &self.dir)
            .env("AMANA_PASSPHRASE_FILE", &self.passphrase)
            .env_remove("AMANA_LANG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: amana {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            self.name,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command with `--json` that must succeed; returns its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// Creates a team on `relay` from a new office device.
pub fn office(root: &Path, relay: &Relay) -> Device {
    office_at(root, &relay.url(), relay)
}

/// Creates a team on `relay`, reached at `url` (perhaps through a proxy),
/// with a team token its operator issued.
pub fn office_at(root: &Path, url: &str, relay: &Relay) -> Device {
    let office = Device::init(root, "office");
    let token = relay.team_token(root);
    office.ok(&[
        "team",
        "create",
        "--relay",
        url,
        "--relay-pin",
        &relay.pin,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    office
}

/// Invites, joins and approves a new device of `role`, comparing the
/// safety number on both sides.
pub fn enrol(root: &Path, office: &Device, name: &str, role: &str) -> Device {
    let code = office.json(&["team", "invite", "--role", role, "--label", name])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = Device::init(root, name);
    let joined = device.json(&["join", &code]);
    let number = joined["safety_number"].as_str().unwrap().to_owned();
    let id = joined["device"].as_str().unwrap().to_owned();
    let pending = office.json(&["team", "pending"]);
    let shown = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == id.as_str())
        .expect("the office sees the pending device");
    assert_eq!(
        shown["safety_number"],
        number.as_str(),
        "both screens agree"
    );
    office.ok(&["team", "approve", &id[..10], "--safety-number", &number]);
    device.ok(&["sync"]);
    device
}

/// Writes an intake file with `note` and returns its path.
pub fn intake_file(root: &Path, note: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/intake.json"))
            .unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["note"] = serde_json::json!(note);
    let path = root.join(format!("intake-{}.json", crate::field::short_hash(note)));
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn short_hash(text: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    format!("{h:016x}")
}

/// Records an intake on `device`; returns the case id.
pub fn record(root: &Path, device: &Device, note: &str) -> String {
    let path = intake_file(root, note);
    device.json(&["intake", "--from-file", path.to_str().unwrap()])["case"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The case ids on a device, sorted.
pub fn case_ids(device: &Device) -> Vec<String> {
    let list = device.json(&["cases", "list"]);
    let mut ids: Vec<String> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Every file under `dirs` holding any of `needles`, with the needle.
pub fn scan(dirs: &[&Path], needles: &[&str]) -> (usize, Vec<String>) {
    let mut files = 0;
    let mut hits = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        files += 1;
        for needle in needles {
            let n = needle.as_bytes();
            if data.windows(n.len()).any(|w| w == n) {
                hits.push(format!("{} holds {needle:?}", path.display()));
            }
        }
    }
    (files, hits)
}

type Trigger = Option<(u64, Box<dyn FnOnce() + Send>)>;

/// A TCP proxy on a loopback port that forwards to a relay and, once
/// armed, runs an action when clients have sent a number of bytes more.
pub struct Proxy {
    /// The proxy's port.
    pub port: u16,
    sent: Arc<AtomicU64>,
    trigger: Arc<Mutex<Trigger>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts the proxy in front of `target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let trigger: Arc<Mutex<Trigger>> = Arc::new(Mutex::new(None));
        let (sent2, stop2, trigger2) = (sent.clone(), stop.clone(), trigger.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut c_read = client.try_clone().unwrap();
                let mut u_write = upstream.try_clone().unwrap();
                let (sent, trigger) = (sent2.clone(), trigger2.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || u_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        let mut slot = trigger.lock().unwrap();
                        if slot.as_ref().is_some_and(|(at, _)| total > *at)
                            && let Some((_, action)) = slot.take()
                        {
                            action();
                        }
                    }
                    let _ = u_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut u_read, mut c_write) = (upstream, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            port,
            sent,
            trigger,
            stop,
        }
    }

    /// Runs `action` once clients have sent `bytes` more than so far.
    pub fn arm(&self, bytes: u64, action: impl FnOnce() + Send + 'static) {
        let at = self.sent.load(Ordering::SeqCst) + bytes;
        *self.trigger.lock().unwrap() = Some((at, Box::new(action)));
    }

    /// Bytes clients have sent through the proxy.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
