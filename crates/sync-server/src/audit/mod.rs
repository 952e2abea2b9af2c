//! `amana-relay audit`: the offline audit of a copy of a relay's files.
//!
//! 1. The schema against the published inventory ([`schema`]).
//! 2. Every value of every documented column ([`rows`]), and each team's
//!    log: roster chain, envelopes, chains, heads, replayed receipts
//!    ([`amana_core::audit::LogAudit`]).
//! 3. Every byte of the database and its WAL ([`scan`]) and every line of
//!    the logs ([`logs`]).
//!
//! The auditor's files are never written: the database and WAL are copied
//! to a private temporary directory and opened there (opening a WAL
//! database replays and may checkpoint it). The report names each file by
//! its SHA-256.

pub mod logs;
pub mod rows;
pub mod scan;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use amana_core::audit::receipts::ReceiptFileError;
use amana_core::audit::{
    Finding, LogAudit, ReceiptFile, Recorded, Report, StoredEnvelope, Subject, report::FORMAT,
};
use amana_core::receipt::Receipt;
use amana_core::roster::Roster;
use amana_core::{DeviceId, Digest, TeamId};
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use sha2::{Digest as _, Sha256};

/// What to audit.
#[derive(Debug, Default)]
pub struct Options {
    /// The copy of the relay database (its `-wal` beside it is read too).
    pub db: PathBuf,
    /// Copies of the relay's logs.
    pub logs: Vec<PathBuf>,
    /// Receipts files exported by devices.
    pub receipts: Vec<PathBuf>,
    /// The relay's receipt key, as published by its operator.
    pub relay_key: Option<VerifyingKey>,
    /// Unix seconds, for the report.
    pub now: u64,
}

