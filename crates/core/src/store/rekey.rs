//! Re-keying the device store: every sealed value copied into a fresh file
//! under a new sealing key, then the old key and file destroyed.
//!
//! `secure_delete` zeroes what SQLite frees inside the database, but the
//! blocks of a truncated WAL, of a replaced keystore and of the database's
//! own past stay on the disk until the flash reuses them. What makes them
//! worthless is that nothing the device keeps can open them any more: the
//! store is re-keyed after every forgetting step (a case shredded, epochs
//! retired) and at every passphrase change, and a device set up with a
//! version-2 keystore (one storage key from which the sealing key was
//! derived) is re-keyed at its first unlock.
//!
//! The steps, each safe to interrupt (`docs/device-store.md`, "Re-keying"):
//!
//! 1. `VACUUM INTO store.next.sqlite` (live rows only, no free pages, no
//!    WAL), then every sealed column of every table opened with the old
//!    sealing key and sealed with the new one, in one transaction; the
//!    file is synced.
//! 2. The new keystore (same signing and index keys, new sealing key,
//!    under the passphrase) is sealed in memory and its SHA-256 written to
//!    `rekey.pending`.
//! 3. The old connection is closed and the keystore replaced with the
//!    duress slot, as one write of both ([`super::guard::write_secrets`]):
//!    this is the commit point.
//! 4. The old database, WAL and shared-memory files are overwritten and
//!    removed, the new file renamed into place, `rekey.pending` removed.
//!
//! A run killed before step 3 leaves the old keystore, whose hash is not
//! the one in `rekey.pending`: the next unlock deletes the new file. Killed
//! after it, the hashes match: the next unlock finishes step 4.
//!
//! While a store is open its process holds a shared lock on `store.lock`;
//! a re-key needs it exclusively, so no other process is left writing to a
//! file that has been replaced. A forgetting re-key that finds the store
//! open elsewhere stays owed (a sealed meta entry) and runs at the next
//! unlock or sync that has the store alone.

use std::fs::{self, File};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};
use sha2::{Digest as _, Sha256};

use super::{DATABASE_FILE, DeviceStore, KEYSTORE_FILE, Sealer, StoreError, guard, wipe};
use crate::keys::keystore::{self, Passphrase, WorkFactor};

/// The lock every open store holds shared, and a re-key exclusively.
pub const STORE_LOCK: &str = "store.lock";
/// Taken exclusively (never waiting) before a store upgrades its shared
/// lock: flock upgrades by releasing first, and only the holder of this
/// lock may be without its shared lock for that moment.
pub const UPGRADE_LOCK: &str = "rekey.lock";
/// The database being built under the new sealing key.
pub const NEXT_DATABASE: &str = "store.next.sqlite";
/// SHA-256 of the keystore that goes with [`NEXT_DATABASE`].
pub const PENDING: &str = "rekey.pending";
/// Meta entry present while a re-key is owed.
pub(super) const OWED: &str = "rekey_owed";

/// How a sealed column's associated row bytes come from its row key.
#[derive(Clone, Copy)]
enum RowBytes {
    /// The key's bytes as stored (a blob, or a text name).
    AsStored,
    /// An integer key as 8 big-endian bytes.
    Be64,
    /// An integer key as 4 big-endian bytes.
    Be32,
}

/// One sealed column: table, key column, how the row bytes are made, the
/// sealed column and the table name it was sealed under.
struct Column {
    table: &'static str,
    key: &'static str,
    row: RowBytes,
    sealed: &'static str,
    sealed_as: &'static str,
}

const fn column(
    table: &'static str,
    key: &'static str,
    row: RowBytes,
    sealed: &'static str,
) -> Column {
    Column {
        table,
        key,
        row,
        sealed,
        sealed_as: table,
    }
}

/// Every sealed column of the schema (a test checks that no `*_sealed`
/// column is missing).
const SEALED: &[Column] = &[
    column("meta", "name", RowBytes::AsStored, "value_sealed"),
    column("roster_ops", "idx", RowBytes::Be64, "op_sealed"),
    column("epoch_keys", "slot", RowBytes::AsStored, "key_sealed"),
    column("cases", "case_key", RowBytes::AsStored, "doc_sealed"),
    Column {
        table: "cases",
        key: "case_key",
        row: RowBytes::AsStored,
        sealed: "view_sealed",
        sealed_as: super::cases::VIEWS,
    },
    column("outbox", "id", RowBytes::Be64, "entry_sealed"),
    column("own_log", "seq", RowBytes::Be64, "envelope_sealed"),
    column(
        "peer_heads",
        "device_key",
        RowBytes::AsStored,
        "head_sealed",
    ),
    column("receipts", "id", RowBytes::Be64, "receipt_sealed"),
    column("quarantine", "id", RowBytes::Be64, "entry_sealed"),
    column(
        "submissions",
        "case_key",
        RowBytes::AsStored,
        "entry_sealed",
    ),
    column("receiving_keys", "generation", RowBytes::Be32, "key_sealed"),
    column("shredded", "case_key", RowBytes::AsStored, "entry_sealed"),
    column("peer_log", "entry_key", RowBytes::AsStored, "id_sealed"),
    column("alarms", "id", RowBytes::Be64, "entry_sealed"),
];

