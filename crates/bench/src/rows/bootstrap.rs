//! A new office laptop joins a team with years of cases: bytes it
//! downloads and seconds until it lists them, against `automerge::save()`
//! of the same documents and the time to load them.

use std::path::Path;
use std::time::Instant;

use amana_core::roster::Role;
use anyhow::{Result, ensure};

use crate::link::{Link, Shape};
use crate::relay::{self, Relay};
use crate::table::{Row, bytes};
use crate::team::{LogWriter, Team, typical_case};

/// Cases per envelope in the generated log (a field device syncing after
/// a few intakes).
const CASES_PER_ENVELOPE: usize = 5;
/// Envelopes per upload, as the engine batches them.
const UPLOAD: usize = 20;

/// Writes a log of `cases` intakes by four field devices, then times a
/// fresh device's first sync and listing.
pub fn run(dir: &Path, cases: usize) -> Result<Vec<Row>> {
    let relay = Relay::start(&dir.join("relay.sqlite"), false)?;
    let link = Link::start(relay.port, Shape::default())?;
    let (mut team, mut office) = Team::create(&dir.join("team"), &relay.url(), None)?;
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut device = team.enrol(&mut office, Role::Field)?;
        team.sync(&mut device)?;
        writers.push(device);
    }

    let mut saved_docs = Vec::with_capacity(cases);
    let mut raw_changes = 0;
    let per_device = cases.div_ceil(writers.len());
    for device in &writers {
        let mut log = LogWriter::new(device)?;
        let mut client = team.client(&team.url)?;
        let mut env = crate::team::env();
        let count = per_device.min(cases - saved_docs.len());
        let mut batch = Vec::new();
        let mut written = 0;
        while written < count {
            let n = CASES_PER_ENVELOPE.min(count - written);
            let intakes: Vec<_> = (0..n).map(|_| typical_case()).collect();
            let (envelope, made) = log.seal_intakes(&intakes)?;
            for m in made {
                raw_changes += m.change;
                saved_docs.push(m.saved);
            }
            batch.push(envelope);
            written += n;
            if batch.len() == UPLOAD || written == count {
                let outcome = client.upload(&mut env, device.keys(), &batch)?;
                ensure!(
                    outcome.refused.is_none(),
                    "the relay refused the bench log: {:?}",
                    outcome.refused
                );
                batch.clear();
            }
        }
    }

    // The new device: enrolled, then its first sync through the link.
    let mut fresh = team.enrol(&mut office, Role::Field)?;
    let before = link.traffic();
    let started = Instant::now();
    let report = team.sync_via(&mut fresh, &relay::url(link.port, false))?;
    let synced = started.elapsed();
    let listed = fresh.cases()?.len();
    let usable = started.elapsed();
    let traffic = link.traffic().since(before);
    ensure!(
        listed == cases,
        "the new device lists {listed} cases, not {cases}"
    );

    // Baseline: the same documents as automerge saves them, and loading them.
    let saved: usize = saved_docs.iter().map(Vec::len).sum();
    let started = Instant::now();
    for doc in &saved_docs {
        automerge::AutoCommit::load(doc)?;
    }
    let load = started.elapsed();

    let down = traffic.down as f64;
    Ok(vec![
        Row::new(
            format!("new device bootstrap, {cases} cases: bytes downloaded"),
            bytes(down),
        )
        .baseline(
            format!("{} automerge save()", bytes(saved as f64)),
            down / saved as f64,
        )
        .target("≤ 1.5×", down <= 1.5 * saved as f64),
        Row::new(
            format!("new device bootstrap, {cases} cases: seconds to usable (sync + list)"),
            format!(
                "{:.2} s (sync {:.2} s, {} requests)",
                usable.as_secs_f64(),
                synced.as_secs_f64(),
                report.requests
            ),
        )
        .baseline(
            format!("{:.2} s automerge load", load.as_secs_f64()),
            usable.as_secs_f64() / load.as_secs_f64(),
        )
        .target("≤ 3 s", usable.as_secs_f64() <= 3.0),
        Row::new(
            "the same log as raw Automerge changes",
            bytes(raw_changes as f64),
        ),
    ])
}
