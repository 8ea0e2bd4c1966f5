//! `mte-relay demo`: a built-in upstream and the relay in front of it.

pub mod upstream;
