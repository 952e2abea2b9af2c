//! A small team around an in-memory relay, driven deterministically:
//! a shared clock, counter nonces, fast keystores.

#![allow(dead_code)]

pub mod hostile;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use amana_core::case::{Case, Intake, SurvivorCode};
use amana_core::keys::DeviceKeys;
use amana_core::keys::keystore::{Passphrase, WorkFactor};
use amana_core::roster::Role;
use amana_core::store::DeviceStore;
use amana_core::sync::enrol;
use amana_core::sync::invites::InviteCode;
use amana_core::sync::{Env, RelayClient, SyncError, SyncReport, sync};
use amana_core::{CaseId, TeamId};
use amana_sync_server::memory::MemoryRelay;

pub const T0: u64 = 1_780_000_000;

pub struct World {
    pub relay: MemoryRelay,
    pub clock: Arc<AtomicU64>,
    pub team: TeamId,
    pub dir: tempfile::TempDir,
    nonce: Arc<AtomicU64>,
}

pub fn intake(note: &str) -> Intake {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/intake.json"))
            .unwrap();
    let mut intake: Intake = serde_json::from_str(&text).unwrap();
    intake.note = Some(note.to_owned());
    intake
}

pub fn case(note: &str, at: u64) -> Case {
    Case::from_intake(
        intake(note),
        CaseId::random(),
        SurvivorCode::generate("NP-QAY").unwrap(),
        chrono::DateTime::from_timestamp(at as i64, 0).unwrap(),
    )
}

impl World {
    /// A relay and an admin ("office") device that created the team.
    pub fn new() -> (World, DeviceStore) {
        let clock = Arc::new(AtomicU64::new(T0));
        let relay_clock = clock.clone();
        let mut relay = MemoryRelay::new(
            ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
            Arc::new(move || relay_clock.load(Ordering::SeqCst)),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut office = new_store(&dir.path().join("office"));
        let team = enrol::create_team(
            &mut office,
            &mut relay,
            "http://127.0.0.1:1",
            None,
            "Office",
            None,
        )
        .unwrap();
        (
            World {
                relay,
                clock,
                team,
                dir,
                nonce: Arc::new(AtomicU64::new(1)),
            },
            office,
        )
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn env(&self) -> Env {
        let clock = self.clock.clone();
        let nonce = self.nonce.clone();
        Env::new(
            move || clock.load(Ordering::SeqCst),
            move || {
                let n = nonce.fetch_add(1, Ordering::SeqCst);
                let mut out = [0u8; 16];
                out[8..].copy_from_slice(&n.to_be_bytes());
                out
            },
        )
    }

    pub fn client(&mut self) -> RelayClient<&mut MemoryRelay> {
        RelayClient::new(&mut self.relay, self.team)
    }

    pub fn invite(&mut self, office: &mut DeviceStore, role: Role, label: &str) -> InviteCode {
        let mut env = self.env();
        let mut client = RelayClient::new(&mut self.relay, self.team);
        enrol::invite(office, &mut client, &mut env, role, label, 3600).unwrap()
    }

    /// A new device, invited, joined and approved.
    pub fn enrol(&mut self, office: &mut DeviceStore, name: &str, role: Role) -> DeviceStore {
        let code = self.invite(office, role, name);
        let mut device = new_store(&self.dir.path().join(name));
        let number = enrol::join(&mut device, &mut self.relay, &code).unwrap();
        let mut env = self.env();
        let mut client = RelayClient::new(&mut self.relay, self.team);
        let prefix = device.keys().device_id().to_hex()[..8].to_owned();
        enrol::approve(office, &mut client, &mut env, &prefix, &number).unwrap();
        device
    }

    pub fn sync(&mut self, store: &mut DeviceStore) -> Result<SyncReport, SyncError> {
        let mut env = self.env();
        let mut client = RelayClient::new(&mut self.relay, self.team);
        sync(store, &mut client, &mut env, &mut |_| {})
    }
}

pub fn new_store(dir: &Path) -> DeviceStore {
    DeviceStore::create(
        dir,
        DeviceKeys::generate(),
        &Passphrase::new("correct horse battery staple".into()),
        WorkFactor::Fixed(4),
    )
    .unwrap()
}

/// The notes of every case on a device, sorted.
pub fn notes(store: &DeviceStore) -> Vec<String> {
    let mut out: Vec<String> = store
        .cases()
        .unwrap()
        .into_iter()
        .flat_map(|v| v.case.notes.into_iter().map(|n| n.text))
        .collect();
    out.sort();
    out
}
