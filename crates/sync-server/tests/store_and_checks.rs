//! The relay's storage contract and upload checks, without HTTP.

use amana_core::envelope::seal::{CaseChange, seal};
use amana_core::envelope::{EnvelopeHeader, EnvelopeLimits, Kind, SealedEnvelope};
use amana_core::keys::{DeviceKeys, EpochKey};
use amana_core::roster::{DeviceEntry, Role, Roster, RosterChange};
use amana_core::{AuthorError, CaseId, Digest, EnvelopeError, TeamId};
use amana_sync_server::ingest::{self, IngestError};
use amana_sync_server::store::MAX_EVIDENCE_PER_DEVICE;
use amana_sync_server::store::{
    Appended, RelayStore, RevocationBound, RosterEffect, SqliteStore, StoreError,
};

struct Team {
    roster: Roster,
    admin: DeviceKeys,
    field: DeviceKeys,
    epoch: EpochKey,
}

fn team() -> Team {
    let admin = DeviceKeys::generate();
    let field = DeviceKeys::generate();
    let epoch = EpochKey::generate(1);
    let mut roster = Roster::create(
        TeamId::random(),
        &admin,
        &amana_core::keys::ReceivingKey::generate(0).recipient(),
        Vec::new(),
        epoch.recipient(),
    )
    .unwrap();
    roster
        .append(
            RosterChange::AddDevice(DeviceEntry {
                signing_key: field.verifying_key(),
                recipient: amana_core::keys::ReceivingKey::generate(0).recipient(),
                role: Role::Field,
                label: Vec::new(),
            }),
            &admin,
        )
        .unwrap();
    Team {
        roster,
        admin,
        field,
        epoch,
    }
}

impl Team {
    fn envelope(&self, by: &DeviceKeys, seq: u64, prev: Digest, text: &str) -> SealedEnvelope {
        let header = EnvelopeHeader {
            kind: Kind::Changes,
            team: self.roster.team(),
            device: by.device_id(),
            seq,
            prev,
            epoch: 1,
            body_len: 0,
        };
        let change = CaseChange {
            case: CaseId::from_bytes([1; 16]),
            change: text.as_bytes().to_vec(),
        };
        let context = amana_core::envelope::seal::SealContext::under(&self.roster, 0);
        let changes = [change];
        let contents = amana_core::envelope::seal::Contents::changes(context, &changes);
        seal(header, &contents, &self.epoch.recipient(), by).unwrap()
    }

    fn check(
        &self,
        signer: &DeviceKeys,
        bytes: Vec<u8>,
    ) -> Result<ingest::CheckedEnvelope, IngestError> {
        ingest::check(
            bytes,
            self.roster.team(),
            signer.device_id(),
            &self.roster,
            &EnvelopeLimits::default(),
        )
    }
}

fn store_with(t: &Team) -> SqliteStore {
    let store = SqliteStore::in_memory().unwrap();
    let ops = t.roster.ops();
    store
        .create_team(t.roster.team(), ops[0].as_bytes(), 0, 10, None)
        .unwrap();
    for op in &ops[1..] {
        store
            .append_roster_op(t.roster.team(), op.index, op.as_bytes(), RosterEffect::None)
            .unwrap();
    }
    store
}

#[test]
fn teams_and_rosters() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    assert!(matches!(
        store.create_team(team_id, t.roster.ops()[0].as_bytes(), 0, 10, None),
        Err(StoreError::TeamExists(_))
    ));
    let other = team();
    assert!(matches!(
        store.create_team(
            other.roster.team(),
            other.roster.ops()[0].as_bytes(),
            0,
            1,
            None
        ),
        Err(StoreError::TooManyTeams { max: 1 })
    ));
    let stored = store.roster(team_id).unwrap();
    assert_eq!(Roster::verify(&stored).unwrap().head(), t.roster.head());
    assert!(matches!(
        store.append_roster_op(team_id, 1, b"late", RosterEffect::None),
        Err(StoreError::RosterConflict {
            expected: 2,
            found: 1
        })
    ));
    assert!(matches!(
        store.roster(TeamId::random()),
        Err(StoreError::UnknownTeam(_))
    ));
}

