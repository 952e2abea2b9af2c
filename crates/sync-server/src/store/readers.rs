//! Connections that only read, beside the store's one writing connection.
//! In WAL mode a reader sees the last committed state and does not wait
//! for a commit that is flushing, so the requests that only read (the
//! roster every request checks, pages, heads) do not queue behind writes.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::sqlite::backend;

/// Idle connections kept for the next reader; more are opened under load
/// and closed when they come back to a full pool.
const IDLE: usize = 8;

/// Read-only connections to one database file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // Only whole connections are pushed and popped under this lock.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for reading, returned to the pool when dropped.
    pub(super) fn take(&self) -> Result<Reader<'_>, StoreError> {
        let pooled = self.idle().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(backend)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(backend)?;
                conn.set_prepared_statement_cache_capacity(32);
                conn
            }
        };
        Ok(Reader {
            conn: Some(conn),
            pool: self,
        })
    }
}

/// A pooled read-only connection.
pub(super) struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Readers,
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.idle();
            if idle.len() < IDLE {
                idle.push(conn);
            }
        }
    }
}

/// Where a read runs: a pooled reader, or the writing connection when the
/// store has no file to open readers on (in memory).
pub(super) enum ReadConn<'a> {
    Pooled(Reader<'a>),
    Writer(MutexGuard<'a, Connection>),
}

impl Deref for ReadConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ReadConn::Pooled(reader) => reader,
            ReadConn::Writer(conn) => conn,
        }
    }
}
