//! This device: `init`, `join`, `sync`, `status`.

use std::io::Read;

use amana_core::keys::DeviceKeys;
use amana_core::keys::keystore::WorkFactor;
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::enrol;
use amana_core::sync::invites::InviteCode;
use amana_core::sync::{Progress, sync};
use anyhow::Context;
use serde_json::json;

use crate::app::{self, App};
use crate::passphrase;

/// `amana init`.
pub fn init(app: &App, kdf_log_n: Option<u8>) -> anyhow::Result<()> {
    let pass = passphrase::choose(passphrase::Choice::First)?;
    let work = kdf_log_n.map_or(WorkFactor::Calibrated, WorkFactor::Fixed);
    let store = DeviceStore::create(&app.data_dir, DeviceKeys::generate(), &pass, work)?;
    let id = store.keys().device_id();
    if app.json {
        println!(
            "{}",
            json!({"device": id.to_hex(), "data_dir": app.data_dir})
        );
    } else {
        println!("Device {id} is ready in {}.", app.data_dir.display());
        println!(
            "Next: `amana join CODE` with an invite code from the office, or `amana team create` on the office's first device."
        );
    }
    Ok(())
}

/// `amana join CODE`.
pub fn join(app: &App, code: &str) -> anyhow::Result<()> {
    let text = if code == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the invite code from standard input")?;
        text
    } else {
        code.to_owned()
    };
    let code = InviteCode::parse(&text)?;
    let mut store = app.unlock()?;
    let transport = amana_core::sync::http::HttpTransport::new(&code.relay_url, code.tls_pin)?;
    let number = enrol::join(&mut store, transport, &code)?;
    if app.json {
        println!(
            "{}",
            json!({"device": store.keys().device_id().to_hex(), "safety_number": number, "role": code.role.name()})
        );
    } else {
        println!("Join request sent for device {}.", store.keys().device_id());
        println!();
        println!("    Safety number:  {number}");
        println!();
        println!("Read this number to the office. They approve only if it matches their screen.");
        println!("Then run `amana sync` to finish joining.");
    }
    Ok(())
}

