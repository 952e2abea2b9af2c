//! `amana team …`: creating a team, invites, approving devices.

use amana_core::pin::parse_pin;
use amana_core::roster::Role;
use amana_core::sync::admin::{self, Rotation};
use amana_core::sync::enrol;
use amana_core::sync::http::HttpTransport;
use serde_json::json;

use crate::app::{self, App};
use crate::cli::{RoleArg, TeamCommand};
use crate::exit::Invalid;

/// Runs a team command.
pub fn run(app: &App, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Create {
            relay,
            relay_pin,
            label,
            token_file,
        } => create(
            app,
            &relay,
            relay_pin.as_deref(),
            &label,
            token_file.as_deref(),
        ),
        TeamCommand::Invite {
            role,
            label,
            expires_in_hours,
        } => invite(app, role, &label, expires_in_hours),
        TeamCommand::Pending => pending(app),
        TeamCommand::Approve {
            device,
            safety_number,
        } => approve(app, &device, &safety_number),
        TeamCommand::Devices => devices(app),
        TeamCommand::Revoke {
            device,
            drop_unverified,
        } => revoke(app, &device, drop_unverified),
        TeamCommand::Rotate => rotate(app),
    }
}

fn create(
    app: &App,
    relay: &str,
    pin: Option<&str>,
    label: &str,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let pin = match pin {
        Some(text) => Some(parse_pin(text).ok_or_else(|| {
            Invalid("--relay-pin must be the 64 hex digits printed by `amana-relay pin`".into())
        })?),
        None => None,
    };
    let token = crate::passphrase::team_token(token_file)?;
    let mut store = app.unlock()?;
    let transport = HttpTransport::new(relay, pin)?;
    let team = enrol::create_team(&mut store, transport, relay, pin, label, Some(&token))?;
    if app.json {
        println!("{}", json!({"team": team.to_hex()}));
    } else {
        println!("Team {team} created; this device is its first admin.");
        println!(
            "Next: `amana team invite --role field --label \"Field officer 1\"` for each device."
        );
    }
    Ok(())
}

fn invite(app: &App, role: RoleArg, label: &str, hours: u64) -> anyhow::Result<()> {
    let role = match role {
        RoleArg::Office => Role::Office,
        RoleArg::Field => Role::Field,
        RoleArg::Intake => Role::Intake,
        RoleArg::Auditor => Role::Auditor,
        RoleArg::Admin => Role::Admin,
    };
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let code = enrol::invite(&mut store, &mut client, &mut env, role, label, hours * 3600)?;
    let text = code.encode();
    let text = text.as_str();
    if app.json {
        println!(
            "{}",
            json!({"code": text, "role": role.name(), "expires_in_hours": hours})
        );
    } else {
        println!(
            "Invite for a {} device \"{label}\", valid {hours} hours, one use:",
            role.name()
        );
        println!();
        println!("{text}");
        println!();
        println!("Give it to the device's holder in person (it pins this team and relay).");
        println!(
            "They run `amana join CODE`; then `amana team pending` shows their safety number."
        );
    }
    Ok(())
}

