//! `amana demo`: the whole flow in a throwaway directory, in one process.
//!
//! A relay on loopback (TLS with a fresh self-signed certificate, pinned by
//! the invite codes exactly as in the field), an office admin, two field
//! officers and a community volunteer. The field devices record intakes
//! while offline, including concurrent edits of one shared case; everyone
//! syncs; the office prints the merged view with the conflict, resolves
//! it; a lost phone is revoked and a case shredded; and an audit shows
//! that no file of the relay or of any device holds the demo's own
//! strings, and that every receipt the relay gave still matches what it
//! stores (a dropped body included: the receipt names the stub's id).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use amana_core::case::{Case, Intake, Lang, SurvivorCode};
use amana_core::envelope::snapshot::ShredReason;
use amana_core::envelope::{EnvelopeLimits, Stored, seal};
use amana_core::keys::DeviceKeys;
use amana_core::keys::keystore::{Passphrase, WorkFactor};
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::enrol;
use amana_core::sync::http::HttpTransport;
use amana_core::sync::invites::InviteCode;
use amana_core::sync::{RelayClient, SyncError, admin, shred, sync};
use amana_core::{CaseId, Digest};
use amana_sync_server::api::{AppState, system_clock};
use amana_sync_server::config::Limits;
use amana_sync_server::server;
use amana_sync_server::store::{RelayStore, SqliteStore};
use anyhow::{Context, ensure};

use crate::app::system_env;
use crate::render;

/// The demo's intake template (the same shape `amana intake --from-file` reads).
const TEMPLATE: &str = include_str!("demo_intake.json");

/// Strings the demo writes into cases; none may appear in any file.
const NOTES: &[&str] = &[
    "Threatened with edited photos after a phone repair shop visit",
    "تهديد بنشر صور معدلة بعد تصليح الهاتف",
    "Extortion messages from an unknown account, demands money",
    "طلب مبلغ مالي مقابل عدم نشر المحادثات",
    "Cousin's friend threatens to send screenshots to her father",
    "Volunteer handed in the case after the safe-space session",
];