#[test]
fn append_is_idempotent_and_keeps_equivocation_evidence() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    let e1 = t
        .check(
            &t.field,
            t.envelope(&t.field, 1, Digest::ZERO, "a").into_bytes(),
        )
        .unwrap();
    assert_eq!(
        store
            .append_envelope(team_id, &e1.as_new(), 1, u64::MAX)
            .unwrap(),
        Appended::New { cursor: 1 }
    );
    assert_eq!(
        store
            .append_envelope(team_id, &e1.as_new(), 2, u64::MAX)
            .unwrap(),
        Appended::Duplicate { cursor: 1 }
    );
    // Same seq, different bytes: refused, both kept.
    let fork = t
        .check(
            &t.field,
            t.envelope(&t.field, 1, Digest::ZERO, "b").into_bytes(),
        )
        .unwrap();
    assert!(matches!(
        store.append_envelope(team_id, &fork.as_new(), 3, u64::MAX),
        Err(StoreError::Equivocation { seq: 1, .. })
    ));
    let evidence = store.equivocations(team_id, t.field.device_id()).unwrap();
    assert_eq!(evidence, vec![(1, fork.envelope().as_bytes().to_vec())]);
    assert_eq!(
        store
            .envelope_at(team_id, t.field.device_id(), 1)
            .unwrap()
            .unwrap()
            .bytes,
        e1.envelope().as_bytes()
    );

    // A device that equivocates without end leaves a few pieces of
    // evidence, not a row per attempt. (Before: every distinct fork was
    // stored, outside the team's quota.)
    for n in 0..20 {
        let fork = t
            .check(
                &t.field,
                t.envelope(&t.field, 1, Digest::ZERO, &format!("fork {n}"))
                    .into_bytes(),
            )
            .unwrap();
        assert!(matches!(
            store.append_envelope(team_id, &fork.as_new(), 4, u64::MAX),
            Err(StoreError::Equivocation { seq: 1, .. })
        ));
    }
    let kept = store.equivocations(team_id, t.field.device_id()).unwrap();
    assert_eq!(kept.len() as u64, MAX_EVIDENCE_PER_DEVICE);
}

/// Evidence counts against the team's quota: on a full team an
/// equivocation is still refused, but not stored.
#[test]
fn equivocation_evidence_counts_against_the_quota() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    let first = t
        .check(
            &t.field,
            t.envelope(&t.field, 1, Digest::ZERO, "a").into_bytes(),
        )
        .unwrap();
    store
        .append_envelope(team_id, &first.as_new(), 1, u64::MAX)
        .unwrap();
    let fork = t
        .check(
            &t.field,
            t.envelope(&t.field, 1, Digest::ZERO, "b").into_bytes(),
        )
        .unwrap();
    // A quota the stored bytes already almost fill.
    let quota = (first.envelope().as_bytes().len() * 2) as u64;
    assert!(matches!(
        store.append_envelope(team_id, &fork.as_new(), 2, quota),
        Err(StoreError::Equivocation { seq: 1, .. })
    ));
    assert!(
        store
            .equivocations(team_id, t.field.device_id())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn chain_rules_and_quota() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    let e1 = t.envelope(&t.field, 1, Digest::ZERO, "a");
    let e1_id = e1.id();
    let skipped = t
        .check(&t.field, t.envelope(&t.field, 3, e1_id, "c").into_bytes())
        .unwrap();
    assert!(matches!(
        store.append_envelope(team_id, &skipped.as_new(), 0, u64::MAX),
        Err(StoreError::Gap { expected: 1, .. })
    ));
    let checked = t.check(&t.field, e1.into_bytes()).unwrap();
    store
        .append_envelope(team_id, &checked.as_new(), 0, u64::MAX)
        .unwrap();
    let wrong_prev = t
        .check(
            &t.field,
            t.envelope(&t.field, 2, Digest::of(b"x"), "b").into_bytes(),
        )
        .unwrap();
    assert!(matches!(
        store.append_envelope(team_id, &wrong_prev.as_new(), 0, u64::MAX),
        Err(StoreError::PrevMismatch { seq: 2, .. })
    ));
    let next = t
        .check(&t.field, t.envelope(&t.field, 2, e1_id, "b").into_bytes())
        .unwrap();
    assert!(matches!(
        store.append_envelope(team_id, &next.as_new(), 0, 100),
        Err(StoreError::TeamFull { max: 100 })
    ));
    assert_eq!(store.heads(team_id).unwrap()[0].seq, 1);
}

