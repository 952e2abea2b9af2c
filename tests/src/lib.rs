//! End-to-end tests for Amana (they run the real binaries).
