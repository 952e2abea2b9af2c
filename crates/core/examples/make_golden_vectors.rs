//! Writes the golden test vectors under `crates/core/tests/data/`.
//!
//! Run once when the format changes on purpose (and bump the version):
//! `cargo run -p amana-core --example make_golden_vectors`. The vectors
//! are then committed and `tests/golden.rs` checks that this build still
//! reads every valid one and rejects every `fail_*` one with its error.
//! Only the public API is used, so the vectors are what any client makes.

use std::fs;
use std::io::Read;
use std::path::Path;

use age::x25519;
use amana_core::envelope::seal::{CaseChange, Contents, Notice, SealContext, Witness, seal};
use amana_core::envelope::{EnvelopeHeader, Kind, SealedEnvelope};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::keys::keystore::{self, Passphrase, WorkFactor};
use amana_core::keys::{DeviceKeys, EpochKey};
use amana_core::roster::{DeviceEntry, Role, Roster, RosterChange};
use amana_core::{CaseId, DeviceId, Digest, TeamId};

const PASSPHRASE: &str = "amana golden vectors";

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    fs::create_dir_all(&out).unwrap();
    let write = |name: &str, bytes: &[u8]| fs::write(out.join(name), bytes).unwrap();

    let admin = DeviceKeys::generate();
    let device = DeviceKeys::generate();
    // The field device's receiving key (generation 0), kept as a vector so
    // the golden key envelope can be opened.
    let device_rx = x25519::Identity::generate();
    let epoch = EpochKey::generate(1);
    let team = TeamId::random();
    let mut roster = Roster::create(
        team,
        &admin,
        &age::x25519::Identity::generate().to_public(),
        Vec::new(),
        epoch.recipient(),
    )
    .unwrap();
    let field = DeviceEntry {
        signing_key: device.verifying_key(),
        recipient: device_rx.to_public(),
        role: Role::Field,
        label: age::encrypt(
            &epoch.recipient(),
            "Field officer 1 / ضابط ميداني ١".as_bytes(),
        )
        .unwrap(),
    };
    roster
        .append(RosterChange::AddDevice(field.clone()), &admin)
        .unwrap();

    let pw = Passphrase::new(PASSPHRASE.to_owned());
    write(
        "device.keystore",
        &keystore::seal(&device, &pw, WorkFactor::Fixed(4)).unwrap(),
    );
    {
        use age::secrecy::ExposeSecret;
        write(
            "device.receiving",
            device_rx.to_string().expose_secret().as_bytes(),
        );
    }
    let mut roster_bytes = Vec::new();
    for op in roster.ops() {
        roster_bytes.extend_from_slice(&(op.as_bytes().len() as u32).to_be_bytes());
        roster_bytes.extend_from_slice(op.as_bytes());
    }
    write("roster.bin", &roster_bytes);
    write(
        "epoch1.keyenv",
        KeyEnvelope::seal(team, &epoch, field.id(), &field.recipient, &admin)
            .unwrap()
            .as_bytes(),
    );

    let header = |seq: u64, prev: Digest| EnvelopeHeader {
        kind: Kind::Changes,
        team,
        device: device.device_id(),
        seq,
        prev,
        epoch: 1,
        body_len: 0,
    };
    let changes1 = vec![
        CaseChange {
            case: CaseId::from_bytes([0x11; 16]),
            change: "تغيير أول: ابتزاز عبر واتساب".as_bytes().to_vec(),
        },
        CaseChange {
            case: CaseId::from_bytes([0x22; 16]),
            change: b"second change".to_vec(),
        },
    ];
    let changes2 = vec![CaseChange {
        case: CaseId::from_bytes([0x11; 16]),
        change: vec![0u8; 3000],
    }];
    let context = SealContext::under(&roster, 1_780_000_000).pulled_at(1_779_999_990);
    let contents1 = Contents::changes(context, &changes1);
    let env1 = seal(
        header(1, Digest::ZERO),
        &contents1,
        &epoch.recipient(),
        &device,
    )
    .unwrap();
    let witnesses2 = [Witness {
        device: DeviceId::from_bytes([0x22; 16]),
        seq: 7,
        id: Digest::from_bytes([0x33; 32]),
    }];
    let notices2 = [
        Notice::Alarm {
            id: [0x44; 16],
            code: "witnessed_ahead".into(),
            device: Some(DeviceId::from_bytes([0x22; 16])),
            seq: Some(9),
            first_seen: 1_780_000_100,
        },
        Notice::Ack {
            raised_by: DeviceId::from_bytes([0x55; 16]),
            id: [0x66; 16],
        },
    ];
    let contents2 = Contents {
        context: SealContext {
            sealed_at: 1_780_000_200,
            ..context
        },
        changes: &changes2,
        witnesses: &witnesses2,
        notices: &notices2,
    };
    let env2 = seal(
        header(2, env1.id()),
        &contents2,
        &epoch.recipient(),
        &device,
    )
    .unwrap();
    write("valid_seq1.env", env1.as_bytes());
    write("valid_seq2.env", env2.as_bytes());
    write("valid_seq1.expect", describe(&contents1).as_bytes());
    write("valid_seq2.expect", describe(&contents2).as_bytes());

    // Failures: each must be rejected with the error named in fail.manifest.
    let sign = |h: EnvelopeHeader, body: &[u8]| {
        SealedEnvelope::sign(h, body, &device).unwrap().into_bytes()
    };
    let raw = |plaintext: &[u8]| age::encrypt(&epoch.recipient(), plaintext).unwrap();
    let inner = |h: &EnvelopeHeader| h.encode()[..78].to_vec();
    let context_bytes = {
        let mut out = (roster.ops().len() as u64).to_be_bytes().to_vec();
        out.extend_from_slice(roster.head().as_bytes());
        out.extend_from_slice(&1_780_000_000u64.to_be_bytes());
        out.extend_from_slice(&1_779_999_990u64.to_be_bytes());
        out
    };
    let mut manifest = String::new();
    let mut fail = |name: &str, error: &str, bytes: Vec<u8>| {
        write(&format!("fail_{name}.env"), &bytes);
        manifest.push_str(&format!("fail_{name}.env {error}\n"));
    };

    let mut bad_sig = env1.as_bytes().to_vec();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    fail("bad_signature", "BadSignature", bad_sig);

    let mut wrong_inner = inner(&header(2, Digest::of(b"x")));
    wrong_inner.extend_from_slice(&0u32.to_be_bytes());
    fail(
        "header_mismatch",
        "HeaderMismatch",
        sign(header(1, Digest::ZERO), &raw(&pad(&deflate(&wrong_inner)))),
    );

    let mut epoch2 = header(1, Digest::ZERO);
    epoch2.epoch = 2;
    fail(
        "unknown_epoch",
        "UnknownEpoch",
        sign(epoch2, &raw(&pad(&deflate(b"")))),
    );

    let mut other_team = header(1, Digest::ZERO);
    other_team.team = TeamId::from_bytes([0xee; 16]);
    fail(
        "wrong_team",
        "WrongTeam",
        sign(other_team, &raw(&pad(&deflate(b"")))),
    );

    fail(
        "truncated",
        "Truncated",
        env1.as_bytes()[..env1.as_bytes().len() - 10].to_vec(),
    );
    let mut trailing = env1.as_bytes().to_vec();
    trailing.extend_from_slice(b"\0\0");
    fail("trailing_bytes", "TrailingBytes", trailing);

    fail(
        "not_age",
        "Body(NotAgeFile)",
        sign(
            header(1, Digest::ZERO),
            br#"{"survivor_code":"NP-QAY-7KX3","note":"plaintext"}"#,
        ),
    );

    let mut oversized = env1.as_bytes().to_vec();
    oversized[78..82].copy_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
    fail("oversized", "Oversized", oversized);

    let many: Vec<x25519::Recipient> = (0..10)
        .map(|_| x25519::Identity::generate().to_public())
        .collect();
    let encryptor =
        age::Encryptor::with_recipients(many.iter().map(|r| r as &dyn age::Recipient)).unwrap();
    let mut body = Vec::new();
    let mut w = encryptor.wrap_output(&mut body).unwrap();
    std::io::Write::write_all(&mut w, b"x").unwrap();
    w.finish().unwrap();
    fail(
        "too_many_stanzas",
        "Body(TooManyStanzas",
        sign(header(1, Digest::ZERO), &body),
    );

    fail(
        "padding_invalid",
        "PaddingInvalid",
        sign(
            header(1, Digest::ZERO),
            &raw(b"\xff\xff\xff\xffno padding here"),
        ),
    );

    let stranger = x25519::Identity::generate().to_public();
    fail(
        "decrypt",
        "DecryptFailed",
        sign(
            header(1, Digest::ZERO),
            &age::encrypt(&stranger, &pad(&deflate(&inner(&header(1, Digest::ZERO))))).unwrap(),
        ),
    );

    // Version 1 (before the seal context) is no longer read.
    let mut version = env1.as_bytes().to_vec();
    version[0] = 1;
    fail("unsupported_version", "UnsupportedVersion", version);

    let mut payload = inner(&header(1, Digest::ZERO));
    payload.extend_from_slice(&context_bytes);
    payload.extend_from_slice(&9u32.to_be_bytes());
    fail(
        "payload_malformed",
        "Payload",
        sign(header(1, Digest::ZERO), &raw(&pad(&deflate(&payload)))),
    );

    write("fail.manifest", manifest.as_bytes());
    println!("wrote golden vectors to {}", out.display());
}

/// The contents of a valid vector as `tests/golden.rs` prints them.
fn describe(contents: &Contents<'_>) -> String {
    let c = contents.context;
    let mut out = format!(
        "context {} {} {}\n",
        c.roster_len, c.roster_head, c.sealed_at
    );
    for change in contents.changes {
        out.push_str(&format!(
            "{} {}\n",
            change.case,
            hex::encode(&change.change)
        ));
    }
    for w in contents.witnesses {
        out.push_str(&format!("witness {} {} {}\n", w.device, w.seq, w.id));
    }
    for n in contents.notices {
        out.push_str(&notice_line(n));
    }
    out
}

fn notice_line(n: &Notice) -> String {
    match n {
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
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateEncoder::new(data, flate2::Compression::default())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The padding of `docs/protocol.md`: length ‖ data ‖ zeros to the Padmé size.
fn pad(data: &[u8]) -> Vec<u8> {
    let len = data.len() + 4;
    let total = if len <= 256 {
        256
    } else {
        let e = usize::BITS - 1 - len.leading_zeros();
        let s = u32::BITS - e.leading_zeros();
        let mask = (1usize << (e - s)) - 1;
        (len + mask) & !mask
    };
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(total, 0);
    out
}