/// `amana sync`.
pub fn sync_now(app: &App) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let bar = app.interactive().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}")
                .expect("valid template"),
        );
        bar
    });
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            match p {
                Progress::Pushing { done, total } => {
                    bar.set_message("sending  ");
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }
                Progress::Pulling { done } => {
                    bar.set_message("receiving");
                    bar.set_length(done as u64);
                    bar.set_position(done as u64);
                }
            }
        }
    };
    let result = sync(&mut store, &mut client, &mut env, &mut on_progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result?;
    if app.json {
        println!(
            "{}",
            json!({
                "sent": report.pushed,
                "received": report.pulled,
                "changes_applied": report.applied_changes,
                "epoch_keys_received": report.epoch_keys_received,
                "forgotten_cases": report.forgotten_cases,
                "cases_shredded": report.cases_shredded,
                "epochs_retired": report.epochs_retired,
                "republished": report.republished,
                "late_writers_to_shredded": report.late_writers_to_shredded.iter().map(|d| d.to_hex()).collect::<Vec<_>>(),
                "quarantined": report.quarantined.iter().map(|r| json!({"code": r.code(), "reason": r.to_string()})).collect::<Vec<_>>(),
                "requests": report.requests,
                "bytes_sent": report.bytes_sent,
                "bytes_received": report.bytes_received,
            })
        );
    } else {
        println!(
            "Sync complete: sent {} envelope(s), received {} ({} change(s) applied).",
            report.pushed, report.pulled, report.applied_changes
        );
        if report.epoch_keys_received > 0 {
            println!("Received {} team key(s).", report.epoch_keys_received);
        }
        if report.forgotten_cases > 0 {
            println!(
                "{} submitted case(s) are with the office now; this device keeps no readable copy.",
                report.forgotten_cases
            );
        }
        if report.cases_shredded > 0 {
            println!(
                "{} case(s) were shredded by the office and are gone from this device.",
                report.cases_shredded
            );
        }
        if report.epochs_retired > 0 {
            println!(
                "Destroyed {} old team key(s){}.",
                report.epochs_retired,
                if report.republished > 0 {
                    format!(
                        " after re-sending {} change(s) of yours under the new key",
                        report.republished
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    for device in &report.late_writers_to_shredded {
        eprintln!(
            "WARNING: device {device} wrote to a shredded case under the current team key. \
             The change was discarded here, but the relay holds it: shred the case again from an \
             admin device."
        );
    }
    for reason in &report.quarantined {
        eprintln!("QUARANTINED ({}): {reason}", reason.code());
    }
    super::alarms::open_is_an_alarm(store.open_alarms()?.len(), app.lang)
}

/// `amana status`.
pub fn status(app: &App) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let membership = store.membership()?;
    let roster = match &membership {
        Some(_) => store.roster()?,
        None => None,
    };
    let me = store.keys().device_id();
    let record = roster.as_ref().and_then(|r| r.device(&me));
    let role = record
        .map(|d| d.entry.role)
        .or(membership.as_ref().map(|m| m.role));
    let approved = record.is_some();
    let revoked = record.is_some_and(|d| !d.is_active());
    let epoch = roster.as_ref().map(|r| r.current_epoch().epoch);
    let keys_held = store.epoch_keys()?.epochs().count();
    let unsynced_changes = store.outbox_len()?;
    let unsent_envelopes = store.unreceipted()?.len();
    let (quarantined, summarised) = store.quarantine_len()?;
    let open_alarms = store.open_alarms()?.len();
    let cases = store.cases()?.len();
    let submitted = store.submissions()?.len();
    let last_sync = store
        .last_sync()?
        .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .map(|t| t.to_rfc3339());
    let safety_number = match (&membership, approved) {
        (Some(_), false) => enrol::waiting_safety_number(&store)?,
        _ => None,
    };
    if app.json {
        println!(
            "{}",
            json!({
                "device": me.to_hex(),
                "team": membership.as_ref().map(|m| m.team.to_hex()),
                "relay": membership.as_ref().map(|m| m.relay_url.clone()),
                "role": role.map(Role::name),
                "approved": approved,
                "revoked": revoked,
                "epoch": epoch,
                "epoch_keys_held": keys_held,
                "unsynced_changes": unsynced_changes,
                "unsent_envelopes": unsent_envelopes,
                "last_sync": last_sync,
                "quarantined": quarantined,
                "quarantine_summarised": summarised,
                "open_alarms": open_alarms,
                "cases": cases,
                "submitted": submitted,
                "safety_number": safety_number,
            })
        );
        return super::alarms::open_is_an_alarm(open_alarms, app.lang);
    }
    println!("Device:            {me}");
    match &membership {
        None => println!("Team:              none yet (`amana join CODE` or `amana team create`)"),
        Some(m) => {
            println!("Team:              {}", m.team);
            println!("Relay:             {}", m.relay_url);
            let standing = if revoked {
                "REVOKED"
            } else if approved {
                "approved"
            } else {
                "waiting for the office to approve"
            };
            println!(
                "Role:              {} ({standing})",
                role.map_or("unknown", Role::name)
            );
        }
    }
    if let Some(epoch) = epoch {
        println!("Epoch:             {epoch} (keys held: {keys_held})");
    }
    println!(
        "Unsynced changes:  {unsynced_changes} (+{unsent_envelopes} envelope(s) not yet receipted)"
    );
    println!(
        "Last sync:         {}",
        last_sync.as_deref().unwrap_or("never")
    );
    println!("Cases:             {cases} readable, {submitted} submitted");
    if quarantined + summarised > 0 {
        println!(
            "QUARANTINED:       {} envelope(s) refused by checks ({summarised} of them summarised to keep the device's disk free); tell the office",
            quarantined + summarised
        );
    } else {
        println!("Quarantined:       0");
    }
    if open_alarms > 0 {
        println!("ALARMS:            {open_alarms} open; run `amana alarms`");
    } else {
        println!("Alarms:            0 open");
    }
    if let Some(number) = safety_number {
        println!("Safety number:     {number}");
    }
    super::alarms::open_is_an_alarm(open_alarms, app.lang)
}
