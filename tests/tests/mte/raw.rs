//! A raw protocol client for the tests, built directly on `mte-relay-protocol`.
//!
//! Unlike the real client, it exposes every byte it sends: the relay header, the sealed
//! head block and each sealed body record are plain fields of [`Sealed`], so a test can
//! alter exactly one of them (flip a bit in the path inside the head block, change the
//! sequence number, drop the final record, ...) and see what the relay answers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mte_relay_protocol::capabilities::CAPABILITIES_ROUTE;
use mte_relay_protocol::encoding::{b64_decode, b64_encode};
use mte_relay_protocol::head::{HeaderField, RequestHead, ResponseHead};
use mte_relay_protocol::header::{
    CLIENT_ID_HEADER, Flags, HEAD_HEADER, Mode, RELAY_HEADER, RelayHeader,
};
use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::keys::PairKeys;
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::pairing::{
    PAIR_ROUTE, PairingRequest, PairingResponse, PairingScope, PendingPair,
};
use mte_relay_protocol::registry::ERROR_HEADER;
use mte_relay_protocol::rng::os_rng;
use mte_relay_tests::client::{self, body_bytes};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{BoxError, TestBody, full};
use mte_relay_tests::within;
use tokio::sync::mpsc;

/// Where requests go: the relay's socket, and the `Host` they carry.
#[derive(Clone, Debug)]
pub struct RawClient {
    pub addr: SocketAddr,
    pub host: String,
    /// The local address to connect from (loopback), when not the default.
    pub from: Option<std::net::IpAddr>,
}

impl RawClient {
    /// A client of `relay` addressing it as `127.0.0.1:PORT`.
    pub fn new(relay: &Relay) -> RawClient {
        RawClient {
            addr: relay.addr(),
            host: relay.addr().to_string(),
            from: None,
        }
    }

    /// A client of `relay` sending `Host: <name>:PORT`.
    pub fn for_host(relay: &Relay, name: &str) -> RawClient {
        RawClient {
            addr: relay.addr(),
            host: format!("{name}:{}", relay.addr().port()),
            from: None,
        }
    }

    /// The protocol domain: the host, lowercase, without port.
    pub fn domain(&self) -> String {
        domain_of(&self.host)
    }

