//! What every command needs: the data directory, the unlocked store, the
//! clock and nonces for the sync engine, and a client for the pinned relay.
//! The unlocked store lives only as long as the command.

use std::io::IsTerminal;
use std::path::PathBuf;

use amana_core::case::Lang;
use amana_core::store::{DeviceStore, Membership, StoreError};
use amana_core::sync::http::HttpTransport;
use amana_core::sync::{Env, RelayClient};
use anyhow::Context;

use crate::cli::{Cli, LangArg};
use crate::passphrase;

/// Global options.
#[derive(Debug)]
pub struct App {
    /// The data directory.
    pub data_dir: PathBuf,
    /// JSON output.
    pub json: bool,
    /// Interface language.
    pub lang: Lang,
}

impl App {
    /// From the parsed command line.
    pub fn new(cli: &Cli) -> anyhow::Result<App> {
        let data_dir = match &cli.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_dir()
                .context(
                    "cannot find a data directory for this user; pass --data-dir or set AMANA_HOME",
                )?
                .join("amana"),
        };
        Ok(App {
            data_dir,
            json: cli.json,
            lang: match cli.lang {
                LangArg::En => Lang::En,
                LangArg::Ar => Lang::Ar,
            },
        })
    }

    /// Unlocks the device store with the passphrase.
    pub fn unlock(&self) -> anyhow::Result<DeviceStore> {
        if !self
            .data_dir
            .join(amana_core::store::KEYSTORE_FILE)
            .exists()
        {
            return Err(StoreError::NotInitialised(self.data_dir.clone()).into());
        }
        let pass = passphrase::unlock()?;
        Ok(DeviceStore::unlock(&self.data_dir, &pass)?)
    }

    /// Whether progress and prompts may be shown.
    pub fn interactive(&self) -> bool {
        !self.json && std::io::stderr().is_terminal()
    }
}

/// The engine's clock and nonces, from the system.
pub fn system_env() -> Env {
    Env::new(now, || {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).expect("the operating system provides randomness");
        nonce
    })
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A transport to the relay of `membership`, trusting only its pinned key.
pub fn transport(membership: &Membership) -> anyhow::Result<HttpTransport> {
    Ok(HttpTransport::new(
        &membership.relay_url,
        membership.relay_key_pin,
    )?)
}

/// A client for this device's team.
pub fn client(store: &DeviceStore) -> anyhow::Result<RelayClient<HttpTransport>> {
    let membership = store.membership()?.ok_or(StoreError::NotMember)?;
    Ok(RelayClient::new(transport(&membership)?, membership.team))
}
