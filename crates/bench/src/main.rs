//! `amana-bench`: measures what matters in the field (intake commit
//! latency, bytes per intake, a new device's bootstrap, a no-op sync,
//! relay ingest, many devices at once, a weak and cutting link, a relay
//! under a barrage of hostile traffic) and prints
//! one table, each figure with a baseline measured in the same run.
//!
//! Run it with `cargo run --release -p amana-bench`; `--quick` runs every
//! benchmark at a small size (a smoke test, not figures to report).
//! `docs/performance.md` holds the latest figures and what they mean.

mod link;
mod relay;
mod rows;
mod table;
mod team;

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, ValueEnum};

use table::Row;

/// A group of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Bench {
    /// Intake commit latency with many cases stored.
    Commit,
    /// Bytes per intake and the no-op sync.
    Traffic,
    /// A new device's first sync of a large log.
    Bootstrap,
    /// Relay ingest rate.
    Ingest,
    /// Many devices against one relay.
    Fleet,
    /// A slow link that drops every 32 KiB.
    WeakLink,
    /// Garbage, slow and oversized traffic while a device syncs.
    Barrage,
}

/// Amana's benchmarks: prints one table of figures against same-run
/// baselines. Exit status: 0 when it ran (whatever the figures), 1 when a
/// benchmark could not run, 2 for bad arguments.
#[derive(Parser, Debug)]
#[command(name = "amana-bench", version)]
struct Args {
    /// Only these benchmarks (repeat or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Small sizes throughout: checks the benchmarks run, in seconds.
    #[arg(long)]
    quick: bool,
    /// Cases in the store and in the bootstrap log.
    #[arg(long)]
    cases: Option<usize>,
    /// Simulated devices against one relay.
    #[arg(long)]
    devices: Option<usize>,
}

fn main() {
    let raw: Vec<String> = std::env::args().collect();
    // The relay child process the fleet benchmark starts.
    if raw.get(1).map(String::as_str) == Some("relay") {
        if let Err(e) = relay::child_main(&raw[2..]) {
            eprintln!("amana-bench relay: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let args = Args::parse();
    match run(&args) {
        Ok(failed) => std::process::exit(i32::from(failed)),
        Err(e) => {
            eprintln!("amana-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs the chosen benchmarks, printing the table; true if one failed.
fn run(args: &Args) -> Result<bool> {
    let cases = args.cases.unwrap_or(if args.quick { 300 } else { 10_000 });
    let devices = args.devices.unwrap_or(if args.quick { 40 } else { 500 });
    let all = [
        Bench::Commit,
        Bench::Traffic,
        Bench::Bootstrap,
        Bench::Ingest,
        Bench::Fleet,
        Bench::WeakLink,
        Bench::Barrage,
    ];
    let chosen: Vec<Bench> = all
        .into_iter()
        .filter(|b| args.only.is_empty() || args.only.contains(b))
        .collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut failed = false;
    let started = Instant::now();
    for bench in chosen {
        let dir = tempfile::Builder::new().prefix("amana-bench-").tempdir()?;
        let t = Instant::now();
        eprintln!("amana-bench: running {bench:?}…");
        let result = match bench {
            Bench::Commit => {
                rows::commit::run(dir.path(), cases, if args.quick { 50 } else { 500 })
            }
            Bench::Traffic => rows::traffic::run(dir.path(), 10),
            Bench::Bootstrap => rows::bootstrap::run(dir.path(), cases),
            Bench::Ingest => rows::ingest::run(dir.path(), 4, if args.quick { 2 } else { 25 }),
            Bench::Fleet => rows::fleet::run(
                dir.path(),
                devices,
                if args.quick { 2 } else { 3 },
                Duration::from_secs(if args.quick { 2 } else { 15 }),
            ),
            Bench::WeakLink => rows::weak_link::run(dir.path(), if args.quick { 20 } else { 100 }),
            Bench::Barrage => rows::barrage::run(dir.path(), if args.quick { 5 } else { 30 }),
        };
        match result {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => {
                failed = true;
                rows.push(
                    Row::new(format!("{bench:?}"), format!("could not run: {e:#}"))
                        .target("runs", false),
                );
            }
        }
        eprintln!(
            "amana-bench: {bench:?} took {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    println!("{}", table::render(&rows));
    println!(
        "{} cores, {:.0} s in all; figures vary between runs on a shared machine: compare the ratios.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    Ok(failed)
}