    /// Sends a plain request with `Host` preset.
    pub async fn plain(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut builder = client::request(method, &self.host, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(full(body)).expect("plain request");
        Answer::plain(client::send_from::<TestBody>(self.from, self.addr, request).await).await
    }

    /// `GET /api/mte-relay`: a fresh client id.
    pub async fn client_id(&self) -> String {
        let answer = self.plain("GET", CAPABILITIES_ROUTE, &[], Vec::new()).await;
        assert_eq!(answer.status, 200, "capabilities: {answer:?}");
        answer
            .header(CLIENT_ID_HEADER)
            .expect("capabilities carry a client id")
    }

    /// `POST /api/mte-pair` with an arbitrary body.
    pub async fn post_pairing(&self, body: Vec<u8>) -> Answer {
        self.post_pairing_with(body, &[]).await
    }

    /// `POST /api/mte-pair` with an arbitrary body and more headers.
    pub async fn post_pairing_with(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.plain("POST", PAIR_ROUTE, &all, body).await
    }

    /// Pairs `count` pairs for `client_id` and completes them.
    pub async fn pair(&self, client_id: &str, count: usize) -> Vec<RawPair> {
        let (pending, body) = pairing_document(client_id, count);
        let answer = self.post_pairing(body).await;
        assert_eq!(answer.status, 200, "pairing: {answer:?}");
        self.complete(client_id, pending, &answer.body)
    }

    /// Completes `pending` with the relay's pairing response `response`.
    pub fn complete(
        &self,
        client_id: &str,
        pending: Vec<PendingPair>,
        response: &[u8],
    ) -> Vec<RawPair> {
        let response = PairingResponse::parse(response).expect("pairing response parses");
        assert_eq!(response.pairs.len(), pending.len());
        let domain = self.domain();
        let scope = PairingScope {
            domain: &domain,
            client_id,
            psk: None,
        };
        pending
            .into_iter()
            .zip(&response.pairs)
            .map(|(pending, answer)| {
                let id = pending.pair_id();
                let keys = pending.complete(scope, answer).expect("pairing completes");
                RawPair { id, keys }
            })
            .collect()
    }

    /// A session of the pairs `pending` that the relay answered with `response`.
    pub fn session_from(
        &self,
        client_id: String,
        pending: Vec<PendingPair>,
        response: &[u8],
    ) -> Session {
        let paired = self.complete(&client_id, pending, response);
        Session {
            client: self.clone(),
            client_id,
            next_seq: vec![0; paired.len()],
            pairs: paired,
        }
    }

    /// A client id and `pairs` fresh pairs for it.
    pub async fn session(&self, pairs: usize) -> Session {
        let client_id = self.client_id().await;
        let paired = self.pair(&client_id, pairs).await;
        Session {
            client: self.clone(),
            client_id,
            next_seq: vec![0; paired.len()],
            pairs: paired,
        }
    }
}

/// A pairing document of `offers` fresh offers for `client_id`, with the pending
/// pairs that complete them.
pub fn pairing_document(client_id: &str, offers: usize) -> (Vec<PendingPair>, Vec<u8>) {
    let mut rng = os_rng();
    let pending: Vec<PendingPair> = (0..offers)
        .map(|_| PendingPair::generate(&mut rng))
        .collect();
    let document = PairingRequest {
        client_id: client_id.to_owned(),
        pairs: pending.iter().map(PendingPair::offer).collect(),
    };
    let body = serde_json::to_vec(&document).expect("pairing JSON");
    (pending, body)
}

/// The protocol domain of a `Host` value.
pub fn domain_of(host: &str) -> String {
    host.rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .to_ascii_lowercase()
}

/// One completed pair: its id and keys.
pub struct RawPair {
    pub id: PairId,
    pub keys: PairKeys,
}

/// A client id with its pairs, numbering each pair's requests 0, 1, 2, ...
pub struct Session {
    pub client: RawClient,
    pub client_id: String,
    pub pairs: Vec<RawPair>,
    next_seq: Vec<u64>,
}

impl Session {
    /// Seals `spec` on pair `pair` with that pair's next sequence number.
    pub fn seal(&mut self, pair: usize, spec: &Spec) -> Sealed {
        let seq = self.take_seq(pair);
        self.seal_at(pair, seq, spec)
    }

    /// Reserves pair `pair`'s next sequence number.
    pub fn take_seq(&mut self, pair: usize) -> u64 {
        let seq = self.next_seq[pair];
        self.next_seq[pair] += 1;
        seq
    }

