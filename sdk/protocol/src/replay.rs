//! The replay window: which sequence numbers of a pair have been accepted.
//!
//! A relay accepts each sequence number once. It remembers the highest accepted number
//! and a bitmap of the [`WINDOW_SIZE`] numbers at and below it; anything older is
//! refused, and so is anything more than [`MAX_SEQUENCE_AHEAD`] above it (which bounds
//! the ratchet work a forged request can cause).

/// Width of the window, in sequence numbers.
pub const WINDOW_SIZE: u64 = 1024;
/// How far above the highest accepted number a new one may be.
pub const MAX_SEQUENCE_AHEAD: u64 = 65_536;
const WORDS: usize = (WINDOW_SIZE / 64) as usize;
const STATE_VERSION: u8 = 1;
/// Length of [`ReplayWindow::to_bytes`].
pub const WINDOW_STATE_LEN: usize = 1 + 1 + 8 + WORDS * 8;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Already accepted once.
    #[error("sequence number was already used")]
    Duplicate,
    /// Below the window.
    #[error("sequence number is older than the replay window")]
    TooOld,
    /// Too far above the highest accepted number.
    #[error("sequence number is too far ahead")]
    TooFarAhead,
}

/// A sliding window over sequence numbers. Plain data; the store decides where it lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `s % WINDOW_SIZE` stands for sequence `s`, for `s` within the window.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        ReplayWindow::default()
    }

    /// The highest accepted sequence number.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else {
            return if seq < MAX_SEQUENCE_AHEAD {
                Ok(())
            } else {
                Err(ReplayError::TooFarAhead)
            };
        };
        if seq > highest {
            return if seq - highest <= MAX_SEQUENCE_AHEAD {
                Ok(())
            } else {
                Err(ReplayError::TooFarAhead)
            };
        }
        if highest - seq >= WINDOW_SIZE {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Checks `seq` and records it in one step.
    pub fn check_and_mark(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        match self.highest {
            Some(highest) if seq <= highest => {}
            Some(highest) if seq - highest < WINDOW_SIZE => {
                for skipped in highest + 1..seq {
                    self.clear_bit(skipped);
                }
                self.highest = Some(seq);
            }
            _ => {
                self.bits = [0; WORDS];
                self.highest = Some(seq);
            }
        }
        self.set_bit(seq);
        Ok(())
    }

    fn position(seq: u64) -> (usize, u64) {
        let index = (seq % WINDOW_SIZE) as usize;
        (index / 64, 1u64 << (index % 64))
    }

    fn bit(&self, seq: u64) -> bool {
        let (word, mask) = Self::position(seq);
        self.bits[word] & mask != 0
    }

    fn set_bit(&mut self, seq: u64) {
        let (word, mask) = Self::position(seq);
        self.bits[word] |= mask;
    }

    fn clear_bit(&mut self, seq: u64) {
        let (word, mask) = Self::position(seq);
        self.bits[word] &= !mask;
    }

    /// Compact serialisation: version, presence byte, highest (big-endian), bitmap.
    pub fn to_bytes(&self) -> [u8; WINDOW_STATE_LEN] {
        let mut out = [0u8; WINDOW_STATE_LEN];
        out[0] = STATE_VERSION;
        out[1] = u8::from(self.highest.is_some());
        out[2..10].copy_from_slice(&self.highest.unwrap_or(0).to_be_bytes());
        for (index, word) in self.bits.iter().enumerate() {
            out[10 + index * 8..18 + index * 8].copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Inverse of [`ReplayWindow::to_bytes`]; refuses anything it would not produce.
    pub fn from_bytes(bytes: &[u8]) -> Option<ReplayWindow> {
        if bytes.len() != WINDOW_STATE_LEN || bytes[0] != STATE_VERSION || bytes[1] > 1 {
            return None;
        }
        let mut highest = [0u8; 8];
        highest.copy_from_slice(&bytes[2..10]);
        let mut bits = [0u64; WORDS];
        for (index, word) in bits.iter_mut().enumerate() {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[10 + index * 8..18 + index * 8]);
            *word = u64::from_be_bytes(raw);
        }
        let window = ReplayWindow {
            highest: (bytes[1] == 1).then(|| u64::from_be_bytes(highest)),
            bits,
        };
        let canonical = window.highest.is_some() || (highest == [0; 8] && bits == [0; WORDS]);
        canonical.then_some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_once_in_any_order_within_the_window() {
        let mut window = ReplayWindow::new();
        for seq in [5, 3, 1000, 2, 1027] {
            assert_eq!(window.check_and_mark(seq), Ok(()), "{seq}");
        }
        assert_eq!(window.check_and_mark(4), Ok(()), "4 was never used");
        assert_eq!(window.check_and_mark(4), Err(ReplayError::Duplicate));
        assert_eq!(window.check_and_mark(1000), Err(ReplayError::Duplicate));
        assert_eq!(
            window.check_and_mark(3),
            Err(ReplayError::TooOld),
            "1027 - 3 >= 1024"
        );
        assert_eq!(
            window.check(1027 + MAX_SEQUENCE_AHEAD + 1),
            Err(ReplayError::TooFarAhead)
        );
        assert_eq!(window.check(1027 + MAX_SEQUENCE_AHEAD), Ok(()));
    }

    #[test]
    fn serialisation_round_trips_and_is_strict() {
        let mut window = ReplayWindow::new();
        assert_eq!(
            ReplayWindow::from_bytes(&window.to_bytes()),
            Some(window.clone())
        );
        for seq in [0, 7, 900, 1500] {
            window.check_and_mark(seq).expect("fresh");
        }
        let bytes = window.to_bytes();
        assert_eq!(ReplayWindow::from_bytes(&bytes), Some(window));
        let mut bad_version = bytes;
        bad_version[0] = 2;
        assert_eq!(ReplayWindow::from_bytes(&bad_version), None);
        assert_eq!(ReplayWindow::from_bytes(&bytes[1..]), None);
    }
}
