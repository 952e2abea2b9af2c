//! How cases look on a terminal, in English or Arabic, and their JSON
//! summaries. Conflicting values are always shown, never hidden.

use std::fmt::Write as _;

use amana_core::case::{CaseView, Lang};
use serde_json::json;

fn t(lang: Lang, en: &'static str, ar: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

fn yes_no(lang: Lang, value: bool) -> &'static str {
    match (lang, value) {
        (Lang::En, true) => "yes",
        (Lang::En, false) => "no",
        (Lang::Ar, true) => "نعم",
        (Lang::Ar, false) => "لا",
    }
}

/// The header of `cases list`.
pub fn summary_header(lang: Lang) -> String {
    format!(
        "{:<12}  {:<13}  {:<10}  {:<8}  {:<8}  {}",
        t(lang, "case", "الحالة"),
        t(lang, "survivor", "الناجية"),
        t(lang, "reported", "الإبلاغ"),
        t(lang, "state", "الوضع"),
        t(lang, "risk", "الخطورة"),
        t(lang, "notes", "ملاحظات")
    )
}

/// One line of `cases list`.
pub fn summary_line(view: &CaseView, _lang: Lang) -> String {
    let c = &view.case;
    let mut line = format!(
        "{:<12}  {:<13}  {:<10}  {:<8}  {:<8}  {} note(s), {} referral(s), {} follow-up(s)",
        &c.case_id.to_hex()[..12],
        c.survivor_code.as_str(),
        c.reported_at,
        c.status.state.code(),
        c.risk.level.code(),
        c.notes.len(),
        c.referrals.len(),
        c.followups.len()
    );
    if !view.conflicts.is_empty() {
        let _ = write!(line, "  CONFLICT x{}", view.conflicts.len());
    }
    line
}

/// The JSON summary of a case for `cases list --json`.
pub fn summary_json(view: &CaseView) -> serde_json::Value {
    let c = &view.case;
    json!({
        "case": c.case_id.to_hex(),
        "survivor_code": c.survivor_code.as_str(),
        "reported_at": c.reported_at,
        "state": c.status.state.code(),
        "risk": c.risk.level.code(),
        "notes": c.notes.len(),
        "referrals": c.referrals.len(),
        "followups": c.followups.len(),
        "conflicts": view.conflicts.len(),
    })
}

/// The whole case for `cases show`.
pub fn case(view: &CaseView, lang: Lang) -> String {
    let c = &view.case;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {}  ({} {}, {} {} {})",
        t(lang, "Case", "الحالة"),
        c.case_id,
        t(lang, "survivor", "الناجية"),
        c.survivor_code.as_str(),
        t(lang, "recorded by", "سجّلها"),
        c.staff_code.as_str(),
        c.created_at.format("%Y-%m-%d %H:%M UTC")
    );
    let s = &c.survivor;
    let _ = writeln!(
        o,
        "{}: {}, {}, {}, {}; {}: {}",
        t(lang, "Survivor", "الناجية"),
        s.age_band.label(lang),
        s.sex.label(lang),
        s.displacement.label(lang),
        s.marital_status.label(lang),
        t(lang, "disability", "إعاقة"),
        yes_no(lang, s.disability)
    );
    let i = &c.incident;
    let when = match c.incident_date {
        Some(d) if c.incident_date_approximate => format!("~{d}"),
        Some(d) => d.to_string(),
        None => "?".into(),
    };
    let _ = writeln!(
        o,
        "{}: {when}, {}, {}{}",
        t(lang, "Incident", "الحادثة"),
        i.gbv_type.label(lang),
        i.location.as_str(),
        i.time_of_day
            .map(|x| format!(", {}", x.label(lang)))
            .unwrap_or_default()
    );
    let e = &i.extortion;
    let parts: Vec<String> = [
        e.subtype.map(|x| x.label(lang).to_owned()),
        e.platform.map(|x| x.label(lang).to_owned()),
        e.demand.map(|x| x.label(lang).to_owned()),
        e.paid
            .map(|p| format!("{}: {}", t(lang, "paid", "دفعت"), yes_no(lang, p))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !parts.is_empty() {
        let _ = writeln!(
            o,
            "  {}: {}",
            t(lang, "Extortion", "الابتزاز"),
            parts.join(", ")
        );
    }
    let p = &i.perpetrator;
    let _ = writeln!(
        o,
        "  {}: {}, {}, {}, {}",
        t(lang, "Perpetrator", "الجاني"),
        p.count.label(lang),
        p.sex.label(lang),
        p.age_group.label(lang),
        p.relationship.label(lang)
    );
    let _ = writeln!(
        o,
        "{}: {}; {}: {}; {}: {}",
        t(lang, "Risk", "الخطورة"),
        c.risk.level.label(lang),
        t(lang, "immediate danger", "خطر فوري"),
        yes_no(lang, c.risk.immediate_danger),
        t(lang, "safety plan", "خطة سلامة"),
        yes_no(lang, c.risk.safety_plan_done)
    );
    let _ = writeln!(
        o,
        "{}: {} {}, {} {}",
        t(lang, "Consent", "الموافقة"),
        t(lang, "services", "الخدمات"),
        yes_no(lang, c.consent.services),
        t(lang, "statistics", "الإحصاءات"),
        yes_no(lang, c.consent.statistics)
    );
    for choice in amana_core::case::codes::Recipient::CHOICES {
        if let Ok(recipient) = choice.code.parse() {
            let record = c.consent.recipients.get(recipient);
            if record.given {
                let _ = writeln!(
                    o,
                    "  {}: {} ({})",
                    choice.label(lang),
                    yes_no(lang, true),
                    record.date.map(|d| d.to_string()).unwrap_or_default()
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "{}: {}",
        t(lang, "State", "الوضع"),
        c.status.state.label(lang)
    );
    for r in &c.referrals {
        let _ = writeln!(
            o,
            "{} {}: {} → {} ({}), {}, {}{}",
            t(lang, "Referral", "إحالة"),
            r.id,
            r.service_type.label(lang),
            r.organisation.as_str(),
            r.recipient.label(lang),
            r.date,
            r.status.label(lang),
            if r.consent_override.is_some() {
                t(lang, ", CONSENT OVERRIDE", "، تجاوز الموافقة")
            } else {
                ""
            }
        );
    }
    for f in &c.followups {
        let _ = writeln!(
            o,
            "{} {}: {} {}, {}",
            t(lang, "Follow-up", "متابعة"),
            f.id,
            f.date,
            f.kind.label(lang),
            f.outcome.as_str()
        );
    }
    for n in &c.notes {
        let _ = writeln!(
            o,
            "{} [{} {}]: {}",
            t(lang, "Note", "ملاحظة"),
            n.at.format("%Y-%m-%d"),
            n.author.as_str(),
            n.text
        );
    }
    for conflict in &view.conflicts {
        let values: Vec<String> = conflict
            .values
            .iter()
            .map(|v| {
                let value = v
                    .value
                    .as_str()
                    .map_or_else(|| v.value.to_string(), str::to_owned);
                match v.device {
                    Some(d) => format!("{value} (device {})", &d.to_hex()[..8]),
                    None => value,
                }
            })
            .collect();
        let _ = writeln!(
            o,
            "{} {}: {}",
            t(lang, "CONFLICT", "تعارض"),
            conflict.path,
            values.join(" | ")
        );
        let _ = writeln!(
            o,
            "  {} amana cases update {} {} VALUE",
            t(lang, "resolve with:", "للحل:"),
            &c.case_id.to_hex()[..12],
            conflict.path
        );
    }
    o
}
