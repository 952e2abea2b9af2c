//! Checks of a team's stored log without any key: roster chain, every
//! envelope (shape, age structure, author, signature, id), every device's
//! chain, the relay's heads, and replayed receipts.
//!
//! Each stored envelope yields at most one finding (the first check it
//! fails), and chains link through the id the relay recorded when it has
//! one, so one altered row is reported once, not once per check or once
//! per later envelope.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;

use super::receipts::ReceiptFile;
use super::report::Finding;
use crate::agefile::{self, AgeLimits};
use crate::envelope::{EnvelopeHeader, EnvelopeLimits, Stored};
use crate::error::EnvelopeError;
use crate::ids::{DeviceId, Digest, TeamId};
use crate::receipt::Receipt;
use crate::roster::Roster;

/// What the relay recorded beside an envelope (offline audit only).
#[derive(Clone, Copy, Debug)]
pub struct Recorded {
    /// Author column.
    pub device: DeviceId,
    /// Seq column.
    pub seq: u64,
    /// Epoch column.
    pub epoch: u32,
    /// Envelope id column.
    pub id: Digest,
}

/// One stored envelope, in cursor order.
#[derive(Clone, Copy, Debug)]
pub struct StoredEnvelope<'a> {
    /// Its cursor.
    pub cursor: u64,
    /// The bytes as stored.
    pub bytes: &'a [u8],
    /// The relay's columns beside it, when read from the database.
    pub recorded: Option<Recorded>,
}

