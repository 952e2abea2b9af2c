//! Getting the passphrase: from the file named by `AMANA_PASSPHRASE_FILE`
//! (for scripts), or typed at the terminal without echo. Never from a
//! command-line argument, which other users and shell history can see.

use std::io::IsTerminal;

use amana_core::keys::keystore::Passphrase;
use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// The environment variable naming a passphrase file.
pub const FILE_VAR: &str = "AMANA_PASSPHRASE_FILE";
const MIN_LEN: usize = 10;

/// Why no passphrase could be had (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoPassphrase(pub String);

fn from_file() -> anyhow::Result<Option<Zeroizing<String>>> {
    let Some(path) = std::env::var_os(FILE_VAR) else {
        return Ok(None);
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the passphrase file named by {FILE_VAR}"))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(Some(Zeroizing::new(line.to_owned())))
}

fn prompt(question: &str) -> anyhow::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(NoPassphrase(format!(
            "no passphrase: run this in a terminal, or set {FILE_VAR} to a file holding it"
        ))
        .into());
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password(question).context("cannot read the passphrase")?,
    ))
}

/// The passphrase to unlock this device.
pub fn unlock() -> anyhow::Result<Passphrase> {
    let text = match from_file()? {
        Some(text) => text,
        None => prompt("Passphrase: ")?,
    };
    Ok(Passphrase::new(text.to_string()))
}

/// A new passphrase, typed twice at the terminal (or from the file).
pub fn choose() -> anyhow::Result<Passphrase> {
    let text = match from_file()? {
        Some(text) => text,
        None => {
            let first = prompt("Choose a passphrase (at least 10 characters): ")?;
            let second = prompt("Type it again: ")?;
            if *first != *second {
                return Err(
                    NoPassphrase("the two passphrases differ; nothing was created".into()).into(),
                );
            }
            first
        }
    };
    if text.chars().count() < MIN_LEN {
        bail!(crate::exit::Invalid(format!(
            "the passphrase must have at least {MIN_LEN} characters"
        )));
    }
    Ok(Passphrase::new(text.to_string()))
}