#[test]
fn paging_walks_every_envelope_once_in_order() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    let mut prev = [Digest::ZERO, Digest::ZERO];
    for i in 0..25u64 {
        let (by, slot) = if i % 2 == 0 {
            (&t.field, 0)
        } else {
            (&t.admin, 1)
        };
        let seq = i / 2 + 1;
        let env = t.envelope(by, seq, prev[slot], &format!("n{i}"));
        prev[slot] = env.id();
        let checked = t.check(by, env.into_bytes()).unwrap();
        store
            .append_envelope(team_id, &checked.as_new(), 0, u64::MAX)
            .unwrap();
    }
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.envelopes_after(team_id, cursor, 7).unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().unwrap().cursor;
        seen.extend(page.into_iter().map(|e| e.cursor));
    }
    assert_eq!(seen, (1..=25).collect::<Vec<u64>>());
    assert_eq!(store.heads(team_id).unwrap().len(), 2);

    // A byte budget stops a page before the envelope that would pass it
    // (at least one is served), and says more follow. (Before: a page
    // loaded up to `limit` envelopes, 4 MiB each, before any budget.)
    let all = store.page(team_id, 0, 100, usize::MAX).unwrap();
    assert_eq!((all.envelopes.len(), all.more), (25, false));
    let size = all.envelopes[0].bytes.len();
    let two = store.page(team_id, 0, 100, 2 * size + size / 2).unwrap();
    assert_eq!((two.envelopes.len(), two.more), (2, true));
    let one = store.page(team_id, 0, 100, 1).unwrap();
    assert_eq!((one.envelopes.len(), one.more), (1, true));
    let limited = store.page(team_id, 20, 3, usize::MAX).unwrap();
    assert_eq!(
        (
            limited
                .envelopes
                .iter()
                .map(|e| e.cursor)
                .collect::<Vec<_>>(),
            limited.more
        ),
        (vec![21, 22, 23], true)
    );
    let last = store.page(team_id, 24, 3, usize::MAX).unwrap();
    assert_eq!((last.envelopes.len(), last.more), (1, false));
}

#[test]
fn nonces_are_single_use_until_they_expire() {
    let store = SqliteStore::in_memory().unwrap();
    let device = DeviceKeys::generate().device_id();
    assert!(store.use_nonce(device, [1; 16], 100, 10).unwrap());
    assert!(
        !store.use_nonce(device, [1; 16], 100, 50).unwrap(),
        "replay refused"
    );
    assert!(store.use_nonce(device, [2; 16], 100, 50).unwrap());
    // Once expired, a nonce is forgotten (the request itself would be
    // refused for its age before it got here).
    assert!(store.use_nonce(device, [1; 16], 300, 101).unwrap());
}

