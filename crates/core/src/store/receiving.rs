//! The device's receiving keys (see [`crate::keys::receiving`]): stored
//! sealed, one row per generation, destroyed once a newer generation has
//! been announced.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{DeviceStore, StoreError};
use crate::ids::DeviceId;
use crate::keys::ReceivingKey;

/// Meta entry: the newest generation the relay has accepted an
/// announcement for.
const ANNOUNCED: &str = "announced_generation";
/// Meta entry (admins): what was delivered to which receiving key.
const DELIVERIES: &str = "deliveries";

/// The newest epoch key an admin delivered to a device, and to which
/// generation of its receiving key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// Generation of the receiving key it went to.
    pub generation: u32,
    /// The newest epoch delivered to it.
    pub epoch: u32,
}

impl DeviceStore {
    /// Stores a receiving key.
    pub fn add_receiving_key(&mut self, key: &ReceivingKey) -> Result<(), StoreError> {
        let row = key.generation().to_be_bytes();
        let sealed = self
            .sealer
            .seal("receiving_keys", &row, &key.secret_bytes());
        self.conn.execute(
            "INSERT INTO receiving_keys (generation, key_sealed) VALUES (?1, ?2)",
            params![key.generation(), sealed],
        )?;
        Ok(())
    }

    /// Every receiving key held, oldest generation first.
    pub fn receiving_keys(&self) -> Result<Vec<ReceivingKey>, StoreError> {
        self.open_rows(
            "receiving_keys",
            "SELECT generation, key_sealed FROM receiving_keys ORDER BY generation",
            [],
            |generation: &u32| generation.to_be_bytes().to_vec(),
        )?
        .into_iter()
        .map(|(generation, secret)| {
            std::str::from_utf8(&secret)
                .ok()
                .and_then(|s| ReceivingKey::from_secret(generation, s))
                .ok_or_else(|| StoreError::Corrupt("a receiving key is unreadable".into()))
        })
        .collect()
    }

    /// The newest receiving key: where the team should send epoch keys.
    pub fn current_receiving_key(&self) -> Result<ReceivingKey, StoreError> {
        self.receiving_keys()?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the device holds no receiving key".into()))
    }

    /// Marks a generation as having opened a delivered key.
    pub fn mark_receiving_key_used(&mut self, generation: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE receiving_keys SET used = 1 WHERE generation = ?1",
            [generation],
        )?;
        Ok(())
    }

    /// Whether the newest generation has opened a delivered key (so a
    /// fresh one is due).
    pub fn current_receiving_key_used(&self) -> Result<bool, StoreError> {
        let used: Option<i64> = self.conn.query_row(
            "SELECT used FROM receiving_keys ORDER BY generation DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        Ok(used == Some(1))
    }

    /// Destroys every receiving key older than `generation`.
    pub fn destroy_receiving_keys_below(&mut self, generation: u32) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM receiving_keys WHERE generation < ?1",
            [generation],
        )?)
    }

    /// The newest generation whose announcement the relay accepted.
    pub fn announced_generation(&self) -> Result<Option<u32>, StoreError> {
        Ok(self
            .meta(ANNOUNCED)?
            .and_then(|v| v.as_slice().try_into().ok().map(u32::from_be_bytes)))
    }

    /// Records that the relay accepted the announcement of `generation`.
    pub fn set_announced_generation(&mut self, generation: u32) -> Result<(), StoreError> {
        self.put_meta(ANNOUNCED, &generation.to_be_bytes())
    }

    /// What this admin delivered, per device.
    pub fn deliveries(&self) -> Result<BTreeMap<DeviceId, Delivered>, StoreError> {
        let Some(json) = self.meta(DELIVERIES)? else {
            return Ok(BTreeMap::new());
        };
        let by_hex: BTreeMap<String, Delivered> = serde_json::from_slice(&json)
            .map_err(|_| StoreError::Corrupt("the delivery record is unreadable".into()))?;
        by_hex
            .into_iter()
            .map(|(hex, d)| {
                hex.parse::<DeviceId>()
                    .map(|id| (id, d))
                    .map_err(|_| StoreError::Corrupt("the delivery record is unreadable".into()))
            })
            .collect()
    }

    /// Replaces the record of deliveries.
    pub fn set_deliveries(
        &mut self,
        deliveries: &BTreeMap<DeviceId, Delivered>,
    ) -> Result<(), StoreError> {
        let by_hex: BTreeMap<String, Delivered> =
            deliveries.iter().map(|(id, d)| (id.to_hex(), *d)).collect();
        let json = serde_json::to_vec(&by_hex).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_meta(DELIVERIES, &json)
    }
}
