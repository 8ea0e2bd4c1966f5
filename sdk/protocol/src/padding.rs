//! MTE-mode padding: plaintext is hidden in a bucket of 256·2^k bytes, up to 64 KiB.
//!
//! `padded = u32 length (big-endian) || data || zero bytes up to the bucket size`

use crate::encoding::Reader;

/// Smallest bucket.
pub const MIN_BUCKET: usize = 256;
/// Largest bucket; an MTE message (head or body) is at most `MAX_BUCKET - 4` bytes.
pub const MAX_BUCKET: usize = 64 * 1024;
/// Largest plaintext an MTE message can carry.
pub const MTE_MAX_MESSAGE: usize = MAX_BUCKET - 4;

/// The bucket that holds `len` bytes of data, or `None` when it is over the MTE cap.
pub fn bucket_for(len: usize) -> Option<usize> {
    let needed = len.checked_add(4)?;
    if needed > MAX_BUCKET {
        return None;
    }
    Some(needed.next_power_of_two().max(MIN_BUCKET))
}

/// Appends `data` padded to its bucket. `None` when `data` is over the MTE cap.
pub(crate) fn pad_into(data: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let bucket = bucket_for(data.len())?;
    let len = u32::try_from(data.len()).ok()?;
    out.reserve(bucket);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + bucket - 4 - data.len(), 0);
    Some(())
}

/// The data inside a padded buffer. Strict: the size must be a bucket and the padding zero.
pub(crate) fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let size = padded.len();
    if !size.is_power_of_two() || !(MIN_BUCKET..=MAX_BUCKET).contains(&size) {
        return None;
    }
    let mut reader = Reader::new(padded);
    let len = usize::try_from(reader.u32()?).ok()?;
    if bucket_for(len) != Some(size) {
        return None;
    }
    let data = reader.take(len)?;
    let padding = reader.take(size - 4 - len)?;
    padding.iter().all(|b| *b == 0).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_in_powers_of_two() {
        assert_eq!(bucket_for(0), Some(256));
        assert_eq!(bucket_for(252), Some(256));
        assert_eq!(bucket_for(253), Some(512));
        assert_eq!(bucket_for(MTE_MAX_MESSAGE), Some(MAX_BUCKET));
        assert_eq!(bucket_for(MTE_MAX_MESSAGE + 1), None);
    }

    #[test]
    fn pad_and_unpad_round_trip_and_refuse_noise() {
        let mut padded = Vec::new();
        pad_into(b"hello", &mut padded).expect("fits");
        assert_eq!(padded.len(), 256);
        assert_eq!(unpad(&padded), Some(&b"hello"[..]));
        let mut nonzero = padded.clone();
        nonzero[200] = 1;
        assert_eq!(unpad(&nonzero), None);
        assert_eq!(unpad(&padded[..255]), None);
        let mut oversized_len = padded;
        oversized_len[0..4].copy_from_slice(&300u32.to_be_bytes());
        assert_eq!(
            unpad(&oversized_len),
            None,
            "length must belong to this bucket"
        );
    }
}
