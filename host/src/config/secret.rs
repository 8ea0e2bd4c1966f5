//! A string that must never reach a log line, a panic message or `check-config` output.

use std::fmt;

use zeroize::Zeroizing;

/// What redacted output shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret value. `Debug` and `Display` print [`REDACTED`]; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value read from the configuration.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// A fresh random secret of 64 hex characters (256 bits) from the OS generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Secret::new(hex_encode(bytes.as_ref())))
    }

    /// A secret of at least `min_chars` characters, or the one-line error naming
    /// `location` and the length found (never the value).
    pub(crate) fn at_least(
        location: &str,
        value: impl Into<String>,
        min_chars: usize,
    ) -> Result<Self, super::ConfigError> {
        let secret = Secret::new(value);
        if secret.char_len() < min_chars {
            return Err(super::ConfigError::new(
                location,
                format!(
                    "must be at least {min_chars} characters (got {}); generate one with \
                     `openssl rand -hex 32`",
                    secret.char_len()
                ),
            ));
        }
        Ok(secret)
    }

    /// The secret itself, for the code that keys a MAC or a KDF with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters, which is what the configuration rules bound.
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2-hunter2-hunter2-hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(
            format!("{:?}", Some(secret.clone())),
            format!("Some({REDACTED})")
        );
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2-hunter2-hunter2");
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let a = Secret::generate().expect("os rng");
        let b = Secret::generate().expect("os rng");
        assert_eq!(a.char_len(), 64);
        assert_ne!(a.expose(), b.expose());
    }
}
