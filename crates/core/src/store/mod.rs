//! The device store: everything a device keeps, encrypted at rest.
//!
//! A data directory holds two files (and SQLite's `-wal`/`-shm` beside the
//! second): `keystore.age`, the device keys under the passphrase, and
//! `store.sqlite`, where every payload column is sealed with keys derived
//! from the device's storage key (see [`sealer`] and
//! `docs/device-store.md` for why column sealing rather than SQLCipher).
//!
//! Writes that record or change a case commit the case document and its
//! outbox entry in one transaction, and SQLite runs in WAL mode with
//! `synchronous=FULL`, so a call that returns `Ok` is durable.

pub mod alarms;
mod cases;
pub mod guard;
mod migrate;
mod pull;
pub mod quarantine;
mod receiving;
pub mod rekey;
pub(crate) mod sealer;
pub mod shred;
mod sync_state;
#[cfg(test)]
mod tests;
pub mod wipe;
mod witness;

pub use alarms::{Acknowledgement, Alarm, AlarmId, NewAlarm};
pub(crate) use cases::on_every_core;
pub use cases::{CheckedCase, HeldCase};
pub use pull::{PulledPage, Submission};
pub use quarantine::{QuarantineSummary, QuarantinedEnvelope};
pub use receiving::Delivered;
pub use sync_state::{OutboxEntry, PeerHead};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::case::CaseError;
use crate::error::RosterError;
use crate::ids::{CaseId, Digest, TeamId};
use crate::keys::keystore::{self, KeystoreError, Passphrase, WorkFactor};
use crate::keys::{DeviceKeys, EpochKey, EpochKeyring};
use crate::roster::{Role, Roster};
use sealer::Sealer;

/// File name of the keystore in a data directory.
pub const KEYSTORE_FILE: &str = "keystore.age";
/// File name of the database in a data directory.
pub const DATABASE_FILE: &str = "store.sqlite";
/// A fixed value sealed at creation; opening it proves the database and the
/// keystore belong together.
const STORE_CHECK: &[u8] = b"amana device store";

/// Why the device store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No device has been set up in this directory.
    #[error("no Amana device in {0}: run `amana init` first, or pass the right --data-dir")]
    NotInitialised(PathBuf),
    /// A device already exists here.
    #[error("an Amana device already exists in {0}; use another --data-dir or wipe this one first")]
    AlreadyInitialised(PathBuf),
    /// The keystore could not be opened.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// A wrong passphrase, with a limit of attempts set on this device.
    #[error(
        "wrong passphrase: try again, checking the keyboard language and caps lock. {remaining} attempt(s) left before this device wipes itself"
    )]
    WrongPassphraseLimited {
        /// Attempts left.
        remaining: u32,
    },
    /// Too many wrong passphrases: the device wiped itself.
    #[error(
        "{attempts} wrong passphrases in a row: this device wiped its data as configured{}. Re-enrol it with the office",
        if *.keys_destroyed { "" } else { " (some key files could not be removed; run `amana wipe`)" }
    )]
    LockedOut {
        /// Failed attempts counted.
        attempts: u32,
        /// Whether every key file was destroyed.
        keys_destroyed: bool,
    },
    /// The duress passphrase chosen is the device passphrase.
    #[error("the duress passphrase must differ from the passphrase; nothing was changed")]
    DuressIsPassphrase,
    /// The new passphrase chosen is the duress passphrase.
    #[error(
        "that is this device's duress passphrase, which wipes it; choose another. Nothing was changed"
    )]
    PassphraseIsDuress,
    /// Another process has the store open, and this needs it alone.
    #[error(
        "another amana command has this device open; let it finish (or close it), then try again. Nothing was changed"
    )]
    InUse,
    /// The database is damaged or does not belong to this keystore.
    #[error(
        "the device store is damaged: {0}. Nothing was changed; restore it from the office (re-enrol and sync)"
    )]
    Corrupt(String),
    /// Reading or writing a file failed.
    #[error("could not access the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// SQLite failed for a reason other than damage (e.g. the disk is full
    /// or another process holds the store).
    #[error(
        "the device store is unavailable ({0}); close other amana commands and check free disk space"
    )]
    Database(#[source] rusqlite::Error),
    /// The case could not be changed.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// No case with that id on this device.
    #[error("no case {0} on this device; run `amana cases list` to see the ids")]
    UnknownCase(CaseId),
    /// No case id starts with the prefix given.
    #[error("no case id starts with {0:?}; run `amana cases list` to see the ids")]
    NoSuchCase(String),
    /// Several case ids start with the prefix given.
    #[error("several cases start with {0:?}; type more characters of the id")]
    AmbiguousCase(String),
    /// The device has not joined a team yet.
    #[error("this device is not part of a team yet: run `amana join` or `amana team create`")]
    NotMember,
    /// The stored roster does not verify.
    #[error("the stored roster does not verify: {0}")]
    Roster(#[from] RosterError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match e.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Database(e),
        }
    }
}

