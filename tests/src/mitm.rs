//! A man in the middle between a client and the relay, as an on-path attacker (or a
//! misbehaving proxy) would stand: it forwards every request to the relay and may
//! rewrite each response head on its way back, or drop the relay's answer and send one
//! of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http::response::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::upstream::{Upstream, full};

/// What the interceptor sends back instead of the relay's answer.
pub type Forged = http::Response<Bytes>;

/// A forwarding proxy on a loopback port; stops when dropped.
pub struct Interceptor {
    server: Upstream,
}

impl Interceptor {
    /// Forwards to the relay at `relay`, passing each response head through `rewrite`.
    pub async fn start<F>(relay: SocketAddr, rewrite: F) -> Interceptor
    where
        F: Fn(&mut Parts) + Send + Sync + 'static,
    {
        Interceptor::replacing(relay, move |parts| {
            rewrite(parts);
            None
        })
        .await
    }

    /// Forwards to the relay at `relay`; once the relay has answered (so the request
    /// reached it, and perhaps the upstream), `replace` sees the answer's head and may
    /// rewrite it, or return a forged response that the client gets instead (the
    /// genuine body is read and dropped).
    pub async fn replacing<F>(relay: SocketAddr, replace: F) -> Interceptor
    where
        F: Fn(&mut Parts) -> Option<Forged> + Send + Sync + 'static,
    {
        Interceptor::watching(relay, |_| {}, replace).await
    }

    /// Forwards to the relay at `relay` untouched, showing `observe` each request head
    /// first (a passive observer's view).
    pub async fn observing<O>(relay: SocketAddr, observe: O) -> Interceptor
    where
        O: Fn(&http::request::Parts) + Send + Sync + 'static,
    {
        Interceptor::watching(relay, observe, |_| None).await
    }

