//! Every decode path returns an error on arbitrary input, never panics,
//! and valid structures survive no single-byte truncation.

use amana_core::DeviceId;
use amana_core::agefile::{AgeLimits, check_structure};
use amana_core::case::CaseDoc;
use amana_core::envelope::{EnvelopeLimits, SealedEnvelope};
use amana_core::keys::delivery::KeyEnvelope;
use amana_core::keys::keystore::{self, Passphrase};
use amana_core::roster::{Roster, RosterOp};
use proptest::prelude::*;

fn with_prefix(prefix: &[u8], tail: Vec<u8>) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend(tail);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        age_prefixed in any::<bool>(),
    ) {
        let input = if age_prefixed {
            with_prefix(b"age-encryption.org/v1\n-> X25519 ", bytes)
        } else {
            bytes
        };
        let _ = check_structure(&input, AgeLimits::ONE_RECIPIENT);
        let _ = SealedEnvelope::parse(input.clone(), &EnvelopeLimits::default());
        let _ = SealedEnvelope::parse(with_prefix(&[1, 1], input.clone()), &EnvelopeLimits::default());
        let _ = RosterOp::decode(&input, 0);
        let _ = RosterOp::decode(&with_prefix(&[1], input.clone()), 0);
        let _ = Roster::verify(std::slice::from_ref(&input));
        let _ = KeyEnvelope::parse(input.clone());
        let _ = KeyEnvelope::parse(with_prefix(&[1], input.clone()));
        let _ = CaseDoc::load(&input, DeviceId::from_bytes([1; 16]));
        prop_assert!(keystore::open(&input, &Passphrase::new("p".into())).is_err());
    }
}

#[test]
fn truncated_golden_envelope_is_rejected_at_every_length() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/valid_seq1.env");
    let bytes = std::fs::read(path).unwrap();
    for len in 0..bytes.len() {
        assert!(
            SealedEnvelope::parse(bytes[..len].to_vec(), &EnvelopeLimits::default()).is_err(),
            "accepted a prefix of {len} bytes"
        );
    }
}
