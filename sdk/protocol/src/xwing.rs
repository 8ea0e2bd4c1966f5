//! X-Wing, the hybrid KEM of pairing (draft-connolly-cfrg-xwing-kem-06): ML-KEM-768
//! and X25519, combined with SHA3-256.
//!
//! ```text
//! expanded          = SHAKE256(seed, 96 bytes)
//! (pk_M, sk_M)      = ML-KEM-768.KeyGen_internal(d = expanded[0..32], z = expanded[32..64])
//! sk_X              = expanded[64..96],   pk_X = X25519(sk_X, 9)
//! public key        = pk_M || pk_X                                  (1216 bytes)
//! encapsulation     : (ss_M, ct_M) = ML-KEM-768.Encaps(pk_M, m = eseed[0..32])
//!                     ct_X = X25519(eseed[32..64], 9),  ss_X = X25519(eseed[32..64], pk_X)
//! ciphertext        = ct_M || ct_X                                  (1120 bytes)
//! shared secret     = SHA3-256(ss_M || ss_X || ct_X || pk_X || "\.//^\")
//! ```
//!
//! ML-KEM comes from `libcrux-ml-kem` (formally verified, with SIMD code paths chosen
//! at run time); the composition is ours and is checked against the draft's published
//! vectors (`tests/vectors/published-x-wing.json`).

use libcrux_ml_kem::mlkem768;
use sha3::{Digest, Sha3_256};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Length of a secret key: the seed everything else is expanded from.
pub const SEED_LEN: usize = 32;
/// Length of a public (encapsulation) key.
pub const PUBLIC_KEY_LEN: usize = ML_KEM_PUBLIC_KEY_LEN + 32;
/// Length of a ciphertext.
pub const CIPHERTEXT_LEN: usize = ML_KEM_CIPHERTEXT_LEN + 32;
/// Random bytes one encapsulation consumes: 32 for ML-KEM, then 32 for X25519.
pub const ENCAPSULATION_RANDOMNESS_LEN: usize = 64;

const ML_KEM_PUBLIC_KEY_LEN: usize = 1184;
const ML_KEM_PRIVATE_KEY_LEN: usize = 2400;
const ML_KEM_CIPHERTEXT_LEN: usize = 1088;
const LABEL: &[u8; 6] = br"\.//^\";

/// A decapsulation key: the 32-byte seed, and the public key derived from it.
pub struct DecapsulationKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    public_key: [u8; PUBLIC_KEY_LEN],
}

impl core::fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DecapsulationKey").finish_non_exhaustive()
    }
}

/// The key material a seed expands to; the ML-KEM private key is wiped on drop.
struct Expanded {
    ml_kem: mlkem768::MlKem768KeyPair,
    x25519: StaticSecret,
}

impl Drop for Expanded {
    fn drop(&mut self) {
        // libcrux's key types do not zeroize themselves; take the bytes out and wipe
        // them (best effort: earlier moves may have left copies).
        let pair = core::mem::replace(
            &mut self.ml_kem,
            mlkem768::MlKem768KeyPair::new(
                [0u8; ML_KEM_PRIVATE_KEY_LEN],
                [0u8; ML_KEM_PUBLIC_KEY_LEN],
            ),
        );
        let (private_key, _) = pair.into_parts();
        let mut bytes: [u8; ML_KEM_PRIVATE_KEY_LEN] = private_key.into();
        bytes.zeroize();
    }
}

fn expand(seed: &[u8; SEED_LEN]) -> Expanded {
    let mut xof = Shake256::default();
    xof.update(seed);
    let mut reader = xof.finalize_xof();
    let mut ml_kem_seed = Zeroizing::new([0u8; 64]);
    reader.read(ml_kem_seed.as_mut());
    let mut x25519_seed = Zeroizing::new([0u8; 32]);
    reader.read(x25519_seed.as_mut());
    Expanded {
        ml_kem: mlkem768::generate_key_pair(*ml_kem_seed),
        x25519: StaticSecret::from(*x25519_seed),
    }
}

impl DecapsulationKey {
    /// The key for this seed (the X-Wing secret key).
    pub fn from_seed(seed: [u8; SEED_LEN]) -> Self {
        let expanded = expand(&seed);
        let mut public_key = [0u8; PUBLIC_KEY_LEN];
        public_key[..ML_KEM_PUBLIC_KEY_LEN].copy_from_slice(expanded.ml_kem.pk());
        public_key[ML_KEM_PUBLIC_KEY_LEN..]
            .copy_from_slice(PublicKey::from(&expanded.x25519).as_bytes());
        DecapsulationKey {
            seed: Zeroizing::new(seed),
            public_key,
        }
    }

    /// A fresh key from `rng`.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(*seed)
    }

    /// The public key to send.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// The shared secret of `ciphertext`. Like ML-KEM, decapsulation never fails: a
    /// forged ciphertext yields an unrelated secret, which key confirmation catches.
    pub fn decapsulate(&self, ciphertext: &[u8; CIPHERTEXT_LEN]) -> Zeroizing<[u8; 32]> {
        let expanded = expand(&self.seed);
        let (ct_m, ct_x) = split_ciphertext(ciphertext);
        let ss_m = Zeroizing::new(mlkem768::decapsulate(
            expanded.ml_kem.private_key(),
            &mlkem768::MlKem768Ciphertext::from(ct_m),
        ));
        let ct_x = PublicKey::from(ct_x);
        let ss_x = expanded.x25519.diffie_hellman(&ct_x);
        let pk_x = PublicKey::from(&expanded.x25519);
        combine(&ss_m, ss_x.as_bytes(), &ct_x, &pk_x)
    }
}

