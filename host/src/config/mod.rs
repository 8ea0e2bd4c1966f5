//! Environment -> typed configuration.