/// A check's outcome: a finding's code and detail.
type Checked = Result<(), (&'static str, String)>;

/// The audit of one team's log.
pub struct LogAudit {
    team: TeamId,
    roster: Option<Roster>,
    chains: BTreeMap<DeviceId, (u64, Digest)>,
    stored: HashMap<(DeviceId, u64), (Digest, u64)>,
    /// The finding each flagged envelope got, by (device, seq).
    flagged: HashMap<(DeviceId, u64), usize>,
    findings: Vec<Finding>,
    checked: BTreeMap<String, u64>,
}

impl LogAudit {
    /// Starts with the team's roster operations, verified as a chain.
    pub fn new<B: AsRef<[u8]>>(team: TeamId, roster_ops: &[B]) -> LogAudit {
        let mut audit = LogAudit {
            team,
            roster: None,
            chains: BTreeMap::new(),
            stored: HashMap::new(),
            flagged: HashMap::new(),
            findings: Vec::new(),
            checked: BTreeMap::new(),
        };
        audit.count("roster_ops", roster_ops.len() as u64);
        match Roster::verify(roster_ops) {
            Ok(roster) if roster.team() == team => audit.roster = Some(roster),
            Ok(roster) => audit.findings.push(Finding::alarm(
                "roster_invalid",
                format!("team {team} roster"),
                format!("the roster is team {}'s", roster.team()),
            )),
            Err(e) => audit.findings.push(Finding::alarm(
                "roster_invalid",
                format!("team {team} roster"),
                format!("the roster does not verify: {e}"),
            )),
        }
        audit
    }

    /// The verified roster, if it verified.
    pub fn roster(&self) -> Option<&Roster> {
        self.roster.as_ref()
    }

    fn count(&mut self, what: &str, n: u64) {
        *self.checked.entry(what.to_owned()).or_default() += n;
    }

    /// Checks one stored envelope.
    pub fn envelope(&mut self, envelope: StoredEnvelope<'_>) {
        self.count("envelopes", 1);
        let location = match envelope.recorded {
            Some(r) => format!(
                "team {} device {} seq {} (cursor {})",
                self.team, r.device, r.seq, envelope.cursor
            ),
            None => match envelope
                .bytes
                .first_chunk()
                .and_then(|h| EnvelopeHeader::decode(h).ok())
            {
                Some(h) => format!(
                    "team {} device {} seq {} (cursor {})",
                    self.team, h.device, h.seq, envelope.cursor
                ),
                None => format!("team {} cursor {}", self.team, envelope.cursor),
            },
        };
        let (result, key) = self.check(&envelope);
        if let Err((code, detail)) = result {
            if let Some(key) = key {
                self.flagged.insert(key, self.findings.len());
            }
            self.findings.push(Finding::alarm(code, location, detail));
        }
    }

    /// The checks of one envelope, and its (device, seq) when it parsed.
    fn check(&mut self, envelope: &StoredEnvelope<'_>) -> (Checked, Option<(DeviceId, u64)>) {
        let stored = match Stored::parse(envelope.bytes.to_vec(), &EnvelopeLimits::default()) {
            Ok(stored) => stored,
            Err(e) => {
                let key = envelope.recorded.map(|r| {
                    // Keep the chain going on what the relay recorded, so
                    // one damaged row is one finding.
                    self.stored
                        .insert((r.device, r.seq), (r.id, envelope.cursor));
                    self.chains.insert(r.device, (r.seq, r.id));
                    (r.device, r.seq)
                });
                let finding = match e {
                    EnvelopeError::Body(e) => {
                        ("not_age", format!("the body is not an age file: {e}"))
                    }
                    e => ("malformed_envelope", format!("not an envelope: {e}")),
                };
                return (Err(finding), key);
            }
        };
        let key = (stored.header().device, stored.header().seq);
        (self.check_parsed(envelope, stored), Some(key))
    }

    fn check_parsed(&mut self, envelope: &StoredEnvelope<'_>, stored: Stored) -> Checked {
        let header = stored.header().clone();
        let id = stored.id();
        // Link the chain through what the relay recorded, so a row altered
        // after it was stored is one finding, not a broken chain after it.
        let link = envelope.recorded.map_or(id, |r| r.id);
        self.stored
            .insert((header.device, header.seq), (id, envelope.cursor));
        let chain = self.chain(header.device, header.seq, header.prev, link);
        if header.team != self.team {
            return Err((
                "wrong_team",
                format!("an envelope of team {} in this team's log", header.team),
            ));
        }
        if let Some(r) = envelope.recorded
            && (r.device != header.device || r.seq != header.seq || r.epoch != header.epoch)
        {
            return Err((
                "column_mismatch",
                format!(
                    "the relay's columns say device {} seq {} epoch {}, the header device {} seq {} epoch {}",
                    r.device, r.seq, r.epoch, header.device, header.seq, header.epoch
                ),
            ));
        }
        match &stored {
            Stored::Whole(whole) => {
                agefile::check_structure(whole.body(), AgeLimits::ONE_RECIPIENT)
                    .map_err(|e| ("not_age", format!("the body is not an age file: {e}")))?;
            }
            Stored::Stub(_) => {
                self.count("stubs", 1);
                let retired = self.roster.as_ref().map_or(0, |r| r.retired_below());
                if header.epoch >= retired {
                    return Err((
                        "body_missing",
                        format!(
                            "only header, signature and body hash are kept, but epoch {} is not retired (retired below {retired})",
                            header.epoch
                        ),
                    ));
                }
            }
        }
        if let Some(r) = envelope.recorded
            && r.id != id
        {
            return Err((
                "id_mismatch",
                "the bytes no longer hash to the id the relay recorded (altered after storing)"
                    .to_owned(),
            ));
        }
        if let Some(roster) = &self.roster {
            let record = roster
                .check_author(&header)
                .map_err(|e| ("author_not_allowed", e.to_string()))?;
            let key = record.entry.signing_key;
            let signed = match &stored {
                Stored::Whole(whole) => whole.verify_signature(&key),
                Stored::Stub(stub) => stub.verify_signature(&key),
            };
            signed.map_err(|e| ("bad_signature", e.to_string()))?;
        }
        chain
    }

    fn chain(&mut self, device: DeviceId, seq: u64, prev: Digest, link: Digest) -> Checked {
        let (last_seq, last_id) = self
            .chains
            .get(&device)
            .copied()
            .unwrap_or((0, Digest::ZERO));
        if seq <= last_seq {
            return Err((
                "chain_duplicate",
                format!("seq {seq} again after seq {last_seq}"),
            ));
        }
        self.chains.insert(device, (seq, link));
        if seq > last_seq + 1 {
            // The missing envelopes are a finding of their own, whatever
            // else is wrong with this one.
            self.findings.push(Finding::alarm(
                "chain_gap",
                format!(
                    "team {} device {device} seq {} to {}",
                    self.team,
                    last_seq + 1,
                    seq - 1
                ),
                format!(
                    "{} envelope(s) of this device's log are missing (seq {seq} follows seq {last_seq})",
                    seq - last_seq - 1
                ),
            ));
            return Ok(());
        }
        if prev != last_id {
            return Err((
                "chain_broken",
                format!("its prev is not the id of seq {last_seq}"),
            ));
        }
        Ok(())
    }

    /// Compares the relay's heads (device, seq, id) with the chains read.
    pub fn heads(&mut self, heads: &[(DeviceId, u64, Digest)]) {
        for (device, seq, id) in heads {
            let location = format!("team {} heads device {device}", self.team);
            match self.chains.get(device) {
                Some((last, last_id)) if last == seq && last_id == id => {}
                Some((last, _)) => self.findings.push(Finding::alarm(
                    "head_mismatch",
                    location,
                    if last == seq {
                        format!("the head names another envelope at seq {seq} than the one stored")
                    } else {
                        format!("the head says seq {seq}, the log ends at seq {last}")
                    },
                )),
                None => self.findings.push(Finding::alarm(
                    "head_mismatch",
                    location,
                    format!("the head says seq {seq}, but the log holds nothing of this device"),
                )),
            }
        }
        for device in self.chains.keys() {
            if !heads.iter().any(|(d, _, _)| d == device) {
                self.findings.push(Finding::alarm(
                    "head_missing",
                    format!("team {} heads device {device}", self.team),
                    "the log holds envelopes of this device but the relay lists no head",
                ));
            }
        }
    }

    /// Replays receipts: each must verify against the relay key it was
    /// issued under (the file's; `expected_key` too, when known), and its
    /// envelope must still be stored, unchanged, at the same cursor.
    pub fn receipts(&mut self, file: &ReceiptFile, expected_key: Option<&VerifyingKey>) {
        let source = &file.name;
        if let Some(expected) = expected_key
            && expected != &file.relay_key
        {
            self.findings.push(Finding::alarm(
                "receipt_key_mismatch",
                source.clone(),
                format!(
                    "the receipts were issued under relay key {}, this relay's key is {}",
                    hex::encode(file.relay_key.as_bytes()),
                    hex::encode(expected.as_bytes())
                ),
            ));
            return;
        }
        for (i, bytes) in file.receipts.iter().enumerate() {
            let location = format!("{source} receipt {}", i + 1);
            let receipt = match Receipt::verify(bytes, &file.relay_key) {
                Ok(r) => r,
                Err(e) => {
                    self.findings.push(Finding::alarm(
                        "receipt_invalid",
                        location,
                        format!("the receipt does not verify: {e}"),
                    ));
                    continue;
                }
            };
            if receipt.team != self.team {
                continue;
            }
            self.count("receipts", 1);
            let location = format!(
                "team {} device {} seq {} (receipted at cursor {})",
                receipt.team, receipt.device, receipt.seq, receipt.cursor
            );
            let key = (receipt.device, receipt.seq);
            let stored = self.stored.get(&key).copied();
            if let (Some((id, _)), Some(&index)) = (stored, self.flagged.get(&key))
                && id != receipt.envelope
            {
                // Already a finding of its own (altered row): the receipt
                // confirms it rather than adding a second one.
                self.findings[index]
                    .also_at
                    .push(format!("{source} receipt {} (receipted otherwise)", i + 1));
                continue;
            }
            match stored.as_ref() {
                None => self.findings.push(Finding::alarm(
                    "receipted_missing",
                    location,
                    "the relay receipted this envelope and no longer holds it",
                )),
                Some((id, _)) if *id != receipt.envelope => self.findings.push(Finding::alarm(
                    "receipted_changed",
                    location,
                    "the envelope stored now is not the one the relay receipted",
                )),
                Some((_, cursor)) if *cursor != receipt.cursor => {
                    self.findings.push(Finding::alarm(
                        "receipted_moved",
                        location,
                        format!("now stored at cursor {cursor}"),
                    ))
                }
                Some(_) => {}
            }
        }
    }

    /// The findings and counts.
    pub fn finish(self) -> (Vec<Finding>, BTreeMap<String, u64>) {
        (self.findings, self.checked)
    }
}
