//! A field officer back in coverage on a weak link: 100 intakes recorded
//! offline, synced through a link of 64 kbit/s with 400 ms round trips
//! that drops the connection after every 32 KiB. The officer (here, a
//! loop) runs `amana sync` again after each failure. Against the bytes of
//! the envelopes carrying those intakes and the same sync on the same link
//! without the cuts.

use std::path::Path;
use std::time::{Duration, Instant};

use amana_core::envelope::EnvelopeHeader;
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use anyhow::{Result, bail};

use crate::link::{Link, Shape, Traffic};
use crate::relay::{self, Relay};
use crate::table::{Row, bytes};
use crate::team::{Team, env, typical_case};
use amana_core::sync::sync;

/// Most sync attempts before the bench gives up.
const ATTEMPTS: usize = 300;

/// The field link: 64 kbit/s each way, 400 ms round trip.
fn field_link(cut_every: Option<u64>) -> Shape {
    Shape {
        rate: Some(64_000 / 8),
        one_way: Duration::from_millis(200),
        cut_every,
    }
}

/// What syncing through a link took.
struct Run {
    /// `amana sync` runs until one succeeded.
    attempts: usize,
    time: Duration,
    /// Bytes on the wire.
    traffic: Traffic,
    /// Request bytes (paths and bodies, every attempt of every request,
    /// whether it arrived or not) the device sent.
    requests: u64,
}

/// Syncs `store` through `link` until a sync succeeds.
fn sync_until_done(team: &Team, store: &mut DeviceStore, link: &Link) -> Result<Run> {
    let via = relay::url(link.port, team.pin.is_some());
    let mut client = team.client(&via)?;
    let before = link.traffic();
    let started = Instant::now();
    for attempt in 1..=ATTEMPTS {
        match sync(store, &mut client, &mut env(), &mut |_| {}) {
            Ok(_) => {
                return Ok(Run {
                    attempts: attempt,
                    time: started.elapsed(),
                    traffic: link.traffic().since(before),
                    requests: client.bytes_sent,
                });
            }
            Err(e) if attempt == ATTEMPTS => {
                bail!(
                    "no sync completed in {ATTEMPTS} attempts on the cutting link; last error: {e:#}"
                )
            }
            Err(_) => {}
        }
    }
    unreachable!("the loop returns or fails on its last attempt")
}

/// The bytes of `device`'s envelopes at the relay.
fn envelope_bytes(team: &Team, reader: &DeviceStore, device: &DeviceStore) -> Result<u64> {
    let mut client = team.client(&team.url)?;
    let (mut cursor, mut total) = (0, 0);
    loop {
        let page = client.page(&mut env(), reader.keys(), cursor, 1000)?;
        for entry in &page.entries {
            let header = entry
                .bytes
                .first_chunk()
                .and_then(|h| EnvelopeHeader::decode(h).ok());
            if header.is_some_and(|h| h.device == device.keys().device_id()) {
                total += entry.bytes.len() as u64;
            }
        }
        cursor = page.next_cursor;
        if !page.more {
            return Ok(total);
        }
    }
}

/// Cutting runs: where a cut falls decides what it costs, so the figure is
/// the mean over several devices, each with its own link.
const CUT_RUNS: usize = 3;

/// `intakes` intakes through the clean link, then through the cutting
/// link on each of [`CUT_RUNS`] devices.
pub fn run(dir: &Path, intakes: usize) -> Result<Vec<Row>> {
    let relay = Relay::start(&dir.join("relay.sqlite"), true)?;
    let (mut team, mut office) = Team::create(&dir.join("team"), &relay.url(), relay.pin)?;
    let mut devices = Vec::new();
    for _ in 0..=CUT_RUNS {
        let mut device = team.enrol(&mut office, Role::Field)?;
        team.sync(&mut device)?;
        for _ in 0..intakes {
            device.record_intake(&typical_case())?;
        }
        devices.push(device);
    }
    let (clean_device, cut_devices) = devices.split_first_mut().expect("devices");
    let clean_link = Link::start(relay.port, field_link(None))?;
    let clean = sync_until_done(&team, clean_device, &clean_link)?;
    let (mut shares, mut runs, mut envelopes_total) = (Vec::new(), Vec::new(), 0);
    for device in cut_devices.iter_mut() {
        // The other devices' intakes are already at the relay: each run
        // also pulls them, as a device back in coverage would.
        let cut_link = Link::start(relay.port, field_link(Some(32 * 1024)))?;
        let cut = sync_until_done(&team, device, &cut_link)?;
        let envelopes = envelope_bytes(&team, &office, device)?;
        let resent = cut.requests.saturating_sub(clean.requests);
        shares.push(resent as f64 / envelopes as f64);
        envelopes_total += envelopes;
        runs.push((cut, resent));
    }
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    let worst = shares.iter().cloned().fold(0.0, f64::max);
    let n = runs.len() as f64;
    let avg = |f: &dyn Fn(&(Run, u64)) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let resent = avg(&|(_, r)| *r as f64);
    let sent = avg(&|(c, _)| c.requests as f64);
    let wire = avg(&|(c, _)| c.traffic.up as f64);
    let envelopes = envelopes_total as f64 / n;
    Ok(vec![
        Row::new(
            format!("{intakes} intakes over 64 kbit/s, 400 ms RTT, cut every 32 KiB: completes ({CUT_RUNS} runs)"),
            format!(
                "yes: {} sync run(s) each, {:.1} cuts, {:.1} s (mean)",
                runs.iter().map(|(c, _)| c.attempts).max().unwrap_or(0),
                avg(&|(c, _)| c.traffic.cuts as f64),
                avg(&|(c, _)| c.time.as_secs_f64())
            ),
        )
        .baseline_only(format!("{:.1} s on the same link uncut", clean.time.as_secs_f64()))
        .target("completes", true),
        Row::new(
            format!("request bytes sent again because of the cuts (mean; worst run {:.0}%)", worst * 100.0),
            format!("{} ({} sent, {} uncut)", bytes(resent), bytes(sent), bytes(clean.requests as f64)),
        )
        .baseline(format!("{} of envelopes", bytes(envelopes)), mean)
        .target("≤ 10%", mean <= 0.10),
        Row::new(
            "bytes on the wire, cutting link (TLS handshakes, headers, resent)",
            bytes(wire),
        )
        .baseline(format!("{} uncut", bytes(clean.traffic.up as f64)), wire / clean.traffic.up as f64),
    ])
}
