//! Seal/open round trips and one test per rejection.

use super::*;
use crate::agefile::AgeLimits;
use crate::envelope::{EnvelopeLimits, Kind, SIGNATURE_LEN};
use crate::keys::EpochKey;
use proptest::prelude::*;

struct Fixture {
    device: DeviceKeys,
    keys: EpochKeyring,
    team: TeamId,
}

fn fixture() -> Fixture {
    let mut keys = EpochKeyring::new();
    keys.insert(EpochKey::generate(1));
    Fixture {
        device: DeviceKeys::generate(),
        keys,
        team: TeamId::random(),
    }
}

impl Fixture {
    fn header(&self, seq: u64, prev: Digest) -> EnvelopeHeader {
        EnvelopeHeader {
            kind: Kind::Changes,
            team: self.team,
            device: self.device.device_id(),
            seq,
            prev,
            epoch: 1,
            body_len: 0,
        }
    }

    fn seal(&self, changes: &[CaseChange]) -> SealedEnvelope {
        let recipient = self.keys.get(1).unwrap().recipient();
        seal(
            self.header(1, Digest::ZERO),
            &Contents::changes(CONTEXT, changes),
            &recipient,
            &self.device,
        )
        .unwrap()
    }

    fn open(&self, env: &SealedEnvelope) -> Result<OpenedEnvelope, EnvelopeError> {
        open(env, self.team, &self.device.verifying_key(), &self.keys)
    }

    /// Re-parses bytes with default limits.
    fn reparse(bytes: Vec<u8>) -> Result<SealedEnvelope, EnvelopeError> {
        SealedEnvelope::parse(bytes, &EnvelopeLimits::default())
    }

    /// Seals an arbitrary plaintext (bypassing the payload encoder), signed properly.
    fn seal_raw(&self, plaintext: &[u8]) -> SealedEnvelope {
        let recipient = self.keys.get(1).unwrap().recipient();
        let body = age::encrypt(&recipient, plaintext).unwrap();
        SealedEnvelope::sign(self.header(1, Digest::ZERO), &body, &self.device).unwrap()
    }
}

/// A context for envelopes these tests seal (no roster to check against).
const CONTEXT: SealContext = SealContext {
    roster_len: 1,
    roster_head: Digest::ZERO,
    sealed_at: 1_780_000_000,
    pulled_at: 1_780_000_000,
};

