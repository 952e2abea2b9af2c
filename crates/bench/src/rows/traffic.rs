//! What a field device sends and receives: bytes uploaded per intake
//! (HTTP requests whole: request line, headers, bodies) against the raw
//! Automerge changes of the same intakes, and a sync with nothing new.

use std::path::Path;

use amana_core::case::CaseDoc;
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use anyhow::Result;

use crate::link::{Link, Shape, Traffic};
use crate::relay::{self, Relay};
use crate::table::{Row, bytes};
use crate::team::{Team, typical_case};

/// Records `n` typical intakes on `store`; returns their raw change bytes.
fn record(store: &mut DeviceStore, n: usize) -> Result<usize> {
    let device = store.keys().device_id();
    let mut raw = 0;
    for _ in 0..n {
        let case = typical_case();
        raw += CaseDoc::create(&case, device)?.1.len();
        store.record_intake(&case)?;
    }
    Ok(raw)
}

/// A team with `field` field devices that have each recorded a case and
/// seen everyone else's: the state in which a no-op sync happens.
fn settled_team(
    dir: &Path,
    url: &str,
    pin: Option<amana_core::Digest>,
    field: usize,
) -> Result<(Team, Vec<DeviceStore>)> {
    let (mut team, mut office) = Team::create(dir, url, pin)?;
    let mut devices = Vec::new();
    for _ in 0..field {
        let mut device = team.enrol(&mut office, Role::Field)?;
        team.sync(&mut device)?;
        record(&mut device, 1)?;
        devices.push(device);
    }
    for _ in 0..2 {
        for device in &mut devices {
            team.sync(device)?;
        }
        team.sync(&mut office)?;
    }
    Ok((team, devices))
}

/// Bytes per intake, batched by 20 and one by one, and the no-op sync.
pub fn run(dir: &Path, team_size: usize) -> Result<Vec<Row>> {
    let relay = Relay::start(&dir.join("relay.sqlite"), false)?;
    let link = Link::start(relay.port, Shape::default())?;
    let via = relay::url(link.port, false);
    let (team, mut devices) = settled_team(&dir.join("http"), &relay.url(), None, team_size - 1)?;
    let (first, rest) = devices
        .split_first_mut()
        .expect("the team has field devices");

    // 100 intakes, recorded offline 20 at a time, each batch one sync;
    // between batches another device writes, so every sync also pulls and
    // the first envelope carries witnesses.
    let (mut raw, mut up, mut requests) = (0, 0, 0);
    for round in 0..5 {
        raw += record(first, 20)?;
        let before = link.traffic();
        let report = team.sync_via(first, &via)?;
        up += link.traffic().since(before).up;
        requests += report.requests;
        let other = &mut rest[round % rest.len()];
        record(other, 1)?;
        team.sync(other)?;
    }
    let (per_intake, raw_per) = (up as f64 / 100.0, raw as f64 / 100.0);
    let limit = 1.5 * raw_per + 150.0;

    // The same, synced after every intake.
    let (mut raw1, mut up1) = (0, 0);
    for _ in 0..20 {
        raw1 += record(first, 1)?;
        let before = link.traffic();
        team.sync_via(first, &via)?;
        up1 += link.traffic().since(before).up;
    }

    // Nothing new anywhere: a no-op sync.
    team.sync_via(first, &via)?;
    let before = link.traffic();
    let report = team.sync_via(first, &via)?;
    let noop: Traffic = link.traffic().since(before);
    drop(link);
    drop(relay);

    // The same no-op over TLS on a new connection, as each `amana sync` is.
    let tls = Relay::start(&dir.join("relay-tls.sqlite"), true)?;
    let tls_link = Link::start(tls.port, Shape::default())?;
    let (tls_team, mut tls_devices) =
        settled_team(&dir.join("tls"), &tls.url(), tls.pin, team_size - 1)?;
    let tls_via = relay::url(tls_link.port, true);
    tls_team.sync_via(&mut tls_devices[0], &tls_via)?;
    let before = tls_link.traffic();
    tls_team.sync_via(&mut tls_devices[0], &tls_via)?;
    let tls_noop = tls_link.traffic().since(before);

    Ok(vec![
        Row::new(
            "bytes uploaded per intake, 20 per sync (HTTP, all requests of the sync)",
            bytes(per_intake),
        )
        .baseline(
            format!("{} raw Automerge change", bytes(raw_per)),
            per_intake / raw_per,
        )
        .target(
            format!("≤ 1.5× + 150 B = {}", bytes(limit)),
            per_intake <= limit,
        ),
        Row::new(
            "bytes uploaded per intake, one intake per sync",
            bytes(up1 as f64 / 20.0),
        )
        .baseline(
            format!("{} raw Automerge change", bytes(raw1 as f64 / 20.0)),
            up1 as f64 / raw1 as f64,
        ),
        Row::new(
            format!("requests per sync pushing 20 intakes (team of {team_size})"),
            format!("{:.1}", requests as f64 / 5.0),
        ),
        Row::new(
            format!("no-op sync, field device, team of {team_size}: round trips"),
            report.requests.to_string(),
        )
        .target("≤ 2", report.requests <= 2),
        Row::new(
            "no-op sync: bytes both ways (HTTP)",
            format!(
                "{} ({} up, {} down)",
                bytes(noop.total() as f64),
                noop.up,
                noop.down
            ),
        )
        .target("≤ 2 KiB", noop.total() <= 2048),
        Row::new(
            "no-op sync over TLS, new connection (handshake included)",
            format!(
                "{} ({} up, {} down)",
                bytes(tls_noop.total() as f64),
                tls_noop.up,
                tls_noop.down
            ),
        )
        .baseline(
            format!("{} the same over HTTP", bytes(noop.total() as f64)),
            tls_noop.total() as f64 / noop.total() as f64,
        ),
    ])
}
