//! Write MTE Relay adapters in Rust.
//!
//! An adapter is a WebAssembly component implementing one of the worlds in
//! `wit/adapter.wit`. Enable the `filter` or `meter` feature (one per crate),
//! implement [`Filter`] or [`Meter`], and export it:
//!
//! ```ignore
//! use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};
//!
//! struct Hello;
//!
//! impl Filter for Hello {
//!     fn init(_config: Config) -> Result<Self, String> {
//!         Ok(Hello)
//!     }
//!     fn on_request(&mut self, req: &RequestInfo) -> Result<RequestAction, String> {
//!         mte_relay_adapter::info!("{} {}", req.method, req.path());
//!         Ok(RequestAction::proceed())
//!     }
//! }
//!
//! mte_relay_adapter::export_filter!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the relay loads.

pub mod bindings;
pub mod kv;
pub mod log;
mod types;

pub use types::{
    FilterHooks, Header, HeaderEdit, LocalResponse, RequestAction, RequestInfo, ResponseInfo,
    RouteClass, UsageRecord, header,
};
/// Standard WASI 0.2 bindings (clocks, random, outbound `wasi:http`).
pub use wasip2 as wasi;

#[doc(hidden)]
pub use serde_json as __serde_json;

/// The JSON configuration an instance receives in `init`.
#[derive(Debug, Clone)]
pub struct Config {
    raw: String,
}

impl Config {
    #[doc(hidden)]
    pub fn from_raw(raw: String) -> Self {
        Self { raw }
    }

    /// The configuration text as given by the operator.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Deserialize into the adapter's own config type; the error names the problem.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let text = if self.raw.trim().is_empty() {
            "null"
        } else {
            &self.raw
        };
        serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))
    }
}

/// A request filter. Every hook has a default that lets the request through.
pub trait Filter: Sized + 'static {
    /// Build the instance's state from its configuration. An error refuses the adapter.
    fn init(config: Config) -> Result<Self, String>;

    /// Decide on a request (chain order). Default: continue unchanged.
    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        let _ = request;
        Ok(RequestAction::proceed())
    }

    /// Whether this instance edits responses, asked once after `init`. When false the
    /// relay never calls [`Filter::on_response`], which saves a call per request: return
    /// false from filters that only look at requests. Default: true.
    fn edits_responses(&self) -> bool {
        true
    }

    /// The request headers this instance reads, asked once after `init`; the requests
    /// its hooks receive then carry only these. `None` (the default) passes every
    /// header. Naming the few a filter reads saves copying the rest on every call.
    fn request_headers(&self) -> Option<Vec<String>> {
        None
    }

    /// Edit the response headers (reverse chain order). Default: no edits.
    fn on_response(
        &mut self,
        request: &RequestInfo,
        response: &ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, String> {
        let _ = (request, response);
        Ok(Vec::new())
    }
}

/// A usage meter. Every hook has a default that does nothing.
pub trait Meter: Sized + 'static {
    /// Build the instance's state from its configuration. An error refuses the adapter.
    fn init(config: Config) -> Result<Self, String>;

    /// A batch of finished requests.
    fn on_usage(&mut self, batch: &[UsageRecord]) -> Result<(), String> {
        let _ = batch;
        Ok(())
    }

    /// The periodic tick; `now_ms` is milliseconds since the Unix epoch.
    fn on_tick(&mut self, now_ms: u64) -> Result<(), String> {
        let _ = now_ms;
        Ok(())
    }
}

/// Holds the instance's state between hook calls. Components are single-threaded,
/// so a thread-local cell is the whole story.
#[doc(hidden)]
pub struct StateCell<T>(std::cell::RefCell<Option<T>>);

impl<T> StateCell<T> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(std::cell::RefCell::new(None))
    }

    #[doc(hidden)]
    pub fn install(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }

    #[doc(hidden)]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> Result<R, String>) -> Result<R, String> {
        match self.0.borrow_mut().as_mut() {
            Some(state) => f(state),
            None => Err("hook called before a successful init".to_string()),
        }
    }
}

impl<T> Default for StateCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Export a [`Filter`] implementation as the component's `filter` world.
#[cfg(feature = "filter")]
#[macro_export]
macro_rules! export_filter {
    ($ty:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: $crate::StateCell<$ty> = const { $crate::StateCell::new() };
            }

            struct Exported;

            impl $crate::bindings::filter::Guest for Exported {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::FilterHooks, ::std::string::String> {
                    let state = <$ty as $crate::Filter>::init($crate::Config::from_raw(config))?;
                    let hooks = $crate::FilterHooks {
                        on_response: <$ty as $crate::Filter>::edits_responses(&state),
                        request_headers: <$ty as $crate::Filter>::request_headers(&state),
                    };
                    STATE.with(|cell| cell.install(state));
                    Ok(hooks)
                }

                fn on_request(
                    request: $crate::RequestInfo,
                ) -> ::std::result::Result<$crate::RequestAction, ::std::string::String> {
                    STATE.with(|cell| cell.with(|s| <$ty as $crate::Filter>::on_request(s, &request)))
                }

                fn on_response(
                    request: $crate::RequestInfo,
                    response: $crate::ResponseInfo,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::HeaderEdit>, ::std::string::String> {
                    STATE.with(|cell| {
                        cell.with(|s| <$ty as $crate::Filter>::on_response(s, &request, &response))
                    })
                }
            }

            $crate::bindings::filter::__export_filter_world!(Exported);
        };
    };
}

/// Export a [`Meter`] implementation as the component's `meter` world.
#[cfg(feature = "meter")]
#[macro_export]
macro_rules! export_meter {
    ($ty:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: $crate::StateCell<$ty> = const { $crate::StateCell::new() };
            }

            struct Exported;

            impl $crate::bindings::meter::Guest for Exported {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    let state = <$ty as $crate::Meter>::init($crate::Config::from_raw(config))?;
                    STATE.with(|cell| cell.install(state));
                    Ok(())
                }

                fn on_usage(
                    batch: ::std::vec::Vec<$crate::UsageRecord>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.with(|cell| cell.with(|s| <$ty as $crate::Meter>::on_usage(s, &batch)))
                }

                fn on_tick(now_ms: u64) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.with(|cell| cell.with(|s| <$ty as $crate::Meter>::on_tick(s, now_ms)))
                }
            }

            $crate::bindings::meter::__export_meter_world!(Exported);
        };
    };
}
