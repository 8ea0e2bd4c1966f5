//! Host bindings for `wit/adapter.wit`. Both worlds share one set of types and
//! import traits (generated with the filter world, reused by the meter world).

pub mod filter {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "mte-relay:adapter/filter@0.1.0",
        imports: {
            "mte-relay:adapter/kv": async,
            default: trappable,
        },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

pub mod meter {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "mte-relay:adapter/meter@0.1.0",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "mte-relay:adapter/types": super::filter::mte_relay::adapter::types,
            "mte-relay:adapter/log": super::filter::mte_relay::adapter::log,
            "mte-relay:adapter/kv": super::filter::mte_relay::adapter::kv,
        },
    });
}

pub use filter::mte_relay::adapter::kv as wit_kv;
pub use filter::mte_relay::adapter::log as wit_log;
pub use filter::mte_relay::adapter::types;
