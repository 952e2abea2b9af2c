//! `amana intake`: a new case, asked question by question (in English or
//! Arabic; answers may be a number from the list, a code, or a label), or
//! read from a JSON or TOML file for scripting. The case is durable on
//! this device before the command says it is saved.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use amana_core::CaseId;
use amana_core::case::codes::*;
use amana_core::case::{Case, Choice, Intake, Lang, SurvivorCode};
use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::cli::IntakeArgs;
use crate::commands::cases::warn_pii;
use crate::exit::Invalid;

enum Kind {
    Choice(&'static [Choice]),
    OptionalChoice(&'static [Choice]),
    Bool,
    OptionalBool,
    Date,
    OptionalDate,
    Text,
    OptionalText,
}

struct Question {
    path: &'static str,
    en: &'static str,
    ar: &'static str,
    kind: Kind,
}

macro_rules! q {
    ($path:literal, $en:literal, $ar:literal, $kind:expr) => {
        Question {
            path: $path,
            en: $en,
            ar: $ar,
            kind: $kind,
        }
    };
}

const QUESTIONS: &[Question] = &[
    q!(
        "staff_code",
        "Your staff code (e.g. QAY-FO-07)",
        "رمز الموظف (مثال QAY-FO-07)",
        Kind::Text
    ),
    q!(
        "reported_at",
        "Date reported (YYYY-MM-DD, empty for today)",
        "تاريخ الإبلاغ (فارغ = اليوم)",
        Kind::Date
    ),
    q!(
        "incident_date",
        "Incident date (YYYY-MM-DD, empty if unknown)",
        "تاريخ الحادثة (فارغ إن لم يُعرف)",
        Kind::OptionalDate
    ),
    q!(
        "incident_date_approximate",
        "Is the incident date approximate?",
        "هل تاريخ الحادثة تقريبي؟",
        Kind::Bool
    ),
    q!(
        "survivor.age_band",
        "Survivor's age band",
        "الفئة العمرية للناجية",
        Kind::Choice(AgeBand::CHOICES)
    ),
    q!(
        "survivor.minor_consent",
        "Consent for a minor",
        "موافقة القاصر",
        Kind::Choice(MinorConsent::CHOICES)
    ),
    q!(
        "survivor.sex",
        "Survivor's sex",
        "جنس الناجية",
        Kind::Choice(Sex::CHOICES)
    ),
    q!(
        "survivor.displacement",
        "Displacement status",
        "وضع النزوح",
        Kind::Choice(Displacement::CHOICES)
    ),
    q!(
        "survivor.disability",
        "Does the survivor have a disability?",
        "هل لدى الناجية إعاقة؟",
        Kind::Bool
    ),
    q!(
        "survivor.marital_status",
        "Marital status",
        "الحالة الاجتماعية",
        Kind::Choice(MaritalStatus::CHOICES)
    ),
    q!(
        "incident.gbv_type",
        "Type of violence",
        "نوع العنف",
        Kind::Choice(GbvType::CHOICES)
    ),
    q!(
        "incident.extortion.subtype",
        "Kind of extortion (empty if none)",
        "نوع الابتزاز (فارغ إن لم يوجد)",
        Kind::OptionalChoice(ExtortionSubtype::CHOICES)
    ),
    q!(
        "incident.extortion.platform",
        "Platform (empty if none)",
        "المنصة (فارغ إن لم توجد)",
        Kind::OptionalChoice(Platform::CHOICES)
    ),
    q!(
        "incident.extortion.demand",
        "Demand (empty if none)",
        "المطلب (فارغ إن لم يوجد)",
        Kind::OptionalChoice(Demand::CHOICES)
    ),
    q!(
        "incident.extortion.paid",
        "Was anything paid or given? (empty if unknown)",
        "هل دُفع أو قُدّم شيء؟ (فارغ إن لم يُعرف)",
        Kind::OptionalBool
    ),
    q!(
        "incident.location",
        "District or sub-district (or online)",
        "القضاء أو الناحية (أو عبر الإنترنت)",
        Kind::Text
    ),
    q!(
        "incident.time_of_day",
        "Time of day (empty if unknown)",
        "وقت الحادثة (فارغ إن لم يُعرف)",
        Kind::OptionalChoice(TimeOfDay::CHOICES)
    ),
    q!(
        "incident.perpetrator.count",
        "Number of perpetrators",
        "عدد الجناة",
        Kind::Choice(PerpetratorCount::CHOICES)
    ),
    q!(
        "incident.perpetrator.sex",
        "Perpetrator's sex",
        "جنس الجاني",
        Kind::Choice(PerpetratorSex::CHOICES)
    ),
    q!(
        "incident.perpetrator.age_group",
        "Perpetrator's age group",
        "الفئة العمرية للجاني",
        Kind::Choice(PerpetratorAge::CHOICES)
    ),
    q!(
        "incident.perpetrator.relationship",
        "Relationship to the survivor",
        "صلة الجاني بالناجية",
        Kind::Choice(Relationship::CHOICES)
    ),
    q!(
        "incident.perpetrator.identity_known",
        "Is the perpetrator's identity known?",
        "هل هوية الجاني معروفة؟",
        Kind::Bool
    ),
    q!(
        "risk.level",
        "Risk level",
        "مستوى الخطورة",
        Kind::Choice(RiskLevel::CHOICES)
    ),
    q!(
        "risk.immediate_danger",
        "Is she in immediate danger?",
        "هل هي في خطر فوري؟",
        Kind::Bool
    ),
    q!(
        "risk.safety_plan_done",
        "Was a safety plan made?",
        "هل وُضعت خطة سلامة؟",
        Kind::Bool
    ),
    q!(
        "consent.services",
        "Consent to receive services?",
        "الموافقة على تلقي الخدمات؟",
        Kind::Bool
    ),
    q!(
        "consent.statistics",
        "Consent to be counted in anonymous statistics?",
        "الموافقة على الاحتساب في الإحصاءات المجهولة؟",
        Kind::Bool
    ),
    q!(
        "consent.recipients.community_police.given",
        "Consent to share with community police?",
        "الموافقة على المشاركة مع الشرطة المجتمعية؟",
        Kind::Bool
    ),
    q!(
        "consent.recipients.national_security.given",
        "Consent to share with national security?",
        "الموافقة على المشاركة مع الأمن الوطني؟",
        Kind::Bool
    ),
    q!(
        "consent.recipients.mhpss.given",
        "Consent to refer to mental-health/psychosocial support?",
        "الموافقة على الإحالة للصحة النفسية والدعم النفسي؟",
        Kind::Bool
    ),
    q!(
        "consent.recipients.legal_aid.given",
        "Consent to refer to legal aid?",
        "الموافقة على الإحالة للمساعدة القانونية؟",
        Kind::Bool
    ),
    q!(
        "consent.recipients.other_ngo.given",
        "Consent to refer to another NGO?",
        "الموافقة على الإحالة لمنظمة أخرى؟",
        Kind::Bool
    ),
    q!(
        "note",
        "A first note (no names, phone numbers or addresses; empty for none)",
        "ملاحظة أولى (بدون أسماء أو أرقام هواتف أو عناوين؛ فارغ لعدم الإضافة)",
        Kind::OptionalText
    ),
];

/// `amana intake`.
pub fn run(app: &App, args: IntakeArgs) -> anyhow::Result<()> {
    let intake = match &args.from_file {
        Some(path) => from_file(path)?,
        None => ask(app, Duration::from_secs(args.idle_secs))?,
    };
    if let Some(note) = &intake.note {
        warn_pii(app, note);
    }
    let mut store = app.unlock()?;
    let case = Case::from_intake(
        intake,
        CaseId::random(),
        SurvivorCode::generate(&args.code_prefix)?,
        chrono::Utc::now(),
    );
    let id = store.record_intake(&case)?;
    if app.json {
        println!(
            "{}",
            json!({"case": id.to_hex(), "survivor_code": case.survivor_code.as_str()})
        );
    } else {
        match app.lang {
            Lang::En => println!(
                "Saved case {} (survivor code {}). It is on this device only until you sync.",
                &id.to_hex()[..12],
                case.survivor_code.as_str()
            ),
            Lang::Ar => println!(
                "تم حفظ الحالة {} (رمز الناجية {}). تبقى على هذا الجهاز فقط حتى المزامنة.",
                &id.to_hex()[..12],
                case.survivor_code.as_str()
            ),
        }
    }
    Ok(())
}

fn from_file(path: &Path) -> anyhow::Result<Intake> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let parsed = if is_toml {
        toml::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        Invalid(format!(
            "{} is not a valid intake: {e}. See tests/fixtures/intake.json for the format",
            path.display()
        ))
        .into()
    })
}

