//! TLS on the data port (`TLS_CERT_FILE`, `TLS_KEY_FILE`): HTTP/2 and HTTP/1.1 by
//! ALPN, and a certificate replaced on SIGHUP without dropping an open connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mte_relay_tests::relay::{Relay, run, signal};
use mte_relay_tests::tls::TestCertificate;
use mte_relay_tests::within;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::{named_upstream, pass_all_map};

/// A TLS connection to the relay that trusts `ca`, offering `alpn`.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    try_connect(addr, ca, alpn).await.expect("handshake")
}

/// Like [`connect`], the handshake's failure returned (a certificate not trusted yet).
async fn try_connect(
    addr: std::net::SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(certificate.expect("certificate")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    within("the TLS handshake", connector.connect(name, tcp)).await
}

fn peer_certificate(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0]
        .to_vec()
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("https://api.example/hello")
        .header("host", "api.example")
        .body(Empty::new())
        .expect("request")
}

fn write_certificate(dir: &Path, certificate: &TestCertificate) {
    std::fs::copy(&certificate.pem_path, dir.join("cert.pem")).expect("cert");
    std::fs::copy(&certificate.key_path, dir.join("key.pem")).expect("key");
}

#[tokio::test]
async fn tls_serves_both_protocols_and_reloads_its_certificate_on_sighup() {
    let dir = std::env::temp_dir().join(format!("mte-relay-data-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let first = TestCertificate::localhost();
    write_certificate(&dir, &first);
    let upstream = named_upstream("behind tls").await;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let relay = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url())),
        ("TLS_CERT_FILE", cert.to_str().expect("utf-8")),
        ("TLS_KEY_FILE", key.to_str().expect("utf-8")),
    ]);

    // HTTP/2 by ALPN.
    let stream = connect(relay.addr(), &first.pem_path, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let answer = h2.send_request(request()).await.expect("h2 answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.into_body().collect().await.expect("body").to_bytes(),
        "behind tls"
    );

    // HTTP/1.1, on a connection kept open across the reload.
    let stream = connect(relay.addr(), &first.pem_path, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        peer_certificate(&stream),
        CertificateDer::from_pem_file(&first.pem_path)
            .expect("pem")
            .to_vec()
    );
    let (mut h1, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(connection);
    assert_eq!(
        h1.send_request(request())
            .await
            .expect("h1 answer")
            .status(),
        200
    );

    // A new certificate, then SIGHUP: new connections get it, the open one goes on.
    let second = TestCertificate::localhost();
    write_certificate(&dir, &second);
    signal(relay.pid(), "HUP");
    let expected = CertificateDer::from_pem_file(&second.pem_path)
        .expect("pem")
        .to_vec();
    within("the new certificate", async {
        loop {
            if let Ok(stream) = try_connect(relay.addr(), &second.pem_path, &[b"http/1.1"]).await
                && peer_certificate(&stream) == expected
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut answer = h1
        .send_request(request())
        .await
        .expect("the open connection goes on");
    assert_eq!(answer.status(), 200);
    let _ = answer.body_mut().collect().await;

    // Changed files alone are noticed too (checked every 2 s), without a signal.
    let third = TestCertificate::localhost();
    write_certificate(&dir, &third);
    let expected = CertificateDer::from_pem_file(&third.pem_path)
        .expect("pem")
        .to_vec();
    within("the certificate from the changed files", async {
        loop {
            // Until the reload, the relay's certificate is not the one trusted here.
            if let Ok(stream) = try_connect(relay.addr(), &third.pem_path, &[b"http/1.1"]).await
                && peer_certificate(&stream) == expected
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_certificate_or_half_a_pair_stops_startup() {
    let only_cert = run(
        &["serve"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", "a-tls-test-client-id-secret-0123456789"),
            ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ],
    );
    assert_eq!(only_cert.status.code(), Some(2));
    assert!(
        only_cert.stderr.contains("TLS_KEY_FILE"),
        "{}",
        only_cert.stderr
    );
    let missing = run(
        &["serve"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", "a-tls-test-client-id-secret-0123456789"),
            ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("TLS_KEY_FILE", "/nonexistent/key.pem"),
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
}
