//! Throwaway certificates for TLS upstreams in tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate for `localhost` and 127.0.0.1, and its PEM file on disk
/// (for `UPSTREAM_CA_FILE`), removed when dropped, with its private key in PEM beside
/// it (for servers that read their key from a file, such as `redis-server`).
pub struct TestCertificate {
    pub pem_path: PathBuf,
    pub key_path: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestCertificate {
    pub fn localhost() -> TestCertificate {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a certificate");
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pem_path = std::env::temp_dir().join(format!(
            "mte-relay-test-ca-{}-{}.pem",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&pem_path, generated.cert.pem()).expect("write the CA file");
        let key_path = pem_path.with_extension("key.pem");
        std::fs::write(&key_path, generated.signing_key.serialize_pem()).expect("write the key");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![generated.cert.der().clone()], key)
            .expect("server certificate");
        TestCertificate {
            pem_path,
            key_path,
            server_config: Arc::new(server_config),
        }
    }

    pub fn pem_path_str(&self) -> &str {
        self.pem_path.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TestCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_path);
        let _ = std::fs::remove_file(&self.key_path);
    }
}
