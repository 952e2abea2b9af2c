//! What a stolen device, an outsider or a hostile relay can make a device
//! or the relay spend: memory, disk, time. One test per attack, each
//! measured with the process's own figures (a tracking allocator with a
//! limit), never by eye.

mod bombs;
mod junk;
mod outsiders;
#[path = "../support/mod.rs"]
mod support;

use std::alloc::System;
use std::sync::Mutex;

use cap::Cap;

/// Every allocation of this test binary, counted; a test sets a limit
/// around what it measures, so an attack that would allocate past it
/// aborts the binary (what a phone's out-of-memory killer would do).
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// One test of this binary at a time: another test's allocations must not
/// count in a measurement, nor reach a limit set for one.
static MEASURING: Mutex<()> = Mutex::new(());

/// Runs the calling test alone among this binary's tests.
pub(crate) fn alone() -> std::sync::MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) const MIB: usize = 1 << 20;

/// Runs `f` with at most `limit` bytes allocated beyond what is allocated
/// when it begins; returns its result and the bytes allocated then at
/// their peak (the process's lifetime peak less the start: an upper bound
/// when `f` is what allocates most).
pub(crate) fn within<T>(limit: usize, f: impl FnOnce() -> T) -> (T, usize) {
    let base = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(base + limit).unwrap();
    let out = f();
    ALLOCATOR.set_limit(usize::MAX).unwrap();
    (out, ALLOCATOR.max_allocated().saturating_sub(base))
}
