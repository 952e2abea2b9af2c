//! The log scan: every line of the relay's log must be one of the events
//! the relay writes (`docs/relay-schema.md`, "Logs"), with documented
//! fields only. A request body, an envelope, a note in any language or an
//! unexpected line (a panic message, another program's output) is a
//! finding. Findings give the line number, never the line.

use amana_core::audit::Finding;

/// Every message the relay logs.
pub const MESSAGES: &[&str] = &[
    "amana-relay serving",
    "amana-relay stopped",
    "team created",
    "roster operation appended",
    "invite registered",
    "join request recorded",
    "key envelopes stored",
    "envelopes accepted",
    "upload refused",
    "recipient announced",
    "compacted",
    "stored roster does not verify",
    "relay storage failed",
];

/// Every field the relay logs, and what its value may be.
const FIELDS: &[(&str, Value)] = &[
    ("team", Value::Id),
    ("device", Value::Id),
    ("index", Value::Number),
    ("count", Value::Number),
    ("accepted", Value::Number),
    ("generation", Value::Number),
    ("below", Value::Number),
    ("envelopes", Value::Number),
    ("code", Value::Code),
    ("address", Value::Address),
    ("relay_key", Value::Hex),
    ("tls_pin", Value::Hex),
    ("error", Value::Message),
];

#[derive(Clone, Copy)]
enum Value {
    Id,
    Number,
    Code,
    Address,
    Hex,
    Message,
}

const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// Scans one log file's bytes.
pub fn scan(name: &str, bytes: &[u8]) -> (Vec<Finding>, u64) {
    let mut findings = Vec::new();
    let mut lines = 0;
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        if let Err(why) = check_line(line) {
            findings.push(Finding::alarm(
                "log_unexpected",
                format!("{name} line {}", n + 1),
                why,
            ));
        }
    }
    (findings, lines)
}

fn check_line(line: &[u8]) -> Result<(), String> {
    if let Some(b) = line.iter().find(|b| !(0x20..=0x7E).contains(*b)) {
        return Err(if *b >= 0x80 {
            "non-ASCII bytes (text in another script, or binary data)".into()
        } else {
            "control bytes (binary data)".into()
        });
    }
    let line = std::str::from_utf8(line).map_err(|_| "not text".to_owned())?;
    let mut parts = line.split_whitespace();
    let (Some(time), Some(level), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a relay log line".into());
    };
    if !time.starts_with(|c: char| c.is_ascii_digit())
        || !LEVELS.contains(&level)
        || !target.ends_with(':')
    {
        return Err("not a relay log line".into());
    }
    let rest = line
        .split_once(target)
        .map(|(_, r)| r.trim_start())
        .unwrap_or_default();
    let message = MESSAGES
        .iter()
        .filter(|m| rest.starts_with(**m))
        .max_by_key(|m| m.len())
        .ok_or_else(|| "a message the relay does not write".to_owned())?;
    let mut fields = &rest[message.len()..];
    while !fields.is_empty() {
        fields = fields
            .strip_prefix(' ')
            .ok_or_else(|| "text after the message".to_owned())?;
        let (key, after) = fields
            .split_once('=')
            .ok_or_else(|| "text after the message".to_owned())?;
        let (_, kind) = FIELDS
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| format!("an undocumented field `{key}`"))?;
        // A value runs to the next ` known_key=` (messages may hold spaces).
        let end = next_field(after).unwrap_or(after.len());
        let value = &after[..end];
        if !valid(*kind, value) {
            return Err(format!(
                "field `{key}` holds something other than its documented value"
            ));
        }
        fields = &after[end..];
    }
    Ok(())
}

fn next_field(text: &str) -> Option<usize> {
    text.match_indices(' ').map(|(i, _)| i).find(|i| {
        FIELDS
            .iter()
            .any(|(k, _)| text[i + 1..].starts_with(&format!("{k}=")))
    })
}

fn valid(kind: Value, value: &str) -> bool {
    let hex = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit());
    match kind {
        Value::Id => value.len() == 32 && hex(value),
        Value::Number => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        Value::Code => {
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        }
        Value::Address => value.parse::<std::net::SocketAddr>().is_ok(),
        Value::Hex => hex(value) || value == "none (plain HTTP)",
        // The relay's own error text: bounded, and never a document.
        Value::Message => value.len() <= 300 && !value.contains("{\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_lines_pass_and_anything_else_is_found() {
        let good = "2026-11-28T18:00:00.000001Z  INFO amana_sync_server::api: envelopes accepted team=0123456789abcdef0123456789abcdef device=0123456789abcdef0123456789abcdef count=3\n\
                    2026-11-28T18:00:00.000001Z  INFO amana_sync_server: amana-relay serving address=127.0.0.1:8443 relay_key=ab12 tls_pin=none (plain HTTP)\n\
                    2026-11-28T18:00:00.000001Z ERROR amana_sync_server::api::error: relay storage failed error=database is locked\n";
        assert_eq!(scan("relay.log", good.as_bytes()), (vec![], 3));
        for bad in [
            "2026-11-28T18:00:00Z  INFO amana_sync_server::api: envelopes accepted team=0123 count=3",
            "2026-11-28T18:00:00Z  INFO amana_sync_server::api: envelopes accepted note=Fatima",
            "2026-11-28T18:00:00Z  INFO amana_sync_server::api: survivor Fatima called",
            "2026-11-28T18:00:00Z  INFO amana_sync_server::api: team created الناجية",
            "thread 'main' panicked at src/main.rs:1:1",
            "{\"note\": \"x\"}",
        ] {
            let (findings, _) = scan("relay.log", bad.as_bytes());
            assert_eq!(findings.len(), 1, "{bad}");
            assert!(!findings[0].detail.contains("Fatima"));
        }
    }
}
