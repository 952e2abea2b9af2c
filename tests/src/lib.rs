//! End-to-end tests for Amana: they run the real `amana` and `amana-relay`
//! binaries as separate processes. This library holds what the tests
//! share: finding (and if needed building) the binaries.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of a workspace binary, built once per test run with the same
/// profile as the tests.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Build exactly as `cargo test --workspace` does (the command CI and
        // README run): with the same feature unification the binaries are
        // already up to date, where a plain `cargo build --bin …` would
        // resolve features differently and rebuild half the workspace.
        let mut command = Command::new(cargo);
        // Cargo sets package variables (CARGO_PKG_*, CARGO_MANIFEST_DIR, …)
        // for the test process; build scripts that watch them would see a
        // change and rebuild, so the nested cargo gets the caller's
        // environment without them.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let keep = matches!(key.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR");
            if (key.starts_with("CARGO_") && !keep) || key == "OUT_DIR" {
                command.env_remove(key.as_ref());
            }
        }
        let status = command
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    let path = target_dir().join("debug").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub mod field;