/// Answers typed at the terminal, read on a thread of their own so that a
/// prompt left unanswered can time out.
struct Answers {
    lines: mpsc::Receiver<std::io::Result<String>>,
    idle: Duration,
}

impl Answers {
    fn start(idle: Duration) -> Self {
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                let read = stdin.lock().read_line(&mut line);
                let end = matches!(read, Ok(0) | Err(_));
                if send.send(read.map(|_| line)).is_err() || end {
                    return;
                }
            }
        });
        Answers { lines, idle }
    }

    /// The next line; `None` at the end of the input.
    fn next(&self, interactive: bool) -> anyhow::Result<Option<String>> {
        match self.lines.recv_timeout(self.idle) {
            Ok(Ok(line)) if line.is_empty() => Ok(None),
            Ok(Ok(line)) => Ok(Some(line)),
            Ok(Err(e)) => Err(e.into()),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interactive {
                    // Clear the screen and its scrollback: the answers
                    // given so far must not stay readable.
                    eprint!("\x1b[H\x1b[2J\x1b[3J");
                }
                Err(anyhow::anyhow!(
                    "no answer for {} seconds: the intake was discarded (nothing was saved) and                      the screen cleared. Start again with `amana intake`",
                    self.idle.as_secs()
                ))
            }
        }
    }
}

