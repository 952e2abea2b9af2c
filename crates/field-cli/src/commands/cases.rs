//! `amana cases …`, `referral add`, `followup add`, `note add`: reading
//! and changing cases on this device. Every change is durable (committed
//! with its outbox entry) before the command reports it.

use std::io::{IsTerminal, Read};

use amana_core::case::codes::ReferralStatus;
use amana_core::case::fields::{FIELDS, FieldKind};
use amana_core::case::{
    ConsentOverride, Followup, Lang, Note, OrgCode, Referral, ShortText, StaffCode, new_item_id,
    pii,
};
use amana_core::store::DeviceStore;
use anyhow::Context;
use chrono::NaiveDate;
use serde_json::json;

use amana_core::envelope::snapshot::ShredReason;
use amana_core::sync::shred;

use crate::app::{self, App};
use crate::cli::{CasesCommand, FollowupArgs, ReferralArgs, ShredReasonArg};
use crate::exit::Invalid;
use crate::render;

/// Runs a `cases` command.
pub fn run(app: &App, command: CasesCommand) -> anyhow::Result<()> {
    match command {
        CasesCommand::List => list(app),
        CasesCommand::Show { id } => show(app, &id),
        CasesCommand::Update { id, field, value } => update(app, &id, &field, &value),
        CasesCommand::Fields => fields(app),
        CasesCommand::Shred { id, reason, yes } => shred(app, &id, reason, yes),
        CasesCommand::Shredded => shredded(app),
    }
}

fn shred(app: &App, id: &str, reason: ShredReasonArg, yes: bool) -> anyhow::Result<()> {
    let reason = match reason {
        ShredReasonArg::ConsentWithdrawn => ShredReason::ConsentWithdrawn,
        ShredReasonArg::SurvivorRequest => ShredReason::SurvivorRequest,
        ShredReasonArg::SafetyRisk => ShredReason::SafetyRisk,
        ShredReasonArg::EnteredInError => ShredReason::EnteredInError,
        ShredReasonArg::Duplicate => ShredReason::Duplicate,
    };
    let mut store = app.unlock()?;
    let case = store.resolve_case_id(id)?;
    if !yes {
        // Confirm with the survivor code (or, for a case shredded before,
        // the start of its id).
        let hex = case.to_hex();
        let code = match store.case(case) {
            Ok(view) => view.case.survivor_code.as_str().to_owned(),
            Err(_) => hex[..12].to_owned(),
        };
        confirm_shred(&hex, &code)?;
    }
    let mut client = app::client(&store)?;
    let mut env = app::system_env();
    let done = shred::shred(
        &mut store,
        &mut client,
        &mut env,
        &case.to_hex(),
        reason,
        &mut |_| {},
    )?;
    if app.json {
        println!(
            "{}",
            json!({
                "case": done.tombstone.case.to_hex(),
                "reason": reason.name(),
                "at": done.tombstone.at,
                "epoch": done.epoch,
                "cases_kept": done.cases_kept,
                "snapshot_parts": done.snapshot_parts,
                "epochs_retired": done.epochs_retired,
                "bodies_dropped_at_relay": done.bodies_dropped_at_relay,
            })
        );
    } else {
        println!(
            "Case {} shredded ({}). New team key: epoch {}; a snapshot of the {} other case(s) \
             went to the relay, which dropped {} old envelope bodies; this device destroyed the \
             old key(s).",
            &case.to_hex()[..12],
            reason.name(),
            done.epoch,
            done.cases_kept,
            done.bodies_dropped_at_relay
        );
        println!(
            "It is gone from each device once that device syncs. Devices that never sync again \
             keep their copy: revoke lost ones with `amana team revoke`."
        );
    }
    Ok(())
}

fn confirm_shred(id: &str, code: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(Invalid(
            "shredding needs confirmation: run it in a terminal, or pass --yes".into()
        ));
    }
    eprint!(
        "This destroys case {} on every device, for good.\n\
         Type {code} to go on: ",
        &id[..12]
    );
    std::io::Write::flush(&mut std::io::stderr()).ok();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdin.lock(), &mut line)?;
    if line.trim() != code {
        anyhow::bail!(Invalid("not confirmed; nothing was shredded".into()));
    }
    Ok(())
}

