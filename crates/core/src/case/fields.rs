//! The editable fields of a case: their paths, what values they take, and
//! how a value typed by a person becomes a document value.
//!
//! Paths are dotted (`risk.level`); items of the referral and follow-up
//! lists are named by their id (`referrals.3fa2….status`). The same table
//! drives `amana cases update`, its help and its error messages (which list
//! the accepted values in the user's language).

use chrono::NaiveDate;
use serde_json::Value;

use super::ValidationError;
use super::codes::Choice;
use super::codes::*;
use super::model::{Location, ShortText, StaffCode};

/// What kind of value a field takes.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// One of a closed vocabulary.
    OneOf(&'static [Choice]),
    /// One of a closed vocabulary, or `none` to clear it.
    OptionalOneOf(&'static [Choice]),
    /// Yes or no.
    Bool,
    /// Yes, no, or `none` to clear it.
    OptionalBool,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// A date, or `none`.
    OptionalDate,
    /// A staff code, or `none`.
    OptionalStaffCode,
    /// Short text, or `none`.
    OptionalText,
    /// A district, sub-district or `online`.
    Location,
}

/// An editable field.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Path pattern; `*` stands for a list item id.
    pub path: &'static str,
    /// Its kind.
    pub kind: FieldKind,
}

macro_rules! field {
    ($path:literal, $kind:expr) => {
        Field {
            path: $path,
            kind: $kind,
        }
    };
}

use FieldKind::*;

/// Every field `set_field` accepts.
pub const FIELDS: &[Field] = &[
    field!("reported_at", Date),
    field!("incident_date", OptionalDate),
    field!("incident_date_approximate", Bool),
    field!("survivor.age_band", OneOf(AgeBand::CHOICES)),
    field!("survivor.is_minor", Bool),
    field!("survivor.minor_consent", OneOf(MinorConsent::CHOICES)),
    field!("survivor.sex", OneOf(Sex::CHOICES)),
    field!("survivor.displacement", OneOf(Displacement::CHOICES)),
    field!("survivor.disability", Bool),
    field!("survivor.marital_status", OneOf(MaritalStatus::CHOICES)),
    field!("incident.gbv_type", OneOf(GbvType::CHOICES)),
    field!("incident.location", Location),
    field!("incident.time_of_day", OptionalOneOf(TimeOfDay::CHOICES)),
    field!(
        "incident.extortion.subtype",
        OptionalOneOf(ExtortionSubtype::CHOICES)
    ),
    field!(
        "incident.extortion.platform",
        OptionalOneOf(Platform::CHOICES)
    ),
    field!("incident.extortion.demand", OptionalOneOf(Demand::CHOICES)),
    field!("incident.extortion.paid", OptionalBool),
    field!(
        "incident.perpetrator.count",
        OneOf(PerpetratorCount::CHOICES)
    ),
    field!("incident.perpetrator.sex", OneOf(PerpetratorSex::CHOICES)),
    field!(
        "incident.perpetrator.age_group",
        OneOf(PerpetratorAge::CHOICES)
    ),
    field!(
        "incident.perpetrator.relationship",
        OneOf(Relationship::CHOICES)
    ),
    field!("incident.perpetrator.identity_known", Bool),
    field!("risk.level", OneOf(RiskLevel::CHOICES)),
    field!("risk.immediate_danger", Bool),
    field!("risk.safety_plan_done", Bool),
    field!("consent.services", Bool),
    field!("consent.statistics", Bool),
    field!("consent.recipients.*.given", Bool),
    field!("consent.recipients.*.date", OptionalDate),
    field!("consent.recipients.*.staff_code", OptionalStaffCode),
    field!("status.state", OneOf(CaseState::CHOICES)),
    field!("status.closure_reason", OptionalText),
    field!("status.approved_by", OptionalStaffCode),
    field!("referrals.*.status", OneOf(ReferralStatus::CHOICES)),
    field!("referrals.*.accompanied", Bool),
    field!("referrals.*.date", Date),
    field!("followups.*.outcome", OptionalText),
    field!("followups.*.next_due", OptionalDate),
];

