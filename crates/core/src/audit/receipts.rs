//! The receipts file a device exports (`amana receipts export`) and an
//! audit replays (`--receipts FILE`).
//!
//! ```text
//! amana-receipts/1
//! relay-key <64 hex digits: the relay receipt key the device pinned>
//! <hex of one receipt>        (one line per receipt; see crate::receipt)
//! ```

use ed25519_dalek::VerifyingKey;

const MAGIC: &str = "amana-receipts/1";

/// A device's receipts, with the relay key they were issued under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptFile {
    /// Where it came from (file name), for findings.
    pub name: String,
    /// The relay key the device pinned.
    pub relay_key: VerifyingKey,
    /// Encoded receipts.
    pub receipts: Vec<Vec<u8>>,
}

/// Why a receipts file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is not a receipts file ({what}); export it again with `amana receipts export`")]
pub struct ReceiptFileError {
    /// The file.
    pub name: String,
    /// What is wrong.
    pub what: String,
}

impl ReceiptFile {
    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "{MAGIC}\nrelay-key {}\n",
            hex::encode(self.relay_key.as_bytes())
        );
        for receipt in &self.receipts {
            out.push_str(&hex::encode(receipt));
            out.push('\n');
        }
        out
    }

    /// Reads a file's text.
    pub fn parse(name: &str, text: &str) -> Result<ReceiptFile, ReceiptFileError> {
        let bad = |what: &str| ReceiptFileError {
            name: name.to_owned(),
            what: what.to_owned(),
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(MAGIC) {
            return Err(bad("the first line is not `amana-receipts/1`"));
        }
        let key = lines
            .next()
            .and_then(|l| l.strip_prefix("relay-key "))
            .and_then(|k| hex::decode(k).ok())
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| bad("the second line is not `relay-key` and a key"))?;
        let receipts = lines
            .enumerate()
            .map(|(i, l)| hex::decode(l).map_err(|_| bad(&format!("receipt {} is not hex", i + 1))))
            .collect::<Result<_, _>>()?;
        Ok(ReceiptFile {
            name: name.to_owned(),
            relay_key: key,
            receipts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipts_file_round_trips_and_garbage_is_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        let file = ReceiptFile {
            name: "a.receipts".into(),
            relay_key: key,
            receipts: vec![vec![1, 2, 3], vec![4]],
        };
        assert_eq!(
            ReceiptFile::parse("a.receipts", &file.encode()).unwrap(),
            file
        );
        assert!(ReceiptFile::parse("x", "hello").is_err());
        assert!(ReceiptFile::parse("x", "amana-receipts/1\nrelay-key zz\n").is_err());
        let bad_line = format!("{}zz\n", file.encode());
        assert!(ReceiptFile::parse("x", &bad_line).is_err());
    }
}
