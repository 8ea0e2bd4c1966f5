//! Shared by the integration tests: a runtime sized for tests, declarations for
//! the compiled guests, and request builders.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use mte_relay_adapter_runtime::{
    AdapterRuntime, AdaptersSource, EngineOptions, Header, KvStore, LoadError, RequestInfo,
    RouteClass, RuntimeOptions,
};
use serde_json::{Value, json};

/// Paths of the guest components built by build.rs.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

pub fn runtime_with_kv(kv: Option<Arc<dyn KvStore>>) -> AdapterRuntime {
    AdapterRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            max_instances: 64,
            max_memory_bytes: 512 << 20,
            ..EngineOptions::default()
        },
        kv,
    })
    .unwrap()
}

pub fn runtime() -> AdapterRuntime {
    runtime_with_kv(None)
}

/// One adapter declaration; `extra` fields are merged in.
pub fn adapter(name: &str, path: &str, extra: Value) -> Value {
    let mut entry = json!({ "name": name, "path": path });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            entry.insert(k.clone(), v.clone());
        }
    }
    entry
}

pub async fn load(runtime: &AdapterRuntime, adapters: Vec<Value>) -> Result<(), LoadError> {
    let doc = json!({ "adapters": adapters });
    runtime.load(AdaptersSource::Inline(doc.to_string())).await
}

pub fn request(path: &str) -> RequestInfo {
    RequestInfo {
        method: "GET".into(),
        path_with_query: path.into(),
        headers: vec![],
        domain: "api.example.com".into(),
        route_class: RouteClass::Mte,
        client_id: Some("client-7".into()),
        pair_id: Some("pair-1".into()),
        correlation_id: "req-42".into(),
        remote_addr: "127.0.0.1:50000".into(),
    }
}

pub fn with_header(mut request: RequestInfo, name: &str, value: &str) -> RequestInfo {
    request.headers.push(Header {
        name: name.into(),
        value: value.into(),
    });
    request
}

pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Collects formatted tracing output so tests can check what was logged.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Install as the subscriber of the current thread (use a current-thread runtime).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
