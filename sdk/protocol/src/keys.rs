//! A pair's long-lived key state and the per-message secrets derived from it.
//!
//! Pairing yields two independent secrets: the MKE root, from which each MKE message's
//! secret is derived directly, and the MTE ratchet's first epoch key. The ratchet
//! replaces its key every [`EPOCH_LEN`] sequence numbers and forgets old ones, so a
//! later compromise of the pair state cannot decrypt MTE messages of erased epochs.

use core::fmt;

use crate::header::Mode;
use crate::kdf::{self, LABEL_MKE_MESSAGE, LABEL_MTE_MESSAGE, LABEL_MTE_RATCHET};
use crate::secret::Secret32;

/// log2 of the number of sequence numbers in one MTE epoch.
pub const EPOCH_BITS: u32 = 10;
/// Sequence numbers per MTE epoch; equal to the replay window, so every sequence the
/// window accepts lies in the current or the previous epoch.
pub const EPOCH_LEN: u64 = 1 << EPOCH_BITS;
/// The most epochs one message may move the ratchet forward: 64, the epochs that
/// [`crate::replay::MAX_SEQUENCE_AHEAD`] spans. Keys are derived before the message
/// authenticates, so this bounds the work a forged message can cause (64 HKDF steps).
/// MKE messages share the sequence numbers but leave the ratchet where it is, so a
/// pair used mostly for MKE can fall further behind; its client then finds the pair
/// spent for MTE and pairs a new one.
pub const MAX_RATCHET_STEPS: u64 = crate::replay::MAX_SEQUENCE_AHEAD >> EPOCH_BITS;

/// The MTE epoch that sequence number `seq` belongs to.
pub fn epoch_of(seq: u64) -> u64 {
    seq >> EPOCH_BITS
}

/// The secret of one message (one sequence number of one pair, in one mode).
#[derive(Clone, PartialEq, Eq)]
pub struct MessageSecret(pub(crate) Secret32);

impl MessageSecret {
    /// The raw secret, for test vectors.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MessageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageSecret(<redacted>)")
    }
}

/// Why a sequence number has no MTE key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RatchetError {
    /// The sequence number belongs to an epoch whose key was erased.
    #[error("sequence number belongs to an erased MTE epoch")]
    EpochErased,
    /// The sequence number is more than [`MAX_RATCHET_STEPS`] epochs ahead.
    #[error("sequence number is too far ahead of the MTE ratchet")]
    TooFarAhead,
}

/// The MTE hash ratchet: the current epoch's key and the previous one.
#[derive(Clone, PartialEq, Eq)]
pub struct MteRatchet {
    epoch: u64,
    current: Secret32,
    previous: Option<Secret32>,
}

impl fmt::Debug for MteRatchet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MteRatchet")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Length of [`MteRatchet::to_bytes`].
pub const RATCHET_STATE_LEN: usize = 8 + 1 + 32 + 32;

impl MteRatchet {
    pub(crate) fn new(epoch0: Secret32) -> Self {
        MteRatchet {
            epoch: 0,
            current: epoch0,
            previous: None,
        }
    }

    /// The epoch whose key is current.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The secret of MTE message `seq`, without changing this state. When `seq` lies
    /// in a later epoch, also returns the advanced ratchet, to be committed with
    /// [`MteRatchet::advance_to`] only once the message has authenticated.
    pub fn message_secret(
        &self,
        seq: u64,
    ) -> Result<(MessageSecret, Option<MteRatchet>), RatchetError> {
        let target = epoch_of(seq);
        if target > self.epoch {
            if target - self.epoch > MAX_RATCHET_STEPS {
                return Err(RatchetError::TooFarAhead);
            }
            let advanced = self.stepped_to(target);
            let secret = message_secret_of(&advanced.current, seq);
            return Ok((secret, Some(advanced)));
        }
        // Borrowed, not cloned: no extra copy of an epoch key is made per message.
        let epoch_key = if target == self.epoch {
            &self.current
        } else if target + 1 == self.epoch {
            self.previous.as_ref().ok_or(RatchetError::EpochErased)?
        } else {
            return Err(RatchetError::EpochErased);
        };
        Ok((message_secret_of(epoch_key, seq), None))
    }