    /// Seals `spec` on pair `pair` with sequence number `seq`.
    pub fn seal_at(&self, pair: usize, seq: u64, spec: &Spec) -> Sealed {
        let pair = &self.pairs[pair];
        let header = RelayHeader {
            mode: spec.mode,
            flags: Flags::with_body(spec.body.is_some()),
            seq,
            pair_id: pair.id,
            client_id: self.client_id.clone(),
        };
        let (secret, _) = pair
            .keys
            .message_secret(spec.mode, seq)
            .expect("message secret");
        let domain = self.client.domain();
        let context = RequestContext::new(secret, &header, &spec.method, &domain);
        let head = RequestHead {
            token: spec
                .token
                .unwrap_or_else(|| ResendToken::random(&mut os_rng())),
            not_after: spec.not_after,
            path: spec.path.clone(),
            headers: spec
                .headers
                .iter()
                .map(|(name, value)| HeaderField::new(name.clone(), value.clone()))
                .collect(),
        };
        let head_value = context.seal_head(&head).expect("head seals");

        // Plaintext offsets inside the head block (AES-GCM keeps byte positions).
        let pad = if spec.mode == Mode::Mte { 4 } else { 0 };
        // The token and `not_after` come first, then the path's length.
        let path_offset = pad + 16 + 8 + 2;
        let mut header_offsets = Vec::new();
        let mut at = path_offset + spec.path.len() + 2;
        for (name, value) in &spec.headers {
            at += 2 + name.len() + 2;
            header_offsets.push((name.clone(), at));
            at += value.len();
        }

        let mut records = Vec::new();
        if let Some(body) = &spec.body {
            let mut encoder = context.body_encoder();
            for piece in body.chunks(spec.record_size.max(1)) {
                let mut out = Vec::new();
                encoder.push(piece, &mut out).expect("body push");
                encoder.flush(&mut out).expect("body flush");
                if !out.is_empty() {
                    records.push(out);
                }
            }
            let mut out = Vec::new();
            encoder.finish(&mut out).expect("body finish");
            records.push(out);
        }

        Sealed {
            method: spec.method.clone(),
            host: self.client.host.clone(),
            header: header.clone(),
            relay_header: Some(header.format()),
            head: Some(head_value),
            records,
            extra_headers: Vec::new(),
            path_offset,
            header_offsets,
            context,
        }
    }
}

/// What to send, before sealing.
#[derive(Clone, Debug)]
pub struct Spec {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    pub mode: Mode,
    /// Plaintext bytes per body record (the last piece may be shorter).
    pub record_size: usize,
    /// The resend token of every seal: `None` draws a fresh one per seal (each seal is
    /// a new request); [`Spec::copies`] fixes one (each seal is a copy of one request).
    pub token: Option<ResendToken>,
    /// Unix time after which the relay must not forward the request.
    pub not_after: u64,
}

/// Our Unix time in seconds (the relay runs on this machine's clock).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

impl Spec {
    pub fn new(method: &str, path: &str) -> Spec {
        Spec {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            mode: Mode::Mke,
            record_size: 64 * 1024,
            token: None,
            not_after: unix_now() + 30,
        }
    }