/// Writers on many threads at once (uploads and request nonces share a
/// commit): each gets its own outcome, a refused envelope takes nothing of
/// the others with it, and everything acknowledged is in the file after it
/// is reopened.
#[test]
fn concurrent_writers_each_get_their_own_durable_outcome() {
    use amana_core::DeviceId;
    use amana_sync_server::store::NewEnvelope;
    const WRITERS: usize = 8;
    const SEQS: u64 = 20;
    let t = team();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite");
    let team_id = t.roster.team();
    {
        let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        store
            .create_team(team_id, t.roster.ops()[0].as_bytes(), 0, 10, None)
            .unwrap();
        let threads: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let device = DeviceId::from_bytes([w as u8 + 1; 16]);
                    let mut prev = Digest::ZERO;
                    for seq in 1..=SEQS {
                        let bytes = format!("writer {w} seq {seq}").into_bytes();
                        let id = Digest::of(&bytes);
                        let new = |seq, prev| NewEnvelope {
                            device,
                            seq,
                            prev,
                            epoch: 1,
                            id,
                            bytes: &bytes,
                        };
                        assert!(store.use_nonce(device, [seq as u8; 16], 1000, 1).unwrap());
                        if w % 2 == 0 {
                            // A gap is refused; the writer's chain goes on.
                            assert!(matches!(
                                store.append_envelope(team_id, &new(seq + 1, prev), 1, u64::MAX),
                                Err(StoreError::Gap { expected, .. }) if expected == seq
                            ));
                        }
                        let appended = store
                            .append_envelope(team_id, &new(seq, prev), 1, u64::MAX)
                            .unwrap();
                        assert!(matches!(appended, Appended::New { .. }));
                        assert!(
                            !store.use_nonce(device, [seq as u8; 16], 1000, 1).unwrap(),
                            "a nonce is single-use across groups"
                        );
                        prev = id;
                    }
                })
            })
            .collect();
        // Reads run beside the writes (on their own connections) and each
        // page is one snapshot: its heads match the envelopes it lists.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut pages = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || pages == 0 {
                    let page = store.page(team_id, 0, 10_000, usize::MAX).unwrap();
                    let (listed, heads) = (page.envelopes, page.heads);
                    for head in heads {
                        let prefix = format!("writer {} seq ", head.device.as_bytes()[0] - 1);
                        let of_device = listed
                            .iter()
                            .filter(|e| e.bytes.starts_with(prefix.as_bytes()))
                            .count();
                        assert_eq!(
                            of_device as u64, head.seq,
                            "a page's heads match its listing"
                        );
                    }
                    pages += 1;
                }
                pages
            })
        };
        for thread in threads {
            thread.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
    // Once the store is closed its file alone holds everything (the WAL
    // was folded in), as an operator copying a stopped relay's file expects.
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    let store = SqliteStore::open(&copy).unwrap();
    let stored = store.envelopes_after(team_id, 0, 10_000).unwrap();
    let cursors: Vec<u64> = stored.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, (1..=WRITERS as u64 * SEQS).collect::<Vec<_>>());
    let heads = store.heads(team_id).unwrap();
    assert_eq!(heads.len(), WRITERS);
    for head in heads {
        assert_eq!(head.seq, SEQS);
        let w = head.device.as_bytes()[0] - 1;
        assert_eq!(
            head.id,
            Digest::of(format!("writer {w} seq {SEQS}").as_bytes())
        );
    }
}

#[test]
fn upload_checks_each_have_their_error() {
    let t = team();
    let outsider = DeviceKeys::generate();
    // Not the signer.
    let env = t.envelope(&t.field, 1, Digest::ZERO, "x");
    assert!(matches!(
        t.check(&t.admin, env.clone().into_bytes()),
        Err(IngestError::NotSigner { .. })
    ));
    // Unknown author.
    let env = t.envelope(&outsider, 1, Digest::ZERO, "x");
    assert!(matches!(
        t.check(&outsider, env.into_bytes()),
        Err(IngestError::Author(AuthorError::UnknownDevice(_)))
    ));
    // Bad signature (flip a body byte).
    let mut bytes = t.envelope(&t.field, 1, Digest::ZERO, "x").into_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(
        t.check(&t.field, bytes),
        Err(IngestError::Envelope(EnvelopeError::BadSignature))
    ));
    // Plaintext body.
    let header = EnvelopeHeader {
        kind: Kind::Changes,
        team: t.roster.team(),
        device: t.field.device_id(),
        seq: 1,
        prev: Digest::ZERO,
        epoch: 1,
        body_len: 0,
    };
    let plain = SealedEnvelope::sign(header, br#"{"note":"plaintext"}"#, &t.field).unwrap();
    assert!(matches!(
        t.check(&t.field, plain.into_bytes()),
        Err(IngestError::Envelope(EnvelopeError::Body(_)))
    ));
    // Another team's envelope.
    let other = team();
    let foreign = other.envelope(&other.field, 1, Digest::ZERO, "x");
    assert!(matches!(
        t.check(&other.field, foreign.into_bytes()),
        Err(IngestError::WrongTeam { .. })
    ));
    // Truncated and oversized.
    let bytes = t.envelope(&t.field, 1, Digest::ZERO, "x").into_bytes();
    assert!(matches!(
        t.check(&t.field, bytes[..120].to_vec()),
        Err(IngestError::Envelope(EnvelopeError::Truncated { .. }))
    ));
}