/// A row of a sealed table: its key and its opened value.
pub(crate) type OpenedRow<K> = (K, zeroize::Zeroizing<Vec<u8>>);

/// The team this device belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The team.
    pub team: TeamId,
    /// This device's role.
    pub role: Role,
    /// The relay's base URL.
    pub relay_url: String,
    /// The roster genesis hash pinned at enrolment.
    pub genesis: Digest,
    /// SHA-256 of the relay's TLS public key, pinned at enrolment (if any).
    pub relay_key_pin: Option<Digest>,
    /// The relay's receipt-signing key, pinned at enrolment.
    #[serde(default)]
    pub relay_receipt_key: Option<Digest>,
}

/// An unlocked device store. The keys live as long as this value and are
/// zeroized when it is dropped.
pub struct DeviceStore {
    conn: Connection,
    keys: DeviceKeys,
    sealer: Sealer,
    dir: PathBuf,
    /// Held shared while open ([`rekey`]); `None` where the directory
    /// cannot hold a lock.
    lock: Option<fs::File>,
    /// What the keystore is sealed to and at what cost, to seal it again
    /// when the store re-keys itself.
    passphrase: Passphrase,
    work: WorkFactor,
}

impl std::fmt::Debug for DeviceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStore")
            .field("dir", &self.dir)
            .field("device", &self.keys.device_id())
            .finish_non_exhaustive()
    }
}

impl DeviceStore {
    /// Sets up a new device in `dir` with `keys` protected by `passphrase`.
    pub fn create(
        dir: &Path,
        keys: DeviceKeys,
        passphrase: &Passphrase,
        work: WorkFactor,
    ) -> Result<DeviceStore, StoreError> {
        let keystore_path = dir.join(KEYSTORE_FILE);
        if keystore_path.exists() || dir.join(DATABASE_FILE).exists() {
            return Err(StoreError::AlreadyInitialised(dir.to_owned()));
        }
        create_private_dir(dir)?;
        let sealed_keys = keystore::seal(&keys, passphrase, work)?;
        let decoy = guard::seal_slot(None, work)?;
        let sealer = Sealer::new(keys.storage());
        let lock = rekey::lock_shared(dir)?;
        let mut store = Self::open_db(dir, keys, sealer, true, lock, passphrase, work)?;
        store.put_meta("store_check", STORE_CHECK)?;
        store.add_receiving_key(&crate::keys::ReceivingKey::generate(0))?;
        guard::write_secrets(dir, Some(&sealed_keys), Some(&decoy))?;
        Ok(store)
    }

