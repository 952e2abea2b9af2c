//! Sample cases for tests.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::codes::*;
use super::model::*;
use crate::ids::CaseId;

pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + seconds, 0).unwrap()
}

pub(crate) fn staff(code: &str) -> StaffCode {
    StaffCode::new(code).unwrap()
}

/// A typical adult digital-extortion intake, with a note holding `note`.
pub(crate) fn intake(note: &str) -> Intake {
    Intake {
        survivor_code: None,
        staff_code: staff("QAY-FO-07"),
        reported_at: date(2026, 3, 14),
        incident_date: Some(date(2026, 3, 2)),
        incident_date_approximate: true,
        survivor: Survivor {
            age_band: AgeBand::Age18To25,
            is_minor: false,
            minor_consent: MinorConsent::NotApplicable,
            sex: Sex::Female,
            displacement: Displacement::Returnee,
            disability: false,
            marital_status: MaritalStatus::Single,
        },
        incident: Incident {
            gbv_type: GbvType::Psychological,
            extortion: Extortion {
                subtype: Some(ExtortionSubtype::ThreatToShare),
                platform: Some(Platform::WhatsApp),
                demand: Some(Demand::Money),
                paid: Some(false),
            },
            location: Location::new("Qayyarah").unwrap(),
            time_of_day: Some(TimeOfDay::Evening),
            perpetrator: Perpetrator {
                count: PerpetratorCount::One,
                sex: PerpetratorSex::Male,
                age_group: PerpetratorAge::Age18To25,
                relationship: Relationship::FriendNeighbour,
                identity_known: true,
            },
        },
        risk: Risk {
            level: RiskLevel::High,
            immediate_danger: false,
            safety_plan_done: true,
        },
        consent: Consent {
            services: true,
            statistics: true,
            recipients: RecipientConsents {
                mhpss: ConsentRecord {
                    given: true,
                    date: Some(date(2026, 3, 14)),
                    staff_code: Some(staff("QAY-FO-07")),
                },
                ..Default::default()
            },
        },
        note: Some(note.to_owned()),
    }
}

/// A whole case built from [`intake`].
pub(crate) fn case(note: &str) -> Case {
    Case::from_intake(
        intake(note),
        CaseId::random(),
        SurvivorCode::generate("NP-QAY").unwrap(),
        at(0),
    )
}
