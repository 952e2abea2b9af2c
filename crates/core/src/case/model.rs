//! The typed case record (see `intake-model.md`): what an intake holds,
//! with every rule that keeps it safe and consistent.
//!
//! Nothing here can hold a name, phone number, address, national id,
//! handle, GPS position or date of birth: codes are random or
//! pattern-checked, places are districts only, free text is short and is
//! scanned for personal data by [`super::pii`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::codes::*;
use crate::ids::CaseId;

macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $field:literal, $check:expr, $expected:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps `text`.
            pub fn new(text: &str) -> Result<Self, ValidationError> {
                let text = text.trim();
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(ValidationError::InvalidCode {
                        field: $field,
                        value: text.chars().take(40).collect(),
                        expected: $expected,
                    })
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_code_part(part: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

checked_string!(
    /// Random survivor code with an agency prefix, e.g. `NP-QAY-7KX3`.
    SurvivorCode,
    "survivor_code",
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 3
            && is_code_part(parts[0], 2, 4)
            && is_code_part(parts[1], 2, 4)
            && is_code_part(parts[2], 4, 8)
    },
    "AGENCY-SITE-RANDOM, e.g. NP-QAY-7KX3"
);

checked_string!(
    /// An officer's code (never a name), e.g. `QAY-FO-07`.
    StaffCode,
    "staff_code",
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        (1..=3).contains(&parts.len()) && parts.iter().all(|p| is_code_part(p, 2, 6))
    },
    "1 to 3 groups of 2-6 capital letters or digits, e.g. QAY-FO-07"
);

checked_string!(
    /// An organisation's code in the referral directory, e.g. `MHPSS-01`.
    OrgCode,
    "referral.organisation",
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        (1..=3).contains(&parts.len()) && parts.iter().all(|p| is_code_part(p, 2, 8))
    },
    "1 to 3 groups of 2-8 capital letters or digits, e.g. MHPSS-01"
);

checked_string!(
    /// A district or sub-district name, or `online`. No digits (so no house
    /// numbers or coordinates), at most four words.
    Location,
    "incident.location",
    |s| {
        (2..=40).contains(&s.chars().count())
            && s.split_whitespace().count() <= 4
            && s.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'')
    },
    "a district or sub-district name (letters only, up to 4 words) or \"online\""
);

checked_string!(
    /// Short free text (closure reason, override reason, follow-up outcome).
    ShortText,
    "text",
    |s| !s.is_empty() && s.chars().count() <= 500,
    "between 1 and 500 characters"
);

impl SurvivorCode {
    /// A fresh random code under `prefix` (e.g. `NP-QAY`). Letters and
    /// digits that are easy to confuse (0/O, 1/I) are not used.
    pub fn generate(prefix: &str) -> Result<Self, ValidationError> {
        const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        let random: [u8; 4] = crate::random::bytes();
        let suffix: String = random
            .iter()
            .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
            .collect();
        SurvivorCode::new(&format!("{prefix}-{suffix}"))
    }
}

/// The survivor, coarse only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survivor {
    /// Age band.
    pub age_band: AgeBand,
    /// Under 18 (must agree with the age band).
    pub is_minor: bool,
    /// For minors: caregiver consent and/or assent.
    pub minor_consent: MinorConsent,
    /// Sex.
    pub sex: Sex,
    /// Displacement status.
    pub displacement: Displacement,
    /// Has a disability.
    pub disability: bool,
    /// Marital status.
    pub marital_status: MaritalStatus,
}

/// The digital-extortion block (programme extension to GBVIMS).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extortion {
    /// Kind of extortion.
    pub subtype: Option<ExtortionSubtype>,
    /// Platform used.
    pub platform: Option<Platform>,
    /// What was demanded.
    pub demand: Option<Demand>,
    /// Whether the survivor paid.
    pub paid: Option<bool>,
}

/// The perpetrator(s), coarse only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perpetrator {
    /// How many.
    pub count: PerpetratorCount,
    /// Sex.
    pub sex: PerpetratorSex,
    /// Age group.
    pub age_group: PerpetratorAge,
    /// Relationship to the survivor.
    pub relationship: Relationship,
    /// Whether the survivor knows who it is.
    pub identity_known: bool,
}

