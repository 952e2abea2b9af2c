//! Outsiders on the internet and the relay's memory: the real
//! `amana-relay` binary on loopback (plain HTTP, as behind a proxy), its
//! peak resident memory read from /proc. Before: 100 connections that
//! each sent 15 MiB of a declared 16 MiB body without any Authorization
//! header took the relay from 8 MiB to 1.5 GiB, and a declared body over
//! the limit got 408 after 30 s instead of 413 at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use amana_e2e::binary;

struct Relay {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Relay {
    fn start() -> Relay {
        Relay::with_limits("")
    }

    /// With `limits` (TOML lines of the `[limits]` table).
    fn with_limits(limits: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("relay.toml");
        std::fs::write(&config, format!("[limits]\n{limits}\n")).unwrap();
        let mut child = Command::new(binary("amana-relay"))
            .args([
                "serve",
                "--insecure-http",
                "--listen",
                "127.0.0.1:0",
                "--db",
            ])
            .arg(dir.path().join("relay.sqlite"))
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(120));
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        });
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let address = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the relay did not start"
            );
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Relay {
            child,
            address,
            _dir: dir,
        }
    }

    /// Peak resident memory (VmHWM) in MiB.
    fn peak_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib / 1024
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `head` then up to `body` bytes (stopping when the relay closes),
/// and returns the status line of the answer.
fn send(address: &str, head: &str, body: usize) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < body {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("no answer")
        .to_owned()
}

const TEAM: &str = "00112233445566778899aabbccddeeff";

#[test]
fn unauthenticated_bodies_are_refused_before_they_are_read() {
    let _alone = super::alone();
    let relay = Relay::start();
    let before = relay.peak_mib();
    let declared = 16 * 1024 * 1024 - 1;
    let head = format!(
        "POST /v1/teams/{TEAM}/envelopes HTTP/1.1\r\nHost: relay\r\nContent-Type: application/vnd.amana.envelopes\r\nContent-Length: {declared}\r\n\r\n"
    );
    let answers: Vec<String> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..100)
            .map(|_| s.spawn(|| send(&relay.address, &head, 15 * 1024 * 1024)))
            .collect();
        senders.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let peak = relay.peak_mib();
    println!(
        "relay peak RSS: {before} MiB before, {peak} MiB after 100 unauthenticated 15 MiB bodies"
    );
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 401")
            || a.starts_with("HTTP/1.1 403")
            || a == "no answer"),
        "{answers:?}"
    );
    assert!(answers.iter().any(|a| a.starts_with("HTTP/1.1 40")));
    assert!(peak < before + 64, "{peak} MiB (from {before} MiB)");
}

#[test]
fn a_declared_body_over_the_limit_is_refused_at_once() {
    let _alone = super::alone();
    let relay = Relay::start();
    for (path, declared) in [
        (format!("/v1/teams/{TEAM}/envelopes"), 16 * 1024 * 1024 + 1),
        ("/v1/teams".to_owned(), 1024 * 1024),
        (format!("/v1/teams/{TEAM}/join"), 1024 * 1024),
    ] {
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: relay\r\nContent-Length: {declared}\r\n\r\n");
        // No body at all: the answer must come from the headers alone
        // (the read timeout is shorter than the relay's request timeout).
        let mut stream = TcpStream::connect(&relay.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = vec![0; 512];
        let n = stream.read(&mut answer).unwrap_or(0);
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer:?}");
        assert!(answer.contains("body_too_large"), "{answer}");
    }
}

/// Whether the relay has closed `stream` (reads end or fail) within
/// `within`.
fn closed_within(mut stream: &TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Slow clients hold nothing for long: connections that trickle their
/// headers, an HTTP/2 connection that sends its preface and then nothing,
/// and connections beyond the per-address bound are closed, while a real
/// request is answered at once.
#[test]
fn slow_clients_are_cut_off_and_a_real_request_still_gets_through() {
    let _alone = super::alone();
    let relay = Relay::with_limits("header_timeout_secs = 2\nmax_connections_per_peer = 150");
    let before = relay.peak_mib();
    let mut slow: Vec<TcpStream> = (0..120)
        .map(|_| {
            let mut s = TcpStream::connect(&relay.address).unwrap();
            s.write_all(b"POST /v1/teams HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let mut h2 = TcpStream::connect(&relay.address).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    // Beyond the bound: closed as accepted.
    let beyond: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(&relay.address).unwrap())
        .collect();
    let refused = beyond
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(500)))
        .count();
    assert!(
        refused >= 25,
        "{refused} of 60 connections beyond the bound were closed"
    );
    drop(beyond);
    // A real request is answered while the slow ones hang.
    let answer = send(
        &relay.address,
        "GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n",
        0,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Trickling a byte a second does not keep them open past the header
    // timeout.
    for _ in 0..2 {
        for s in &mut slow {
            let _ = s.write_all(b"x");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let closed = slow
        .iter()
        .filter(|s| closed_within(s, Duration::from_secs(3)))
        .count();
    assert_eq!(closed, slow.len(), "slow header senders closed");
    assert!(
        closed_within(&h2, Duration::from_secs(3)),
        "a silent HTTP/2 connection closed"
    );
    let peak = relay.peak_mib();
    println!("relay peak RSS under 120 slow clients: {before} -> {peak} MiB");
    assert!(peak < before + 64, "{peak} MiB");
}

/// A header that names a real device of a real team but whose signature
/// is forged gets no further than its headers: the relay checks the
/// signature over the body digest the header declares before it reads a
/// byte of body. (Before: naming a device was enough to have a 16 MiB body
/// read, and six such bodies filled the in-flight budget, so every team
/// got 503 for the request timeout.)
#[test]
fn a_forged_header_naming_a_real_device_reads_no_body() {
    let _alone = super::alone();
    let relay = Relay::start();
    let root = relay._dir.path();
    let token = Command::new(binary("amana-relay"))
        .args(["team-token", "--db"])
        .arg(root.join("relay.sqlite"))
        .output()
        .unwrap();
    assert!(token.status.success());
    std::fs::write(root.join("token"), &token.stdout).unwrap();
    let office = amana_e2e::field::Device::init(root, "office");
    office.ok(&[
        "team",
        "create",
        "--relay",
        &format!("http://{}", relay.address),
        "--token-file",
        root.join("token").to_str().unwrap(),
    ]);
    let status = office.json(&["status"]);
    let (device, team) = (
        status["device"].as_str().unwrap().to_owned(),
        status["team"].as_str().unwrap().to_owned(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let declared = 16 * 1024 * 1024 - 1;
    let head = format!(
        "POST /v1/teams/{team}/envelopes HTTP/1.1\r\nHost: relay\r\nContent-Type: application/vnd.amana.envelopes\r\nContent-Length: {declared}\r\nAuthorization: Amana device={device}, ts={now}, nonce={}, body={}, sig={}\r\n\r\n",
        "00".repeat(16),
        "11".repeat(32),
        "22".repeat(64),
    );
    let before = relay.peak_mib();
    let answers: Vec<String> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..20)
            .map(|_| s.spawn(|| send(&relay.address, &head, 15 * 1024 * 1024)))
            .collect();
        senders.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let peak = relay.peak_mib();
    println!("relay peak RSS: {before} MiB before, {peak} MiB after 20 forged 15 MiB bodies");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 401")),
        "{answers:?}"
    );
    assert!(peak < before + 48, "{peak} MiB (from {before} MiB)");
}
