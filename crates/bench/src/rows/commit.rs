//! Intake commit latency: `record_intake` on a device already holding
//! many cases (the document sealed, the change queued, the transaction
//! flushed to disk), against a plain rusqlite insert of the same number
//! of bytes with the same durability (WAL, `synchronous = FULL`).

use std::path::Path;
use std::time::{Duration, Instant};

use amana_core::case::CaseDoc;
use anyhow::Result;
use rusqlite::{Connection, params};

use crate::table::{Row, Samples, ms};
use crate::team::{new_store, typical_case};

/// Fills a store with `cases`, then times `samples` more intakes, each
/// followed by the same-sized plain insert.
pub fn run(dir: &Path, cases: usize, samples: usize) -> Result<Vec<Row>> {
    let mut store = new_store(&dir.join("device"))?;
    let fill = Instant::now();
    for _ in 0..cases {
        store.record_intake(&typical_case())?;
    }
    let fill = fill.elapsed();

    let plain = Connection::open(dir.join("plain.sqlite"))?;
    plain.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE docs (id BLOB PRIMARY KEY, doc BLOB NOT NULL);
         CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id BLOB NOT NULL, change BLOB NOT NULL);",
    )?;
    let device = store.keys().device_id();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let case = typical_case();
        let t = Instant::now();
        store.record_intake(&case)?;
        ours.push(t.elapsed());

        // The same bytes, unencrypted, in one durable transaction.
        let (mut doc, change) = CaseDoc::create(&case, device)?;
        let saved = doc.save();
        let t = Instant::now();
        let tx = plain.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO docs (id, doc) VALUES (?1, ?2)",
            params![case.case_id.as_bytes(), saved],
        )?;
        tx.execute(
            "INSERT INTO outbox (id, change) VALUES (?1, ?2)",
            params![case.case_id.as_bytes(), change],
        )?;
        tx.commit()?;
        baseline.push(t.elapsed());
    }
    let (ours, baseline) = (Samples::new(ours), Samples::new(baseline));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let per_fill = fill / cases.max(1) as u32;
    Ok(vec![
        Row::new(
            format!("intake commit p50, store holding {cases} cases"),
            ms(ours.p50()),
        )
        .baseline(
            format!("{} plain insert+fsync", ms(baseline.p50())),
            ratio(ours.p50(), baseline.p50()),
        ),
        Row::new(
            format!(
                "intake commit p99, store holding {cases} cases ({} samples)",
                ours.len()
            ),
            ms(ours.p99()),
        )
        .baseline(
            format!("{} plain insert+fsync", ms(baseline.p99())),
            ratio(ours.p99(), baseline.p99()),
        )
        .target("≤ 5 ms", ours.p99() <= Duration::from_millis(5)),
        Row::new(
            format!("filling the store: mean intake over the first {cases}"),
            ms(per_fill),
        ),
    ])
}
