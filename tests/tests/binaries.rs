//! The two binaries build and answer `--version`; anything else is a usage
//! error with exit code 2 and a message on stderr.

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
