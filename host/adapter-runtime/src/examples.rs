//! Example adapters compiled from `adapters/` by this crate's build script and
//! embedded, so that `mte-relay demo` runs them without any file next to the binary.
//! Their configuration is described in each adapter's README.

include!(concat!(env!("OUT_DIR"), "/examples.rs"));
