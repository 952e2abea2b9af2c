//! Length hiding: every plaintext is padded before it is encrypted, in
//! envelopes and in the device store alike.
//!
//! Layout: `length u32 ‖ data ‖ zero bytes` up to the Padmé size of the
//! whole (at least [`MIN_PADDED`]). Padmé leaks O(log log n) bits of the
//! length and wastes at most about 12%. Unpadding rejects a length that
//! overruns the buffer and any non-zero filler byte.

/// Smallest padded size: short fields all look the same.
pub const MIN_PADDED: usize = 256;

/// The Padmé size for `len` bytes.
fn padme(len: usize) -> usize {
    if len <= MIN_PADDED {
        return MIN_PADDED;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 e) + 1
    let mask = (1usize << (e - s)) - 1;
    (len + mask) & !mask
}

/// Pads `data`.
pub fn pad(data: &[u8]) -> Vec<u8> {
    let total = padme(data.len() + 4);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(total, 0);
    out
}

/// Removes padding; `None` if the padding is malformed.
pub fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let len_bytes: [u8; 4] = padded.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let end = len.checked_add(4)?;
    let data = padded.get(4..end)?;
    if padded[end..].iter().any(|&b| b != 0) || padded.len() != padme(end) {
        return None;
    }
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_inputs_share_one_size() {
        assert_eq!(pad(b"").len(), MIN_PADDED);
        assert_eq!(pad(&[1; 200]).len(), MIN_PADDED);
    }

    #[test]
    fn overhead_is_bounded() {
        for len in [300usize, 1000, 5000, 70_000, 1_000_000] {
            let padded = pad(&vec![7; len]).len();
            assert!(padded >= len + 4);
            assert!(
                (padded as f64) <= (len as f64 + 4.0) * 1.125,
                "{len} -> {padded}"
            );
        }
    }

    #[test]
    fn malformed_padding_is_rejected() {
        let mut p = pad(b"hello");
        *p.last_mut().unwrap() = 1;
        assert!(unpad(&p).is_none());
        let mut p = pad(b"hello");
        p[0..4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(unpad(&p).is_none());
        assert!(unpad(&[0, 0]).is_none());
        let mut p = pad(b"hello");
        p.push(0);
        assert!(unpad(&p).is_none(), "length must be the Padmé size");
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let padded = pad(&data);
            prop_assert_eq!(unpad(&padded), Some(&data[..]));
        }
    }
}
