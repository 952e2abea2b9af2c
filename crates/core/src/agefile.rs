//! Structural checks of age files, without any key.
//!
//! age 0.12's header parser has no limit on the number of recipient stanzas
//! and slows down quadratically with the header size, so every reader in
//! Amana (relay, client, auditor) runs [`check_structure`] first: it bounds
//! the header size and stanza count by scanning lines, and only then hands
//! the header to age's buffered parser. Passing this check proves that the
//! bytes are shaped like an age file (and so are not, say, plaintext JSON);
//! it cannot prove integrity, which comes from the envelope signature.

use crate::error::AgeFileError;

/// The first line of every age v1 file.
const MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// Size of the payload nonce that follows the header.
const NONCE_LEN: usize = 16;
/// Size of the Poly1305 tag on each payload chunk.
const TAG_LEN: usize = 16;
/// Size of a full encrypted payload chunk (64 KiB of plaintext plus its tag).
const CHUNK_LEN: usize = 64 * 1024 + TAG_LEN;

/// Bounds applied to an age header before age's own parser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgeLimits {
    /// Largest accepted header, in bytes, from the magic line through the MAC line.
    pub max_header_bytes: usize,
    /// Largest accepted number of recipient stanzas (including age's grease stanza).
    pub max_stanzas: usize,
}

impl AgeLimits {
    /// Limits for files encrypted to one recipient (envelopes, key envelopes,
    /// labels, the keystore): one real stanza plus age's random grease stanza,
    /// with room for a second real one.
    pub const ONE_RECIPIENT: AgeLimits = AgeLimits {
        max_header_bytes: 2048,
        max_stanzas: 4,
    };
}

/// Facts about a structurally valid age file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgeShape {
    /// Header length in bytes (magic line through the MAC line).
    pub header_len: usize,
    /// Number of recipient stanzas, including grease.
    pub stanzas: usize,
    /// Length of the encrypted payload after the nonce.
    pub payload_len: usize,
}

/// Checks that `file` is a well-formed age v1 file within `limits`.
pub fn check_structure(file: &[u8], limits: AgeLimits) -> Result<AgeShape, AgeFileError> {
    if !file.starts_with(MAGIC) {
        return Err(AgeFileError::NotAgeFile);
    }
    let (header_len, stanzas) = scan_header(file, limits)?;
    let rest = file.len() - header_len;
    if rest < NONCE_LEN + TAG_LEN {
        return Err(AgeFileError::TruncatedPayload);
    }
    // Only now is age's parser allowed to look at the header (and nonce).
    age::Decryptor::new_buffered(&file[..header_len + NONCE_LEN])
        .map_err(|_| AgeFileError::InvalidHeader)?;

    let payload_len = rest - NONCE_LEN;
    let chunks = payload_len.div_ceil(CHUNK_LEN);
    let last = payload_len - (chunks - 1) * CHUNK_LEN;
    // The final chunk holds at least its tag, and may be empty only when it
    // is the only chunk.
    if last < TAG_LEN || (chunks > 1 && last == TAG_LEN) {
        return Err(AgeFileError::TruncatedPayload);
    }
    Ok(AgeShape {
        header_len,
        stanzas,
        payload_len,
    })
}

/// Finds the end of the header (the line starting with `---`), counting
/// stanzas, without reading past `limits.max_header_bytes`.
fn scan_header(file: &[u8], limits: AgeLimits) -> Result<(usize, usize), AgeFileError> {
    let window = &file[..file.len().min(limits.max_header_bytes)];
    let mut stanzas = 0usize;
    let mut pos = MAGIC.len();
    loop {
        let Some(newline) = window[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if file.len() > limits.max_header_bytes {
                AgeFileError::HeaderTooLarge {
                    max: limits.max_header_bytes,
                }
            } else {
                AgeFileError::InvalidHeader
            });
        };
        let line = &window[pos..pos + newline];
        pos += newline + 1;
        if line.starts_with(b"-> ") {
            stanzas += 1;
            if stanzas > limits.max_stanzas {
                return Err(AgeFileError::TooManyStanzas {
                    max: limits.max_stanzas,
                });
            }
        } else if line.starts_with(b"--- ") {
            return Ok((pos, stanzas));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::x25519;

    fn encrypt(n_recipients: usize, plaintext: &[u8]) -> Vec<u8> {
        let ids: Vec<_> = (0..n_recipients)
            .map(|_| x25519::Identity::generate())
            .collect();
        let recipients: Vec<x25519::Recipient> = ids.iter().map(|i| i.to_public()).collect();
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).unwrap();
        std::io::Write::write_all(&mut w, plaintext).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn accepts_real_files() {
        for len in [0usize, 1, 1000, 64 * 1024, 64 * 1024 + 1, 200_000] {
            let file = encrypt(1, &vec![0x55; len]);
            let shape = check_structure(&file, AgeLimits::ONE_RECIPIENT).unwrap();
            assert_eq!(shape.stanzas, 2, "one recipient plus grease");
        }
    }

    #[test]
    fn rejects_plaintext_json() {
        assert_eq!(
            check_structure(br#"{"survivor":"x"}"#, AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::NotAgeFile)
        );
    }

    #[test]
    fn bounds_stanzas_before_parsing() {
        let file = encrypt(10, b"x");
        assert_eq!(
            check_structure(&file, AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::TooManyStanzas { max: 4 })
        );
    }

    #[test]
    fn bounds_header_size() {
        let mut file = MAGIC.to_vec();
        file.extend(std::iter::repeat_n(b'a', 10_000));
        assert_eq!(
            check_structure(&file, AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::HeaderTooLarge { max: 2048 })
        );
    }

    #[test]
    fn rejects_truncated_payload_and_header() {
        let file = encrypt(1, b"hello");
        let shape = check_structure(&file, AgeLimits::ONE_RECIPIENT).unwrap();
        assert_eq!(
            check_structure(&file[..shape.header_len + 20], AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::TruncatedPayload)
        );
        assert_eq!(
            check_structure(&file[..shape.header_len - 3], AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::InvalidHeader)
        );
    }

    #[test]
    fn rejects_garbled_stanza() {
        let mut file = encrypt(1, b"hello");
        // Break the base64 of the first stanza body line.
        let at = file.iter().position(|&b| b == b'\n').unwrap() + 1;
        let body_line = at + file[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        file[body_line] = b'!';
        assert_eq!(
            check_structure(&file, AgeLimits::ONE_RECIPIENT),
            Err(AgeFileError::InvalidHeader)
        );
    }
}
