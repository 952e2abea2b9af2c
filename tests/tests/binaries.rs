//! The two binaries build and answer `--version`; anything else is a usage
//! error with exit code 2 and a message on stderr; `amana demo` runs.

use std::process::Command;

use amana_e2e::binary;

#[test]
fn both_binaries_report_their_version() {
    for name in ["amana", "amana-relay"] {
        let out = Command::new(binary(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --version failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with(&format!("{name} ")), "{name}: {text}");
    }
}

#[test]
fn unknown_use_is_a_usage_error() {
    let out = Command::new(binary("amana"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}

/// README's first command: the whole demo runs and ends with both audits
/// clean (no demo string in any file, and the relay audit finds nothing).
#[test]
fn the_demo_runs_to_a_clean_audit() {
    let out = Command::new(binary("amana")).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "amana demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0 found"), "{text}");
    assert!(!text.contains("FOUND"), "{text}");
    assert!(text.contains("receipts replayed: clean"), "{text}");
    assert!(text.contains("the relay held only ciphertext"), "{text}");
}
