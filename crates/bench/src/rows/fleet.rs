//! Many devices syncing against one relay: teams of field devices on a
//! relay in its own process (TLS, SQLite), each device a thread making the
//! requests of a field device's sync (the roster after the one it holds,
//! a page with the digest of the heads it holds, one new envelope).
//! Latency is timed per request at the device; the relay's memory is read
//! from /proc. The devices are light on purpose (no store work), so the
//! relay is what is measured: `one_sync` follows the requests the sync
//! engine makes for a field device, and must change when those do.

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use amana_core::TeamId;
use amana_core::framing::PageHead;
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::RelayClient;
use amana_core::sync::http::HttpTransport;
use anyhow::{Result, ensure};

use crate::relay::ChildRelay;
use crate::table::{Row, Samples, bytes, ms};
use crate::team::{LogWriter, Team, env, transport, typical_case};

/// Devices per team (an office and field devices).
const TEAM: usize = 20;

/// A simulated device: its store (for its keys) and envelopes to upload.
struct Sim {
    store: DeviceStore,
    team: TeamId,
    envelopes: Vec<Vec<u8>>,
}

/// `devices` devices in teams of 20: one burst (every device at the same
/// instant), then `rounds` syncs each spread over `spread`.
pub fn run(dir: &Path, devices: usize, rounds: usize, spread: Duration) -> Result<Vec<Row>> {
    let db = dir.join("relay.sqlite");
    let sims = {
        let setup = ChildRelay::start(dir, &db)?;
        let mut sims = Vec::new();
        let mut t = 0;
        while sims.len() < devices {
            t += 1;
            let (mut team, mut office) = Team::create(
                &dir.join(format!("team-{t}")),
                &setup.url(),
                Some(setup.pin),
            )?;
            team.sync(&mut office)?;
            let mut members = vec![office];
            while members.len() < TEAM && sims.len() + members.len() < devices {
                let mut device = team.enrol(&mut members[0], Role::Field)?;
                team.sync(&mut device)?;
                members.push(device);
            }
            for store in members {
                let mut log = LogWriter::new(&store)?;
                let envelopes = (0..=rounds)
                    .map(|_| log.seal_intakes(&[typical_case()]).map(|(e, _)| e))
                    .collect::<Result<Vec<_>>>()?;
                sims.push(Sim {
                    store,
                    team: team.id,
                    envelopes,
                });
            }
        }
        sims
    };
    // A fresh relay process on the same database: its peak memory is that
    // of the load alone.
    let relay = ChildRelay::start(dir, &db)?;
    let (url, pin) = (relay.url(), relay.pin);
    let latencies = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let barrier = Arc::new(Barrier::new(sims.len() + 1));
    let threads: Vec<_> = sims
        .into_iter()
        .enumerate()
        .map(|(i, sim)| {
            let (latencies, barrier, url) = (latencies.clone(), barrier.clone(), url.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut client = RelayClient::new(transport(&url, Some(pin))?, sim.team);
                let mut envelopes = sim.envelopes.into_iter();
                let (mut cursor, mut held) = (0, Vec::new());
                barrier.wait();
                let burst = one_sync(
                    &mut client,
                    &sim.store,
                    &mut cursor,
                    &mut held,
                    envelopes.next(),
                )?;
                latencies.lock().expect("lock").0.push(burst);
                barrier.wait();
                // Spread the rounds: each device starts at its own offset.
                let step = spread / rounds.max(1) as u32;
                let offset = step.mul_f64((i * 7919 % 1000) as f64 / 1000.0);
                std::thread::sleep(offset);
                for envelope in envelopes {
                    let started = Instant::now();
                    let timed = one_sync(
                        &mut client,
                        &sim.store,
                        &mut cursor,
                        &mut held,
                        Some(envelope),
                    )?;
                    latencies.lock().expect("lock").1.extend(timed);
                    std::thread::sleep(step.saturating_sub(started.elapsed()));
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let burst_started = Instant::now();
    barrier.wait();
    let burst_time = burst_started.elapsed();
    let mut peak_during = 0;
    while !threads.iter().all(|t| t.is_finished()) {
        peak_during = peak_during.max(relay.rss()?.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    for thread in threads {
        thread.join().expect("a device thread panicked")?;
    }
    let (_, hwm) = relay.rss()?;
    let (burst, steady) = std::mem::take(&mut *latencies.lock().expect("lock"));
    ensure!(
        !burst.is_empty() && !steady.is_empty(),
        "no request was timed"
    );
    // The burst by request (roster, page, upload): where its tail is.
    let by_request: Vec<Samples> = (0..REQUESTS.len())
        .map(|i| {
            Samples::new(
                burst
                    .iter()
                    .filter_map(|sync| sync.get(i).copied())
                    .collect(),
            )
        })
        .collect();
    let (burst, steady) = (Samples::new(burst.concat()), Samples::new(steady));
    let limit = Duration::from_millis(100);
    let rss_limit = 150 * 1024 * 1024;
    Ok(vec![
        Row::new(
            format!(
                "{devices} devices, {rounds} syncs each over {} s: request latency p50 / p99 ({} requests)",
                spread.as_secs(),
                steady.len()
            ),
            format!("{} / {}", ms(steady.p50()), ms(steady.p99())),
        )
        .target("p99 ≤ 100 ms", steady.p99() <= limit),
        Row::new(
            format!(
                "{devices} devices all at the same instant: p50 / p99 ({} requests, {:.2} s for all)",
                burst.len(),
                burst_time.as_secs_f64()
            ),
            format!("{} / {}", ms(burst.p50()), ms(burst.p99())),
        )
        .target("p99 ≤ 100 ms", burst.p99() <= limit),
        Row::new(
            format!("the same burst by request ({}): p50 / p99", REQUESTS.join(", ")),
            by_request
                .iter()
                .map(|s| format!("{} / {}", ms(s.p50()), ms(s.p99())))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Row::new(
            format!("relay peak RSS under {devices} devices (VmHWM)"),
            bytes(hwm as f64),
        )
        .baseline_only(format!("{} highest sampled VmRSS", bytes(peak_during as f64)))
        .target("≤ 150 MiB", hwm <= rss_limit),
    ])
}

/// The requests `one_sync` makes, in order (the first one also connects).
const REQUESTS: [&str; 3] = ["roster with TLS handshake", "page", "upload"];

/// The requests of one field-device sync, each timed.
fn one_sync(
    client: &mut RelayClient<HttpTransport>,
    store: &DeviceStore,
    cursor: &mut u64,
    held: &mut Vec<PageHead>,
    envelope: Option<Vec<u8>>,
) -> Result<Vec<Duration>> {
    let mut env = env();
    let keys = store.keys();
    let mut timed = Vec::new();
    let ops_held = store.roster()?.map_or(0, |r| r.ops().len());
    let t = Instant::now();
    client.roster_after(&mut env, keys, ops_held)?;
    timed.push(t.elapsed());
    let t = Instant::now();
    let page = client.page_within(&mut env, keys, *cursor, 200, 64 * 1024, held)?;
    timed.push(t.elapsed());
    *cursor = page.next_cursor;
    *held = page.heads;
    if let Some(envelope) = envelope {
        let t = Instant::now();
        let outcome = client.upload(&mut env, keys, &[envelope])?;
        timed.push(t.elapsed());
        ensure!(outcome.refused.is_none(), "refused: {:?}", outcome.refused);
    }
    Ok(timed)
}
