//! Exit codes, and how an error is told to the person at the keyboard.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | failure: the store, a file, or something unexpected |
//! | 2 | invalid input (arguments, field values, invite code) |
//! | 3 | wrong or missing passphrase |
//! | 4 | the relay cannot be reached or is failing (no connection, a cut, a 5xx): retry later, nothing is lost |
//! | 5 | refused: not approved yet, revoked, invite used or expired, role not permitted |
//! | 6 | integrity alarm (or one still open): the relay (or someone) may be tampering; tell the office |

use amana_core::case::{CaseError, Lang, ValidationError};
use amana_core::keys::keystore::KeystoreError;
use amana_core::store::StoreError;
use amana_core::sync::SyncError;
use amana_core::sync::alarms::AcknowledgeError;
use amana_core::transport::TransportError;

/// Invalid input found by the CLI itself (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An integrity alarm raised by the CLI (exit code 6), e.g. quarantined
/// envelopes after an otherwise complete sync.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Alarm(pub String);

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::Keystore(KeystoreError::WrongPassphrase)
        | StoreError::WrongPassphraseLimited { .. }
        | StoreError::LockedOut { .. } => 3,
        StoreError::DuressIsPassphrase | StoreError::PassphraseIsDuress => 2,
        StoreError::UnknownCase(_)
        | StoreError::NoSuchCase(_)
        | StoreError::AmbiguousCase(_)
        | StoreError::Case(_) => 2,
        StoreError::NotInitialised(_) | StoreError::AlreadyInitialised(_) => 2,
        StoreError::NotMember => 5,
        _ => 1,
    }
}

/// The exit code for an error.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<SyncError>() {
            return match e {
                SyncError::Store(s) => store_code(s),
                e if e.is_integrity_alarm() => 6,
                e if e.is_temporary() => 4,
                SyncError::Transport(_) => 4,
                SyncError::InviteMalformed(_)
                | SyncError::BadRelayUrl(_)
                | SyncError::UnknownPending(_)
                | SyncError::UnknownDevice(_)
                | SyncError::AmbiguousDevice(_) => 2,
                SyncError::Seal(_) => 1,
                _ => 5,
            };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_code(e);
        }
        if let Some(e) = cause.downcast_ref::<AcknowledgeError>() {
            return match e {
                AcknowledgeError::Store(s) => store_code(s),
                AcknowledgeError::NotAdmin => 5,
                _ => 2,
            };
        }
        if let Some(e) = cause.downcast_ref::<TransportError>() {
            return match e {
                TransportError::PinMismatch => 6,
                _ => 4,
            };
        }
        if cause.downcast_ref::<Alarm>().is_some() {
            return 6;
        }
        if cause
            .downcast_ref::<crate::passphrase::NoPassphrase>()
            .is_some()
        {
            return 3;
        }
        if cause.downcast_ref::<KeystoreError>().is_some() {
            return 3;
        }
        if cause.downcast_ref::<Invalid>().is_some()
            || cause
                .downcast_ref::<amana_core::audit::receipts::ReceiptFileError>()
                .is_some()
            || cause.downcast_ref::<ValidationError>().is_some()
            || cause.downcast_ref::<CaseError>().is_some()
        {
            return 2;
        }
    }
    1
}

/// The validation error behind `cause`, looking through the wrappers that
/// forward it transparently (and so hide it from the error chain).
fn validation<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a ValidationError> {
    fn in_case(e: &CaseError) -> Option<&ValidationError> {
        match e {
            CaseError::Invalid(v) => Some(v),
            _ => None,
        }
    }
    fn in_store(e: &StoreError) -> Option<&ValidationError> {
        match e {
            StoreError::Case(c) => in_case(c),
            _ => None,
        }
    }
    cause
        .downcast_ref::<ValidationError>()
        .or_else(|| cause.downcast_ref::<CaseError>().and_then(in_case))
        .or_else(|| cause.downcast_ref::<StoreError>().and_then(in_store))
        .or_else(|| match cause.downcast_ref::<SyncError>() {
            Some(SyncError::Store(s)) => in_store(s),
            _ => None,
        })
}

/// The message for an error, with the accepted values of a vocabulary
/// listed in the user's language.
pub fn message(err: &anyhow::Error, lang: Lang) -> String {
    for cause in err.chain() {
        if let Some(ValidationError::InvalidValue {
            field,
            value,
            accepted,
        }) = validation(cause)
        {
            let list: Vec<String> = accepted
                .iter()
                .map(|c| format!("  {:<28} {}", c.code, c.label(lang)))
                .collect();
            return match lang {
                Lang::En => format!(
                    "{value:?} is not a valid {field}. Accepted values (code, then meaning):\n{}",
                    list.join("\n")
                ),
                Lang::Ar => format!(
                    "القيمة {value:?} غير مقبولة للحقل {field}. القيم المقبولة:\n{}",
                    list.join("\n")
                ),
            };
        }
    }
    format!("{err:#}")
}