#[test]
fn revoked_device_is_refused_above_its_last_seq() {
    let mut t = team();
    let e1 = t.envelope(&t.field, 1, Digest::ZERO, "before");
    let e2 = t.envelope(&t.field, 2, e1.id(), "after");
    t.roster
        .append(
            RosterChange::RevokeDevice {
                device: t.field.device_id(),
                last_seq: 1,
                last_id: e1.id(),
            },
            &t.admin,
        )
        .unwrap();
    assert!(
        t.check(&t.field, e1.into_bytes()).is_ok(),
        "written before revocation: still valid"
    );
    assert!(matches!(
        t.check(&t.field, e2.into_bytes()),
        Err(IngestError::Author(AuthorError::Revoked {
            seq: 2,
            last_seq: 1,
            ..
        }))
    ));
}

#[test]
fn revocation_bound_must_name_a_stored_envelope_and_then_holds() {
    let t = team();
    let store = store_with(&t);
    let team_id = t.roster.team();
    let e1 = t.envelope(&t.field, 1, Digest::ZERO, "one");
    let e2 = t.envelope(&t.field, 2, e1.id(), "two");
    let first = t.check(&t.field, e1.into_bytes()).unwrap();
    store
        .append_envelope(team_id, &first.as_new(), 1, u64::MAX)
        .unwrap();
    // The upload of seq 2 passes the roster check before the revocation
    // lands, as it would when the two requests race.
    let second = t.check(&t.field, e2.into_bytes()).unwrap();
    let revoke = |last_seq, last_id| {
        let mut roster = t.roster.clone();
        roster
            .append(
                RosterChange::RevokeDevice {
                    device: t.field.device_id(),
                    last_seq,
                    last_id,
                },
                &t.admin,
            )
            .unwrap()
            .clone()
    };
    let bound = |last_seq, last_id| {
        RosterEffect::Revokes(RevocationBound {
            device: t.field.device_id(),
            last_seq,
            last_id,
        })
    };
    let e1_id = first.envelope().id();
    // A bound the relay does not hold (seq 2 was never stored): refused,
    // nothing stored.
    let ahead = revoke(2, Digest::of(b"two"));
    assert!(matches!(
        store.append_roster_op(
            team_id,
            ahead.index,
            ahead.as_bytes(),
            bound(2, Digest::of(b"two"))
        ),
        Err(StoreError::RevocationBound {
            head: 1,
            bound: 2,
            ..
        })
    ));
    assert_eq!(store.roster(team_id).unwrap().len(), 2);
    // The right seq but another envelope's id: refused too.
    let other = Digest::of(b"another history");
    let forked = revoke(1, other);
    assert!(matches!(
        store.append_roster_op(team_id, forked.index, forked.as_bytes(), bound(1, other)),
        Err(StoreError::RevocationBound { .. })
    ));
    // With the stored head as bound it lands, and seq 2 is refused from
    // then on although it passed the roster check.
    let op = revoke(1, e1_id);
    store
        .append_roster_op(team_id, op.index, op.as_bytes(), bound(1, e1_id))
        .unwrap();
    assert_eq!(store.roster(team_id).unwrap().len(), 3);
    assert!(matches!(
        store.append_envelope(team_id, &second.as_new(), 2, u64::MAX),
        Err(StoreError::Revoked { .. })
    ));
    assert!(
        store
            .envelope_at(team_id, t.field.device_id(), 2)
            .unwrap()
            .is_none()
    );
    // Seq 1, written before, is still served and re-uploading it is fine.
    assert_eq!(
        store
            .append_envelope(team_id, &first.as_new(), 3, u64::MAX)
            .unwrap(),
        Appended::Duplicate { cursor: 1 }
    );
}
