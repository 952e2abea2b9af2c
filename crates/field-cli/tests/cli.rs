//! The `amana` binary's surface without a relay: help lists the exit
//! codes, completions are generated, a missing device is a clear usage
//! error. (These tests also make `cargo test --workspace` build the
//! binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn amana() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amana"));
    cmd.env_remove("AMANA_HOME")
        .env_remove("AMANA_PASSPHRASE_FILE")
        .env_remove("AMANA_LANG");
    cmd
}

#[test]
fn help_documents_the_exit_codes() {
    let out = amana().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "3 wrong or missing passphrase",
        "4 relay unreachable",
        "6 integrity alarm",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn completions_are_generated_for_bash() {
    let out = amana().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("_amana()"));
    assert!(text.contains("intake"));
}

#[test]
fn a_directory_without_a_device_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = amana()
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("amana init"), "{err}");
}

#[test]
fn init_without_a_terminal_or_passphrase_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = amana()
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("AMANA_PASSPHRASE_FILE")
    );
    assert!(!dir.path().join("keystore.age").exists(), "nothing created");
}
