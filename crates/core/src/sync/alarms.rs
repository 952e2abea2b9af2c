//! Raising, reporting and acknowledging integrity alarms.
//!
//! Every integrity alarm a device detects is recorded in its store
//! ([`crate::store::alarms`]) where it is detected: a pulled page's alarms
//! commit with the page; an error that ends an operation is recorded as it
//! returns ([`note`]). An alarm stays raised until an admin device
//! acknowledges it. Devices report their alarms to the office inside their
//! next envelope (encrypted, `docs/protocol.md`, "Notices"), so the admin
//! devices list every device's alarms; an admin acknowledges with
//! [`acknowledge`], and the acknowledgement travels in its next envelope to
//! the device that raised the alarm. A device that reads nothing the admin
//! writes (`intake`, `auditor`) cannot receive one: its alarms are
//! acknowledged on the device itself, once the office has seen its report.

use super::{Rejection, SyncError};
use crate::ids::DeviceId;
use crate::roster::Role;
use crate::store::{AlarmId, DeviceStore, NewAlarm, StoreError};

/// Meta entry: acknowledgements this admin device still has to send.
pub(crate) const PENDING_ACKS: &str = "pending_acks";

/// The alarm an error raises, if it is one.
pub(crate) fn of_error(e: &SyncError) -> Option<NewAlarm> {
    let code = e.alarm_code()?;
    let (device, seq) = e.alarm_subject();
    Some(NewAlarm {
        code: code.to_owned(),
        device,
        seq,
        message: e.to_string(),
    })
}

/// The alarm a quarantined envelope raises. What no signature vouches for
/// (junk the relay can make at will) is one alarm per code and device,
/// not one per seq it names.
pub(crate) fn of_rejection(r: &Rejection) -> NewAlarm {
    of_rejection_on(r, None)
}

/// [`of_rejection`], naming the device only if `roster` has it (an
/// unsigned envelope's device id is the relay's choice).
pub(crate) fn of_rejection_on(r: &Rejection, roster: Option<&crate::roster::Roster>) -> NewAlarm {
    let (device, seq) = r.subject();
    let unsigned = matches!(
        r,
        Rejection::Malformed(_)
            | Rejection::WrongTeam { .. }
            | Rejection::Signature { .. }
            | Rejection::Author(crate::error::AuthorError::UnknownDevice(_))
    );
    let seq = if unsigned { None } else { seq };
    let device = match roster {
        Some(roster) if unsigned => device.filter(|d| roster.device(d).is_some()),
        _ => device,
    };
    NewAlarm {
        code: r.code().to_owned(),
        device,
        seq,
        message: r.to_string(),
    }
}

/// Records the alarm `result` ends with, if it ends with one, and returns
/// it unchanged. (If the store cannot record it, the original error still
/// reaches the caller.)
pub(crate) fn note<T>(
    store: &mut DeviceStore,
    now: u64,
    result: Result<T, SyncError>,
) -> Result<T, SyncError> {
    if let Err(e) = &result
        && let Some(alarm) = of_error(e)
    {
        let _ = store.raise_alarm(&alarm, now);
    }
    result
}

/// Why an alarm cannot be acknowledged here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcknowledgeError {
    /// No alarm starts with what was typed.
    #[error("no open alarm starts with `{0}`; run `amana alarms` to list them")]
    Unknown(String),
    /// Several alarms start with what was typed.
    #[error("several open alarms start with `{0}`; type more characters of the id")]
    Ambiguous(String),
    /// This device's role may not acknowledge.
    #[error(
        "only an admin device acknowledges alarms (a device that reads the team's case data receives the acknowledgement at its next sync); show this device's alarms to the office"
    )]
    NotAdmin,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Acknowledges the open alarms whose ids start with the `prefixes`, on
/// this device. On an admin device the acknowledgements of other devices'
/// alarms are queued for its next envelope; on a device that cannot read
/// an admin's envelopes (`intake`, `auditor`) its own alarms are
/// acknowledged here. Returns the alarms acknowledged.
pub fn acknowledge(
    store: &mut DeviceStore,
    prefixes: &[String],
    now: u64,
) -> Result<Vec<AlarmId>, AcknowledgeError> {
    let me = store.keys().device_id();
    let role = store
        .roster()?
        .and_then(|r| r.device(&me).map(|d| d.entry.role))
        .or(store.membership()?.map(|m| m.role));
    let open = store.open_alarms()?;
    let mut chosen: Vec<(DeviceId, AlarmId)> = Vec::new();
    for prefix in prefixes {
        let wanted = prefix.trim().to_lowercase();
        let matches: Vec<_> = open
            .iter()
            .filter(|a| !wanted.is_empty() && a.id.to_hex().starts_with(&wanted))
            .collect();
        match matches.as_slice() {
            [one] => chosen.push((one.raised_by, one.id)),
            [] => return Err(AcknowledgeError::Unknown(wanted)),
            _ => return Err(AcknowledgeError::Ambiguous(wanted)),
        }
    }
    // A device that reads nothing an admin writes closes its own alarms;
    // an intake device only once it has reported them to the office.
    let local_only = match role {
        Some(Role::Intake) => open
            .iter()
            .filter(|a| chosen.contains(&(a.raised_by, a.id)))
            .all(|a| a.reported),
        Some(Role::Auditor) | None => true,
        _ => false,
    };
    if role != Some(Role::Admin) && !(local_only && chosen.iter().all(|(by, _)| *by == me)) {
        return Err(AcknowledgeError::NotAdmin);
    }
    store.acknowledge_alarms(&chosen, me, now)?;
    if role == Some(Role::Admin) {
        let mut pending = pending_acks(store)?;
        for (by, id) in &chosen {
            if *by != me && !pending.contains(&(*by, *id)) {
                pending.push((*by, *id));
            }
        }
        set_pending_acks(store, &pending)?;
    }
    Ok(chosen.into_iter().map(|(_, id)| id).collect())
}

