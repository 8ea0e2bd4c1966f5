//! TLS on the data port (`TLS_CERT_FILE`, `TLS_KEY_FILE`), for relays run without a
//! terminator in front: rustls, HTTP/2 or HTTP/1.1 by ALPN, and a certificate that can
//! be replaced on SIGHUP or when its files change, without dropping a connection (each
//! handshake asks for the current one).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::tls::load_certified_key;

/// The current certificate, swapped in place on reload.
#[derive(Debug)]
pub struct CertificateStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the files as last loaded.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

impl CertificateStore {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertificateStore, String> {
        let certified = load_certified_key(cert_file, key_file)?;
        Ok(CertificateStore {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(certified)),
            loaded: Mutex::new((modified(cert_file), modified(key_file))),
        })
    }

    /// Loads the files again; the old certificate stays when they do not load.
    pub fn reload(&self) -> Result<(), String> {
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        let certified = load_certified_key(&self.cert_file, &self.key_file)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        *self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = stamps;
        Ok(())
    }

    /// Whether either file changed since it was loaded.
    fn changed(&self) -> bool {
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        *self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            != stamps
    }

    /// Reloads when the files change (checked every `interval`), logging the outcome.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                if store.changed() {
                    store.reload_and_log("its files changed");
                }
            }
        })
    }

    /// Reloads and logs the outcome, naming what caused it.
    pub fn reload_and_log(&self, cause: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(cause, "TLS certificate reloaded"),
            Err(error) => tracing::error!(
                cause,
                %error,
                "TLS certificate not reloaded; the previous one stays in use"
            ),
        }
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

/// The rustls configuration of the data port: HTTP/2 preferred by ALPN, HTTP/1.1 too.
pub fn server_config(store: Arc<CertificateStore>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
