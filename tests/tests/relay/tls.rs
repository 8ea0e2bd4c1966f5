//! `https://` upstreams: verified against the web PKI plus `UPSTREAM_CA_FILE`.

use bytes::Bytes;
use http::Response;
use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::relay::{Relay, run};
use mte_relay_tests::tls::TestCertificate;
use mte_relay_tests::upstream::{Upstream, full};

use crate::support::{assert_registry_error, pass_all_map};

async fn tls_upstream(certificate: &TestCertificate) -> Upstream {
    Upstream::start_tls(certificate, |request| async move {
        Response::new(full(format!("secure {}", request.uri().path())))
    })
    .await
}

#[tokio::test]
async fn an_https_upstream_signed_by_the_configured_ca_is_reached() {
    let certificate = TestCertificate::localhost();
    let upstream = tls_upstream(&certificate).await;
    let url = format!("https://localhost:{}", upstream.addr().port());
    let relay = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("tls.example", &url)),
        ("UPSTREAM_CA_FILE", certificate.pem_path_str()),
    ]);
    let response = get(relay.addr(), "tls.example", "/hello").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_bytes(response).await,
        Bytes::from_static(b"secure /hello")
    );
}

#[tokio::test]
async fn an_https_upstream_with_an_untrusted_certificate_is_unreachable() {
    let certificate = TestCertificate::localhost();
    let upstream = tls_upstream(&certificate).await;
    let url = format!("https://localhost:{}", upstream.addr().port());
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("tls.example", &url))]);
    let response = get(relay.addr(), "tls.example", "/hello").await;
    assert_registry_error(response, 502, "upstream-unreachable").await;
}

#[test]
fn a_bad_ca_file_stops_startup() {
    let not_pem =
        std::env::temp_dir().join(format!("mte-relay-test-not-pem-{}", std::process::id()));
    std::fs::write(&not_pem, "this is not a certificate").expect("write");
    let not_pem = not_pem.to_str().expect("UTF-8").to_owned();
    for (path, expected) in [
        ("/nonexistent/ca.pem", "UPSTREAM_CA_FILE: cannot read"),
        (not_pem.as_str(), "UPSTREAM_CA_FILE: "),
    ] {
        let finished = run(
            &["check-config"],
            &[("UPSTREAM", "https://h"), ("UPSTREAM_CA_FILE", path)],
        );
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{path}: {}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(expected),
            "{path}: {}",
            finished.stderr
        );
    }
    let _ = std::fs::remove_file(&not_pem);
}
