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

use crate::app::App;
use crate::cli::{CasesCommand, FollowupArgs, ReferralArgs};
use crate::exit::Invalid;
use crate::render;

/// Runs a `cases` command.
pub fn run(app: &App, command: CasesCommand) -> anyhow::Result<()> {
    match command {
        CasesCommand::List => list(app),
        CasesCommand::Show { id } => show(app, &id),
        CasesCommand::Update { id, field, value } => update(app, &id, &field, &value),
        CasesCommand::Fields => fields(app),
    }
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