/// Why the audit could not run at all (findings are not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}; check the path and that this user may read it")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The database is not a SQLite database.
    #[error(
        "{path} is not a relay database ({detail}); give the relay's --db file (copy it with its -wal file while the relay is stopped)"
    )]
    NotADatabase {
        /// The file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// A receipts file is not one.
    #[error(transparent)]
    Receipts(#[from] ReceiptFileError),
}

fn read(path: &Path) -> Result<Vec<u8>, AuditError> {
    std::fs::read(path).map_err(|source| AuditError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn subject(kind: &str, path: &Path, bytes: &[u8]) -> Subject {
    Subject {
        kind: kind.to_owned(),
        name: path.display().to_string(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// Runs the audit and returns the (unsigned) report.
pub fn run(options: &Options) -> Result<Report, AuditError> {
    let db = read(&options.db)?;
    let wal_path = PathBuf::from(format!("{}-wal", options.db.display()));
    let wal = match std::fs::read(&wal_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(AuditError::Read {
                path: wal_path.display().to_string(),
                source,
            });
        }
    };
    let mut subjects = vec![subject("database", &options.db, &db)];
    if let Some(wal) = &wal {
        subjects.push(subject("wal", &wal_path, wal));
    }
    let mut receipts = Vec::new();
    for path in &options.receipts {
        let bytes = read(path)?;
        subjects.push(subject("receipts", path, &bytes));
        let text = String::from_utf8_lossy(&bytes);
        receipts.push(ReceiptFile::parse(&path.display().to_string(), &text)?);
    }
    let mut log_files = Vec::new();
    for path in &options.logs {
        let bytes = read(path)?;
        subjects.push(subject("log", path, &bytes));
        log_files.push((path.display().to_string(), bytes));
    }
    // The key the operator published; else the one beside the copy; else
    // the one the devices pinned (then each receipt is checked against
    // its own file's key only).
    let relay_key = options
        .relay_key
        .or_else(|| key_beside(&options.db))
        .or_else(|| receipts.first().map(|r| r.relay_key));

    let not_db = |e: rusqlite::Error| AuditError::NotADatabase {
        path: options.db.display().to_string(),
        detail: e.to_string(),
    };
    let scratch = tempfile::tempdir().map_err(|source| AuditError::Read {
        path: "a temporary directory".into(),
        source,
    })?;
    let copy = scratch.path().join("relay.sqlite");
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|source| AuditError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    write(&copy, &db)?;
    if let Some(wal) = &wal {
        write(&scratch.path().join("relay.sqlite-wal"), wal)?;
    }
    let conn = Connection::open(&copy).map_err(not_db)?;

    let inventory = schema::inventory();
    let mut findings = schema::check(&conn, &inventory).map_err(not_db)?;
    let mut checked = BTreeMap::new();

    // Each team's log.
    let (log_findings, rosters) =
        audit_logs(&conn, &receipts, relay_key.as_ref(), &mut checked).map_err(not_db)?;
    // Every value of every documented column.
    let (evidence, values) = rows::check(&conn, &inventory, &rosters).map_err(not_db)?;
    checked.insert("values".into(), values);
    let mut evidence: Vec<rows::Evidence> = evidence;
    findings.extend(log_findings);

    // Every byte of the database and WAL.
    let schema_sql = schema_sql(&conn, &inventory).map_err(not_db)?;
    drop(conn);
    let mut raw: Vec<(String, scan::Hit)> = Vec::new();
    for (name, bytes) in std::iter::once((options.db.display().to_string(), &db))
        .chain(wal.as_ref().map(|w| (wal_path.display().to_string(), w)))
    {
        *checked.entry("bytes_scanned".into()).or_default() += bytes.len() as u64;
        raw.extend(
            scan::scan(bytes, &schema_sql)
                .into_iter()
                .map(|h| (name.clone(), h)),
        );
    }
    merge_hits(&mut evidence, raw, &mut findings);
    findings.extend(evidence.into_iter().map(|e| e.finding));

    for (name, bytes) in &log_files {
        let (found, lines) = logs::scan(name, bytes);
        *checked.entry("log_lines".into()).or_default() += lines;
        findings.extend(found);
    }

    Ok(Report {
        format: FORMAT.into(),
        tool: format!("amana-relay audit {}", env!("CARGO_PKG_VERSION")),
        mode: "offline".into(),
        generated_at: options.now,
        relay_key: relay_key.map(|k| hex::encode(k.as_bytes())),
        subjects,
        checked,
        findings,
    })
}

/// The public half of the relay key beside the database (`relay.key` for
/// `relay.sqlite`), if the copy includes it.
fn key_beside(db: &Path) -> Option<VerifyingKey> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(db.with_extension("key")).ok()?);
    let seed: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key())
}

type Rosters = BTreeMap<TeamId, Roster>;

fn audit_logs(
    conn: &Connection,
    receipts: &[ReceiptFile],
    relay_key: Option<&VerifyingKey>,
    checked: &mut BTreeMap<String, u64>,
) -> rusqlite::Result<(Vec<Finding>, Rosters)> {
    let mut findings = Vec::new();
    let mut rosters = BTreeMap::new();
    let mut teams: BTreeSet<TeamId> = BTreeSet::new();
    for sql in [
        "SELECT team FROM teams",
        "SELECT DISTINCT team FROM envelopes",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let Ok(team) = row.get::<_, Vec<u8>>(0)
                && let Ok(team) = TeamId::from_slice(&team)
            {
                teams.insert(team);
            }
        }
    }
    checked.insert("teams".into(), teams.len() as u64);
    for team in &teams {
        let ops: Vec<Vec<u8>> = conn
            .prepare("SELECT op FROM roster_ops WHERE team = ?1 ORDER BY idx")?
            .query_map([team.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?
            .filter_map(Result::ok)
            .collect();
        let mut audit = LogAudit::new(*team, &ops);
        let mut stmt = conn.prepare(
            "SELECT cursor, device, seq, epoch, envelope_id, envelope FROM envelopes
             WHERE team = ?1 ORDER BY cursor",
        )?;
        let mut rows = stmt.query([team.as_bytes()])?;
        while let Some(row) = rows.next()? {
            // A row whose columns are not even well-typed is the row
            // check's finding.
            let typed = (|| -> Option<(u64, Recorded, Vec<u8>)> {
                let cursor: i64 = row.get(0).ok()?;
                let device: Vec<u8> = row.get(1).ok()?;
                let seq: i64 = row.get(2).ok()?;
                let epoch: i64 = row.get(3).ok()?;
                let id: Vec<u8> = row.get(4).ok()?;
                let bytes: Vec<u8> = row.get(5).ok()?;
                Some((
                    cursor as u64,
                    Recorded {
                        device: DeviceId::from_slice(&device).ok()?,
                        seq: seq as u64,
                        epoch: u32::try_from(epoch).ok()?,
                        id: Digest::from_slice(&id).ok()?,
                    },
                    bytes,
                ))
            })();
            if let Some((cursor, recorded, bytes)) = typed {
                audit.envelope(StoredEnvelope {
                    cursor,
                    bytes: &bytes,
                    recorded: Some(recorded),
                });
            }
        }
        let heads: Vec<(DeviceId, u64, Digest)> = conn
            .prepare("SELECT device, seq, envelope_id FROM heads WHERE team = ?1")?
            .query_map([team.as_bytes()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .filter_map(Result::ok)
            .filter_map(|(d, s, i)| {
                Some((
                    DeviceId::from_slice(&d).ok()?,
                    s as u64,
                    Digest::from_slice(&i).ok()?,
                ))
            })
            .collect();
        audit.heads(&heads);
        for file in receipts {
            audit.receipts(file, relay_key);
        }
        if let Some(roster) = audit.roster() {
            rosters.insert(*team, roster.clone());
        }
        let (found, counts) = audit.finish();
        findings.extend(found);
        for (what, n) in counts {
            *checked.entry(what).or_default() += n;
        }
    }
    // Receipts for a team this relay does not hold at all.
    for file in receipts {
        for (i, bytes) in file.receipts.iter().enumerate() {
            if let Ok(receipt) = Receipt::verify(bytes, &file.relay_key)
                && !teams.contains(&receipt.team)
            {
                findings.push(Finding::alarm(
                    "receipted_missing",
                    format!("{} receipt {}", file.name, i + 1),
                    format!(
                        "the relay receipted an envelope of team {}, which it no longer holds",
                        receipt.team
                    ),
                ));
            }
        }
    }
    Ok((findings, rosters))
}

/// The SQL text of the documented tables and their indexes, which SQLite
/// keeps in the file as written.
fn schema_sql(conn: &Connection, inventory: &[schema::Table]) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare("SELECT tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|(table, _)| inventory.iter().any(|t| &t.name == table))
        .map(|(_, sql)| sql)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Folds raw-scan hits into the row findings they belong to (the same
/// bytes), and the rest into one finding per distinct run.
fn merge_hits(
    evidence: &mut [rows::Evidence],
    hits: Vec<(String, scan::Hit)>,
    findings: &mut Vec<Finding>,
) {
    let mut loose: Vec<(Vec<u8>, Finding)> = Vec::new();
    for (file, hit) in hits {
        let place = format!("file {file} offset {}", hit.offset);
        let overlaps = |bytes: &[u8]| {
            !bytes.is_empty() && (contains(bytes, &hit.bytes) || contains(&hit.bytes, bytes))
        };
        if let Some(e) = evidence.iter_mut().find(|e| overlaps(&e.bytes)) {
            e.finding.also_at.push(place);
        } else if let Some((_, f)) = loose.iter_mut().find(|(b, _)| *b == hit.bytes) {
            f.also_at.push(place);
        } else {
            loose.push((
                hit.bytes.clone(),
                Finding::alarm("plaintext", place, hit.describe()),
            ));
        }
    }
    findings.extend(loose.into_iter().map(|(_, f)| f));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}
