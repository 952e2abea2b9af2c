//! Golden vectors: the frozen wire formats. Every valid vector must still
//! open to its recorded contents; every `fail_*` vector must be rejected
//! with the error named in `fail.manifest`. Regenerate only on purpose:
//! `cargo run -p amana-core --example make_golden_vectors`.

use std::fs;
use std::path::PathBuf;

use amana_core::envelope::seal::{Notice, open};
use amana_core::envelope::{EnvelopeLimits, SealedEnvelope};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::keys::keystore::{self, Passphrase};
use amana_core::keys::{EpochKeyring, ReceivingKey};
use amana_core::roster::Roster;
use amana_core::{EnvelopeError, KeyEnvelopeError};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Vectors {
    roster: Roster,
    keys: EpochKeyring,
    device: amana_core::keys::DeviceKeys,
    receiving: Vec<ReceivingKey>,
}

fn load() -> Vectors {
    let device = keystore::open(
        &data("device.keystore"),
        &Passphrase::new("amana golden vectors".to_owned()),
    )
    .expect("golden keystore opens");
    let bytes = data("roster.bin");
    let mut ops = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        ops.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    let roster = Roster::verify(&ops).expect("golden roster verifies");
    let receiving = vec![
        ReceivingKey::from_secret(0, std::str::from_utf8(&data("device.receiving")).unwrap())
            .expect("golden receiving key parses"),
    ];
    let (key, generation) = KeyEnvelope::parse(data("epoch1.keyenv"))
        .unwrap()
        .open(&roster, device.device_id(), &receiving)
        .expect("golden key envelope opens");
    assert_eq!(generation, 0);
    let mut keys = EpochKeyring::new();
    keys.insert(key);
    Vectors {
        roster,
        keys,
        device,
        receiving,
    }
}

fn open_vector(
    v: &Vectors,
    bytes: Vec<u8>,
) -> Result<amana_core::envelope::seal::OpenedEnvelope, EnvelopeError> {
    let env = SealedEnvelope::parse(bytes, &EnvelopeLimits::default())?;
    let author = v
        .roster
        .device(&env.header().device)
        .expect("vectors are written by the roster's field device")
        .entry
        .signing_key;
    open(&env, v.roster.team(), &author, &v.keys)
}

#[test]
fn valid_vectors_open_to_their_recorded_contents() {
    let v = load();
    let mut prev = None;
    for name in ["valid_seq1", "valid_seq2"] {
        let bytes = data(&format!("{name}.env"));
        let env = SealedEnvelope::parse(bytes.clone(), &EnvelopeLimits::default()).unwrap();
        v.roster.check_author(env.header()).unwrap();
        if let Some(prev) = prev {
            assert_eq!(
                env.header().prev,
                prev,
                "{name} chains to the previous vector"
            );
        }
        let opened = open_vector(&v, bytes).unwrap();
        let c = opened.context;
        let context = format!(
            "context {} {} {}\n",
            c.roster_len, c.roster_head, c.sealed_at
        );
        let changes = opened
            .changes
            .iter()
            .map(|c| format!("{} {}\n", c.case, hex::encode(&c.change)));
        let witnesses = opened
            .witnesses
            .iter()
            .map(|w| format!("witness {} {} {}\n", w.device, w.seq, w.id));
        let notices = opened.notices.iter().map(|n| match n {
            Notice::Alarm {
                id,
                code,
                device,
                seq,
                first_seen,
            } => format!(
                "notice alarm {} {code} {} {} {first_seen}\n",
                hex::encode(id),
                device.map_or("-".into(), |d| d.to_string()),
                seq.map_or("-".into(), |s| s.to_string()),
            ),
            Notice::Ack { raised_by, id } => {
                format!("notice ack {raised_by} {}\n", hex::encode(id))
            }
        });
        let shown: String = std::iter::once(context)
            .chain(changes)
            .chain(witnesses)
            .chain(notices)
            .collect();
        // The context names the golden roster as the device held it.
        assert_eq!(c.roster_len as usize, v.roster.ops().len(), "{name}");
        assert_eq!(c.roster_head, v.roster.head(), "{name}");
        let expected = String::from_utf8(data(&format!("{name}.expect"))).unwrap();
        assert_eq!(shown, expected, "{name}");
        prev = Some(opened.id);
    }
}

#[test]
fn every_fail_vector_is_rejected_with_its_error() {
    let v = load();
    let manifest = String::from_utf8(data("fail.manifest")).unwrap();
    let mut count = 0;
    for line in manifest.lines() {
        let (file, expected) = line.split_once(' ').unwrap();
        let result = open_vector(&v, data(file));
        let err = result.expect_err(file);
        let shown = format!("{err:?}");
        assert!(
            shown.starts_with(expected),
            "{file}: expected {expected}, got {shown}"
        );
        count += 1;
    }
    assert!(count >= 13, "manifest lists every failure class");
}

#[test]
fn golden_key_envelope_refuses_another_device() {
    let v = load();
    let other = amana_core::keys::DeviceKeys::generate();
    let env = KeyEnvelope::parse(data("epoch1.keyenv")).unwrap();
    assert_eq!(
        env.open(&v.roster, other.device_id(), &v.receiving)
            .unwrap_err(),
        KeyEnvelopeError::Misaddressed
    );
    assert!(
        env.open(&v.roster, v.device.device_id(), &v.receiving)
            .is_ok()
    );
}
