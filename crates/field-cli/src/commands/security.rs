//! Protecting this device: `passphrase`, `duress`, `lockout` and `wipe`.

use std::io::{BufRead, IsTerminal, Write};

use amana_core::keys::keystore::WorkFactor;
use amana_core::store::wipe::{self, WipeOutcome};
use amana_core::store::{DATABASE_FILE, KEYSTORE_FILE};
use serde_json::json;

use crate::app::App;
use crate::cli::{DuressCommand, LockoutArgs};
use crate::exit::Invalid;
use crate::passphrase::{self, Choice};

fn work(kdf_log_n: Option<u8>) -> WorkFactor {
    kdf_log_n.map_or(WorkFactor::Calibrated, WorkFactor::Fixed)
}

/// `amana passphrase`.
pub fn change_passphrase(app: &App, kdf_log_n: Option<u8>) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let new = passphrase::choose(Choice::New)?;
    store.change_passphrase(&new, work(kdf_log_n))?;
    if app.json {
        println!("{}", json!({"changed": true}));
    } else {
        println!("Passphrase changed. The old one no longer opens this device.");
    }
    Ok(())
}

/// `amana duress set|off`.
pub fn duress(app: &App, command: DuressCommand) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let set = match command {
        DuressCommand::Set(kdf) => {
            let duress = passphrase::choose(Choice::Duress)?;
            store.set_duress(Some(&duress), work(kdf.kdf_log_n))?;
            true
        }
        DuressCommand::Off(kdf) => {
            store.set_duress(None, work(kdf.kdf_log_n))?;
            false
        }
    };
    if app.json {
        println!("{}", json!({"duress": set}));
    } else if set {
        println!(
            "Duress passphrase set. Typed at any passphrase prompt, it wipes this device and the \
             prompt answers \"wrong passphrase\". Anything not yet synced is lost with it."
        );
    } else {
        println!("Duress passphrase removed.");
    }
    Ok(())
}

/// `amana lockout`.
pub fn lockout(app: &App, args: LockoutArgs) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let limit = if args.off { None } else { args.wipe_after };
    store.set_wipe_after(limit)?;
    if app.json {
        println!("{}", json!({"wipe_after": limit}));
    } else {
        match limit {
            Some(n) => println!(
                "This device now wipes itself after {n} wrong passphrases in a row. Sync often: \
                 anything not synced is lost with it."
            ),
            None => println!("Wrong passphrases no longer wipe this device."),
        }
    }
    Ok(())
}

/// `amana wipe`.
pub fn wipe(app: &App, yes: bool) -> anyhow::Result<()> {
    let dir = &app.data_dir;
    let present = [KEYSTORE_FILE, DATABASE_FILE]
        .iter()
        .any(|f| dir.join(f).exists());
    if present && !yes {
        confirm(app)?;
    }
    let report = wipe::wipe(dir);
    if app.json {
        let steps: Vec<_> = report
            .steps
            .iter()
            .filter(|s| s.outcome != WipeOutcome::Absent)
            .map(|s| match &s.outcome {
                WipeOutcome::Destroyed { bytes } => {
                    json!({"file": s.file, "destroyed": true, "bytes": bytes})
                }
                WipeOutcome::Failed(why) => {
                    json!({"file": s.file, "destroyed": false, "error": why})
                }
                WipeOutcome::Absent => unreachable!("filtered out"),
            })
            .collect();
        println!(
            "{}",
            json!({
                "data_dir": dir,
                "found_anything": report.found_anything(),
                "keys_destroyed": report.keys_destroyed(),
                "complete": report.complete(),
                "steps": steps,
                "left_alone": report.left_alone,
            })
        );
    } else if !report.found_anything() {
        println!(
            "Nothing to wipe: there is no Amana device in {}.",
            dir.display()
        );
    } else {
        for step in &report.steps {
            match &step.outcome {
                WipeOutcome::Destroyed { bytes } => {
                    println!("destroyed  {:<22} ({bytes} bytes)", step.file)
                }
                WipeOutcome::Failed(why) => println!("FAILED     {:<22} {why}", step.file),
                WipeOutcome::Absent => {}
            }
        }
        for other in &report.left_alone {
            println!("left alone {other} (not an Amana file)");
        }
        if report.keys_destroyed() {
            println!(
                "The keys are destroyed: nothing left in {} can be decrypted.",
                dir.display()
            );
        }
    }
    if !report.keys_destroyed() {
        anyhow::bail!(
            "a key file could not be destroyed (see above); remove the directory {} by any means, \
             or destroy the device",
            dir.display()
        );
    }
    if !report.complete() {
        anyhow::bail!(
            "the keys are destroyed, so nothing is readable, but some files could not be removed \
             (see above)"
        );
    }
    Ok(())
}

fn confirm(app: &App) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(Invalid(
            "wiping needs confirmation: run it in a terminal, or pass --yes".into()
        ));
    }
    eprint!(
        "This destroys every key and case on this device ({}); anything not synced is lost.\n\
         Type WIPE to go on: ",
        app.data_dir.display()
    );
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if line.trim() != "WIPE" {
        anyhow::bail!(Invalid("not confirmed; nothing was wiped".into()));
    }
    Ok(())
}
