//! `amana alarms`: the integrity alarms this device holds (its own, and on
//! an admin device those other devices reported), with what each means and
//! what to do, in the chosen language; `amana alarms ack` acknowledges them.

use amana_core::case::Lang;
use amana_core::store::{Alarm, DeviceStore};
use amana_core::sync::{alarm_words, alarms, enrol};
use serde_json::json;

use crate::app::{self, App};
use crate::cli::AlarmsCommand;
use crate::exit::Alarm as AlarmExit;

/// Runs `amana alarms …`.
pub fn run(app: &App, command: Option<AlarmsCommand>) -> anyhow::Result<()> {
    match command.unwrap_or(AlarmsCommand::List { all: false }) {
        AlarmsCommand::List { all } => list(app, all),
        AlarmsCommand::Ack { ids } => ack(app, &ids),
    }
}

fn list(app: &App, all: bool) -> anyhow::Result<()> {
    let store = app.unlock()?;
    let mut shown: Vec<Alarm> = store
        .alarms()?
        .into_iter()
        .filter(|a| all || a.is_open())
        .collect();
    shown.sort_by_key(|a| (!a.is_open(), a.first_seen));
    let open = shown.iter().filter(|a| a.is_open()).count();
    if app.json {
        let items: Vec<_> = shown.iter().map(|a| to_json(a, app.lang)).collect();
        println!("{}", serde_json::Value::Array(items));
    } else {
        print_list(&store, &shown, app.lang)?;
    }
    open_is_an_alarm(open, app.lang)
}

fn to_json(a: &Alarm, lang: Lang) -> serde_json::Value {
    let words = alarm_words::describe(&a.code);
    json!({
        "id": a.id.to_hex(),
        "code": a.code,
        "raised_by": a.raised_by.to_hex(),
        "device": a.device.map(|d| d.to_hex()),
        "seq": a.seq,
        "message": a.message,
        "meaning": words.map(|w| w.meaning(lang)),
        "advice": words.map(|w| w.advice(lang)),
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "sightings": a.sightings,
        "reported": a.reported,
        "acknowledged_by": a.acknowledged.map(|k| k.by.to_hex()),
        "acknowledged_at": a.acknowledged.map(|k| k.at),
    })
}

fn print_list(store: &DeviceStore, shown: &[Alarm], lang: Lang) -> anyhow::Result<()> {
    if shown.is_empty() {
        println!(
            "{}",
            match lang {
                Lang::En => "No open alarm.",
                Lang::Ar => "لا توجد إنذارات مفتوحة.",
            }
        );
        return Ok(());
    }
    let labels = match store.roster()? {
        Some(roster) => enrol::device_labels(store, &roster)?,
        None => Default::default(),
    };
    let me = store.keys().device_id();
    let name = |d: &amana_core::DeviceId| {
        let label = labels
            .get(d)
            .map(|l| format!(" \"{l}\""))
            .unwrap_or_default();
        let this = if *d == me { " (this device)" } else { "" };
        format!("{}{label}{this}", &d.to_hex()[..8])
    };
    for a in shown {
        let state = match (a.acknowledged, lang) {
            (None, Lang::En) => "OPEN".to_owned(),
            (None, Lang::Ar) => "مفتوح".to_owned(),
            (Some(k), Lang::En) => format!("acknowledged by {}", name(&k.by)),
            (Some(k), Lang::Ar) => format!("تم الإقرار به من {}", name(&k.by)),
        };
        println!("{}  {}  [{state}]", &a.id.to_hex()[..12], a.code);
        let (raised, about, seen) = match lang {
            Lang::En => ("raised by", "about device", "seen"),
            Lang::Ar => ("أطلقه", "بخصوص الجهاز", "شوهد"),
        };
        println!("    {raised} {}", name(&a.raised_by));
        if let Some(device) = &a.device {
            let seq = a.seq.map(|s| format!(" seq {s}")).unwrap_or_default();
            println!("    {about} {}{seq}", name(device));
        }
        println!(
            "    {seen} {} × {}, {} – {}",
            a.sightings,
            a.code,
            time(a.first_seen),
            time(a.last_seen)
        );
        if let Some(words) = alarm_words::describe(&a.code) {
            println!("    {}", words.meaning(lang));
            println!("    → {}", words.advice(lang));
        }
        println!("    ({})", a.message);
    }
    Ok(())
}

fn time(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Exit 6 while any alarm is open, with the count in the user's language.
pub fn open_is_an_alarm(open: usize, lang: Lang) -> anyhow::Result<()> {
    if open == 0 {
        return Ok(());
    }
    Err(AlarmExit(match lang {
        Lang::En => format!(
            "{open} integrity alarm(s) open: run `amana alarms` for what each means; an admin device acknowledges them"
        ),
        Lang::Ar => format!(
            "{open} إنذار(ات) سلامة مفتوحة: شغّل `amana alarms` لمعرفة معنى كلٍّ منها؛ يُقرّ بها جهاز مسؤول"
        ),
    })
    .into())
}

fn ack(app: &App, ids: &[String]) -> anyhow::Result<()> {
    let mut store = app.unlock()?;
    let done = alarms::acknowledge(&mut store, ids, app::now())?;
    if app.json {
        println!(
            "{}",
            json!({"acknowledged": done.iter().map(|id| id.to_hex()).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "{}",
            match app.lang {
                Lang::En => format!(
                    "{} alarm(s) acknowledged. The devices that raised them hear of it at their next sync after this device's next sync.",
                    done.len()
                ),
                Lang::Ar => format!(
                    "تم الإقرار بـ {} إنذار(ات). تعلم الأجهزة التي أطلقتها بذلك في مزامنتها التالية بعد المزامنة التالية لهذا الجهاز.",
                    done.len()
                ),
            }
        );
    }
    Ok(())
}