/// A validated public key, ready to encapsulate to.
pub struct EncapsulationKey {
    ml_kem: mlkem768::MlKem768PublicKey,
    x25519: PublicKey,
}

impl EncapsulationKey {
    /// Parses and checks a public key: its length, and the ML-KEM modulus check of
    /// FIPS 203 (every coefficient below q). `None` when either fails.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().ok()?;
        let (ml_kem, x25519) = bytes.split_at(ML_KEM_PUBLIC_KEY_LEN);
        let ml_kem: [u8; ML_KEM_PUBLIC_KEY_LEN] = ml_kem.try_into().ok()?;
        let x25519: [u8; 32] = x25519.try_into().ok()?;
        let ml_kem = mlkem768::MlKem768PublicKey::from(ml_kem);
        mlkem768::validate_public_key(&ml_kem).then(|| EncapsulationKey {
            ml_kem,
            x25519: PublicKey::from(x25519),
        })
    }

    /// Encapsulates with randomness from `rng`: the ciphertext and the shared secret.
    pub fn encapsulate(
        &self,
        rng: &mut impl rand_core::CryptoRng,
    ) -> ([u8; CIPHERTEXT_LEN], Zeroizing<[u8; 32]>) {
        let mut randomness = Zeroizing::new([0u8; ENCAPSULATION_RANDOMNESS_LEN]);
        rng.fill_bytes(randomness.as_mut());
        self.encapsulate_with(&randomness)
    }

    /// Encapsulates with the given randomness (ML-KEM's 32 bytes, then X25519's).
    /// Only for test vectors: reusing randomness breaks the KEM.
    #[doc(hidden)]
    pub fn encapsulate_with(
        &self,
        randomness: &[u8; ENCAPSULATION_RANDOMNESS_LEN],
    ) -> ([u8; CIPHERTEXT_LEN], Zeroizing<[u8; 32]>) {
        let mut ml_kem_randomness = Zeroizing::new([0u8; 32]);
        ml_kem_randomness.copy_from_slice(&randomness[..32]);
        let mut x25519_secret = Zeroizing::new([0u8; 32]);
        x25519_secret.copy_from_slice(&randomness[32..]);

        let (ct_m, ss_m) = mlkem768::encapsulate(&self.ml_kem, *ml_kem_randomness);
        let ss_m = Zeroizing::new(ss_m);
        let ephemeral = StaticSecret::from(*x25519_secret);
        let ct_x = PublicKey::from(&ephemeral);
        let ss_x = ephemeral.diffie_hellman(&self.x25519);

        let mut ciphertext = [0u8; CIPHERTEXT_LEN];
        ciphertext[..ML_KEM_CIPHERTEXT_LEN].copy_from_slice(ct_m.as_ref());
        ciphertext[ML_KEM_CIPHERTEXT_LEN..].copy_from_slice(ct_x.as_bytes());
        let shared = combine(&ss_m, ss_x.as_bytes(), &ct_x, &self.x25519);
        (ciphertext, shared)
    }
}

fn split_ciphertext(ciphertext: &[u8; CIPHERTEXT_LEN]) -> ([u8; ML_KEM_CIPHERTEXT_LEN], [u8; 32]) {
    let mut ct_m = [0u8; ML_KEM_CIPHERTEXT_LEN];
    ct_m.copy_from_slice(&ciphertext[..ML_KEM_CIPHERTEXT_LEN]);
    let mut ct_x = [0u8; 32];
    ct_x.copy_from_slice(&ciphertext[ML_KEM_CIPHERTEXT_LEN..]);
    (ct_m, ct_x)
}

fn combine(
    ss_m: &[u8; 32],
    ss_x: &[u8; 32],
    ct_x: &PublicKey,
    pk_x: &PublicKey,
) -> Zeroizing<[u8; 32]> {
    let mut hasher = Sha3_256::new();
    Digest::update(&mut hasher, ss_m);
    Digest::update(&mut hasher, ss_x);
    Digest::update(&mut hasher, ct_x.as_bytes());
    Digest::update(&mut hasher, pk_x.as_bytes());
    Digest::update(&mut hasher, LABEL);
    Zeroizing::new(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_checks() {
        let key = DecapsulationKey::from_seed([7; SEED_LEN]);
        let encapsulation = EncapsulationKey::from_bytes(key.public_key()).expect("valid key");
        let (ciphertext, shared) = encapsulation.encapsulate_with(&[9; 64]);
        assert_eq!(*key.decapsulate(&ciphertext), *shared);

        let mut forged = ciphertext;
        forged[0] ^= 1;
        assert_ne!(*key.decapsulate(&forged), *shared, "implicit rejection");

        assert!(EncapsulationKey::from_bytes(&key.public_key()[1..]).is_none());
        // A coefficient of 0xfff (>= q = 3329) fails the FIPS 203 modulus check.
        let mut out_of_range = *key.public_key();
        out_of_range[0] = 0xff;
        out_of_range[1] |= 0x0f;
        assert!(EncapsulationKey::from_bytes(&out_of_range).is_none());
    }
}
