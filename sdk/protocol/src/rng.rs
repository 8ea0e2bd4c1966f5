//! Randomness. Every function that needs randomness takes a `rand_core::CryptoRng`, so
//! tests and vector generation can supply a deterministic one; production code uses
//! [`os_rng`].

/// The operating system's CSPRNG (the browser's `crypto.getRandomValues` under the
/// `js` feature on wasm32).
///
/// # Panics
/// When the platform has no usable random source, which is unrecoverable for a
/// cryptographic protocol.
#[cfg(feature = "os-rng")]
pub fn os_rng() -> impl rand_core::CryptoRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}
