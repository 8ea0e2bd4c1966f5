//! TLS to upstreams: the public web PKI roots, plus the operator's own CAs from
//! `UPSTREAM_CA_FILE` for upstreams with private certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

/// Loads a certificate chain and its key from PEM files.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|error| format!("cannot read {cert_file:?}: {error}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{cert_file:?} is not a PEM certificate file: {error}"))?;
    if chain.is_empty() {
        return Err(format!("{cert_file:?} contains no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|error| format!("{key_file:?} holds no usable PEM private key: {error}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| format!("{key_file:?}: unsupported private key: {error}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|error| format!("{key_file:?} is not the key of {cert_file:?}: {error}"))?;
    Ok(certified)
}

/// TLS on the data port: the certificate and key files (`TLS_CERT_FILE`,
/// `TLS_KEY_FILE`), checked at startup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl ListenerTls {
    pub(crate) fn load(
        cert_file: Option<&str>,
        key_file: Option<&str>,
    ) -> Result<Option<ListenerTls>, ConfigError> {
        match (cert_file, key_file) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::new(
                "TLS_KEY_FILE",
                "required with TLS_CERT_FILE",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "TLS_CERT_FILE",
                "required with TLS_KEY_FILE",
            )),
            (Some(cert), Some(key)) => {
                let tls = ListenerTls {
                    cert_file: PathBuf::from(cert),
                    key_file: PathBuf::from(key),
                };
                load_certified_key(&tls.cert_file, &tls.key_file)
                    .map_err(|problem| ConfigError::new("TLS_CERT_FILE", problem))?;
                Ok(Some(tls))
            }
        }
    }
}
