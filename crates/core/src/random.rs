//! Randomness from the operating system.
//!
//! One place so that a failure of the OS generator is handled the same way
//! everywhere: it aborts the operation with a panic, because continuing with
//! predictable keys or ids would be far worse than stopping.

/// `N` random bytes from the operating system.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Fills `buf` with random bytes from the operating system.
pub(crate) fn fill(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::getrandom(buf).expect("the operating system's random generator failed");
}
