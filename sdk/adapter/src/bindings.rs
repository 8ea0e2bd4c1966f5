//! Generated bindings for `wit/`. This is the only module of the SDK that may use
//! `unsafe`: the canonical ABI glue that wit-bindgen emits needs it.
#![allow(unsafe_code, missing_docs, clippy::all)]

/// Imports shared by both worlds: the types, logging and the key-value store.
pub mod common {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package mte-relay:sdk;
            world common {
                import mte-relay:adapter/types@0.1.0;
                import mte-relay:adapter/log@0.1.0;
                import mte-relay:adapter/kv@0.1.0;
            }
        ",
        world: "mte-relay:sdk/common",
        generate_all,
        generate_unused_types: true,
        additional_derives: [Clone, PartialEq, Eq],
    });
}

/// Exports of the `filter` world.
#[cfg(feature = "filter")]
pub mod filter {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mte-relay:adapter/filter@0.1.0",
        with: {
            "mte-relay:adapter/types@0.1.0": crate::bindings::common::mte_relay::adapter::types,
            "mte-relay:adapter/log@0.1.0": crate::bindings::common::mte_relay::adapter::log,
            "mte-relay:adapter/kv@0.1.0": crate::bindings::common::mte_relay::adapter::kv,
        },
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "mte_relay_adapter::bindings::filter",
    });
}

/// Exports of the `meter` world.
#[cfg(feature = "meter")]
pub mod meter {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mte-relay:adapter/meter@0.1.0",
        with: {
            "mte-relay:adapter/types@0.1.0": crate::bindings::common::mte_relay::adapter::types,
            "mte-relay:adapter/log@0.1.0": crate::bindings::common::mte_relay::adapter::log,
            "mte-relay:adapter/kv@0.1.0": crate::bindings::common::mte_relay::adapter::kv,
        },
        pub_export_macro: true,
        export_macro_name: "__export_meter_world",
        default_bindings_module: "mte_relay_adapter::bindings::meter",
    });
}