    async fn watching<O, F>(relay: SocketAddr, observe: O, replace: F) -> Interceptor
    where
        O: Fn(&http::request::Parts) + Send + Sync + 'static,
        F: Fn(&mut Parts) -> Option<Forged> + Send + Sync + 'static,
    {
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let (observe, replace) = (Arc::new(observe), Arc::new(replace));
        let server = Upstream::start(move |request: Request<Incoming>| {
            let (client, observe, replace) = (client.clone(), observe.clone(), replace.clone());
            async move {
                let (mut parts, body) = request.into_parts();
                observe(&parts);
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{relay}{target}")
                    .parse()
                    .expect("relay URI");
                let response = client
                    .request(Request::from_parts(parts, body))
                    .await
                    .expect("the relay answers the interceptor");
                let (mut parts, body) = response.into_parts();
                match replace(&mut parts) {
                    None => http::Response::from_parts(parts, body.map_err(Into::into).boxed()),
                    Some(forged) => {
                        // Let the relay finish its answer, so the exchange completed.
                        let _ = body.collect().await;
                        forged.map(full)
                    }
                }
            }
        })
        .await;
        Interceptor { server }
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// A registry error as the relay would send it in the clear: the status, the token in
/// `x-mte-relay-error`, `Retry-After: 0`, and a JSON body.
pub fn forged_error(status: u16, token: &str) -> Forged {
    let body = serde_json::json!({ "error": token, "message": "forged" }).to_string();
    http::Response::builder()
        .status(status)
        .header("x-mte-relay-error", token)
        .header("retry-after", "0")
        .header("content-type", "application/json")
        .body(Bytes::from(body))
        .expect("forged response")
}

/// How a [`PairingImpostor`] answers a pairing request in the relay's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impersonation {
    /// Its own key exchange, unsigned: against a client without a pin, it is the relay.
    Unsigned,
    /// Its own key exchange under the relay's genuine signature, which it obtains by
    /// passing the client's offers on to the relay.
    GenuineSignature,
    /// Its own identity key: it announces that key in capabilities and signs with it.
    OwnIdentity,
}

/// What a [`PairingImpostor`] achieved.
#[derive(Debug, Default)]
pub struct Intercepted {
    /// Pairing answers it sent in the relay's place.
    pub pairings: usize,
    /// Request targets (path and query) it decrypted from the client's requests.
    pub read: Vec<String>,
}

/// An active man in the middle that pairs with the client itself, as a TLS-terminating
/// proxy could: it passes capabilities on (or announces its own identity key), answers
/// `POST /api/mte-pair` with its own X-Wing encapsulation to the client's keys, and
/// then opens the client's requests with the pair keys it holds and answers them
/// itself. Everything else goes to the relay unchanged.
pub struct PairingImpostor {
    server: Upstream,
    intercepted: Arc<std::sync::Mutex<Intercepted>>,
}

type PairsHeld = Arc<
    std::sync::Mutex<
        std::collections::HashMap<
            mte_relay_protocol::ids::PairId,
            mte_relay_protocol::keys::PairKeys,
        >,
    >,
>;

impl PairingImpostor {
    /// Stands between clients and the relay at `relay`.
    pub async fn start(relay: SocketAddr, how: Impersonation) -> PairingImpostor {
        use mte_relay_protocol::identity::RelayIdentity;
        use mte_relay_protocol::secret::Secret32;

        let client: Client<_, crate::upstream::TestBody> =
            Client::builder(TokioExecutor::new()).build_http();
        let intercepted: Arc<std::sync::Mutex<Intercepted>> = Arc::default();
        let held: PairsHeld = Arc::default();
        let own_identity = Arc::new(RelayIdentity::from_key(&Secret32::from_bytes([0xEE; 32])));
        let record = intercepted.clone();
        let server = Upstream::start(move |request: Request<Incoming>| {
            let (client, record, held, own_identity) = (
                client.clone(),
                record.clone(),
                held.clone(),
                own_identity.clone(),
            );
            async move {
                let (mut parts, body) = request.into_parts();
                let body = body.collect().await.expect("request body").to_bytes();
                let domain = parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|host| host.to_str().ok())
                    .and_then(|host| host.rsplit_once(':').map_or(Some(host), |(h, _)| Some(h)))
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if let Some(answer) = open_with_held_pair(&parts, &domain, &held, &record) {
                    return answer;
                }
                let target = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                parts.uri = format!("http://{relay}{target}")
                    .parse()
                    .expect("relay URI");
                let forward = |parts: http::request::Parts, body: Bytes| {
                    let client = client.clone();
                    async move {
                        let response = client
                            .request(Request::from_parts(parts, full(body)))
                            .await
                            .expect("the relay answers the impostor");
                        let (parts, body) = response.into_parts();
                        let body = body.collect().await.expect("relay body").to_bytes();
                        (parts, body)
                    }
                };
                let path = parts.uri.path().to_owned();
                if path == mte_relay_protocol::pairing::PAIR_ROUTE {
                    let signature = match how {
                        Impersonation::GenuineSignature => {
                            let (_, genuine) = forward(parts.clone(), body.clone()).await;
                            mte_relay_protocol::pairing::PairingResponse::parse(&genuine)
                                .ok()
                                .and_then(|genuine| genuine.signature)
                        }
                        _ => None,
                    };
                    let identity = (how == Impersonation::OwnIdentity).then_some(&*own_identity);
                    let answer = answer_pairing(&body, &domain, identity, signature, &held);
                    record.lock().expect("lock").pairings += 1;
                    return http::Response::new(full(answer));
                }
                let (mut response, mut body) = forward(parts, body).await;
                if path == mte_relay_protocol::capabilities::CAPABILITIES_ROUTE
                    && how == Impersonation::OwnIdentity
                {
                    let mut document: serde_json::Value =
                        serde_json::from_slice(&body).expect("capabilities JSON");
                    document["identity_key"] = own_identity.public_key().to_text().into();
                    body = Bytes::from(document.to_string());
                    response.headers.remove(http::header::CONTENT_LENGTH);
                }
                http::Response::from_parts(response, full(body))
            }
        })
        .await;
        PairingImpostor {
            server,
            intercepted,
        }
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// What it achieved so far.
    pub fn intercepted(&self) -> std::sync::MutexGuard<'_, Intercepted> {
        self.intercepted.lock().expect("lock")
    }
}

