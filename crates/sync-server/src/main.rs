//! `amana-relay`: the blind, append-only envelope log.
//!
//! This build carries the envelope format checks from `amana-core` (without
//! any decryption code); the HTTP service arrives with the relay issue.
//! Exit codes: 0 success, 2 usage error.

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--version" | "-V") => {
            println!("amana-relay {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "amana-relay {}: the relay service is not part of this build yet; \
                 see README.md for what is available",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    /// The relay links the format layer only: no client feature.
    #[test]
    fn relay_parses_envelopes_without_the_client_side() {
        let err = amana_core::envelope::SealedEnvelope::parse(
            vec![1; 10],
            &amana_core::envelope::EnvelopeLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, amana_core::EnvelopeError::Truncated { .. }));
    }
}
