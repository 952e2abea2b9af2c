//! A relay under attack while a real device works: for `secs` seconds,
//! threads from another address (127.0.0.2, so the per-address bounds
//! apply to them and not to the device) send garbage bytes, trickle
//! headers (slowloris), declare bodies over the limit, and send 15 MiB
//! bodies without authorization, while the office records intakes and a
//! field device syncs them. Reported: the relay's peak resident memory
//! (its own process, /proc), the 5xx answers anyone saw, and the field
//! device's sync time against the same syncs with no barrage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use anyhow::{Result, ensure};
use socket2::{Domain, Socket, Type};

use crate::relay::ChildRelay;
use crate::table::{Row, Samples, bytes, ms};
use crate::team::{Team, typical_case};

/// Syncs timed per phase.
const ROUNDS: usize = 10;

/// A TCP connection to the relay from 127.0.0.2.
fn connect(relay: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
    socket.connect_timeout(&relay.into(), Duration::from_secs(2))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Sends `head` and up to `body` bytes; counts a 5xx answer.
fn attack(relay: SocketAddr, head: &[u8], body: usize, fivexx: &AtomicU64) {
    let Ok(mut stream) = connect(relay) else {
        return;
    };
    if stream.write_all(head).is_err() {
        return;
    }
    let chunk = [0x5a_u8; 64 * 1024];
    let mut sent = 0;
    while sent < body && stream.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let mut answer = [0u8; 16];
    if let Ok(n) = stream.read(&mut answer)
        && answer[..n].starts_with(b"HTTP/1.1 5")
    {
        fivexx.fetch_add(1, Ordering::Relaxed);
    }
}

/// The barrage's threads, until `stop`.
fn barrage(relay: SocketAddr, stop: &AtomicBool, fivexx: &AtomicU64, sent: &AtomicU64) {
    const TEAM: &str = "00112233445566778899aabbccddeeff";
    std::thread::scope(|s| {
        // Garbage bytes.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                attack(relay, &[0xff; 4096], 0, fivexx);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Declared over the limit, and unauthenticated large bodies.
        for _ in 0..2 {
            s.spawn(|| {
                let over = format!(
                    "POST /v1/teams/{TEAM}/envelopes HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n",
                    64 * 1024 * 1024
                );
                let large = format!(
                    "POST /v1/teams/{TEAM}/envelopes HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n",
                    16 * 1024 * 1024 - 1
                );
                while !stop.load(Ordering::Relaxed) {
                    attack(relay, over.as_bytes(), 0, fivexx);
                    attack(relay, large.as_bytes(), 15 * 1024 * 1024, fivexx);
                    attack(relay, b"POST /v1/teams HTTP/1.1\r\nHost: relay\r\nContent-Length: 9\r\n\r\nnot a key", 0, fivexx);
                    sent.fetch_add(3, Ordering::Relaxed);
                }
            });
        }
        // Slowloris: 200 connections trickling headers, reopened when
        // the relay closes them.
        s.spawn(|| {
            let mut slow: Vec<Option<TcpStream>> = (0..200).map(|_| None).collect();
            while !stop.load(Ordering::Relaxed) {
                for slot in &mut slow {
                    match slot {
                        Some(stream) => {
                            if stream.write_all(b"x").is_err() {
                                *slot = None;
                            }
                        }
                        None => {
                            if let Ok(mut stream) = connect(relay)
                                && stream
                                    .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                                    .is_ok()
                            {
                                sent.fetch_add(1, Ordering::Relaxed);
                                *slot = Some(stream);
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    });
}

/// The office records an intake and syncs; the field device's sync that
/// brings it is timed. `ROUNDS` times.
fn timed_syncs(team: &Team, office: &mut DeviceStore, field: &mut DeviceStore) -> Result<Samples> {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        office.record_intake(&typical_case())?;
        team.sync(office)?;
        let started = Instant::now();
        let report = team.sync(field)?;
        times.push(started.elapsed());
        ensure!(
            report.applied_changes > 0,
            "the field device received nothing"
        );
    }
    Ok(Samples::new(times))
}

/// Runs the barrage for `secs` seconds.
pub fn run(dir: &Path, secs: u64) -> Result<Vec<Row>> {
    let relay = ChildRelay::start_guarded(&dir.join("relay.sqlite"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], relay.port));
    let (mut team, mut office) = Team::create(&dir.join("team"), &relay.url(), None)?;
    team.sync(&mut office)?;
    let mut field = team.enrol(&mut office, Role::Field)?;
    team.sync(&mut field)?;
    let unloaded = timed_syncs(&team, &mut office, &mut field)?;
    let (rss_before, _) = relay.rss()?;

    let (stop, fivexx, sent) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let (loaded, peak) = std::thread::scope(|s| -> Result<(Vec<Duration>, u64)> {
        s.spawn(|| barrage(address, &stop, &fivexx, &sent));
        let mut loaded = Vec::new();
        let mut peak = 0;
        let mut failed = None;
        // Let the barrage build up, then sync throughout.
        std::thread::sleep(Duration::from_secs(1));
        while started.elapsed() < Duration::from_secs(secs) {
            match timed_syncs(&team, &mut office, &mut field) {
                Ok(samples) => loaded.extend(samples.into_vec()),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            peak = peak.max(relay.rss()?.0);
        }
        stop.store(true, Ordering::Relaxed);
        match failed {
            Some(e) => Err(e.context("a sync failed under the barrage")),
            None => Ok((loaded, peak)),
        }
    })?;
    let (_, hwm) = relay.rss()?;
    let loaded = Samples::new(loaded);
    let fivexx = fivexx.load(Ordering::Relaxed);
    let ratio = loaded.p50().as_secs_f64() / unloaded.p50().as_secs_f64().max(1e-9);
    let attempts = sent.load(Ordering::Relaxed);
    Ok(vec![
        Row::new(
            format!("barrage {secs} s ({attempts} hostile connections): relay peak RSS"),
            bytes(hwm.max(peak) as f64),
        )
        .baseline(
            format!("{} before it", bytes(rss_before as f64)),
            hwm as f64 / rss_before.max(1) as f64,
        )
        .target("≤ 300 MiB", hwm <= 300 * 1024 * 1024),
        Row::new(
            "barrage: 5xx answers (hostile and device)",
            fivexx.to_string(),
        )
        .target("0", fivexx == 0),
        Row::new(
            format!(
                "barrage: field device sync p50 / p99 ({} syncs)",
                loaded.len()
            ),
            format!("{} / {}", ms(loaded.p50()), ms(loaded.p99())),
        )
        .baseline(
            format!(
                "{} / {} with no barrage",
                ms(unloaded.p50()),
                ms(unloaded.p99())
            ),
            ratio,
        )
        .target("≤ 3×", ratio <= 3.0),
    ])
}
