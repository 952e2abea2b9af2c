//! The benchmarks, one module per row group of the table.

pub mod barrage;
pub mod bootstrap;
pub mod commit;
pub mod fleet;
pub mod ingest;
pub mod traffic;
pub mod weak_link;