fn row_bytes(row: RowBytes, key: &rusqlite::types::Value) -> Result<Vec<u8>, StoreError> {
    use rusqlite::types::Value;
    match (row, key) {
        (RowBytes::AsStored, Value::Blob(b)) => Ok(b.clone()),
        (RowBytes::AsStored, Value::Text(t)) => Ok(t.as_bytes().to_vec()),
        (RowBytes::Be64, Value::Integer(i)) => Ok(i.to_be_bytes().to_vec()),
        (RowBytes::Be32, Value::Integer(i)) => u32::try_from(*i)
            .map(|g| g.to_be_bytes().to_vec())
            .map_err(|_| StoreError::Corrupt("a receiving key generation is out of range".into())),
        _ => Err(StoreError::Corrupt("a row key has the wrong type".into())),
    }
}

/// Re-seals every sealed column of the database on `conn` from `old` to
/// `new`, inside one transaction.
fn reseal(conn: &mut Connection, old: &Sealer, new: &Sealer) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for c in SEALED {
        let rows: Vec<(rusqlite::types::Value, Vec<u8>)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {key}, {sealed} FROM {table} WHERE {sealed} IS NOT NULL",
                key = c.key,
                sealed = c.sealed,
                table = c.table
            ))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let update = format!(
            "UPDATE {table} SET {sealed} = ?1 WHERE {key} = ?2",
            table = c.table,
            sealed = c.sealed,
            key = c.key
        );
        for (key, sealed) in rows {
            let row = row_bytes(c.row, &key)?;
            let plain = old.open(c.sealed_as, &row, &sealed)?;
            tx.execute(&update, params![new.seal(c.sealed_as, &row, &plain), key])?;
        }
    }
    tx.execute("DELETE FROM meta WHERE name = ?1", [OWED])?;
    tx.commit()?;
    Ok(())
}

/// The shared lock an open store holds on its directory, taken after any
/// re-key interrupted earlier has been finished or undone. `None` where the
/// directory cannot hold a lock (read-only): such a store cannot re-key.
pub(super) fn lock_shared(dir: &Path) -> Result<Option<File>, StoreError> {
    let Ok(file) = super::private_file(&dir.join(STORE_LOCK)) else {
        return Ok(None);
    };
    loop {
        if dir.join(NEXT_DATABASE).exists() || dir.join(PENDING).exists() {
            let upgrade = super::private_file(&dir.join(UPGRADE_LOCK))?;
            upgrade.lock()?;
            file.lock()?;
            settle_interrupted(dir)?;
        }
        file.lock_shared()?;
        // A re-key may have begun and died between the check and the lock.
        if !dir.join(NEXT_DATABASE).exists() && !dir.join(PENDING).exists() {
            return Ok(Some(file));
        }
        file.unlock()?;
    }
}