    /// Moves to `newer` when it is ahead; a stale `newer` (another request advanced
    /// further meanwhile) is ignored, so commits may arrive in any order.
    pub fn advance_to(&mut self, newer: MteRatchet) {
        if newer.epoch > self.epoch {
            *self = newer;
        }
    }

    fn stepped_to(&self, target: u64) -> MteRatchet {
        let mut previous = self.current.clone();
        let mut current = self.current.clone();
        for _ in self.epoch..target {
            previous = current;
            current = kdf::expand(previous.expose_secret(), LABEL_MTE_RATCHET, b"");
        }
        MteRatchet {
            epoch: target,
            current,
            // The epoch just before the target keeps its key so that requests in flight
            // across an epoch boundary still decode; older keys are dropped (zeroized).
            previous: Some(previous),
        }
    }

    /// Fixed-size serialisation for a pair store: epoch, presence byte, current key,
    /// previous key (zeros when absent).
    pub fn to_bytes(&self) -> [u8; RATCHET_STATE_LEN] {
        let mut out = [0u8; RATCHET_STATE_LEN];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8] = u8::from(self.previous.is_some());
        out[9..41].copy_from_slice(self.current.expose_secret());
        if let Some(previous) = &self.previous {
            out[41..].copy_from_slice(previous.expose_secret());
        }
        out
    }

    /// Inverse of [`MteRatchet::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<MteRatchet> {
        if bytes.len() != RATCHET_STATE_LEN || bytes[8] > 1 {
            return None;
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[..8]);
        let mut current = [0u8; 32];
        current.copy_from_slice(&bytes[9..41]);
        let mut previous = [0u8; 32];
        previous.copy_from_slice(&bytes[41..]);
        Some(MteRatchet {
            epoch: u64::from_be_bytes(epoch),
            current: Secret32::from_bytes(current),
            previous: (bytes[8] == 1).then(|| Secret32::from_bytes(previous)),
        })
    }
}

/// The secret of MTE message `seq` under its epoch's key.
fn message_secret_of(epoch_key: &Secret32, seq: u64) -> MessageSecret {
    MessageSecret(kdf::expand(
        epoch_key.expose_secret(),
        LABEL_MTE_MESSAGE,
        &seq.to_be_bytes(),
    ))
}

/// Everything a pair holds secret: the MKE root and the MTE ratchet.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKeys {
    pub(crate) mke_root: Secret32,
    /// The MTE ratchet, advanced as MTE messages of later epochs authenticate.
    pub ratchet: MteRatchet,
}

impl fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairKeys")
            .field("ratchet", &self.ratchet)
            .finish_non_exhaustive()
    }
}

/// Length of [`PairKeys::to_bytes`].
pub const PAIR_KEYS_LEN: usize = 32 + RATCHET_STATE_LEN;

impl PairKeys {
    /// Builds pair keys from their two roots (the output of pairing).
    pub fn from_roots(mke_root: Secret32, mte_epoch0: Secret32) -> Self {
        PairKeys {
            mke_root,
            ratchet: MteRatchet::new(mte_epoch0),
        }
    }

    /// The secret of message `seq` in `mode`; see [`MteRatchet::message_secret`] for the
    /// second value.
    pub fn message_secret(
        &self,
        mode: Mode,
        seq: u64,
    ) -> Result<(MessageSecret, Option<MteRatchet>), RatchetError> {
        match mode {
            Mode::Mke => {
                let secret = kdf::expand(
                    self.mke_root.expose_secret(),
                    LABEL_MKE_MESSAGE,
                    &seq.to_be_bytes(),
                );
                Ok((MessageSecret(secret), None))
            }
            Mode::Mte => self.ratchet.message_secret(seq),
        }
    }

    /// Rebuilds pair keys from the parts a store keeps apart: the MKE root, which never
    /// changes, and the ratchet, which a store overwrites as it advances (so that no
    /// erased epoch key survives in it).
    pub fn from_parts(mke_root: Secret32, ratchet: MteRatchet) -> Self {
        PairKeys { mke_root, ratchet }
    }

