//! TLS to upstreams: the public web PKI roots, plus the operator's own CAs from
//! `UPSTREAM_CA_FILE` for upstreams with private certificates.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::ConfigError;

/// The TLS client configuration used for `https://` upstreams, built and checked
/// while the configuration loads so that a bad CA file stops startup.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The `UPSTREAM_CA_FILE`, when set.
    pub ca_file: Option<PathBuf>,
    /// Certificates read from `ca_file`.
    pub extra_roots: usize,
    pub client_config: Arc<ClientConfig>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca_file", &self.ca_file)
            .field("extra_roots", &self.extra_roots)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    pub(crate) fn load(ca_file: Option<&str>) -> Result<Self, ConfigError> {
        const VARIABLE: &str = "UPSTREAM_CA_FILE";
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut extra_roots = 0;
        if let Some(path) = ca_file {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| {
                    ConfigError::new(VARIABLE, format!("cannot read {path:?}: {error}"))
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| {
                    ConfigError::new(VARIABLE, format!("{path:?} is not a PEM file: {error}"))
                })?;
            if certificates.is_empty() {
                return Err(ConfigError::new(
                    VARIABLE,
                    format!("{path:?} contains no PEM certificate"),
                ));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|error| {
                    ConfigError::new(
                        VARIABLE,
                        format!("{path:?} holds an unusable certificate: {error}"),
                    )
                })?;
                extra_roots += 1;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ConfigError::new(VARIABLE, format!("TLS setup failed: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(UpstreamTls {
            ca_file: ca_file.map(PathBuf::from),
            extra_roots,
            client_config: Arc::new(client_config),
        })
    }
}