fn shredded(app: &App) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let tombstones = store.tombstones()?;
    let labels = store.labels()?;
    let by = |id: &amana_core::DeviceId| labels.get(id).cloned().unwrap_or_else(|| id.to_hex());
    if app.json {
        let items: Vec<_> = tombstones
            .iter()
            .map(|t| {
                json!({
                    "case": t.case.to_hex(),
                    "by": t.by.to_hex(),
                    "by_label": labels.get(&t.by),
                    "at": t.at,
                    "reason": t.reason.name(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    if tombstones.is_empty() {
        println!("No case has been shredded.");
        return Ok(());
    }
    println!("{:<34} {:<26} {:<18} by", "case", "when (UTC)", "reason");
    for t in &tombstones {
        let when = chrono::DateTime::from_timestamp(t.at as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        println!(
            "{:<34} {when:<26} {:<18} {}",
            t.case.to_hex(),
            t.reason.name(),
            by(&t.by)
        );
    }
    Ok(())
}

fn list(app: &App) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let views = store.cases()?;
    let submissions = store.submissions()?;
    if app.json {
        let cases: Vec<_> = views.iter().map(render::summary_json).collect();
        let submitted: Vec<_> = submissions
            .iter()
            .map(|s| json!({"case": s.case.to_hex(), "envelope_seq": s.seq, "receipted": s.receipted}))
            .collect();
        println!("{}", json!({"cases": cases, "submitted": submitted}));
        return Ok(());
    }
    if views.is_empty() && submissions.is_empty() {
        println!("No cases on this device.");
        return Ok(());
    }
    if !views.is_empty() {
        println!("{}", render::summary_header(app.lang));
        for view in &views {
            println!("{}", render::summary_line(view, app.lang));
        }
    }
    for s in &submissions {
        let id = s.case.to_hex();
        if s.receipted {
            println!("{}  submitted, receipt {}", &id[..12], s.seq);
        } else {
            println!("{}  saved on this device, waiting to sync", &id[..12]);
        }
    }
    Ok(())
}

fn show(app: &App, id: &str) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let id = store.resolve_case_id(id)?;
    let view = store.case(id)?;
    if app.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render::case(&view, app.lang));
    }
    Ok(())
}

fn update(app: &App, id: &str, field: &str, value: &str) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let id = store.resolve_case_id(id)?;
    let changed = store.edit_case(id, |doc| doc.set_field(field, value))?;
    if app.json {
        println!("{}", json!({"case": id.to_hex(), "changed": changed}));
    } else if changed {
        println!("Saved: {field} = {value} (sync to share it).");
    } else {
        println!("{field} already had that value; nothing changed.");
    }
    Ok(())
}

fn fields(app: &App) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for f in FIELDS {
        let accepted: Vec<String> = match f.kind {
            FieldKind::OneOf(c) | FieldKind::OptionalOneOf(c) => c
                .iter()
                .map(|c| format!("{} ({})", c.code, c.label(app.lang)))
                .collect(),
            FieldKind::Bool => vec!["yes".into(), "no".into()],
            FieldKind::OptionalBool => vec!["yes".into(), "no".into(), "none".into()],
            FieldKind::Date => vec!["YYYY-MM-DD".into()],
            FieldKind::OptionalDate => vec!["YYYY-MM-DD".into(), "none".into()],
            FieldKind::OptionalStaffCode => {
                vec!["staff code, e.g. QAY-FO-07".into(), "none".into()]
            }
            FieldKind::OptionalText => vec!["short text".into(), "none".into()],
            FieldKind::Location => vec!["district or sub-district name, or online".into()],
        };
        out.push((f.path, accepted));
    }
    if app.json {
        let items: Vec<_> = out
            .iter()
            .map(|(path, accepted)| json!({"field": path, "accepted": accepted}))
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    println!("`*` stands for a recipient type or a referral/follow-up id.");
    for (path, accepted) in out {
        println!("{path}\n    {}", accepted.join(", "));
    }
    Ok(())
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn date(text: Option<&str>, what: &str) -> anyhow::Result<NaiveDate> {
    match text {
        None => Ok(today()),
        Some(t) => NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
            .map_err(|_| Invalid(format!("{what} must be a date written YYYY-MM-DD")).into()),
    }
}

/// `amana referral add`.
pub fn add_referral(app: &App, args: ReferralArgs) -> anyhow::Result<()> {
    let consent_override = match (&args.override_reason, &args.override_staff) {
        (Some(reason), Some(staff)) => Some(ConsentOverride {
            reason: ShortText::new(reason)?,
            staff_code: StaffCode::new(staff)?,
        }),
        (None, None) => None,
        _ => {
            return Err(Invalid(
                "a consent override needs both --override-reason and --override-staff".into(),
            )
            .into());
        }
    };
    let referral = Referral {
        id: new_item_id(),
        service_type: args.service.parse()?,
        recipient: args.recipient.parse()?,
        organisation: OrgCode::new(&args.organisation)?,
        date: date(args.date.as_deref(), "--date")?,
        accompanied: args.accompanied,
        status: ReferralStatus::Referred,
        consent_override,
    };
    let mut store = app.unlock()?;
    let role = own_role(&store)?;
    let id = store.resolve_case_id(&args.id)?;
    store.edit_case(id, |doc| doc.add_referral(&referral, role).map(Some))?;
    report(app, "referral", &referral.id)
}

/// `amana followup add`.
pub fn add_followup(app: &App, args: FollowupArgs) -> anyhow::Result<()> {
    let followup = Followup {
        id: new_item_id(),
        date: date(args.date.as_deref(), "--date")?,
        kind: args.kind.parse()?,
        outcome: ShortText::new(&args.outcome)?,
        next_due: args
            .next_due
            .as_deref()
            .map(|d| date(Some(d), "--next-due"))
            .transpose()?,
    };
    warn_pii(app, followup.outcome.as_str());
    let mut store = app.unlock()?;
    let id = store.resolve_case_id(&args.id)?;
    store.edit_case(id, |doc| doc.add_followup(&followup).map(Some))?;
    report(app, "follow-up", &followup.id)
}

/// `amana note add ID --staff CODE`, text from standard input.
pub fn add_note(app: &App, id: &str, staff: &str) -> anyhow::Result<()> {
    let author = StaffCode::new(staff)?;
    if std::io::stdin().is_terminal() {
        eprintln!("Type the note; end with Ctrl-D on an empty line.");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the note from standard input")?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(Invalid("the note is empty; nothing was saved".into()).into());
    }
    warn_pii(app, &text);
    let note = Note {
        id: new_item_id(),
        author,
        at: chrono::Utc::now(),
        text,
    };
    let mut store = app.unlock()?;
    let id = store.resolve_case_id(id)?;
    store.edit_case(id, |doc| doc.add_note(&note).map(Some))?;
    report(app, "note", &note.id)
}

/// Prints the warnings for text that looks like it identifies someone.
pub fn warn_pii(app: &App, text: &str) {
    for warning in pii::scan(text) {
        eprintln!("WARNING: {}", warning.message(app.lang));
    }
}

fn own_role(store: &DeviceStore) -> anyhow::Result<amana_core::roster::Role> {
    let me = store.keys().device_id();
    Ok(store
        .roster()?
        .and_then(|r| r.device(&me).map(|d| d.entry.role))
        .or(store.membership()?.map(|m| m.role))
        .unwrap_or(amana_core::roster::Role::Field))
}

fn report(app: &App, what: &str, item: &str) -> anyhow::Result<()> {
    if app.json {
        println!("{}", json!({"added": what, "id": item}));
    } else {
        match app.lang {
            Lang::En => println!("Saved the {what} ({item}); sync to share it."),
            Lang::Ar => println!("تم الحفظ ({item})؛ قم بالمزامنة لمشاركته."),
        }
    }
    Ok(())
}