/// Finds the field a concrete path refers to.
pub fn lookup(path: &str) -> Result<&'static Field, ValidationError> {
    let segments: Vec<&str> = path.split('.').collect();
    FIELDS
        .iter()
        .find(|f| {
            let pattern: Vec<&str> = f.path.split('.').collect();
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| *p == "*" && !s.is_empty() || p == s)
        })
        .ok_or_else(|| ValidationError::UnknownField {
            path: path.chars().take(80).collect(),
        })
}

const YES: &[&str] = &["yes", "y", "true", "نعم"];
const NO: &[&str] = &["no", "n", "false", "لا"];
const NONE: &[&str] = &["none", "", "-", "لا شيء"];

/// Converts what a person typed into the document value for `field`.
pub fn parse_value(field: &Field, path: &str, text: &str) -> Result<Value, ValidationError> {
    let t = text.trim();
    let lower = t.to_lowercase();
    let optional = matches!(
        field.kind,
        OptionalOneOf(_) | OptionalBool | OptionalDate | OptionalStaffCode | OptionalText
    );
    if optional && NONE.contains(&lower.as_str()) {
        return Ok(Value::Null);
    }
    let invalid = |accepted: &'static [Choice]| ValidationError::InvalidValue {
        field: field.path,
        value: t.chars().take(40).collect(),
        accepted,
    };
    match field.kind {
        OneOf(choices) | OptionalOneOf(choices) => choices
            .iter()
            .find(|c| t == c.code || lower == c.en.to_lowercase() || t == c.ar)
            .map(|c| Value::String(c.code.to_owned()))
            .ok_or_else(|| invalid(choices)),
        Bool | OptionalBool => {
            if YES.contains(&lower.as_str()) {
                Ok(Value::Bool(true))
            } else if NO.contains(&lower.as_str()) {
                Ok(Value::Bool(false))
            } else {
                Err(ValidationError::NotYesNo { field: field.path })
            }
        }
        Date | OptionalDate => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(|d| Value::String(d.to_string()))
            .map_err(|_| ValidationError::NotADate { field: field.path }),
        OptionalStaffCode => StaffCode::new(t).map(|c| Value::String(c.to_string())),
        OptionalText => ShortText::new(t).map(|c| Value::String(c.to_string())),
        Location => Location::new(t).map(|c| Value::String(c.to_string())),
    }
    .map_err(|e| match e {
        ValidationError::UnknownField { .. } => ValidationError::UnknownField {
            path: path.to_owned(),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_item_ids_match_patterns() {
        assert_eq!(lookup("risk.level").unwrap().path, "risk.level");
        assert_eq!(
            lookup("referrals.ab12.status").unwrap().path,
            "referrals.*.status"
        );
        assert!(matches!(
            lookup("survivor.name"),
            Err(ValidationError::UnknownField { .. })
        ));
        assert!(lookup("referrals..status").is_err());
    }

    #[test]
    fn values_in_both_languages() {
        let f = lookup("risk.level").unwrap();
        assert_eq!(
            parse_value(f, "risk.level", "مرتفع").unwrap(),
            Value::from("high")
        );
        assert_eq!(
            parse_value(f, "risk.level", "High").unwrap(),
            Value::from("high")
        );
        let f = lookup("risk.immediate_danger").unwrap();
        assert_eq!(parse_value(f, "", "نعم").unwrap(), Value::Bool(true));
        assert!(matches!(
            parse_value(f, "", "maybe"),
            Err(ValidationError::NotYesNo { .. })
        ));
        let f = lookup("incident.time_of_day").unwrap();
        assert_eq!(parse_value(f, "", "none").unwrap(), Value::Null);
        let f = lookup("incident_date").unwrap();
        assert!(matches!(
            parse_value(f, "", "yesterday"),
            Err(ValidationError::NotADate { .. })
        ));
    }
}
