//! Auditing a relay without any key: what `amana-relay audit` (on a copy
//! of the relay's files) and `amana audit` (through the relay's API, with
//! an auditor device) share.
//!
//! - [`log`]: the team's roster chain, every envelope, every device chain,
//!   the relay's heads, replayed receipts.
//! - [`receipts`]: the receipts file a device exports.
//! - [`report`]: findings, counts, and the signed report file.
//!
//! Nothing here decrypts: an audit proves shape, authorship and
//! completeness, never content (`docs/auditor-guide.md`).

pub mod log;
pub mod receipts;
pub mod report;

pub use log::{LogAudit, Recorded, StoredEnvelope};
pub use receipts::ReceiptFile;
pub use report::{Finding, Report, Severity, Subject};
