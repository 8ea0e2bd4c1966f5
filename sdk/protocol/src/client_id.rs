//! Client ids: minted by the relay, verified statelessly.
//!
//! ```text
//! client id = base64url(0x01 || issued_at (u64, seconds, big-endian) || random (16)
//!                       || HMAC-SHA256(client_id_secret,
//!                                      lp("mte-relay/v1 client id") || lp(domain)
//!                                      || 0x01 || issued_at || random))
//! ```
//!
//! The domain is inside the MAC, so an id minted for one domain is refused by every
//! other, even when they share a secret. Verification tries the current secret and then
//! each previous one, so rotating the secret does not cut existing clients off.

use subtle::ConstantTimeEq;

use crate::encoding::{b64_decode_array, b64_encode, put_lp};
use crate::kdf::{self, LABEL_CLIENT_ID};
use crate::registry::ErrorReason;
use crate::secret::SecretBytes;

const VERSION: u8 = 1;
const RANDOM_LEN: usize = 16;
const BODY_LEN: usize = 1 + 8 + RANDOM_LEN;
/// Length of a client id in bytes before base64url encoding.
pub const CLIENT_ID_BYTES: usize = BODY_LEN + 32;
/// How far in the future an issue time may lie, to tolerate clock skew between replicas.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// Why a client id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// Wrong length, encoding or version.
    #[error("client id is malformed")]
    Malformed,
    /// The MAC does not verify under any accepted secret for this domain.
    #[error("client id does not verify")]
    Invalid,
    /// The issue time is further in the future than the allowed clock skew.
    #[error("client id is issued in the future")]
    FromFuture,
    /// The client id is older than the maximum age.
    #[error("client id has expired")]
    Expired,
}

impl ClientIdError {
    /// The registry reason a relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ClientIdError::Expired => ErrorReason::ClientIdExpired,
            _ => ErrorReason::ClientIdInvalid,
        }
    }
}

/// A client id that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedClientId {
    /// Unix time the id was minted.
    pub issued_at: u64,
    /// Unix time after which the id is refused.
    pub expires_at: u64,
}

/// Mints and verifies client ids for a set of secrets.
#[derive(Clone, Debug)]
pub struct ClientIdAuthority {
    /// Current secret first, then previous ones.
    secrets: Vec<SecretBytes>,
    max_age_secs: u64,
}

impl ClientIdAuthority {
    /// An authority minting with `current` and also accepting `previous` secrets.
    pub fn new(current: SecretBytes, previous: Vec<SecretBytes>, max_age_secs: u64) -> Self {
        let mut secrets = Vec::with_capacity(1 + previous.len());
        secrets.push(current);
        secrets.extend(previous);
        ClientIdAuthority {
            secrets,
            max_age_secs,
        }
    }

    /// How long a minted id stays valid.
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }

    /// Mints a fresh client id for `domain` at Unix time `now`.
    pub fn mint(&self, domain: &str, now: u64, rng: &mut impl rand_core::CryptoRng) -> String {
        let mut random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut random);
        self.mint_with(domain, now, random)
    }

    /// Mints the client id with the given issue time and random bytes (test vectors).
    pub fn mint_with(&self, domain: &str, issued_at: u64, random: [u8; RANDOM_LEN]) -> String {
        let mut bytes = Vec::with_capacity(CLIENT_ID_BYTES);
        bytes.push(VERSION);
        bytes.extend_from_slice(&issued_at.to_be_bytes());
        bytes.extend_from_slice(&random);
        let tag = tag(&self.secrets[0], domain, &bytes);
        bytes.extend_from_slice(&tag);
        b64_encode(&bytes)
    }

    /// Verifies `client_id` for `domain` at Unix time `now`.
    pub fn verify(
        &self,
        domain: &str,
        client_id: &[u8],
        now: u64,
    ) -> Result<VerifiedClientId, ClientIdError> {
        let bytes: [u8; CLIENT_ID_BYTES] =
            b64_decode_array(client_id).ok_or(ClientIdError::Malformed)?;
        if bytes[0] != VERSION {
            return Err(ClientIdError::Malformed);
        }
        let (body, presented) = bytes.split_at(BODY_LEN);
        let verified = self
            .secrets
            .iter()
            .any(|secret| bool::from(tag(secret, domain, body).ct_eq(presented)));
        if !verified {
            return Err(ClientIdError::Invalid);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&body[1..9]);
        let issued_at = u64::from_be_bytes(issued);
        if issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(ClientIdError::FromFuture);
        }
        let expires_at = issued_at.saturating_add(self.max_age_secs);
        if now > expires_at {
            return Err(ClientIdError::Expired);
        }
        Ok(VerifiedClientId {
            issued_at,
            expires_at,
        })
    }
}

fn tag(secret: &SecretBytes, domain: &str, body: &[u8]) -> [u8; 32] {
    let mut prefix = Vec::with_capacity(64 + domain.len());
    put_lp(&mut prefix, LABEL_CLIENT_ID);
    put_lp(&mut prefix, domain.as_bytes());
    kdf::hmac(secret.expose_secret(), &[&prefix, body])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(current: &str, previous: &[&str]) -> ClientIdAuthority {
        ClientIdAuthority::new(
            SecretBytes::new(current.as_bytes().to_vec()),
            previous
                .iter()
                .map(|s| SecretBytes::new(s.as_bytes().to_vec()))
                .collect(),
            3600,
        )
    }

    #[test]
    fn mint_verify_and_rotation() {
        let old = authority("old-secret-old-secret-old-secret", &[]);
        let id = old.mint_with("api.example.com", 1000, [9; 16]);
        assert_eq!(id.len(), 76);
        let rotated = authority(
            "new-secret-new-secret-new-secret",
            &["old-secret-old-secret-old-secret"],
        );
        assert_eq!(
            rotated.verify("api.example.com", id.as_bytes(), 1500),
            Ok(VerifiedClientId {
                issued_at: 1000,
                expires_at: 4600
            })
        );
        let forgotten = authority("new-secret-new-secret-new-secret", &[]);
        assert_eq!(
            forgotten.verify("api.example.com", id.as_bytes(), 1500),
            Err(ClientIdError::Invalid)
        );
    }

    #[test]
    fn domain_age_and_tampering() {
        let authority = authority("s3cret-s3cret-s3cret-s3cret-s3cret", &[]);
        let id = authority.mint_with("a.example", 1000, [1; 16]);
        assert_eq!(
            authority.verify("b.example", id.as_bytes(), 1000),
            Err(ClientIdError::Invalid)
        );
        assert_eq!(
            authority.verify("a.example", id.as_bytes(), 4601),
            Err(ClientIdError::Expired)
        );
        assert_eq!(
            authority.verify("a.example", id.as_bytes(), 600),
            Err(ClientIdError::FromFuture)
        );
        let mut tampered = id.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            authority.verify("a.example", &tampered, 1000),
            Err(ClientIdError::Invalid)
        );
        assert_eq!(
            authority.verify("a.example", b"short", 1000),
            Err(ClientIdError::Malformed)
        );
    }
}
