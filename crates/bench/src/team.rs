//! A team for the benchmarks: an office that created it, devices enrolled
//! through the real protocol, the demo's intake form, and envelopes sealed
//! straight from device keys when a benchmark needs a large log quickly.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use amana_core::case::{Case, CaseDoc, Intake, SurvivorCode};
use amana_core::envelope::seal::{self, CaseChange};
use amana_core::envelope::{EnvelopeHeader, Kind};
use amana_core::keys::DeviceKeys;
use amana_core::keys::keystore::{Passphrase, WorkFactor};
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::http::HttpTransport;
use amana_core::sync::{Env, RelayClient, SyncReport, enrol, sync};
use amana_core::{CaseId, Digest, TeamId};
use anyhow::{Context, Result};

/// The demo's intake form: its answered questions and the consent grid.
const INTAKE: &str = include_str!("intake.json");

/// Words the bench's notes are drawn from: officers write short Arabic
/// notes, each different (a fixed note would compress away across cases
/// and flatter every byte figure).
const WORDS: &[&str] = &[
    "تواصلت",
    "الناجية",
    "عبر",
    "الهاتف",
    "وأفادت",
    "بأن",
    "شخصاً",
    "تعرفه",
    "يهددها",
    "بنشر",
    "صور",
    "خاصة",
    "ما",
    "لم",
    "تدفع",
    "مبلغاً",
    "من",
    "المال",
    "تمت",
    "إحالتها",
    "إلى",
    "خدمات",
    "الدعم",
    "النفسي",
    "وقالت",
    "إنها",
    "تخاف",
    "من",
    "عائلتها",
    "ولا",
    "تريد",
    "الإبلاغ",
    "الشرطة",
    "المجتمعية",
    "في",
    "الوقت",
    "الحالي",
    "اتفقنا",
    "على",
    "موعد",
    "للمتابعة",
    "الأسبوع",
    "القادم",
    "الحساب",
    "المزيف",
    "على",
    "فيسبوك",
    "أرسل",
    "رسائل",
    "تهديد",
    "متكررة",
    "خلال",
    "الليل",
    "طلبت",
    "المساعدة",
    "القانونية",
    "ووافقت",
    "على",
    "خطة",
    "السلامة",
    "مع",
    "الموظفة",
    "زارت",
    "المركز",
    "برفقة",
    "والدتها",
    "وكانت",
    "قلقة",
    "جداً",
    "بعد",
    "حذف",
    "الصور",
    "من",
    "هاتفها",
];

/// A random index below `n`.
fn below(n: usize) -> usize {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the operating system provides randomness");
    u32::from_le_bytes(bytes) as usize % n
}