/// The impostor's pairing answer to a client's pairing document.
fn answer_pairing(
    document: &[u8],
    domain: &str,
    identity: Option<&mte_relay_protocol::identity::RelayIdentity>,
    signature: Option<String>,
    held: &PairsHeld,
) -> String {
    use mte_relay_protocol::pairing::{
        PairingRequest, PairingResponse, PairingScope, accept_offer,
    };
    use mte_relay_protocol::rng::os_rng;

    let request = PairingRequest::parse(document, 64).expect("the client's pairing document");
    let scope = PairingScope {
        domain,
        client_id: &request.client_id,
        psk: None,
    };
    let mut rng = os_rng();
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let mut answers = Vec::new();
    let mut hashes = Vec::new();
    for offer in &request.pairs {
        let accepted =
            accept_offer(scope, offer, expires_at, &mut rng).expect("the client's offer");
        held.lock()
            .expect("lock")
            .insert(accepted.pair_id, accepted.keys);
        answers.push(accepted.answer);
        hashes.push(accepted.transcript_hash);
    }
    let signature = match identity {
        Some(identity) => Some(
            identity
                .sign_pairing(scope, &hashes, &answers, &mut rng)
                .expect("signs"),
        ),
        None => signature,
    };
    serde_json::to_string(&PairingResponse {
        pairs: answers,
        signature,
    })
    .expect("JSON")
}

/// Opens a request sealed under a pair the impostor holds, records its target and
/// answers it with an empty sealed 200; `None` when the request is not such one.
fn open_with_held_pair(
    parts: &http::request::Parts,
    domain: &str,
    held: &PairsHeld,
    record: &std::sync::Mutex<Intercepted>,
) -> Option<http::Response<crate::upstream::TestBody>> {
    use mte_relay_protocol::head::ResponseHead;
    use mte_relay_protocol::header::{HEAD_HEADER, RELAY_HEADER, RelayHeader};
    use mte_relay_protocol::message::RequestContext;

    let header = RelayHeader::parse(parts.headers.get(RELAY_HEADER)?.as_bytes()).ok()?;
    let (secret, _) = {
        let held = held.lock().expect("lock");
        held.get(&header.pair_id)?
            .message_secret(header.mode, header.seq)
            .ok()?
    };
    let context = RequestContext::new(secret, &header, parts.method.as_str(), domain);
    let head = context
        .open_head(parts.headers.get(HEAD_HEADER)?.as_bytes())
        .ok()?;
    record.lock().expect("lock").read.push(head.path.clone());
    let sealer = context.response_sealer(&mut mte_relay_protocol::rng::os_rng(), 200, false);
    let sealed = sealer
        .seal_head(&ResponseHead { headers: vec![] })
        .expect("seals");
    Some(
        http::Response::builder()
            .status(200)
            .header(HEAD_HEADER, sealed)
            .body(full(Bytes::new()))
            .expect("response"),
    )
}

/// A TCP forwarder that records every byte on the wire, both ways: what an observer
/// between two relays sees. Stops when dropped.
pub struct WireTap {
    addr: SocketAddr,
    recorded: Arc<std::sync::Mutex<Vec<u8>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl WireTap {
    /// Forwards every connection to `target`, recording both directions.
    pub async fn start(target: SocketAddr) -> WireTap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the wire tap");
        let addr = listener.local_addr().expect("tap address");
        let recorded: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (record, count) = (recorded.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (inbound_read, inbound_write) = inbound.into_split();
                    let (outbound_read, outbound_write) = outbound.into_split();
                    tokio::join!(
                        copy_recording(inbound_read, outbound_write, record.clone()),
                        copy_recording(outbound_read, inbound_write, record),
                    );
                });
            }
        });
        WireTap {
            addr,
            recorded,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every byte that crossed so far, both directions interleaved by chunk.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().expect("lock").clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// True when `needle` appears anywhere in what crossed.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let recorded = self.recorded.lock().expect("lock");
        !needle.is_empty()
            && recorded
                .windows(needle.len())
                .any(|window| window == needle)
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn copy_recording(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<std::sync::Mutex<Vec<u8>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        record
            .lock()
            .expect("lock")
            .extend_from_slice(&buffer[..read]);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