/// Finishes or undoes a re-key that was interrupted (under the exclusive
/// lock): the new file goes into place only if the keystore is the one it
/// was built for.
fn settle_interrupted(dir: &Path) -> Result<(), StoreError> {
    // Undo only on evidence: a read that fails for another reason than
    // absence must not delete a committed database.
    let committed = match fs::read(dir.join(PENDING)) {
        Ok(pending) => {
            let keystore = fs::read(dir.join(KEYSTORE_FILE))?;
            dir.join(NEXT_DATABASE).exists() && pending == Sha256::digest(&keystore).as_slice()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    if committed {
        install_next(dir)
    } else {
        for file in [NEXT_DATABASE, "store.next.sqlite-journal", PENDING] {
            remove_if_present(&dir.join(file))?;
        }
        Ok(())
    }
}

/// Step 4: the old database files destroyed, the new one put in place.
fn install_next(dir: &Path) -> Result<(), StoreError> {
    for file in [
        "store.sqlite-wal",
        "store.sqlite-shm",
        "store.sqlite-journal",
    ] {
        destroy(&dir.join(file))?;
    }
    destroy(&dir.join(DATABASE_FILE))?;
    fs::rename(dir.join(NEXT_DATABASE), dir.join(DATABASE_FILE))?;
    remove_if_present(&dir.join(PENDING))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn destroy(path: &Path) -> Result<(), StoreError> {
    match wipe::destroy(path) {
        wipe::WipeOutcome::Failed(why) => Err(StoreError::Io(std::io::Error::other(why))),
        _ => Ok(()),
    }
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Why a re-key was not done.
pub(super) enum NotNow {
    /// Another process has the store open.
    Busy,
    /// It failed; nothing was changed.
    Failed(StoreError),
}

impl From<StoreError> for NotNow {
    fn from(e: StoreError) -> Self {
        NotNow::Failed(e)
    }
}

impl DeviceStore {
    /// Whether a re-key is owed (a forgetting step since the last one).
    pub fn rekey_owed(&self) -> Result<bool, StoreError> {
        Ok(self.meta(OWED)?.is_some())
    }

    /// Re-keys now if a re-key is owed and no other process has the store
    /// open; returns whether it did. Owed stays owed if the store is busy.
    pub fn settle_rekey(&mut self) -> Result<bool, StoreError> {
        if !self.rekey_owed()? {
            return Ok(false);
        }
        match self.rekey(None) {
            Ok(()) => Ok(true),
            Err(NotNow::Busy) => Ok(false),
            Err(NotNow::Failed(e)) => Err(e),
        }
    }

    /// Copies the store into a fresh file under a new sealing key and
    /// destroys the old key and file; with `new_passphrase` the keystore
    /// is sealed to it (at `work`), else to the current one at its current
    /// work factor.
    pub(super) fn rekey(
        &mut self,
        new_passphrase: Option<(&Passphrase, WorkFactor)>,
    ) -> Result<(), NotNow> {
        let Some(lock) = &self.lock else {
            return Err(NotNow::Busy);
        };
        let Ok(upgrade) = super::private_file(&self.dir.join(UPGRADE_LOCK)) else {
            return Err(NotNow::Busy);
        };
        if upgrade.try_lock().is_err() {
            return Err(NotNow::Busy);
        }
        if lock.try_lock().is_err() {
            // flock converts by releasing first: take the shared lock back
            // (no one can have taken it exclusively meanwhile: that needs
            // the upgrade lock, held here).
            lock.lock_shared().map_err(StoreError::from)?;
            return Err(NotNow::Busy);
        }
        let result = self.rekey_locked(new_passphrase);
        // Back to shared: other commands may open the store again.
        let relocked = self.lock.as_ref().map(File::lock_shared).transpose();
        result?;
        relocked.map_err(StoreError::from)?;
        Ok(())
    }

    fn rekey_locked(
        &mut self,
        new_passphrase: Option<(&Passphrase, WorkFactor)>,
    ) -> Result<(), NotNow> {
        let dir = self.dir.clone();
        let next_path = dir.join(NEXT_DATABASE);
        for file in [NEXT_DATABASE, "store.next.sqlite-journal", PENDING] {
            remove_if_present(&dir.join(file))?;
        }
        let keys = self.keys.with_new_sealing_key();
        let sealer = Sealer::new(keys.storage());
        let built = (|| -> Result<Vec<u8>, StoreError> {
            let target = next_path.to_str().ok_or_else(|| {
                StoreError::Corrupt("the data directory's path is not UTF-8".into())
            })?;
            self.conn.execute("VACUUM INTO ?1", [target])?;
            let mut next = Connection::open_with_flags(
                &next_path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            // The journal would hold old-key pages on the disk; a crash
            // before the commit deletes this file anyway.
            next.execute_batch(
                "PRAGMA journal_mode = MEMORY;
                 PRAGMA synchronous = FULL;
                 PRAGMA secure_delete = ON;",
            )?;
            reseal(&mut next, &self.sealer, &sealer)?;
            drop(next);
            File::open(&next_path)?.sync_all()?;
            let (passphrase, work) = match new_passphrase {
                Some((p, w)) => (p, w),
                None => (&self.passphrase, self.work),
            };
            let sealed = keystore::seal(&keys, passphrase, work)?;
            super::write_atomically(&dir.join(PENDING), &Sha256::digest(&sealed))?;
            Ok(sealed)
        })();
        let sealed = match built {
            Ok(sealed) => sealed,
            Err(e) => {
                let _ = settle_interrupted(&dir);
                return Err(e.into());
            }
        };
        #[cfg(test)]
        crash_here(Crash::BeforeCommit)?;
        // Step 3: close the old database (its WAL is checkpointed and
        // removed), then commit by replacing the keystore.
        let placeholder = Connection::open_in_memory().map_err(StoreError::from)?;
        let old = std::mem::replace(&mut self.conn, placeholder);
        drop(old);
        if let Err(e) = guard::write_secrets(&dir, Some(&sealed), None) {
            let _ = settle_interrupted(&dir);
            self.conn = Self::connect(&dir, false)?;
            return Err(e.into());
        }
        #[cfg(test)]
        crash_here(Crash::AfterCommit)?;
        install_next(&dir)?;
        self.conn = Self::connect(&dir, false)?;
        self.keys = keys;
        self.sealer = sealer;
        if let Some((p, w)) = new_passphrase {
            self.passphrase = p.duplicate();
            self.work = w;
        }
        Ok(())
    }
}

/// Where a test stops a re-key, as a killed process would.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Crash {
    /// The new file and `rekey.pending` written, the keystore not yet.
    BeforeCommit,
    /// The keystore replaced, the new file not yet in place.
    AfterCommit,
}

#[cfg(test)]
thread_local! {
    pub(super) static CRASH_AT: std::cell::Cell<Option<Crash>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn crash_here(at: Crash) -> Result<(), NotNow> {
    if CRASH_AT.get() == Some(at) {
        return Err(NotNow::Failed(StoreError::Corrupt(
            "killed by the test".into(),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