/// The incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// GBVIMS core type.
    pub gbv_type: GbvType,
    /// Digital extortion details.
    #[serde(default)]
    pub extortion: Extortion,
    /// District, sub-district or "online".
    pub location: Location,
    /// Time of day.
    pub time_of_day: Option<TimeOfDay>,
    /// Perpetrator(s).
    pub perpetrator: Perpetrator,
}

/// Risk assessment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Level.
    pub level: RiskLevel,
    /// Immediate danger (e.g. an honour-related threat).
    pub immediate_danger: bool,
    /// Safety plan done.
    pub safety_plan_done: bool,
}

/// One consent for release of information.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Whether consent was given.
    pub given: bool,
    /// When it was recorded.
    pub date: Option<NaiveDate>,
    /// Who recorded it.
    pub staff_code: Option<StaffCode>,
}

/// Consent per recipient type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientConsents {
    /// Community police.
    #[serde(default)]
    pub community_police: ConsentRecord,
    /// National security / intelligence.
    #[serde(default)]
    pub national_security: ConsentRecord,
    /// Mental-health and psychosocial support provider.
    #[serde(default)]
    pub mhpss: ConsentRecord,
    /// Legal aid.
    #[serde(default)]
    pub legal_aid: ConsentRecord,
    /// Other NGO.
    #[serde(default)]
    pub other_ngo: ConsentRecord,
}

impl RecipientConsents {
    /// The consent for one recipient type.
    pub fn get(&self, recipient: Recipient) -> &ConsentRecord {
        match recipient {
            Recipient::CommunityPolice => &self.community_police,
            Recipient::NationalSecurity => &self.national_security,
            Recipient::Mhpss => &self.mhpss,
            Recipient::LegalAid => &self.legal_aid,
            Recipient::OtherNgo => &self.other_ngo,
        }
    }
}

/// Consent (GBVIMS consent for release of information).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Consent to receive services.
    pub services: bool,
    /// Consent to be counted in anonymous statistics.
    pub statistics: bool,
    /// Consent per recipient type.
    #[serde(default)]
    pub recipients: RecipientConsents,
}

/// An office decision to refer without recorded consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentOverride {
    /// Why.
    pub reason: ShortText,
    /// The office user who decided.
    pub staff_code: StaffCode,
}

/// A referral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// Random id within the case.
    pub id: String,
    /// Service.
    pub service_type: ServiceType,
    /// Recipient type (decides which consent applies).
    pub recipient: Recipient,
    /// Receiving organisation.
    pub organisation: OrgCode,
    /// Date of referral.
    pub date: NaiveDate,
    /// Whether staff accompanied the survivor.
    pub accompanied: bool,
    /// Status.
    pub status: ReferralStatus,
    /// Set when referred without consent by an office decision.
    pub consent_override: Option<ConsentOverride>,
}

/// A follow-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followup {
    /// Random id within the case.
    pub id: String,
    /// Date.
    pub date: NaiveDate,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: FollowupType,
    /// Outcome.
    pub outcome: ShortText,
    /// Next follow-up due.
    pub next_due: Option<NaiveDate>,
}

/// Case status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// State.
    pub state: CaseState,
    /// Why it was closed.
    pub closure_reason: Option<ShortText>,
    /// Who approved the closure.
    pub approved_by: Option<StaffCode>,
}

/// A free-text note (an Automerge text in the document, so concurrent
/// edits merge).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Random id within the case.
    pub id: String,
    /// Author's staff code.
    pub author: StaffCode,
    /// When written.
    pub at: DateTime<Utc>,
    /// The text.
    pub text: String,
}

/// What an officer records at intake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    /// Survivor code (generated if absent).
    pub survivor_code: Option<SurvivorCode>,
    /// The recording officer.
    pub staff_code: StaffCode,
    /// When the survivor reported.
    pub reported_at: NaiveDate,
    /// When the incident happened, if known.
    pub incident_date: Option<NaiveDate>,
    /// Whether the incident date is approximate.
    #[serde(default)]
    pub incident_date_approximate: bool,
    /// Survivor.
    pub survivor: Survivor,
    /// Incident.
    pub incident: Incident,
    /// Risk.
    pub risk: Risk,
    /// Consent.
    pub consent: Consent,
    /// A first note.
    pub note: Option<String>,
}

