//! Group commit for the SQLite store: the small writes that many requests
//! make at the same time (each request's nonce, each upload's envelopes)
//! share one transaction and one flush.
//!
//! A writer queues its work, then waits for the connection. Whoever gets
//! the connection first takes every queued piece of work, runs each inside
//! a savepoint of one transaction, commits once, and hands each writer its
//! own result; a writer whose work was done while it waited returns that
//! result without touching the database. Nothing is reported before the
//! commit that makes it durable, so "acknowledged means stored" holds for
//! every writer in the group, and one writer's failure rolls back only its
//! own savepoint.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;
use super::sqlite::backend;

/// Work that runs inside a group's transaction.
type Work<T> = Box<dyn FnOnce(&Connection) -> Result<T, StoreError> + Send>;

/// Where a writer finds its result.
type Slot<T> = Arc<Mutex<Option<Result<T, StoreError>>>>;

/// One queued piece of work, its result type erased.
trait Pending: Send {
    /// Runs the work; `false` when it failed and its writes must be undone.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Publishes the result: the work's own, or the group's failure.
    fn finish(self: Box<Self>, group: Result<(), &GroupFailure>);
}

struct Typed<T> {
    work: Option<Work<T>>,
    result: Option<Result<T, StoreError>>,
    slot: Slot<T>,
}

impl<T: Send> Pending for Typed<T> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let kept = result.is_ok();
        self.result = Some(result);
        kept
    }

    fn finish(self: Box<Self>, group: Result<(), &GroupFailure>) {
        let result = match group {
            Err(failure) => Err(failure.to_error()),
            Ok(()) => self.result.unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "a grouped write produced no result".into(),
                ))
            }),
        };
        *lock(&self.slot) = Some(result);
    }
}

/// Why a whole group failed (its transaction could not begin or commit),
/// kept as text so that every writer of the group gets its own error.
struct GroupFailure {
    corrupt: bool,
    message: String,
}

impl GroupFailure {
    fn new(e: rusqlite::Error) -> Self {
        let message = e.to_string();
        Self {
            corrupt: matches!(backend(e), StoreError::Corrupt(_)),
            message,
        }
    }

    fn to_error(&self) -> StoreError {
        if self.corrupt {
            StoreError::Corrupt(self.message.clone())
        } else {
            StoreError::Backend(self.message.clone().into())
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Work runs outside these locks, so a poisoned one holds no half-made state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The queue of work waiting for the connection.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Box<dyn Pending>>>,
}

impl GroupCommit {
    /// Runs `work` in a transaction shared with whatever other writers are
    /// waiting, and returns its result once that transaction is committed.
    /// `connection` is how the caller takes the store's connection.
    pub(super) fn run<'c, T: Send + 'static>(
        &self,
        connection: impl FnOnce() -> MutexGuard<'c, Connection>,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot: Slot<T> = Arc::new(Mutex::new(None));
        lock(&self.queue).push(Box::new(Typed {
            work: Some(Box::new(work)),
            result: None,
            slot: slot.clone(),
        }));
        let mut conn = connection();
        if let Some(done) = lock(&slot).take() {
            return done;
        }
        let group = std::mem::take(&mut *lock(&self.queue));
        run_group(&mut conn, group);
        drop(conn);
        lock(&slot)
            .take()
            // Only a panic in another writer's work (which rolled the
            // whole transaction back) leaves a slot empty.
            .unwrap_or_else(|| {
                Err(StoreError::Backend(
                    "a write sharing this commit failed, so nothing of it was stored; retry".into(),
                ))
            })
    }
}

/// Runs every piece of work in one transaction, each in its own savepoint,
/// and publishes the results after the commit.
fn run_group(conn: &mut Connection, mut group: Vec<Box<dyn Pending>>) {
    let outcome = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let step = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
        for pending in &mut group {
            step("SAVEPOINT grouped")?;
            if !pending.run(&tx) {
                step("ROLLBACK TO grouped")?;
            }
            step("RELEASE grouped")?;
        }
        tx.commit()
    })()
    .map_err(GroupFailure::new);
    for pending in group {
        pending.finish(outcome.as_ref().map(|_| ()));
    }
}