fn change(case: u8, text: &str) -> CaseChange {
    CaseChange {
        case: CaseId::from_bytes([case; 16]),
        change: text.as_bytes().to_vec(),
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    DeflateEncoder::new(data, Compression::default())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn round_trip_and_reparse() {
    let f = fixture();
    let changes = vec![change(1, "ابتزاز رقمي"), change(2, "second")];
    let env = f.seal(&changes);
    let env = Fixture::reparse(env.into_bytes()).unwrap();
    let opened = f.open(&env).unwrap();
    assert_eq!(opened.changes, changes);
    assert_eq!(opened.header, *env.header());
    assert_eq!(opened.id, crate::envelope::id_of(env.as_bytes()).unwrap());
    assert_eq!(opened.id, env.stub().id());
}

#[test]
fn body_hides_the_plaintext() {
    let f = fixture();
    let env = f.seal(&[change(1, "CANARY-7f3a")]);
    let haystack = env.as_bytes();
    assert!(!haystack.windows(11).any(|w| w == b"CANARY-7f3a"));
}

#[test]
fn wrong_team() {
    let f = fixture();
    let env = f.seal(&[change(1, "x")]);
    let other = TeamId::random();
    assert!(matches!(
        open(&env, other, &f.device.verifying_key(), &f.keys),
        Err(EnvelopeError::WrongTeam { .. })
    ));
}

#[test]
fn bad_signature_on_any_byte() {
    let f = fixture();
    let env = f.seal(&[change(1, "x")]);
    let bytes = env.into_bytes();
    // A body byte, a byte of the team id (the header stays well-formed;
    // we open under the altered team so only the signature can object) and
    // a signature byte.
    for at in [bytes.len() - 1, 5, crate::envelope::HEADER_LEN + 3] {
        let mut m = bytes.clone();
        m[at] ^= 0x40;
        let result = Fixture::reparse(m)
            .and_then(|e| open(&e, e.header().team, &f.device.verifying_key(), &f.keys));
        assert!(
            matches!(
                result,
                Err(EnvelopeError::BadSignature) | Err(EnvelopeError::Body(_))
            ),
            "byte {at}: {result:?}"
        );
    }
}

#[test]
fn another_devices_key_does_not_verify() {
    let f = fixture();
    let env = f.seal(&[change(1, "x")]);
    let other = DeviceKeys::generate();
    assert_eq!(
        open(&env, f.team, &other.verifying_key(), &f.keys),
        Err(EnvelopeError::BadSignature)
    );
}

#[test]
fn unknown_epoch() {
    let f = fixture();
    let env = f.seal(&[change(1, "x")]);
    assert_eq!(
        open(
            &env,
            f.team,
            &f.device.verifying_key(),
            &EpochKeyring::new()
        ),
        Err(EnvelopeError::UnknownEpoch(1))
    );
}

#[test]
fn encrypted_to_another_key_fails_to_decrypt() {
    let f = fixture();
    let mut wrong = EpochKeyring::new();
    wrong.insert(EpochKey::generate(1));
    let env = f.seal(&[change(1, "x")]);
    assert_eq!(
        open(&env, f.team, &f.device.verifying_key(), &wrong),
        Err(EnvelopeError::DecryptFailed)
    );
}

#[test]
fn header_mismatch() {
    let f = fixture();
    // Inner copy claims seq 2 while the outer header says seq 1.
    let mut inner = f.header(2, Digest::of(b"x")).inner_copy().to_vec();
    inner.extend_from_slice(&0u32.to_be_bytes());
    let env = f.seal_raw(&padding::pad(&deflate(&inner)));
    assert_eq!(f.open(&env), Err(EnvelopeError::HeaderMismatch));
}

#[test]
fn padding_invalid() {
    let f = fixture();
    let env = f.seal_raw(b"\xff\xff\xff\xffnot padded");
    assert_eq!(f.open(&env), Err(EnvelopeError::PaddingInvalid));
}

#[test]
fn decompression_garbage_and_bombs() {
    let f = fixture();
    let env = f.seal_raw(&padding::pad(b"\xff\xfe not deflate"));
    assert!(matches!(
        f.open(&env),
        Err(EnvelopeError::Decompress { .. })
    ));
    // 80 MiB of zeros compresses to ~80 KiB: refused past the limit.
    let bomb = deflate(&vec![0u8; MAX_PLAINTEXT + 1024]);
    let env = f.seal_raw(&padding::pad(&bomb));
    assert!(matches!(
        f.open(&env),
        Err(EnvelopeError::InflatesTooFar { .. })
    ));
    // 8 MiB of zeros, far below the absolute limit but a thousand times
    // the body: refused at what the body's size allows, having inflated
    // no more than that.
    let bomb = deflate(&vec![0u8; 8 << 20]);
    let env = f.seal_raw(&padding::pad(&bomb));
    let limit = inflate_limit(env.body().len());
    assert!(limit < 1 << 20, "limit {limit}");
    assert_eq!(f.open(&env), Err(EnvelopeError::InflatesTooFar { limit }));
}

#[test]
fn what_compresses_too_well_is_sealed_uncompressed_and_opens() {
    let f = fixture();
    let change = CaseChange {
        case: CaseId::from_bytes([7; 16]),
        change: vec![b'a'; 4 << 20],
    };
    let env = f.seal(std::slice::from_ref(&change));
    assert!(env.body().len() > 4 << 20, "stored, not deflated");
    let opened = f.open(&env).unwrap();
    assert_eq!(opened.changes, vec![change]);
    // What an ordinary payload may still inflate to is left for its
    // Automerge chunks.
    let small = f.seal(&[CaseChange {
        case: CaseId::from_bytes([7; 16]),
        change: b"an ordinary change".to_vec(),
    }]);
    let opened = f.open(&small).unwrap();
    assert_eq!(
        opened.inflate_left,
        INFLATE_FLOOR - small_plaintext_len(&opened)
    );
}

fn small_plaintext_len(opened: &OpenedEnvelope) -> usize {
    let mut out = Vec::new();
    opened.context.encode(&mut out);
    INNER_LEN
        + out.len()
        + encoded_len(&Contents {
            context: opened.context,
            changes: &opened.changes,
            witnesses: &opened.witnesses,
            notices: &opened.notices,
        })
}

fn encoded_len(contents: &Contents<'_>) -> usize {
    let mut out = Vec::new();
    encode_payload(&mut out, contents).unwrap();
    out.len()
}

#[test]
fn malformed_payload() {
    let f = fixture();
    let mut plain = f.header(1, Digest::ZERO).inner_copy().to_vec();
    plain.extend_from_slice(&5u32.to_be_bytes()); // claims 5 changes, has none
    let env = f.seal_raw(&padding::pad(&deflate(&plain)));
    assert!(matches!(f.open(&env), Err(EnvelopeError::Payload(_))));
}

#[test]
fn structural_rejections() {
    let f = fixture();
    let bytes = f.seal(&[change(1, "x")]).into_bytes();
    assert!(matches!(
        Fixture::reparse(bytes[..100].to_vec()),
        Err(EnvelopeError::Truncated { .. })
    ));
    assert!(matches!(
        Fixture::reparse(bytes[..bytes.len() - 1].to_vec()),
        Err(EnvelopeError::Truncated { .. })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Fixture::reparse(longer),
        Err(EnvelopeError::TrailingBytes { extra: 1 })
    );
    let mut v = bytes.clone();
    v[0] = 9;
    assert_eq!(
        Fixture::reparse(v),
        Err(EnvelopeError::UnsupportedVersion(9))
    );
    let mut k = bytes.clone();
    k[1] = 77;
    assert_eq!(Fixture::reparse(k), Err(EnvelopeError::UnknownKind(77)));
    let small = EnvelopeLimits {
        max_body: 10,
        age: AgeLimits::ONE_RECIPIENT,
    };
    assert!(matches!(
        SealedEnvelope::parse(bytes.clone(), &small),
        Err(EnvelopeError::Oversized { max: 10, .. })
    ));
}

#[test]
fn plaintext_body_is_not_an_age_file() {
    let f = fixture();
    let env = SealedEnvelope::sign(
        f.header(1, Digest::ZERO),
        br#"{"survivor_code":"NP-QAY-7KX3"}"#,
        &f.device,
    )
    .unwrap();
    assert!(matches!(
        Fixture::reparse(env.into_bytes()),
        Err(EnvelopeError::Body(crate::AgeFileError::NotAgeFile))
    ));
}

#[test]
fn sequence_rules() {
    let f = fixture();
    let recipient = f.keys.get(1).unwrap().recipient();
    let seal_with = |seq, prev| {
        seal(
            f.header(seq, prev),
            &Contents::changes(CONTEXT, &[]),
            &recipient,
            &f.device,
        )
    };
    assert_eq!(
        seal_with(0, Digest::ZERO).unwrap_err(),
        EnvelopeError::ZeroSeq
    );
    assert_eq!(
        seal_with(1, Digest::of(b"x")).unwrap_err(),
        EnvelopeError::FirstPrevNotZero
    );
    assert_eq!(
        seal_with(2, Digest::ZERO).unwrap_err(),
        EnvelopeError::MissingPrev { seq: 2 }
    );
}

#[test]
fn signature_length_is_fixed() {
    let f = fixture();
    let env = f.seal(&[]);
    assert_eq!(env.signature().len(), SIGNATURE_LEN);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn seal_open_round_trip(
        changes in proptest::collection::vec(
            (any::<[u8; 16]>(), proptest::collection::vec(any::<u8>(), 0..2000)),
            0..8,
        ),
        seq in 1u64..1_000_000,
    ) {
        let f = fixture();
        let changes: Vec<CaseChange> = changes
            .into_iter()
            .map(|(case, change)| CaseChange { case: CaseId::from_bytes(case), change })
            .collect();
        let prev = if seq == 1 { Digest::ZERO } else { Digest::of(&seq.to_be_bytes()) };
        let recipient = f.keys.get(1).unwrap().recipient();
        let env = seal(f.header(seq, prev), &Contents::changes(CONTEXT, &changes), &recipient, &f.device).unwrap();
        let env = Fixture::reparse(env.into_bytes()).unwrap();
        let opened = f.open(&env).unwrap();
        prop_assert_eq!(opened.changes, changes);
        prop_assert_eq!(opened.header.seq, seq);
    }
}

#[test]
fn a_snapshot_part_round_trips_and_its_counts_are_bounded() {
    use crate::envelope::snapshot::{Cover, SavedCase, ShredReason, Snapshot, Tombstone};
    let f = fixture();
    let part = Snapshot {
        id: [7; 16],
        part: 1,
        parts: 2,
        floor: 1,
        covers: vec![Cover {
            device: f.device.device_id(),
            seq: 9,
            id: Digest::of(b"nine"),
        }],
        tombstones: vec![Tombstone {
            case: CaseId::from_bytes([3; 16]),
            by: f.device.device_id(),
            at: 1_780_000_000,
            reason: ShredReason::ConsentWithdrawn,
        }],
        labels: vec![(f.device.device_id(), "مكتب / Office".to_owned())],
        cases: vec![SavedCase {
            case: CaseId::from_bytes([4; 16]),
            doc: b"saved document bytes".to_vec(),
        }],
    };
    let recipient = f.keys.get(1).unwrap().recipient();
    let env = seal_snapshot(
        f.header(1, Digest::ZERO),
        &CONTEXT,
        &part,
        &recipient,
        &f.device,
    )
    .unwrap();
    assert_eq!(env.header().kind, Kind::Snapshot);
    let opened = f.open(&env).unwrap();
    assert!(opened.changes.is_empty());
    assert_eq!(opened.snapshot, Some(part.clone()));

    // A count that the input cannot hold is refused before allocating.
    let mut payload = Vec::new();
    crate::envelope::snapshot::encode(&mut payload, &part).unwrap();
    let covers_at = 16 + 12;
    payload[covers_at..covers_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        crate::envelope::snapshot::decode(&payload),
        Err(WireError::CountTooLarge { .. })
    ));
    // A part number outside the snapshot is refused.
    let mut bad = part;
    bad.part = 2;
    let mut payload = Vec::new();
    crate::envelope::snapshot::encode(&mut payload, &bad).unwrap();
    assert!(crate::envelope::snapshot::decode(&payload).is_err());
}

#[test]
fn a_stub_verifies_and_chains_like_the_whole_envelope() {
    use crate::envelope::{EnvelopeStub, STUB_LEN, Stored};
    let f = fixture();
    let env = f.seal(&[change(1, "a change")]);
    let stub = env.stub();
    assert_eq!(stub.as_bytes().len(), STUB_LEN);
    assert_eq!(stub.id(), env.id());
    stub.verify_signature(&f.device.verifying_key()).unwrap();
    let limits = EnvelopeLimits::default();
    assert!(matches!(
        Stored::parse(stub.as_bytes().to_vec(), &limits).unwrap(),
        Stored::Stub(_)
    ));
    assert!(matches!(
        Stored::parse(env.as_bytes().to_vec(), &limits).unwrap(),
        Stored::Whole(_)
    ));
    // Any changed byte of a stub breaks its signature.
    for at in 0..STUB_LEN {
        let mut bytes = stub.as_bytes().to_vec();
        bytes[at] ^= 0x10;
        let Ok(changed) = EnvelopeStub::parse(bytes) else {
            continue;
        };
        assert!(
            changed.verify_signature(&f.device.verifying_key()).is_err(),
            "flip at {at}"
        );
    }
}