/// Acknowledgements this admin device has made and not yet sent.
pub(crate) fn pending_acks(store: &DeviceStore) -> Result<Vec<(DeviceId, AlarmId)>, StoreError> {
    store.meta_records(PENDING_ACKS, 32, "pending acknowledgements", |r| {
        (r.device(0), AlarmId(r.bytes16(16)))
    })
}

pub(crate) fn set_pending_acks(
    store: &mut DeviceStore,
    acks: &[(DeviceId, AlarmId)],
) -> Result<(), StoreError> {
    let mut bytes = Vec::with_capacity(acks.len() * 32);
    for (device, id) in acks {
        bytes.extend_from_slice(device.as_bytes());
        bytes.extend_from_slice(&id.0);
    }
    store.put_meta(PENDING_ACKS, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AuthorError, EnvelopeError};
    use crate::ids::{CaseId, TeamId};

    /// Every code an alarm can be raised with has its words in both
    /// languages (and so, by the catalogue's own test, a row in the
    /// auditor guide).
    #[test]
    fn every_alarm_the_sync_raises_has_words() {
        let d = DeviceId::from_bytes([1; 16]);
        let c = CaseId::from_bytes([2; 16]);
        let errors = [
            SyncError::RelayMalformed("x".into()),
            SyncError::JoinSubstituted { device: d },
            SyncError::SafetyNumberMismatch,
            SyncError::Transport(crate::transport::TransportError::PinMismatch),
            SyncError::Roster(crate::error::RosterError::Empty),
            SyncError::RosterRollback { ours: 2, relay: 1 },
            SyncError::RosterWithheld {
                author: d,
                seq: 1,
                claimed: 3,
                ours: 2,
            },
            SyncError::RosterForkWitnessed {
                author: d,
                seq: 1,
                index: 2,
            },
            SyncError::StaleEpoch {
                device: d,
                seq: 1,
                epoch: 1,
                expected: 2,
            },
            SyncError::StaleRoster {
                device: d,
                seq: 1,
                stated: 1,
                witnessed: 2,
            },
            SyncError::KeyDelivery(crate::error::KeyEnvelopeError::BadSignature),
            SyncError::Announcement(crate::error::AnnouncementError::BadSignature),
            SyncError::BadReceipt { seq: 1 },
            SyncError::RelayLostOwnLog {
                seq: 1,
                code: "x".into(),
            },
            SyncError::OwnTailWithheld {
                seq: 1,
                witness: d,
                since: 0,
            },
            SyncError::SnapshotMissing { epoch: 2, since: 0 },
            SyncError::Rollback {
                device: d,
                ours: 2,
                relay: 1,
            },
            SyncError::Fork { device: d, seq: 1 },
            SyncError::Withheld {
                device: d,
                received: 1,
                relay: 2,
            },
            SyncError::ForkWitnessed {
                device: d,
                seq: 1,
                witness: d,
            },
            SyncError::WitnessedAhead {
                device: d,
                seq: 2,
                applied: 1,
                witness: d,
            },
        ];
        for e in &errors {
            let alarm = of_error(e).unwrap_or_else(|| panic!("{e:?} is not an alarm"));
            assert!(
                super::super::alarm_words::describe(&alarm.code).is_some(),
                "{}",
                alarm.code
            );
        }
        let rejections = [
            Rejection::Malformed(EnvelopeError::ZeroSeq),
            Rejection::WrongTeam {
                device: d,
                seq: 1,
                found: TeamId::from_bytes([3; 16]),
            },
            Rejection::Author(AuthorError::UnknownDevice(d)),
            Rejection::Author(AuthorError::CannotWrite(d)),
            Rejection::Author(AuthorError::Revoked {
                device: d,
                seq: 2,
                last_seq: 1,
            }),
            Rejection::Author(AuthorError::EpochAfterRevocation {
                device: d,
                epoch: 2,
            }),
            Rejection::Author(AuthorError::UnknownEpoch {
                epoch: 3,
                current: 2,
            }),
            Rejection::Signature {
                device: d,
                seq: 1,
                error: EnvelopeError::BadSignature,
            },
            Rejection::Replay {
                device: d,
                seq: 1,
                expected: 2,
            },
            Rejection::Gap {
                device: d,
                seq: 3,
                expected: 2,
            },
            Rejection::BrokenChain { device: d, seq: 1 },
            Rejection::BodyDropped {
                device: d,
                seq: 1,
                epoch: 1,
            },
            Rejection::RevokedFork { device: d, seq: 1 },
            Rejection::ForgedActor {
                device: d,
                seq: 1,
                case: c,
            },
            Rejection::NotPermitted {
                device: d,
                seq: 1,
                case: c,
                what: "x".into(),
            },
            Rejection::InvalidSchema {
                device: d,
                seq: 1,
                case: c,
            },
            Rejection::MissingDependencies {
                device: d,
                seq: 1,
                case: c,
            },
            Rejection::SnapshotNotAdmin { device: d, seq: 1 },
            Rejection::Unreadable {
                device: d,
                seq: 1,
                error: EnvelopeError::DecryptFailed,
            },
            Rejection::InvalidContent {
                device: d,
                seq: 1,
                what: "x".into(),
            },
            Rejection::DecompressionBomb {
                device: d,
                seq: 1,
                what: "x".into(),
            },
        ];
        for r in &rejections {
            let alarm = of_rejection(r);
            assert!(
                super::super::alarm_words::describe(&alarm.code).is_some(),
                "{}",
                alarm.code
            );
        }
    }
}
