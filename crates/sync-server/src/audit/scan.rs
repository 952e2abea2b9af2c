//! The byte scan: every byte of the database and its WAL, read raw (so
//! freed pages, WAL frames and slack are seen too), looking for anything
//! that reads as text rather than ciphertext or documented metadata.
//!
//! A "text run" is a maximal run of printable ASCII and UTF-8 Arabic
//! letters. Runs of ciphertext are short: a random byte is printable with
//! probability 95/256, so a random run of 16 with two spaces turns up about
//! once in 600 MB, and of 32 far less. A run is reported when it
//!
//! - holds six or more Arabic letters (a word or two of a note), or
//! - holds a JSON object key (`{"…":`), or
//! - is 16 bytes or more with two spaces or more, or 32 bytes or more,
//!
//! and is none of the documented forms: SQLite's own file header (also at
//! the start of every WAL image of page 1), the lines of an age header
//! (`age-encryption.org/v1`, `-> ` stanzas, `--- ` MAC, base64 lines), a
//! base64/hex/bech32 run (keys, recipients), or a piece of the relay's own
//! schema SQL. Findings quote no content: an audit report must not become
//! a leak of its own.

/// Longest printable prefix that may precede an age header line in an
/// envelope (the end of the signature, random bytes).
const PREFIX_SLACK: usize = 6;

/// What a run looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Arabic letters.
    Arabic,
    /// A JSON object.
    Json,
    /// Printable text.
    Text,
}

/// One suspicious run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Offset in the file.
    pub offset: usize,
    /// The run.
    pub bytes: Vec<u8>,
    /// What it looked like.
    pub kind: Kind,
}

impl Hit {
    /// A description without content.
    pub fn describe(&self) -> String {
        let spaces = self.bytes.iter().filter(|b| **b == b' ').count();
        match self.kind {
            Kind::Arabic => format!(
                "{} bytes of UTF-8 Arabic text (plaintext, not ciphertext)",
                self.bytes.len()
            ),
            Kind::Json => format!("{} bytes of JSON (plaintext structure)", self.bytes.len()),
            Kind::Text => format!(
                "{} bytes of printable text with {spaces} spaces (reads as words, not ciphertext)",
                self.bytes.len()
            ),
        }
    }
}

fn is_arabic_lead(b: u8) -> bool {
    (0xD8..=0xDB).contains(&b)
}

fn is_continuation(b: u8) -> bool {
    (0x80..=0xBF).contains(&b)
}

/// Scans `bytes`; `schema_sql` is the relay's own schema text (allowed).
pub fn scan(bytes: &[u8], schema_sql: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let mut arabic = 0usize;
        while i < bytes.len() {
            let b = bytes[i];
            if (0x20..=0x7E).contains(&b) {
                i += 1;
            } else if is_arabic_lead(b) && bytes.get(i + 1).is_some_and(|c| is_continuation(*c)) {
                arabic += 1;
                i += 2;
            } else {
                break;
            }
        }
        if i == start {
            i += 1;
            continue;
        }
        let run = &bytes[start..i];
        if let Some(kind) = classify(run, arabic, schema_sql) {
            hits.push(Hit {
                offset: start,
                bytes: run.to_vec(),
                kind,
            });
        }
    }
    hits
}

fn classify(run: &[u8], arabic: usize, schema_sql: &str) -> Option<Kind> {
    if arabic >= 6 {
        return Some(Kind::Arabic);
    }
    if has_json_key(run) {
        return Some(Kind::Json);
    }
    let spaces = run.iter().filter(|b| **b == b' ').count();
    let long = run.len() >= 32 || (run.len() >= 16 && spaces >= 2);
    if !long || documented(run, schema_sql) {
        return None;
    }
    Some(Kind::Text)
}

fn has_json_key(run: &[u8]) -> bool {
    run.windows(2).enumerate().any(|(i, w)| {
        w == b"{\"" && {
            let rest = &run[i + 2..];
            let key = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            key > 0 && rest[key..].starts_with(b"\":")
        }
    })
}

fn is_key_material(run: &[u8]) -> bool {
    run.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
}

/// Whether a run is one of the documented forms.
fn documented(run: &[u8], schema_sql: &str) -> bool {
    let text = String::from_utf8_lossy(run);
    if schema_sql.contains(text.as_ref()) {
        return true;
    }
    // A documented form, possibly between a few random printable bytes
    // (the ends of neighbouring ciphertext, ids, record or WAL frame
    // headers).
    let slack = |n: usize| 0..=PREFIX_SLACK.min(n);
    slack(run.len()).any(|skip| {
        let line = &run[skip..];
        line.starts_with(b"SQLite format 3")
            || line.starts_with(b"age-encryption.org/v1")
            || line.starts_with(b"-> ")
            || line.starts_with(b"--- ")
            || slack(line.len()).any(|cut| is_key_material(&line[..line.len() - cut]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        // A small xorshift: deterministic bytes with no structure.
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn ciphertext_and_documented_forms_pass_and_text_is_found() {
        let mut data = random(1 << 20, 7);
        let clean = scan(&data, "");
        assert_eq!(clean, vec![], "random bytes read as text");
        let age = age::encrypt(
            &age::x25519::Identity::generate().to_public(),
            b"secret content",
        )
        .unwrap();
        data.extend_from_slice(&age);
        data.extend_from_slice(
            b"\x01>age1fw45tv6asrk2x0ygc4hygy8m7d9zvyth4yhgv8tn8zhp9dp6ra6qqucc4e9[\xda",
        );
        let sql = "CREATE TABLE teams (team BLOB NOT NULL)";
        data.extend_from_slice(b"\x01CREATE TABLE teams (team BLOB NOT NULL)\x01");
        assert_eq!(scan(&data, sql), vec![]);
        assert_eq!(scan(&data, "").len(), 1, "SQL of another schema is text");

        let note = "Survivor met at the clinic, phone 0770";
        let arabic = "الناجية تعرضت للابتزاز";
        let json = r#"{"note":"x"}"#;
        for (planted, kind) in [
            (note, Kind::Text),
            (arabic, Kind::Arabic),
            (json, Kind::Json),
        ] {
            let mut copy = data.clone();
            copy.push(0);
            let at = copy.len();
            copy.extend_from_slice(planted.as_bytes());
            copy.push(0);
            let hits = scan(&copy, sql);
            assert_eq!(hits.len(), 1, "{planted}");
            assert_eq!((hits[0].offset, hits[0].kind), (at, kind));
            assert!(
                !hits[0].describe().contains(&planted[..4]),
                "content quoted"
            );
        }
    }
}