struct Relay {
    url: String,
    pin: Digest,
    store: Arc<SqliteStore>,
    key: ed25519_dalek::VerifyingKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Relay {
    fn start(dir: &Path) -> anyhow::Result<Relay> {
        std::fs::create_dir_all(dir)?;
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .context("cannot make the demo certificate")?;
        let pin = amana_core::pin::certificate_pin(certified.cert.der())?;
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let db = dir.join("relay.sqlite");
        let store = Arc::new(SqliteStore::open(&db)?);
        let signing = amana_sync_server::relay_key::load_or_create(&db.with_extension("key"))?;
        let key = signing.verifying_key();
        let state = Arc::new(AppState::new(
            store.clone() as Arc<dyn RelayStore>,
            signing,
            Limits::default(),
            system_clock(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let transport =
                    server::tls_from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).await?;
                server::serve(listener, transport, state, async {
                    let _ = stopped.await;
                })
                .await?;
                Ok(())
            })
        });
        Ok(Relay {
            url,
            pin,
            store,
            key,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn transport(&self) -> anyhow::Result<HttpTransport> {
        Ok(HttpTransport::new(&self.url, Some(self.pin))?)
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("the demo relay crashed"))??;
        }
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct Device {
    name: &'static str,
    store: DeviceStore,
}

fn step(title: &str) {
    println!();
    println!("== {title}");
}

fn new_device(root: &Path, name: &'static str) -> anyhow::Result<Device> {
    // Throwaway devices: a low scrypt cost keeps the demo quick. Real
    // devices use `amana init`, calibrated to about a second.
    let store = DeviceStore::create(
        &root.join(name),
        DeviceKeys::generate(),
        &Passphrase::new(format!("demo passphrase for {name}")),
        WorkFactor::Fixed(12),
    )?;
    Ok(Device { name, store })
}

fn intake(note: &str, location: &str, risk: &str) -> anyhow::Result<Case> {
    let mut value: serde_json::Value = serde_json::from_str(TEMPLATE)?;
    value["note"] = serde_json::json!(note);
    value["incident"]["location"] = serde_json::json!(location);
    value["risk"]["level"] = serde_json::json!(risk);
    let intake: Intake = serde_json::from_value(value)?;
    Ok(Case::from_intake(
        intake,
        CaseId::random(),
        SurvivorCode::generate("NP-QAY")?,
        chrono::Utc::now(),
    ))
}

fn sync_device(relay: &Relay, device: &mut Device) -> anyhow::Result<()> {
    let team = device
        .store
        .membership()?
        .context("the demo device has no team")?
        .team;
    let mut client = RelayClient::new(relay.transport()?, team);
    let report = sync(
        &mut device.store,
        &mut client,
        &mut system_env(),
        &mut |_| {},
    )
    .with_context(|| format!("{} could not sync", device.name))?;
    ensure!(
        report.quarantined.is_empty(),
        "{} quarantined envelopes",
        device.name
    );
    println!(
        "  {:<10} sent {}, received {} ({} changes){}",
        device.name,
        report.pushed,
        report.pulled,
        report.applied_changes,
        if report.forgotten_cases > 0 {
            format!(", forgot {} submitted case(s)", report.forgotten_cases)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn enrol(
    relay: &Relay,
    office: &mut Device,
    device: &mut Device,
    role: Role,
) -> anyhow::Result<()> {
    let team = office.store.membership()?.context("no team")?.team;
    let mut client = RelayClient::new(relay.transport()?, team);
    let mut env = system_env();
    let code = enrol::invite(
        &mut office.store,
        &mut client,
        &mut env,
        role,
        device.name,
        3600,
    )?;
    let code = InviteCode::parse(&code.encode())?;
    let number = enrol::join(&mut device.store, relay.transport()?, &code)?;
    let prefix = device.store.keys().device_id().to_hex();
    let pending = enrol::pending(&mut office.store, &mut client, &mut env)?;
    let shown = pending
        .iter()
        .find(|p| p.device.device.to_hex() == prefix)
        .context("the joining device is not pending")?;
    let enrol::Binding::Verified { safety_number } = &shown.binding else {
        anyhow::bail!("the join request's keys are not bound to its invite");
    };
    println!(
        "  {:<10} ({:<6}) keys bound to the invite; safety number on its screen {number}, on the office's {safety_number}",
        device.name,
        role.name(),
    );
    enrol::approve(&mut office.store, &mut client, &mut env, &prefix, &number)?;
    Ok(())
}

/// Counts occurrences of every needle in every file under `dirs`.
fn scan(dirs: &[PathBuf], needles: &[String]) -> anyhow::Result<(usize, u64, Vec<String>)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut hits = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            continue;
        }
        let data = std::fs::read(&path)?;
        files += 1;
        bytes += data.len() as u64;
        for needle in needles {
            if contains(&data, needle.as_bytes()) {
                hits.push(format!("{} holds {needle:?}", path.display()));
            }
        }
    }
    Ok((files, bytes, hits))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs the demo.
pub fn run(keep: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("amana-demo-").tempdir()?;
    let root = tmp.path().to_owned();
    println!(
        "Amana demo in {} (deleted at the end{}).",
        root.display(),
        if keep { " unless --keep" } else { "" }
    );

    step("1. A relay starts on loopback with a fresh TLS certificate");
    let mut relay = Relay::start(&root.join("relay"))?;
    println!("  {}  TLS key pin {}", relay.url, &relay.pin.to_hex()[..16]);

    step(
        "2. The relay's operator issues a team token; the office creates the team; two field officers and a volunteer enrol",
    );
    let token = amana_core::team_token::TeamToken::generate();
    relay
        .store
        .issue_team_token(token.hash(), system_clock()() + 3600)?;
    let mut office = new_device(&root, "office")?;
    let team = enrol::create_team(
        &mut office.store,
        relay.transport()?,
        &relay.url,
        Some(relay.pin),
        "Office",
        Some(&token),
    )?;
    println!("  team {team}");
    let mut field_a = new_device(&root, "field-a")?;
    let mut field_b = new_device(&root, "field-b")?;
    let mut volunteer = new_device(&root, "volunteer")?;
    enrol(&relay, &mut office, &mut field_a, Role::Field)?;
    enrol(&relay, &mut office, &mut field_b, Role::Field)?;
    enrol(&relay, &mut office, &mut volunteer, Role::Intake)?;
    for device in [&mut office, &mut field_a, &mut field_b, &mut volunteer] {
        sync_device(&relay, device)?;
    }

    step("3. Field officer A records a case and shares it; B receives it");
    let shared = field_a
        .store
        .record_intake(&intake(NOTES[0], "Qayyarah", "high")?)?;
    sync_device(&relay, &mut field_a)?;
    sync_device(&relay, &mut field_b)?;

    step("4. Offline: both officers record intakes and both change the shared case's risk level");
    field_a
        .store
        .record_intake(&intake(NOTES[1], "Qayyarah", "medium")?)?;
    let withdrawn = field_a
        .store
        .record_intake(&intake(NOTES[2], "Hammam al-Alil", "low")?)?;
    field_b
        .store
        .record_intake(&intake(NOTES[3], "Qayyarah", "high")?)?;
    field_b
        .store
        .record_intake(&intake(NOTES[4], "Mosul", "medium")?)?;
    volunteer
        .store
        .record_intake(&intake(NOTES[5], "Qayyarah", "low")?)?;
    field_a
        .store
        .edit_case(shared, |doc| doc.set_field("risk.level", "medium"))?;
    field_b
        .store
        .edit_case(shared, |doc| doc.set_field("risk.level", "low"))?;
    println!(
        "  field-a: 2 intakes + 1 edit, field-b: 2 intakes + 1 edit, volunteer: 1 intake (nothing sent yet)"
    );

    step("5. Coverage returns: everyone syncs");
    for device in [&mut field_a, &mut field_b, &mut volunteer, &mut office] {
        sync_device(&relay, device)?;
    }
    for device in [&mut field_a, &mut field_b] {
        sync_device(&relay, device)?;
    }
    ensure!(
        volunteer.store.cases()?.is_empty(),
        "the volunteer device kept a readable case"
    );

    step("6. The office's merged view");
    let views = office.store.cases()?;
    println!("{}", render::summary_header(Lang::En));
    for view in &views {
        println!("{}", render::summary_line(view, Lang::En));
    }
    ensure!(
        views.len() == 6,
        "the office sees {} cases, expected 6",
        views.len()
    );
    for device in [&field_a, &field_b] {
        ensure!(
            device.store.cases()?.len() == 6,
            "{} did not converge",
            device.name
        );
    }
    println!();
    print!("{}", render::case(&office.store.case(shared)?, Lang::En));

    step("7. The office resolves the conflict; everyone syncs");
    office
        .store
        .edit_case(shared, |doc| doc.set_field("risk.level", "high"))?;
    for device in [&mut office, &mut field_a, &mut field_b] {
        sync_device(&relay, device)?;
    }
    let resolved = field_a.store.case(shared)?;
    ensure!(resolved.conflicts.is_empty(), "the conflict is still there");
    println!(
        "  field-a now sees risk level {} and no conflict",
        resolved.case.risk.level.code()
    );

    step("8. Field officer B's phone is lost; a survivor withdraws her consent");
    let mut client = RelayClient::new(relay.transport()?, team);
    let mut env = system_env();
    let lost = field_b.store.keys().device_id();
    let revoked = admin::revoke(&mut office.store, &mut client, &mut env, &lost.to_hex())?;
    println!(
        "  office revoked field-b (its envelopes up to seq {} stay valid); new team key: epoch {}",
        revoked.last_seq,
        revoked.rotation.map_or(0, |r| r.epoch)
    );
    let done = shred::shred(
        &mut office.store,
        &mut client,
        &mut env,
        &withdrawn.to_hex(),
        ShredReason::ConsentWithdrawn,
        &mut |_| {},
    )?;
    println!(
        "  office shredded case {}: team key epoch {}, snapshot of the {} other cases, {} old envelope bodies dropped at the relay",
        &withdrawn.to_hex()[..12],
        done.epoch,
        done.cases_kept,
        done.bodies_dropped_at_relay
    );
    for device in [&mut field_a, &mut volunteer] {
        sync_device(&relay, device)?;
    }
    let refused = sync_device(&relay, &mut field_b);
    ensure!(
        refused.as_ref().is_err_and(|e| e
            .chain()
            .any(|c| matches!(c.downcast_ref(), Some(SyncError::Revoked)))),
        "the revoked phone could still sync"
    );
    println!("  field-b    refused: revoked");
    ensure!(
        field_a.store.case(withdrawn).is_err() && office.store.case(withdrawn).is_err(),
        "the shredded case is still on a device"
    );
    // With every key each remaining device holds, no envelope at the relay
    // opens to the shredded case.
    let roster = office.store.roster()?.context("no roster")?;
    let stored = relay.store.page(team, 0, 100_000, usize::MAX)?.envelopes;
    for device in [&office, &field_a] {
        let keys = device.store.epoch_keys()?;
        for entry in &stored {
            let Ok(Stored::Whole(envelope)) =
                Stored::parse(entry.bytes.clone(), &EnvelopeLimits::default())
            else {
                continue;
            };
            let author = roster
                .device(&envelope.header().device)
                .context("an unknown author")?
                .entry
                .signing_key;
            if let Ok(opened) = seal::open(&envelope, team, &author, &keys) {
                let names_it = opened.changes.iter().any(|c| c.case == withdrawn)
                    || opened
                        .snapshot
                        .is_some_and(|s| s.cases.iter().any(|c| c.case == withdrawn));
                ensure!(
                    !names_it,
                    "{} can still read the shredded case",
                    device.name
                );
            }
        }
    }
    println!(
        "  field-a and the office: the case is gone, and no key they hold opens it at the relay"
    );

    step("9. Audit");
    let mut needles: Vec<String> = NOTES.iter().map(|s| (*s).to_owned()).collect();
    for view in &views {
        needles.push(view.case.survivor_code.as_str().to_owned());
    }
    needles.push("QAY-FO-07".into());
    let control: Vec<u8> = needles.join("\n").into_bytes();
    ensure!(
        needles.iter().all(|n| contains(&control, n.as_bytes())),
        "the scanner does not find plain text"
    );
    let device_dirs: Vec<PathBuf> = ["office", "field-a", "field-b", "volunteer"]
        .iter()
        .map(|n| root.join(n))
        .collect();
    let (files, bytes, hits) = scan(&[root.join("relay")], &needles)?;
    println!(
        "  relay data: {files} files, {bytes} bytes scanned for the demo's {} strings: {} found",
        needles.len(),
        hits.len()
    );
    let (dfiles, dbytes, dhits) = scan(&device_dirs, &needles)?;
    println!(
        "  device data: {dfiles} files, {dbytes} bytes scanned: {} found",
        dhits.len()
    );
    for hit in hits.iter().chain(&dhits) {
        println!("  FOUND: {hit}");
    }
    relay.stop()?;
    // The auditor's tool on the relay's files, replaying every device's
    // receipts.
    let mut receipt_files = Vec::new();
    for device in [&office, &field_a, &field_b, &volunteer] {
        let file = amana_core::sync::audit::export_receipts(&device.store)?;
        let path = root.join(format!("{}.receipts", device.name));
        std::fs::write(&path, file.encode())?;
        receipt_files.push(path);
    }
    let report = amana_sync_server::audit::run(&amana_sync_server::audit::Options {
        db: root.join("relay").join("relay.sqlite"),
        logs: Vec::new(),
        receipts: receipt_files,
        relay_key: Some(relay.key),
        now: crate::app::now(),
    })?;
    let checked = |what: &str| report.checked.get(what).copied().unwrap_or(0);
    println!(
        "  amana-relay audit: {} envelopes ({} stubs of shredded epochs), {} values, {} bytes of database and WAL, {} receipts replayed: {}",
        checked("envelopes"),
        checked("stubs"),
        checked("values"),
        checked("bytes_scanned"),
        checked("receipts"),
        if report.is_clean() {
            "clean".to_owned()
        } else {
            format!("{} finding(s)", report.findings.len())
        }
    );
    ensure!(report.is_clean(), "the audit found:\n{}", report.summary());
    ensure!(
        hits.is_empty() && dhits.is_empty(),
        "plaintext found in the data directories"
    );

    println!();
    println!(
        "Demo complete in {:.1} s: the relay held only ciphertext.",
        started.elapsed().as_secs_f64()
    );
    if keep {
        let kept = tmp.keep();
        println!("Kept {}", kept.display());
    }
    Ok(())
}
