//! The guest components under `adapters/` (examples and test guests), compiled for
//! `wasm32-wasip2` by the adapter runtime's build script whenever the relay builds.

use std::path::PathBuf;

use crate::relay;

/// The compiled component of the guest package `package` (for example
/// `"api-key-auth"` or `"trap-on-request"`).
pub fn component(package: &str) -> PathBuf {
    // The guests land in `<target>/guests`, next to the profile directory that holds
    // the relay binary; building the binary builds them.
    let binary = relay::binary();
    let target_dir = binary
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the relay binary lives in <target>/<profile>");
    let path = target_dir
        .join("guests/wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.exists(),
        "guest component {} is missing: the adapter runtime's build script did not build `{package}`",
        path.display()
    );
    path
}

/// One adapter declaration for `ADAPTERS`: instance `name` running the guest
/// `package`, with the extra fields given (`config`, `deadline_ms`, `failure_policy`...).
pub fn declaration(name: &str, package: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "name": name,
        "path": component(package).to_string_lossy(),
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        for (field, value) in extra {
            entry.insert(field.clone(), value.clone());
        }
    }
    entry
}
