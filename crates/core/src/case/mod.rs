//! Cases: the typed record, its rules, and its Automerge document.
//!
//! - [`model`]: typed structs (serde) for an intake and a whole case, and
//!   the cross-field rules.
//! - [`codes`]: the closed vocabularies, with English and Arabic labels.
//! - [`fields`]: the editable fields and how typed text becomes a value.
//! - [`doc`]: one Automerge document per case; concurrent edits merge,
//!   concurrent writes to one field are kept and shown as a conflict.
//! - [`pii`]: warnings for free text that seems to hold personal data.
//! - [`bounded`]: what received Automerge bytes may inflate to, checked
//!   before Automerge parses them.

pub mod bounded;
pub mod codes;
pub mod doc;
pub mod fields;
pub mod model;
pub mod pii;

pub use codes::{Choice, Lang};
pub use doc::{CaseDoc, CaseView, Conflict, ConflictValue};
pub use model::*;

use codes::{AgeBand, Recipient};

/// A case or an edit that breaks a rule of the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A value outside a closed vocabulary.
    #[error("{value:?} is not a valid {field}; accepted: {}", codes_of(accepted))]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What was given.
        value: String,
        /// What is accepted (codes with English and Arabic labels).
        accepted: &'static [Choice],
    },
    /// A code that does not follow its pattern.
    #[error("{value:?} is not a valid {field}: expected {expected}")]
    InvalidCode {
        /// The field.
        field: &'static str,
        /// What was given (shortened).
        value: String,
        /// The expected shape.
        expected: &'static str,
    },
    /// Not yes or no.
    #[error("{field} must be yes or no (نعم / لا)")]
    NotYesNo {
        /// The field.
        field: &'static str,
    },
    /// Not a date.
    #[error("{field} must be a date written YYYY-MM-DD, e.g. 2026-03-14")]
    NotADate {
        /// The field.
        field: &'static str,
    },
    /// No such field (or not editable).
    #[error("{path:?} is not an editable field; run `amana cases fields` to list them")]
    UnknownField {
        /// The path given.
        path: String,
    },
    /// No list item with that id.
    #[error("this case has no {list} item with id {id:?}")]
    UnknownItem {
        /// Which list.
        list: &'static str,
        /// The id given.
        id: String,
    },
    /// `is_minor` disagrees with the age band.
    #[error("is_minor must be {} for age band {age_band}", age_band.is_minor())]
    MinorFlagMismatch {
        /// The age band.
        age_band: AgeBand,
    },
    /// A minor without caregiver consent or assent.
    #[error("the survivor is a minor: record caregiver consent or the child's assent first")]
    MinorWithoutConsent,
    /// Minor consent recorded for an adult.
    #[error("minor_consent must be not_applicable for an adult")]
    MinorConsentForAdult,
    /// The incident date is after the report date.
    #[error("the incident date cannot be after the date it was reported")]
    IncidentAfterReport,
    /// Consent given without date or staff code.
    #[error("consent for {recipient} needs the date and the staff code of who recorded it")]
    ConsentIncomplete {
        /// The recipient type.
        recipient: Recipient,
    },
    /// A referral without consent for that recipient type.
    #[error(
        "no consent recorded for {recipient}: record the survivor's consent, or ask an office user to record an override with a reason"
    )]
    ReferralWithoutConsent {
        /// The recipient type.
        recipient: Recipient,
    },
    /// A consent override by a non-office device.
    #[error("only an office device can record a consent override")]
    OverrideRequiresOffice,
    /// A follow-up due before it happened.
    #[error("the next follow-up cannot be due before this follow-up's date")]
    FollowupDueBeforeDate,
    /// A closed case without reason or approver.
    #[error("a closed case needs a closure reason and who approved it")]
    ClosureIncomplete,
}

fn codes_of(choices: &[Choice]) -> String {
    choices
        .iter()
        .map(|c| format!("{} ({} / {})", c.code, c.en, c.ar))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a case document could not be created, read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseError {
    /// The case breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The stored or received document does not decode.
    #[error("the case document is damaged: {0}")]
    Corrupt(String),
    /// The document holds a value this build cannot read.
    #[error("the case document does not match the record format ({0}); update Amana")]
    Schema(String),
    /// A change did not decode or apply.
    #[error("a received change to this case is malformed: {0}")]
    BadChange(String),
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