fn ask(app: &App, idle: Duration) -> anyhow::Result<Intake> {
    let interactive = std::io::stdin().is_terminal();
    let lines = Answers::start(idle);
    let mut answers = Map::new();
    let lang = app.lang;
    for q in QUESTIONS {
        if q.path == "survivor.minor_consent" && !is_minor(&answers) {
            set(&mut answers, q.path, json!("not_applicable"));
            continue;
        }
        if q.path == "incident_date_approximate" && lookup(&answers, "incident_date").is_null() {
            set(&mut answers, q.path, json!(false));
            continue;
        }
        loop {
            eprintln!();
            eprintln!("{}", if lang == Lang::Ar { q.ar } else { q.en });
            if let Kind::Choice(c) | Kind::OptionalChoice(c) = q.kind {
                for (i, choice) in c.iter().enumerate() {
                    eprintln!("  {:>2}. {}  [{}]", i + 1, choice.label(lang), choice.code);
                }
            }
            eprint!("> ");
            std::io::stderr().flush().ok();
            let Some(line) = lines.next(interactive)? else {
                return Err(Invalid(
                    "the input ended before the intake was complete; nothing was saved".into(),
                )
                .into());
            };
            match answer(&q.kind, line.trim(), q.path) {
                Ok(value) => {
                    set(&mut answers, q.path, value);
                    break;
                }
                Err(message) if interactive => eprintln!("{message}"),
                Err(message) => return Err(Invalid(message).into()),
            }
        }
    }
    complete(&mut answers);
    serde_json::from_value(Value::Object(answers))
        .map_err(|e| Invalid(format!("the answers do not make a valid intake: {e}")).into())
}

