//! Refuses to start unless its config is `{"ok": true}`.

use mte_relay_adapter::{Config, Filter};

#[derive(serde::Deserialize)]
struct Settings {
    ok: bool,
}

struct InitFails;

impl Filter for InitFails {
    fn init(config: Config) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        if settings.ok {
            Ok(InitFails)
        } else {
            Err("refusing to start: config says ok=false".into())
        }
    }
}

mte_relay_adapter::export_filter!(InitFails);