/// A whole case as read from its document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Case id.
    pub case_id: CaseId,
    /// Survivor code.
    pub survivor_code: SurvivorCode,
    /// Officer who recorded the intake.
    pub staff_code: StaffCode,
    /// When the record was made.
    pub created_at: DateTime<Utc>,
    /// When the survivor reported.
    pub reported_at: NaiveDate,
    /// When the incident happened, if known.
    pub incident_date: Option<NaiveDate>,
    /// Whether the incident date is approximate.
    #[serde(default)]
    pub incident_date_approximate: bool,
    /// Survivor.
    pub survivor: Survivor,
    /// Incident.
    pub incident: Incident,
    /// Risk.
    pub risk: Risk,
    /// Consent.
    pub consent: Consent,
    /// Referrals.
    #[serde(default)]
    pub referrals: Vec<Referral>,
    /// Follow-ups.
    #[serde(default)]
    pub followups: Vec<Followup>,
    /// Status.
    pub status: Status,
    /// Notes.
    #[serde(default)]
    pub notes: Vec<Note>,
}

impl Case {
    /// Builds the case for a new intake. `note_id` names the first note.
    pub fn from_intake(
        intake: Intake,
        case_id: CaseId,
        survivor_code: SurvivorCode,
        created_at: DateTime<Utc>,
    ) -> Case {
        let notes = intake
            .note
            .filter(|text| !text.trim().is_empty())
            .map(|text| Note {
                id: new_item_id(),
                author: intake.staff_code.clone(),
                at: created_at,
                text,
            })
            .into_iter()
            .collect();
        Case {
            case_id,
            survivor_code: intake.survivor_code.unwrap_or(survivor_code),
            staff_code: intake.staff_code,
            created_at,
            reported_at: intake.reported_at,
            incident_date: intake.incident_date,
            incident_date_approximate: intake.incident_date_approximate,
            survivor: intake.survivor,
            incident: intake.incident,
            risk: intake.risk,
            consent: intake.consent,
            referrals: Vec::new(),
            followups: Vec::new(),
            status: Status {
                state: CaseState::Open,
                closure_reason: None,
                approved_by: None,
            },
            notes,
        }
    }

    /// The GBVIMS reporting-delay bucket, when the incident date is known.
    pub fn reporting_delay(&self) -> Option<ReportingDelay> {
        self.incident_date
            .map(|d| ReportingDelay::from_days((self.reported_at - d).num_days()))
    }

    /// Checks every cross-field rule. (Who may *record* a consent override
    /// is checked when the referral is added: see `CaseDoc::add_referral`.)
    pub fn validate(&self) -> Result<(), ValidationError> {
        let s = &self.survivor;
        if s.is_minor != s.age_band.is_minor() {
            return Err(ValidationError::MinorFlagMismatch {
                age_band: s.age_band,
            });
        }
        let minor_ok = matches!(
            s.minor_consent,
            MinorConsent::CaregiverConsent | MinorConsent::Assent | MinorConsent::Both
        );
        if s.is_minor && !minor_ok {
            return Err(ValidationError::MinorWithoutConsent);
        }
        if !s.is_minor && s.minor_consent != MinorConsent::NotApplicable {
            return Err(ValidationError::MinorConsentForAdult);
        }
        if let Some(date) = self.incident_date
            && date > self.reported_at
        {
            return Err(ValidationError::IncidentAfterReport);
        }
        for choice in Recipient::CHOICES {
            let recipient: Recipient = choice.code.parse()?;
            let record = self.consent.recipients.get(recipient);
            if record.given && (record.date.is_none() || record.staff_code.is_none()) {
                return Err(ValidationError::ConsentIncomplete { recipient });
            }
        }
        for referral in &self.referrals {
            let consented = self.consent.recipients.get(referral.recipient).given;
            if !consented && referral.consent_override.is_none() {
                return Err(ValidationError::ReferralWithoutConsent {
                    recipient: referral.recipient,
                });
            }
        }
        for followup in &self.followups {
            if followup.next_due.is_some_and(|due| due < followup.date) {
                return Err(ValidationError::FollowupDueBeforeDate);
            }
        }
        if self.status.state == CaseState::Closed
            && (self.status.closure_reason.is_none() || self.status.approved_by.is_none())
        {
            return Err(ValidationError::ClosureIncomplete);
        }
        Ok(())
    }
}

/// A random id for a referral, follow-up or note within a case.
pub fn new_item_id() -> String {
    hex::encode(crate::random::bytes::<8>())
}
