//! `mte-relay keygen`: a new relay identity key and the pin clients use for it.
//!
//! Standard output holds two `NAME=value` lines, so that a script can keep them
//! (`mte-relay keygen > identity.env`); the explanation goes to standard error.

use std::io::Write;
use std::process::ExitCode;

use mte_relay_protocol::identity::RelayIdentity;
use mte_relay_protocol::rng::os_rng;

/// Prints a fresh identity key and its pin.
pub fn run() -> ExitCode {
    let (identity, secret) = RelayIdentity::generate(&mut os_rng());
    let pin = identity.public_key().pin();
    eprintln!(
        "mte-relay keygen: a new relay identity. Give RELAY_IDENTITY_KEY (or a domain's \
         identity_key in DOMAIN_MAP) to every replica of the relay and keep it secret; \
         give RELAY_IDENTITY_PIN to clients (RelayClient::builder(..).pin(..), \
         mte-relay request --pin)."
    );
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "RELAY_IDENTITY_KEY={secret}")
        .and_then(|()| writeln!(stdout, "RELAY_IDENTITY_PIN={pin}"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mte-relay keygen: cannot write the key: {error}");
            ExitCode::FAILURE
        }
    }
}