/// A note of 16 to 28 random words (about 120 to 200 characters).
fn note() -> String {
    let n = 16 + below(13);
    (0..n)
        .map(|_| WORDS[below(WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A random code of a vocabulary.
fn pick(choices: &[amana_core::case::Choice]) -> serde_json::Value {
    choices[below(choices.len())].code.into()
}

/// The engine's clock and nonces, from the system (as the CLI does).
pub fn env() -> Env {
    Env::new(now, || {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).expect("the operating system provides randomness");
        nonce
    })
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A typical new case: the demo's intake form with its answers varied
/// (dates, displacement, marital status, the extortion's kind, platform
/// and demand, time of day, perpetrator, risk) and a short Arabic note.
pub fn typical_case() -> Case {
    use amana_core::case::codes::*;
    let mut form: serde_json::Value =
        serde_json::from_str(INTAKE).expect("the bench intake parses");
    let day = |d: usize| {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|s| s.checked_add_days(chrono::Days::new(d as u64)))
            .map(|d| d.to_string())
            .expect("a 2026 date")
    };
    let reported = 30 + below(300);
    form["reported_at"] = day(reported).into();
    form["incident_date"] = day(reported - below(30)).into();
    form["survivor"]["displacement"] = pick(Displacement::CHOICES);
    form["survivor"]["marital_status"] = pick(MaritalStatus::CHOICES);
    let incident = &mut form["incident"];
    incident["extortion"]["subtype"] = pick(ExtortionSubtype::CHOICES);
    incident["extortion"]["platform"] = pick(Platform::CHOICES);
    incident["extortion"]["demand"] = pick(Demand::CHOICES);
    incident["time_of_day"] = pick(TimeOfDay::CHOICES);
    incident["perpetrator"]["age_group"] = pick(PerpetratorAge::CHOICES);
    incident["perpetrator"]["relationship"] = pick(Relationship::CHOICES);
    form["risk"]["level"] = pick(RiskLevel::CHOICES);
    form["note"] = note().into();
    let intake: Intake = serde_json::from_value(form).expect("the varied intake is valid");
    Case::from_intake(
        intake,
        CaseId::random(),
        SurvivorCode::generate("NP-QAY").expect("a survivor code generates"),
        chrono::DateTime::from_timestamp(now() as i64, 0).expect("the clock is in range"),
    )
}

/// A new device store (a low key-derivation cost: the benchmarks do not
/// measure unlocking).
pub fn new_store(dir: &Path) -> Result<DeviceStore> {
    Ok(DeviceStore::create(
        dir,
        DeviceKeys::generate(),
        &Passphrase::new("bench passphrase, not a secret".into()),
        WorkFactor::Fixed(4),
    )?)
}

/// An HTTP(S) transport to `url`.
pub fn transport(url: &str, pin: Option<Digest>) -> Result<HttpTransport> {
    HttpTransport::new(url, pin).with_context(|| format!("a transport to {url}"))
}

/// A team on a relay: its id and where the relay is. The office (the
/// admin device that created it) is kept by the caller.
pub struct Team {
    /// The team.
    pub id: TeamId,
    /// The relay's URL.
    pub url: String,
    /// The relay's TLS key pin (HTTPS only).
    pub pin: Option<Digest>,
    dir: std::path::PathBuf,
    devices: usize,
}

impl Team {
    /// Creates a team at the relay at `url`; returns it and its office
    /// (in `dir/office`).
    pub fn create(dir: &Path, url: &str, pin: Option<Digest>) -> Result<(Team, DeviceStore)> {
        let mut office = new_store(&dir.join("office"))?;
        let id = enrol::create_team(
            &mut office,
            &mut transport(url, pin)?,
            url,
            pin,
            "Office",
            None,
        )?;
        let team = Team {
            id,
            url: url.to_owned(),
            pin,
            dir: dir.to_owned(),
            devices: 0,
        };
        Ok((team, office))
    }

    /// A client of this team's relay, at `url` (the relay itself or a
    /// proxy in front of it).
    pub fn client(&self, url: &str) -> Result<RelayClient<HttpTransport>> {
        Ok(RelayClient::new(transport(url, self.pin)?, self.id))
    }

    /// A new device, invited, joined and approved (it has not synced yet).
    pub fn enrol(&mut self, office: &mut DeviceStore, role: Role) -> Result<DeviceStore> {
        self.devices += 1;
        let label = format!("Device {}", self.devices);
        let mut env = env();
        let mut client = self.client(&self.url)?;
        let code = enrol::invite(office, &mut client, &mut env, role, &label, 3600)?;
        let mut device = new_store(&self.dir.join(format!("device-{}", self.devices)))?;
        let number = enrol::join(&mut device, client.transport_mut(), &code)?;
        let prefix = device.keys().device_id().to_hex();
        enrol::approve(office, &mut client, &mut env, &prefix, &number)?;
        Ok(device)
    }

    /// One sync of `store` through `url`.
    pub fn sync_via(&self, store: &mut DeviceStore, url: &str) -> Result<SyncReport> {
        let mut client = self.client(url)?;
        Ok(sync(store, &mut client, &mut env(), &mut |_| {})?)
    }

    /// One sync of `store` with the relay directly.
    pub fn sync(&self, store: &mut DeviceStore) -> Result<SyncReport> {
        self.sync_via(store, &self.url)
    }
}

/// A device's log written without its store: envelopes sealed straight
/// from its keys, chained, for benchmarks that need many quickly.
pub struct LogWriter<'a> {
    keys: &'a DeviceKeys,
    team: TeamId,
    epoch: u32,
    recipient: age::x25519::Recipient,
    seq: u64,
    prev: Digest,
    context: seal::SealContext,
}

impl<'a> LogWriter<'a> {
    /// Continues `store`'s log (from its own head) under the team's current
    /// epoch as its roster shows it.
    pub fn new(store: &'a DeviceStore) -> Result<Self> {
        let roster = store.roster()?.context("the device holds no roster")?;
        let (seq, prev) = store.own_head()?.unwrap_or((0, Digest::ZERO));
        let epoch = roster.current_epoch();
        Ok(LogWriter {
            keys: store.keys(),
            team: roster.team(),
            epoch: epoch.epoch,
            recipient: epoch.recipient.clone(),
            seq,
            prev,
            context: seal::SealContext::under(&roster, 0),
        })
    }

    /// Seals `cases` as new intakes into the next envelope; returns it and,
    /// for each case, its raw Automerge change size and saved document.
    pub fn seal_intakes(&mut self, cases: &[Case]) -> Result<(Vec<u8>, Vec<Made>)> {
        let mut changes = Vec::with_capacity(cases.len());
        let mut made = Vec::with_capacity(cases.len());
        for case in cases {
            let (mut doc, change) = CaseDoc::create(case, self.keys.device_id())?;
            made.push(Made {
                change: change.len(),
                saved: doc.save(),
            });
            changes.push(CaseChange {
                case: case.case_id,
                change,
            });
        }
        self.seq += 1;
        let header = EnvelopeHeader {
            kind: Kind::Changes,
            team: self.team,
            device: self.keys.device_id(),
            seq: self.seq,
            prev: self.prev,
            epoch: self.epoch,
            body_len: 0,
        };
        let contents = seal::Contents::changes(self.context, &changes);
        let envelope = seal::seal(header, &contents, &self.recipient, self.keys)?;
        self.prev = envelope.id();
        Ok((envelope.as_bytes().to_vec(), made))
    }
}

/// One case as [`LogWriter::seal_intakes`] made it.
#[derive(Clone, Debug)]
pub struct Made {
    /// Bytes of its Automerge change.
    pub change: usize,
    /// `save()` of its document after that change.
    pub saved: Vec<u8>,
}