fn pending(app: &App) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let list = enrol::pending(&mut store, &mut client, &mut env)?;
    let substituted: Vec<_> = list
        .iter()
        .filter(|p| p.binding == enrol::Binding::Substituted)
        .map(|p| p.device.device)
        .collect();
    if app.json {
        let items: Vec<_> = list
            .iter()
            .map(|p| {
                let (binding, number) = match &p.binding {
                    enrol::Binding::Verified { safety_number } => {
                        ("verified", Some(safety_number.as_str()))
                    }
                    enrol::Binding::Substituted => ("substituted", None),
                    enrol::Binding::NotIssuedHere => ("issued_elsewhere", None),
                };
                json!({
                    "device": p.device.device.to_hex(),
                    "binding": binding,
                    "safety_number": number,
                    "role": p.invite.as_ref().map(|i| i.role.name()),
                    "label": p.invite.as_ref().map(|i| i.label.clone()),
                    "issued_here": p.invite.is_some(),
                    "requested_at": p.device.requested_at,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else if list.is_empty() {
        println!("No device is waiting for approval.");
    } else {
        println!(
            "{:<34} {:<16} {:<8} label",
            "device", "safety number", "role"
        );
        for p in &list {
            let (role, label) = match &p.invite {
                Some(i) => (i.role.name(), i.label.as_str()),
                None => ("?", "(invite issued on another admin device)"),
            };
            let number = match &p.binding {
                enrol::Binding::Verified { safety_number } => safety_number.as_str(),
                enrol::Binding::Substituted => "SUBSTITUTED",
                enrol::Binding::NotIssuedHere => "—",
            };
            println!(
                "{:<34} {:<16} {:<8} {label}",
                p.device.device.to_hex(),
                number,
                role
            );
        }
        println!();
        println!(
            "Ask each person to read the safety number on their screen. Approve only if it matches:"
        );
        println!("  amana team approve DEVICE --safety-number \"1234 5678 9012\"");
    }
    if let Some(device) = substituted.first() {
        return Err(amana_core::sync::SyncError::JoinSubstituted { device: *device }.into());
    }
    Ok(())
}

fn approve(app: &App, device: &str, number: &str) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let entry = enrol::approve(&mut store, &mut client, &mut env, device, number)?;
    if app.json {
        println!(
            "{}",
            json!({"device": entry.id().to_hex(), "role": entry.role.name()})
        );
    } else {
        println!(
            "Device {} approved as {}. It receives the team key on its next `amana sync`.",
            entry.id(),
            entry.role.name()
        );
    }
    Ok(())
}

fn devices(app: &App) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let roster = store
        .roster()?
        .ok_or(amana_core::store::StoreError::NotMember)?;
    let labels = enrol::device_labels(&store, &roster)?;
    let views = amana_core::sync::tail::log_views(&store)?;
    let me = store.keys().device_id();
    let own_head = store.own_head()?.map_or(0, |(seq, _)| seq);
    struct Row {
        id: amana_core::DeviceId,
        role: &'static str,
        active: bool,
        label: String,
        applied: u64,
        view: amana_core::sync::tail::LogView,
    }
    let rows: Vec<Row> = roster
        .devices()
        .map(|d| {
            let id = d.entry.id();
            let applied = if id == me {
                own_head
            } else {
                store.peer_head(id).ok().flatten().map_or(0, |h| h.seq)
            };
            Row {
                id,
                role: d.entry.role.name(),
                active: d.is_active(),
                label: labels.get(&id).cloned().unwrap_or_else(|| "—".into()),
                applied,
                view: views.get(&id).copied().unwrap_or_default(),
            }
        })
        .collect();
    if app.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "device": r.id.to_hex(),
                    "role": r.role,
                    "active": r.active,
                    "label": r.label,
                    "this_device": r.id == me,
                    "applied_seq": r.applied,
                    "witnessed_seq": r.view.witnessed,
                    "relay_seq": r.view.relay,
                    "last_sealed_at": (r.view.sealed_at > 0).then_some(r.view.sealed_at),
                    "behind_since": (r.view.behind_since > 0).then_some(r.view.behind_since),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    println!(
        "{:<34} {:<8} {:<8} {:>6} {:>6} {:>6} {:<17} {:<17} label",
        "device", "role", "status", "here", "seen", "relay", "last heard", "behind since"
    );
    let when = |t: u64| {
        if t == 0 {
            "—".to_owned()
        } else {
            chrono::DateTime::from_timestamp(t as i64, 0)
                .map_or_else(|| t.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
        }
    };
    for r in rows {
        let status = if r.active { "active" } else { "revoked" };
        let marker = if r.id == me { "  (this device)" } else { "" };
        println!(
            "{:<34} {:<8} {status:<8} {:>6} {:>6} {:>6} {:<17} {:<17} {}{marker}",
            r.id.to_hex(),
            r.role,
            r.applied,
            r.view.witnessed,
            r.view.relay,
            when(r.view.sealed_at),
            when(r.view.behind_since),
            r.label,
        );
    }
    println!("Epoch: {}", roster.current_epoch().epoch);
    println!(
        "here: the last envelope of its log applied on this device; seen: the most any other device has applied; relay: what the relay reports; last heard: when it sealed the last envelope applied here (its clock). A device whose holder says it synced after its 'last heard' has its work withheld by the relay."
    );
    Ok(())
}

fn revoke(app: &App, which: &str, drop_unverified: bool) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let done = if drop_unverified {
        admin::revoke_dropping_unverified(&mut store, &mut client, &mut env, which)?
    } else {
        admin::revoke(&mut store, &mut client, &mut env, which)?
    };
    if app.json {
        println!(
            "{}",
            json!({
                "device": done.device.to_hex(),
                "last_seq": done.last_seq,
                "revoked_by": done.revoked_by.to_hex(),
                "already_revoked": done.already_revoked,
                "epoch": done.rotation.map(|r| r.epoch),
                "delivered_to": done.rotation.map(|r| r.delivered_to),
            })
        );
        return Ok(());
    }
    if done.already_revoked {
        println!(
            "Device {} was already revoked by admin device {} (its envelopes up to seq {} stay valid).",
            done.device, done.revoked_by, done.last_seq
        );
    } else {
        println!(
            "Device {} revoked. The relay refuses it from now on; its envelopes up to seq {} stay valid.",
            done.device, done.last_seq
        );
    }
    match done.rotation {
        Some(rotation) => print_rotation(rotation),
        None => println!("The team key was already rotated after that revocation."),
    }
    Ok(())
}

fn rotate(app: &App) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let rotation = admin::rotate(&mut store, &mut client, &mut env)?;
    if app.json {
        println!(
            "{}",
            json!({"epoch": rotation.epoch, "delivered_to": rotation.delivered_to})
        );
    } else {
        print_rotation(rotation);
    }
    Ok(())
}

fn print_rotation(rotation: Rotation) {
    println!(
        "New team key: epoch {}, delivered to {} other device(s). Each uses it from its next `amana sync`.",
        rotation.epoch, rotation.delivered_to
    );
}