fn answer(kind: &Kind, text: &str, path: &str) -> Result<Value, String> {
    let yes = ["y", "yes", "نعم", "ن"];
    let no = ["n", "no", "لا", "ل"];
    let empty = text.is_empty();
    match kind {
        Kind::Choice(c) | Kind::OptionalChoice(c) => {
            if empty {
                return match kind {
                    Kind::OptionalChoice(_) => Ok(Value::Null),
                    _ => Err("an answer is needed: type a number from the list".into()),
                };
            }
            if let Ok(n) = text.parse::<usize>()
                && (1..=c.len()).contains(&n)
            {
                return Ok(json!(c[n - 1].code));
            }
            c.iter()
                .find(|ch| ch.code == text || ch.en.eq_ignore_ascii_case(text) || ch.ar == text)
                .map(|ch| json!(ch.code))
                .ok_or_else(|| {
                    format!("{text:?} is not one of the listed answers for {path}; type its number")
                })
        }
        Kind::Bool | Kind::OptionalBool => {
            let lower = text.to_lowercase();
            if yes.contains(&lower.as_str()) {
                Ok(json!(true))
            } else if no.contains(&lower.as_str()) {
                Ok(json!(false))
            } else if empty && matches!(kind, Kind::OptionalBool) {
                Ok(Value::Null)
            } else if empty {
                Ok(json!(false))
            } else {
                Err("answer yes or no (نعم / لا)".into())
            }
        }
        Kind::Date | Kind::OptionalDate => {
            if empty {
                return Ok(match kind {
                    Kind::Date => json!(chrono::Utc::now().date_naive()),
                    _ => Value::Null,
                });
            }
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| json!(d))
                .map_err(|_| "write the date as YYYY-MM-DD, e.g. 2026-03-14".to_owned())
        }
        Kind::Text => {
            if empty {
                Err("an answer is needed".into())
            } else {
                Ok(json!(text))
            }
        }
        Kind::OptionalText => Ok(if empty { Value::Null } else { json!(text) }),
    }
}

fn lookup<'a>(answers: &'a Map<String, Value>, path: &str) -> &'a Value {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = answers.get(first).unwrap_or(&Value::Null);
    for part in parts {
        value = value.get(part).unwrap_or(&Value::Null);
    }
    value
}

fn set(answers: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("non-empty path");
    let mut map = answers;
    for part in parts {
        map = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("paths nest objects");
    }
    map.insert(last.to_owned(), value);
}

fn is_minor(answers: &Map<String, Value>) -> bool {
    lookup(answers, "survivor.age_band")
        .as_str()
        .and_then(|code| code.parse::<AgeBand>().ok())
        .is_some_and(AgeBand::is_minor)
}

/// Fills what follows from the answers: the minor flag, and the date and
/// staff code of every consent given at intake.
fn complete(answers: &mut Map<String, Value>) {
    let minor = is_minor(answers);
    set(answers, "survivor.is_minor", json!(minor));
    let date = lookup(answers, "reported_at").clone();
    let staff = lookup(answers, "staff_code").clone();
    for choice in Recipient::CHOICES {
        let base = format!("consent.recipients.{}", choice.code);
        let given = lookup(answers, &format!("{base}.given")).as_bool() == Some(true);
        let (d, s) = if given {
            (date.clone(), staff.clone())
        } else {
            (Value::Null, Value::Null)
        };
        set(answers, &format!("{base}.date"), d);
        set(answers, &format!("{base}.staff_code"), s);
    }
}

/// How many answers an interactive intake of an adult takes (the tests
/// feed that many lines).
#[cfg(test)]
pub(crate) fn question_count() -> usize {
    QUESTIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_codes_and_arabic_labels_are_accepted() {
        let kind = Kind::Choice(RiskLevel::CHOICES);
        assert_eq!(
            answer(&kind, "1", "risk.level").unwrap(),
            json!(RiskLevel::CHOICES[0].code)
        );
        assert_eq!(answer(&kind, "high", "risk.level").unwrap(), json!("high"));
        let ar = RiskLevel::CHOICES[1].ar;
        assert_eq!(
            answer(&kind, ar, "risk.level").unwrap(),
            json!(RiskLevel::CHOICES[1].code)
        );
        assert!(answer(&kind, "99", "risk.level").is_err());
        assert!(answer(&kind, "", "risk.level").is_err());
        assert_eq!(answer(&Kind::Bool, "نعم", "x").unwrap(), json!(true));
        assert_eq!(answer(&Kind::OptionalBool, "", "x").unwrap(), Value::Null);
        assert!(answer(&Kind::Date, "14/03/2026", "x").is_err());
        assert!(question_count() > 20);
    }
}
