//! Relay ingest: envelopes stored per second with every check (request
//! signature and nonce, structure, age body, team, author on the roster,
//! envelope signature, chain, durable append, signed receipt), uploaded
//! in batches of 100 over loopback HTTP by several devices at once;
//! against Ed25519 verifications per second and durable SQLite inserts
//! per second (batched the same way) on the same machine.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use amana_core::envelope::{EnvelopeLimits, SealedEnvelope};
use amana_core::roster::Role;
use anyhow::{Result, ensure};
use rusqlite::{Connection, params};

use crate::relay::Relay;
use crate::table::Row;
use crate::team::{LogWriter, Team, env, typical_case};

/// Envelopes per upload request.
const BATCH: usize = 100;

/// `devices` devices each upload `batches` batches of 100 one-intake
/// envelopes, all at once.
pub fn run(dir: &Path, devices: usize, batches: usize) -> Result<Vec<Row>> {
    let relay = Relay::start(&dir.join("relay.sqlite"), false)?;
    let (mut team, mut office) = Team::create(&dir.join("team"), &relay.url(), None)?;
    let mut work = Vec::new();
    let mut sample = None;
    for _ in 0..devices {
        let mut device = team.enrol(&mut office, Role::Field)?;
        team.sync(&mut device)?;
        let mut log = LogWriter::new(&device)?;
        let mut uploads = Vec::new();
        for _ in 0..batches {
            let batch = (0..BATCH)
                .map(|_| log.seal_intakes(&[typical_case()]).map(|(e, _)| e))
                .collect::<Result<Vec<_>>>()?;
            uploads.push(batch);
        }
        if sample.is_none() {
            sample = Some((uploads[0][0].clone(), device.keys().verifying_key()));
        }
        work.push((device, uploads));
    }
    let total = devices * batches * BATCH;
    let barrier = Arc::new(Barrier::new(devices + 1));
    let team = Arc::new(team);
    let threads: Vec<_> = work
        .into_iter()
        .map(|(device, uploads)| {
            let (barrier, team) = (barrier.clone(), team.clone());
            std::thread::spawn(move || -> Result<usize> {
                let mut client = team.client(&team.url)?;
                let mut env = env();
                barrier.wait();
                let mut stored = 0;
                for batch in uploads {
                    let outcome = client.upload(&mut env, device.keys(), &batch)?;
                    ensure!(outcome.refused.is_none(), "refused: {:?}", outcome.refused);
                    stored += outcome.accepted.len();
                }
                Ok(stored)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut stored = 0;
    for thread in threads {
        stored += thread.join().expect("an upload thread panicked")?;
    }
    let elapsed = started.elapsed();
    ensure!(
        stored == total,
        "the relay stored {stored} of {total} envelopes"
    );
    let rate = total as f64 / elapsed.as_secs_f64();

    let (envelope, key) = sample.expect("at least one device");
    let verify = verify_rate(&envelope, &key)?;
    let insert = insert_rate(dir, &envelope)?;
    Ok(vec![
        Row::new(
            format!("relay ingest, {devices} devices × {batches} batches of {BATCH}, all checks"),
            format!("{rate:.0} envelopes/s"),
        )
        .baseline(
            format!("{verify:.0} Ed25519 verify/s (1 core)"),
            rate / verify,
        )
        .target("≥ 10,000/s", rate >= 10_000.0),
        Row::new(
            "relay ingest against durable SQLite inserts",
            format!("{rate:.0} envelopes/s"),
        )
        .baseline(
            format!("{insert:.0} inserts/s (100 per transaction)"),
            rate / insert,
        ),
    ])
}

/// Signature checks of one envelope per second, for about a second.
fn verify_rate(envelope: &[u8], key: &ed25519_dalek::VerifyingKey) -> Result<f64> {
    let parsed = SealedEnvelope::parse(envelope.to_vec(), &EnvelopeLimits::default())?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            parsed.verify_signature(key)?;
        }
        n += 100;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Durable inserts of envelope-sized rows per second, 100 per transaction.
fn insert_rate(dir: &Path, envelope: &[u8]) -> Result<f64> {
    let conn = Connection::open(dir.join("plain.sqlite"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE envelopes (cursor INTEGER PRIMARY KEY, device BLOB NOT NULL,
             seq INTEGER NOT NULL, bytes BLOB NOT NULL, UNIQUE (device, seq));",
    )?;
    let started = Instant::now();
    let mut n = 0i64;
    while started.elapsed() < Duration::from_secs(2) {
        let tx = conn.unchecked_transaction()?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO envelopes (device, seq, bytes) VALUES (?1, ?2, ?3)")?;
            for _ in 0..BATCH {
                insert.execute(params![[7u8; 16], n, envelope])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