    /// The MKE root, for a store that keeps it apart from the ratchet (encrypted at rest).
    pub fn mke_root(&self) -> &Secret32 {
        &self.mke_root
    }

    /// Serialisation for a pair store (which must encrypt it at rest).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAIR_KEYS_LEN);
        out.extend_from_slice(self.mke_root.expose_secret());
        out.extend_from_slice(&self.ratchet.to_bytes());
        out
    }

    /// Inverse of [`PairKeys::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<PairKeys> {
        if bytes.len() != PAIR_KEYS_LEN {
            return None;
        }
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[..32]);
        Some(PairKeys {
            mke_root: Secret32::from_bytes(root),
            ratchet: MteRatchet::from_bytes(&bytes[32..])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PairKeys {
        PairKeys::from_roots(Secret32::from_bytes([1; 32]), Secret32::from_bytes([2; 32]))
    }

    #[test]
    fn ratchet_advances_and_erases_old_epochs() {
        let mut keys = keys();
        let (first, advanced) = keys.message_secret(Mode::Mte, 5).expect("epoch 0");
        assert!(advanced.is_none());

        let (later, advanced) = keys
            .message_secret(Mode::Mte, EPOCH_LEN * 3 + 1)
            .expect("ahead");
        let advanced = advanced.expect("moves to epoch 3");
        keys.ratchet.advance_to(advanced);
        assert_eq!(keys.ratchet.epoch(), 3);

        // The same message secret is derived after advancing.
        let (again, none) = keys
            .message_secret(Mode::Mte, EPOCH_LEN * 3 + 1)
            .expect("epoch 3");
        assert_eq!(again, later);
        assert!(none.is_none());
        // Epoch 2 is kept for requests in flight; epoch 0 is gone.
        assert!(keys.message_secret(Mode::Mte, EPOCH_LEN * 2).is_ok());
        assert_eq!(
            keys.message_secret(Mode::Mte, 5),
            Err(RatchetError::EpochErased)
        );
        assert_ne!(first, later);
    }

    #[test]
    fn one_step_and_many_steps_agree() {
        let keys = keys();
        let mut stepwise = keys.ratchet.clone();
        for epoch in 1..=4 {
            let (_, advanced) = stepwise.message_secret(epoch * EPOCH_LEN).expect("next");
            stepwise.advance_to(advanced.expect("advanced"));
        }
        let (_, jumped) = keys.ratchet.message_secret(4 * EPOCH_LEN).expect("jump");
        assert_eq!(jumped.expect("advanced"), stepwise);
    }

    #[test]
    fn far_jumps_are_refused() {
        let keys = keys();
        let too_far = (MAX_RATCHET_STEPS + 1) * EPOCH_LEN;
        assert_eq!(
            keys.message_secret(Mode::Mte, too_far),
            Err(RatchetError::TooFarAhead)
        );
        assert!(keys.message_secret(Mode::Mke, u64::MAX).is_ok());
    }

    #[test]
    fn stale_commits_do_not_move_the_ratchet_back() {
        let mut keys = keys();
        let (_, epoch2) = keys.ratchet.message_secret(2 * EPOCH_LEN).expect("ok");
        let (_, epoch1) = keys.ratchet.message_secret(EPOCH_LEN).expect("ok");
        keys.ratchet.advance_to(epoch2.expect("advanced"));
        keys.ratchet.advance_to(epoch1.expect("advanced"));
        assert_eq!(keys.ratchet.epoch(), 2);
    }

    #[test]
    fn state_serialisation_round_trips() {
        let mut keys = keys();
        let (_, advanced) = keys.ratchet.message_secret(EPOCH_LEN).expect("ok");
        keys.ratchet.advance_to(advanced.expect("advanced"));
        let bytes = keys.to_bytes();
        assert_eq!(PairKeys::from_bytes(&bytes), Some(keys));
        assert_eq!(PairKeys::from_bytes(&bytes[1..]), None);
    }
}
