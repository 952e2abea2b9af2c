//! `amana`: the field officer's, office's and auditor's command-line tool.
//!
//! The commands arrive with the sync/CLI issue; this build reports its
//! version. Exit codes: 0 success, 2 usage error.

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--version" | "-V") => {
            println!("amana {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "amana {}: the field commands are not part of this build yet; \
                 see README.md for what is available",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
