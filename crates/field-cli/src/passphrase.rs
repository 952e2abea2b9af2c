//! Getting the passphrase: from the file named by `AMANA_PASSPHRASE_FILE`
//! (for scripts), or typed at the terminal without echo. Never from a
//! command-line argument, which other users and shell history can see.

use std::io::IsTerminal;

use amana_core::keys::keystore::Passphrase;
use amana_core::team_token::TeamToken;
use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// The environment variable naming a passphrase file.
pub const FILE_VAR: &str = "AMANA_PASSPHRASE_FILE";
/// The environment variable naming a file with the new passphrase, for
/// `amana passphrase` in scripts.
pub const NEW_FILE_VAR: &str = "AMANA_NEW_PASSPHRASE_FILE";
/// The environment variable naming a file with the duress passphrase, for
/// `amana duress set` in scripts.
pub const DURESS_FILE_VAR: &str = "AMANA_DURESS_PASSPHRASE_FILE";
const MIN_LEN: usize = 10;

/// Why no passphrase could be had (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoPassphrase(pub String);

fn from_file(var: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    let Some(path) = std::env::var_os(var) else {
        return Ok(None);
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the passphrase file named by {var}"))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(Some(Zeroizing::new(line.to_owned())))
}

fn prompt(question: &str, var: &str) -> anyhow::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(NoPassphrase(format!(
            "no passphrase: run this in a terminal, or set {var} to a file holding it"
        ))
        .into());
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password(question).context("cannot read the passphrase")?,
    ))
}

/// The team token for `amana team create`: from `file`, or typed at the
/// terminal without echo (it is a credential: never an argument).
pub fn team_token(file: Option<&std::path::Path>) -> anyhow::Result<TeamToken> {
    let text = match file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the team token file {}", path.display()))?,
        ),
        None => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "no team token: run this in a terminal, or pass --token-file with the token from the relay's operator (`amana-relay team-token`)"
                );
            }
            Zeroizing::new(
                rpassword::prompt_password("Team token from the relay's operator: ")
                    .context("cannot read the team token")?,
            )
        }
    };
    Ok(TeamToken::parse(&text)?)
}

/// The passphrase to unlock this device.
pub fn unlock() -> anyhow::Result<Passphrase> {
    let text = match from_file(FILE_VAR)? {
        Some(text) => text,
        None => prompt("Passphrase: ", FILE_VAR)?,
    };
    Ok(Passphrase::new(text.to_string()))
}

/// Which passphrase is being chosen.
#[derive(Clone, Copy, Debug)]
pub enum Choice {
    /// The device passphrase, at `amana init`.
    First,
    /// A new device passphrase, at `amana passphrase`.
    New,
    /// The duress passphrase.
    Duress,
}

/// A new passphrase, typed twice at the terminal (or from the file).
pub fn choose(choice: Choice) -> anyhow::Result<Passphrase> {
    let (var, question) = match choice {
        Choice::First => (FILE_VAR, "Choose a passphrase (at least 10 characters): "),
        Choice::New => (NEW_FILE_VAR, "New passphrase (at least 10 characters): "),
        Choice::Duress => (
            DURESS_FILE_VAR,
            "Duress passphrase (typing it at any prompt wipes this device): ",
        ),
    };
    let text = match from_file(var)? {
        Some(text) => text,
        None => {
            let first = prompt(question, var)?;
            let second = prompt("Type it again: ", var)?;
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