    /// Opens the device in `dir` with `passphrase`. A wrong passphrase is
    /// counted, and may wipe the device (the duress passphrase, or the
    /// configured limit of failures): see [`guard`].
    ///
    /// A store that owes a re-key (a forgetting step that found it busy,
    /// or a version-2 keystore) re-keys here.
    pub fn unlock(dir: &Path, passphrase: &Passphrase) -> Result<DeviceStore, StoreError> {
        if !dir.join(KEYSTORE_FILE).exists() {
            return Err(StoreError::NotInitialised(dir.to_owned()));
        }
        // Under the lock, so that a re-key elsewhere cannot replace the
        // keystore between this read and the database's.
        let lock = rekey::lock_shared(dir)?;
        let keystore_bytes = match fs::read(dir.join(KEYSTORE_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotInitialised(dir.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let (keys, one_storage_key) =
            guard::begin_attempt(dir)?.try_passphrase(&keystore_bytes, passphrase)?;
        if !dir.join(DATABASE_FILE).exists() {
            return Err(StoreError::Corrupt("the database file is missing".into()));
        }
        let sealer = Sealer::new(keys.storage());
        let work = keystore::work_factor(&keystore_bytes);
        let mut store = Self::open_db(dir, keys, sealer, false, lock, passphrase, work)?;
        match store.meta("store_check")? {
            Some(value) if value.as_slice() == STORE_CHECK => {}
            _ => {
                return Err(StoreError::Corrupt(
                    "the database does not belong to this keystore".into(),
                ));
            }
        }
        if one_storage_key {
            store.put_meta(rekey::OWED, &[])?;
        }
        match store.settle_rekey() {
            Ok(_) => Ok(store),
            // A re-key that failed before its commit (a full disk, one
            // unreadable row) must not keep the officer out: it stays owed.
            Err(_) if store.rekey_owed().is_ok() => Ok(store),
            // One that failed after it is finished by the next unlock.
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    pub(crate) fn create_unsealed_for_tests(
        dir: &Path,
        keys: DeviceKeys,
    ) -> Result<Self, StoreError> {
        create_private_dir(dir)?;
        let sealer = Sealer::plaintext_for_tests(keys.storage());
        let lock = rekey::lock_shared(dir)?;
        let passphrase = Passphrase::random();
        Self::open_db(
            dir,
            keys,
            sealer,
            true,
            lock,
            &passphrase,
            WorkFactor::Fixed(1),
        )
    }

    fn open_db(
        dir: &Path,
        keys: DeviceKeys,
        sealer: Sealer,
        create: bool,
        lock: Option<fs::File>,
        passphrase: &Passphrase,
        work: WorkFactor,
    ) -> Result<Self, StoreError> {
        let mut store = DeviceStore {
            conn: Self::connect(dir, create)?,
            keys,
            sealer,
            dir: dir.to_owned(),
            lock,
            passphrase: passphrase.duplicate(),
            work,
        };
        migrate::run(&mut store.conn)?;
        Ok(store)
    }

    /// Opens the database file of `dir` (creating it if asked), checked
    /// and set up for durable writes.
    fn connect(dir: &Path, create: bool) -> Result<Connection, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(dir.join(DATABASE_FILE), flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Reading the schema is the first thing that fails on a file that
        // is not a database.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!("integrity check: {check}")));
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA secure_delete = ON;
             PRAGMA foreign_keys = ON;",
        )?;
        Ok(conn)
    }

    /// The device keys.
    pub fn keys(&self) -> &DeviceKeys {
        &self.keys
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-protects the keystore with a new passphrase, and re-keys the
    /// store ([`rekey`]): nothing the files held under the old passphrase
    /// opens with the new one, or with any key the device keeps.
    pub fn change_passphrase(
        &mut self,
        new: &Passphrase,
        work: WorkFactor,
    ) -> Result<(), StoreError> {
        if guard::is_duress(&self.dir, new) {
            return Err(StoreError::PassphraseIsDuress);
        }
        match self.rekey(Some((new, work))) {
            Ok(()) => Ok(()),
            Err(rekey::NotNow::Busy) => Err(StoreError::InUse),
            Err(rekey::NotNow::Failed(e)) => Err(e),
        }
    }

    /// Sets the duress passphrase: typed at the unlock prompt, it wipes the
    /// device and reports a wrong passphrase. `None` turns it off (the slot
    /// is sealed to a random passphrase again, so it looks the same).
    pub fn set_duress(
        &self,
        duress: Option<&Passphrase>,
        work: WorkFactor,
    ) -> Result<(), StoreError> {
        if let Some(duress) = duress {
            let keystore_bytes = fs::read(self.dir.join(KEYSTORE_FILE))?;
            if keystore::open(&keystore_bytes, duress).is_ok() {
                return Err(StoreError::DuressIsPassphrase);
            }
        }
        let slot = guard::seal_slot(duress, work)?;
        guard::write_secrets(&self.dir, None, Some(&slot))
    }

    /// Sets (or with `None` removes) the number of failed unlocks in a row
    /// after which the device wipes itself.
    pub fn set_wipe_after(&self, failures: Option<u32>) -> Result<(), StoreError> {
        guard::write_lockout(
            &self.dir,
            &guard::Lockout {
                wipe_after: failures,
                failures: 0,
            },
        )
    }

    pub(crate) fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        put_meta_in(&self.conn, &self.sealer, name, value)
    }

    pub(crate) fn meta(
        &self,
        name: &'static str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        meta_in(&self.conn, &self.sealer, name)
    }

    /// The fixed-size records of a meta entry (none if it is absent), each
    /// read by `parse` from a [`Record`]; an entry that is not a whole
    /// number of records is corrupt (`what` names it in the error).
    pub(crate) fn meta_records<T>(
        &self,
        name: &'static str,
        len: usize,
        what: &str,
        parse: impl Fn(Record<'_>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let Some(bytes) = self.meta(name)? else {
            return Ok(Vec::new());
        };
        if bytes.len() % len != 0 {
            return Err(StoreError::Corrupt(format!("{what} unreadable")));
        }
        Ok(bytes.chunks_exact(len).map(|c| parse(Record(c))).collect())
    }

    pub(crate) fn remove_meta(&mut self, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM meta WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// Runs `sql`, which selects a row key and a sealed value, and opens
    /// every value of `table` with the row bytes `row(key)` it was sealed
    /// under. Every sealed table is read through here.
    pub(crate) fn open_rows<K: rusqlite::types::FromSql>(
        &self,
        table: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl Fn(&K) -> Vec<u8>,
    ) -> Result<Vec<OpenedRow<K>>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(params, |r| Ok((r.get::<_, K>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for item in rows {
            let (key, sealed) = item?;
            let plain = self.sealer.open(table, &row(&key), &sealed)?;
            out.push((key, plain));
        }
        Ok(out)
    }

    /// Records which team this device belongs to.
    pub fn set_membership(&mut self, membership: &Membership) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec(membership).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_meta("membership", &json)
    }

    /// The team this device belongs to, if any.
    pub fn membership(&self) -> Result<Option<Membership>, StoreError> {
        self.meta("membership")?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|_| StoreError::Corrupt("membership record unreadable".into()))
            })
            .transpose()
    }

    /// Stores the operations of `roster` not stored yet.
    pub fn save_roster(&mut self, roster: &Roster) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let stored: i64 = tx.query_row("SELECT COUNT(*) FROM roster_ops", [], |r| r.get(0))?;
        for op in roster.ops().iter().skip(stored as usize) {
            let idx = op.index.to_be_bytes();
            let sealed = self.sealer.seal("roster_ops", &idx, op.as_bytes());
            tx.execute(
                "INSERT INTO roster_ops (idx, op_sealed) VALUES (?1, ?2)",
                params![op.index as i64, sealed],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored roster, verified against the pinned genesis.
    pub fn roster(&self) -> Result<Option<Roster>, StoreError> {
        let membership = self.membership()?.ok_or(StoreError::NotMember)?;
        let mut stmt = self
            .conn
            .prepare("SELECT idx, op_sealed FROM roster_ops ORDER BY idx")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut ops = Vec::new();
        for row in rows {
            let (idx, sealed) = row?;
            ops.push(
                self.sealer
                    .open("roster_ops", &(idx as u64).to_be_bytes(), &sealed)?
                    .to_vec(),
            );
        }
        if ops.is_empty() {
            return Ok(None);
        }
        Ok(Some(Roster::verify_pinned(&ops, membership.genesis)?))
    }

    /// Stores an epoch key.
    pub fn put_epoch_key(&mut self, key: &EpochKey) -> Result<(), StoreError> {
        let slot = self.sealer.index("epoch", &key.epoch().to_be_bytes());
        let mut plain = zeroize::Zeroizing::new(key.epoch().to_be_bytes().to_vec());
        plain.extend_from_slice(&key.secret_bytes());
        let sealed = self.sealer.seal("epoch_keys", &slot, &plain);
        self.conn.execute(
            "INSERT INTO epoch_keys (slot, key_sealed) VALUES (?1, ?2)
             ON CONFLICT (slot) DO UPDATE SET key_sealed = excluded.key_sealed",
            params![slot, sealed],
        )?;
        Ok(())
    }

    /// Forgets an epoch key (one that never became its epoch's, or one
    /// that is being destroyed).
    pub fn remove_epoch_key(&mut self, epoch: u32) -> Result<(), StoreError> {
        let slot = self.sealer.index("epoch", &epoch.to_be_bytes());
        self.conn
            .execute("DELETE FROM epoch_keys WHERE slot = ?1", params![slot])?;
        Ok(())
    }

    /// Every epoch key this device holds.
    pub fn epoch_keys(&self) -> Result<EpochKeyring, StoreError> {
        let mut ring = EpochKeyring::new();
        let mut stmt = self
            .conn
            .prepare("SELECT slot, key_sealed FROM epoch_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (slot, sealed) = row?;
            let plain = self.sealer.open("epoch_keys", &slot, &sealed)?;
            let bad = || StoreError::Corrupt("an epoch key is unreadable".into());
            let (epoch, secret) = plain.split_at_checked(4).ok_or_else(bad)?;
            let epoch = u32::from_be_bytes(epoch.try_into().map_err(|_| bad())?);
            let secret = std::str::from_utf8(secret).map_err(|_| bad())?;
            ring.insert(EpochKey::from_secret(epoch, secret).ok_or_else(bad)?);
        }
        Ok(ring)
    }
}

/// Reads a sealed `meta` value on `conn` (the store's connection or an
/// open transaction).
pub(super) fn meta_in(
    conn: &Connection,
    sealer: &Sealer,
    name: &str,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value_sealed FROM meta WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    sealed
        .map(|s| sealer.open("meta", name.as_bytes(), &s))
        .transpose()
}

/// Sets a sealed `meta` value on `conn` (the store's connection or an open
/// transaction).
pub(super) fn put_meta_in(
    conn: &Connection,
    sealer: &Sealer,
    name: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    let sealed = sealer.seal("meta", name.as_bytes(), value);
    conn.execute(
        "INSERT INTO meta (name, value_sealed) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value_sealed = excluded.value_sealed",
        params![name, sealed],
    )?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// One fixed-size record of a meta entry ([`DeviceStore::meta_records`]):
/// fields read at offsets the caller's layout fixes.
#[derive(Clone, Copy)]
pub(crate) struct Record<'a>(&'a [u8]);

impl Record<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }

    /// A device id at `at`.
    pub(crate) fn device(&self, at: usize) -> crate::ids::DeviceId {
        crate::ids::DeviceId::from_bytes(self.array(at))
    }

    /// A digest at `at`.
    pub(crate) fn digest(&self, at: usize) -> crate::ids::Digest {
        crate::ids::Digest::from_bytes(self.array(at))
    }

    /// 16 raw bytes at `at`.
    pub(crate) fn bytes16(&self, at: usize) -> [u8; 16] {
        self.array(at)
    }

    /// A big-endian u64 at `at`.
    pub(crate) fn u64(&self, at: usize) -> u64 {
        u64::from_be_bytes(self.array(at))
    }

    /// A big-endian u32 at `at`.
    pub(crate) fn u32(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.array(at))
    }
}

/// Opens `path` for writing without truncating it, creating it readable
/// by this user only.
pub(crate) fn private_file(path: &Path) -> Result<fs::File, StoreError> {
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    Ok(options.open(path)?)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the
/// new file, never a mix: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