    pub fn get(path: &str) -> Spec {
        Spec::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Spec {
        Spec::new("POST", path).body(body)
    }

    /// Every seal of this spec is a copy of one request: one resend token for all.
    pub fn copies(mut self) -> Spec {
        self.token = Some(ResendToken::random(&mut os_rng()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Spec {
        self.body = Some(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Spec {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn mode(mut self, mode: Mode) -> Spec {
        self.mode = mode;
        self
    }

    pub fn records_of(mut self, size: usize) -> Spec {
        self.record_size = size;
        self
    }
}

/// A sealed request, every part of which a test may alter before sending.
pub struct Sealed {
    pub method: String,
    pub host: String,
    /// The relay header as sealed (what the AAD was computed from).
    pub header: RelayHeader,
    /// The `x-mte-relay` value sent; `None` omits the header.
    pub relay_header: Option<String>,
    /// The `x-mte-relay-head` value sent; `None` omits the header.
    pub head: Option<String>,
    /// The sealed body records, sent back to back.
    pub records: Vec<Vec<u8>>,
    /// More headers for the outer request.
    pub extra_headers: Vec<(String, String)>,
    path_offset: usize,
    header_offsets: Vec<(String, usize)>,
    context: RequestContext,
}

impl Sealed {
    /// Rewrites the relay header from `header` after `change` (the AAD stays as sealed).
    pub fn with_header(mut self, change: impl FnOnce(&mut RelayHeader)) -> Sealed {
        let mut header = self.header.clone();
        change(&mut header);
        self.relay_header = Some(header.format());
        self
    }

    /// Flips the lowest bit of byte `index` of the decoded head block.
    pub fn flip_head_byte(mut self, index: usize) -> Sealed {
        let head = self.head.as_ref().expect("head present");
        let mut block = b64_decode(head.as_bytes()).expect("head is base64url");
        assert!(index < block.len(), "head block has {} bytes", block.len());
        block[index] ^= 0x01;
        self.head = Some(b64_encode(&block));
        self
    }

    /// Length of the decoded head block (ciphertext and tag).
    pub fn head_block_len(&self) -> usize {
        let head = self.head.as_ref().expect("head present");
        b64_decode(head.as_bytes())
            .expect("head is base64url")
            .len()
    }

    /// Index in the head block of byte `k` of the path.
    pub fn path_byte(&self, k: usize) -> usize {
        self.path_offset + k
    }

    /// Index in the head block of byte `k` of the value of header `name`.
    pub fn header_value_byte(&self, name: &str, k: usize) -> usize {
        let (_, at) = self
            .header_offsets
            .iter()
            .find(|(n, _)| n == name)
            .expect("header in the head");
        at + k
    }

    /// Flips the lowest bit of byte `index` of body record `record` (indexes 0..4 are
    /// the record header).
    pub fn flip_record_byte(mut self, record: usize, index: usize) -> Sealed {
        self.records[record][index] ^= 0x01;
        self
    }

    /// The body bytes as sent.
    pub fn body_bytes(&self) -> Vec<u8> {
        self.records.concat()
    }

    fn builder(&self) -> http::request::Builder {
        let mut builder = client::request(&self.method, &self.host, "/");
        if let Some(value) = &self.relay_header {
            builder = builder.header(RELAY_HEADER, value.as_str());
        }
        if let Some(value) = &self.head {
            builder = builder.header(HEAD_HEADER, value.as_str());
        }
        if !self.records.is_empty() {
            builder = builder.header("content-type", "application/octet-stream");
        }
        for (name, value) in &self.extra_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
    }

    /// Sends the request with its whole body, and opens the answer.
    pub async fn send(&self, addr: SocketAddr) -> Answer {
        let request = self
            .builder()
            .body(full(self.body_bytes()))
            .expect("request");
        let response = client::send::<TestBody>(addr, request).await;
        self.open(response).await
    }

    /// Starts the request with a body fed through the returned sender; the answer
    /// arrives on the returned task once the relay responds.
    pub fn send_streaming(
        &self,
        addr: SocketAddr,
    ) -> (
        mpsc::UnboundedSender<Bytes>,
        tokio::task::JoinHandle<hyper::Response<Incoming>>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let request = self
            .builder()
            .body(ChannelBody { receiver })
            .expect("request");
        let task = tokio::spawn(client::send::<ChannelBody>(addr, request));
        (sender, task)
    }

    /// Opens a response to this request: a registry error or a sealed response.
    pub async fn open(&self, response: hyper::Response<Incoming>) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let Some(head_value) = headers.get(HEAD_HEADER).cloned() else {
            return Answer::plain(response).await;
        };
        let (context, head) = self
            .context
            .open_response(status, head_value.as_bytes())
            .expect("response head opens");
        let raw = within("a sealed response body", response.into_body().collect())
            .await
            .map(|collected| collected.to_bytes());
        let wire = raw.as_ref().map(|raw| raw.to_vec()).unwrap_or_default();
        let body = match raw {
            Err(error) => Err(format!("body failed while streaming: {error}")),
            Ok(raw) if !context.has_body() => {
                assert!(raw.is_empty(), "a response without HAS_BODY has no body");
                Ok(Vec::new())
            }
            Ok(raw) => {
                let mut decoder = context.body_decoder(None);
                let mut plain = Vec::new();
                decoder
                    .push(&raw, &mut plain)
                    .and_then(|()| decoder.finish())
                    .map(|()| plain)
                    .map_err(|error| format!("body does not open: {error}"))
            }
        };
        Answer {
            status,
            headers,
            sealed: Some(head),
            body: body.clone().unwrap_or_default(),
            body_result: body.map(|_| ()),
            wire,
        }
    }
}

/// The relay's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The outer (clear) headers.
    pub headers: http::HeaderMap,
    /// The opened response head, when the answer was sealed.
    pub sealed: Option<ResponseHead>,
    /// The body: decrypted when sealed, as received otherwise.
    pub body: Vec<u8>,
    /// Whether the body arrived (and, when sealed, opened) completely.
    pub body_result: Result<(), String>,
    /// The body as received, before opening (empty for a plain answer).
    pub wire: Vec<u8>,
}

/// The plaintext length of every record of a well-formed body stream.
pub fn record_plaintext_lengths(wire: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut at = 0;
    while at + 4 <= wire.len() {
        let header = u32::from_be_bytes(wire[at..at + 4].try_into().expect("4 bytes"));
        let sealed = (header & 0x7fff_ffff) as usize;
        lengths.push(sealed - 16);
        at += 4 + sealed;
    }
    assert_eq!(at, wire.len(), "records tile the stream");
    lengths
}

/// True when every record of `wire` has a padding bucket's size (256 · 2^k, at most
/// 65536 bytes of plaintext): what a padded stream shows.
pub fn padded_records(wire: &[u8]) -> bool {
    record_plaintext_lengths(wire)
        .iter()
        .all(|&len| len.is_power_of_two() && (256..=65_536).contains(&len))
}

impl Answer {
    async fn plain(response: hyper::Response<Incoming>) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = body_bytes(response).await.to_vec();
        Answer {
            status,
            headers,
            sealed: None,
            body,
            body_result: Ok(()),
            wire: Vec::new(),
        }
    }

    /// An outer header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// A header of the opened response head.
    pub fn sealed_header(&self, name: &str) -> Option<String> {
        self.sealed.as_ref().and_then(|head| {
            head.headers
                .iter()
                .find(|field| field.name == name)
                .map(|field| String::from_utf8_lossy(&field.value).into_owned())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a registry error: status, `x-mte-relay-error` token and JSON body.
    #[track_caller]
    pub fn assert_registry(&self, status: u16, token: &str, what: &str) {
        assert_eq!(
            (self.status, self.header(ERROR_HEADER).as_deref()),
            (status, Some(token)),
            "{what}: {self:?} {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(self.sealed.is_none(), "{what}: registry errors are plain");
        let json = self.json();
        assert_eq!(json["error"], token, "{what}: JSON body {json}");
    }

    /// Asserts a sealed registry error, raised after the request's head opened: the
    /// status, the token inside the sealed head (and repeated in the clear), and the
    /// JSON explanation in the sealed body.
    #[track_caller]
    pub fn assert_sealed_registry(&self, status: u16, token: &str, what: &str) {
        assert_eq!(
            (self.status, self.sealed_header(ERROR_HEADER).as_deref()),
            (status, Some(token)),
            "{what}: {self:?} {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header(ERROR_HEADER).as_deref(),
            Some(token),
            "{what}: the token is repeated in the clear"
        );
        assert_eq!(self.body_result, Ok(()), "{what}: the body opens");
        let json = self.json();
        assert_eq!(json["error"], token, "{what}: JSON body {json}");
    }

    /// Asserts a sealed success that opened completely.
    #[track_caller]
    pub fn assert_sealed_ok(&self, what: &str) {
        assert_eq!(
            self.status,
            200,
            "{what}: {self:?} {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(self.sealed.is_some(), "{what}: the answer is sealed");
        assert_eq!(self.body_result, Ok(()), "{what}: the body opens");
    }
}

/// A request body fed through a channel, so a test controls when each piece leaves.
pub struct ChannelBody {
    receiver: mpsc::UnboundedReceiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.receiver
            .poll_recv(cx)
            .map(|piece| piece.map(|bytes| Ok(Frame::data(bytes))))
    }
}
