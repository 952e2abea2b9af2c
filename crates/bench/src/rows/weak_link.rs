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

/// `intakes` intakes through the clean and the cutting link.
pub fn run(dir: &Path, intakes: usize) -> Result<Vec<Row>> {
    let relay = Relay::start(&dir.join("relay.sqlite"), true)?;
    let (mut team, mut office) = Team::create(&dir.join("team"), &relay.url(), relay.pin)?;
    let mut clean_device = team.enrol(&mut office, Role::Field)?;
    let mut cut_device = team.enrol(&mut office, Role::Field)?;
    for device in [&mut clean_device, &mut cut_device] {
        team.sync(device)?;
        for _ in 0..intakes {
            device.record_intake(&typical_case())?;
        }
    }
    let clean_link = Link::start(relay.port, field_link(None))?;
    let clean = sync_until_done(&team, &mut clean_device, &clean_link)?;
    let cut_link = Link::start(relay.port, field_link(Some(32 * 1024)))?;
    let cut = sync_until_done(&team, &mut cut_device, &cut_link)?;
    let envelopes = envelope_bytes(&team, &office, &cut_device)?;
    let resent = cut.requests.saturating_sub(clean.requests);
    let share = resent as f64 / envelopes as f64;
    let wire = cut.traffic.up.saturating_sub(clean.traffic.up);
    Ok(vec![
        Row::new(
            format!("{intakes} intakes over 64 kbit/s, 400 ms RTT, cut every 32 KiB: completes"),
            format!(
                "yes: {} sync run(s), {} cuts, {:.1} s",
                cut.attempts,
                cut.traffic.cuts,
                cut.time.as_secs_f64()
            ),
        )
        .baseline_only(format!(
            "{:.1} s on the same link uncut",
            clean.time.as_secs_f64()
        ))
        .target("completes", true),
        Row::new(
            "request bytes sent again because of the cuts",
            format!(
                "{} ({} sent, {} uncut)",
                bytes(resent as f64),
                bytes(cut.requests as f64),
                bytes(clean.requests as f64)
            ),
        )
        .baseline(format!("{} of envelopes", bytes(envelopes as f64)), share)
        .target("≤ 10%", share <= 0.10),
        Row::new(
            "all bytes sent on the wire beyond the uncut link's (TLS handshakes, headers, resent)",
            bytes(wire as f64),
        )
        .baseline(
            format!("{} uncut", bytes(clean.traffic.up as f64)),
            cut.traffic.up as f64 / clean.traffic.up as f64,
        ),
    ])
}
