//! The wasmtime host for MTE Relay adapters.
