//! Byte-level reading and writing for Amana's binary formats.
//!
//! All integers are big-endian. Variable-length fields carry an explicit
//! length prefix. The reader never panics: every short read is a
//! [`WireError::Truncated`].

use crate::error::WireError;

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                needed: self.pos.saturating_add(n),
                found: self.data.len(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A field with a 16-bit length prefix.
    pub(crate) fn bytes16(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 string with a 16-bit length prefix.
    pub(crate) fn str16(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes16()?).map_err(|_| WireError::NotUtf8)
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { extra }),
        }
    }
}

/// Appends a field with a 16-bit length prefix; fails if it is too long.
pub(crate) fn put_bytes16(out: &mut Vec<u8>, field: &[u8]) -> Result<(), WireError> {
    let len = u16::try_from(field.len()).map_err(|_| WireError::FieldTooLong {
        len: field.len(),
        max: u16::MAX as usize,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_errors_not_panics() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(matches!(r.bytes16(), Err(WireError::Truncated { .. })));
        let mut r = Reader::new(&[1]);
        assert!(matches!(
            r.u64(),
            Err(WireError::Truncated {
                needed: 8,
                found: 1
            })
        ));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8().unwrap();
        assert!(matches!(
            r.finish(),
            Err(WireError::TrailingBytes { extra: 2 })
        ));
    }

    #[test]
    fn length_prefixed_round_trip() {
        let mut out = Vec::new();
        put_bytes16(&mut out, b"abc").unwrap();
        let mut r = Reader::new(&out);
        assert_eq!(r.str16().unwrap(), "abc");
        r.finish().unwrap();
    }
}
