//! A test fixture of the client: a small HTTP server that answers with the relay-side
//! functions of `mte-relay-protocol` (client ids, `accept_offer`, `RequestContext`,
//! the replay window), so the client can be exercised over real sockets with scripted
//! faults. It is NOT the relay and not a stand-in for it: it forwards nothing, keeps
//! everything in memory, and buffers what is convenient for a test. End-to-end tests
//! against the real relay binary belong to the workspace's `tests/` crate.

#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mte_relay_protocol::capabilities::{Capabilities, Limits};
use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::head::{HeaderField, ResponseHead};
use mte_relay_protocol::header::{HEAD_HEADER, Mode, RELAY_HEADER, RelayHeader};
use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::keys::PairKeys;
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::pairing::{PairingRequest, PairingResponse, PairingScope, accept_offer};
use mte_relay_protocol::replay::ReplayWindow;
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::secret::SecretBytes;
use mte_relay_protocol::{ERROR_HEADER, ErrorBody, ErrorReason};
use tokio::net::TcpListener;

type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// A scripted misbehaviour, applied to the next MTE request (or pairing).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this registry error, without looking at the request.
    Registry {
        reason: ErrorReason,
        retry_after: Option<&'static str>,
    },
    /// Forget every pair first, as a restarted relay would (the request then meets
    /// `pair-unknown` for real).
    ForgetPairs,
    /// Mint ids under a new secret and stop accepting the old ones (the request then
    /// meets `client-id-invalid` for real).
    RotateClientIdSecret,
    /// Open and record the request, then answer this registry error in the clear, as
    /// an error forged on the path over a request that reached the relay.
    RefuseAfterOpening(ErrorReason),
    /// Close the connection without answering, as a relay that went away after the
    /// request arrived.
    HangUp,
}

/// An MTE request the fixture accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub pair_id: PairId,
    pub seq: u64,
    pub mode: Mode,
    pub method: String,
    pub path: String,
    pub token: ResendToken,
    pub not_after: u64,
}

struct StoredPair {
    client_id: String,
    keys: PairKeys,
    window: ReplayWindow,
}

pub struct Options {
    pub psk: Option<Vec<u8>>,
    pub version: &'static str,
    pub max_pairs_per_batch: u32,
    /// Announced in the capabilities; 0 for a relay that keeps no resend tokens.
    pub resend_window_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            psk: None,
            version: "1.0",
            max_pairs_per_batch: 32,
            resend_window_secs: 60,
        }
    }
}

pub struct State {
    options: Options,
    authority: Mutex<ClientIdAuthority>,
    secret_generation: AtomicUsize,
    pairs: Mutex<HashMap<PairId, StoredPair>>,
    mte_faults: Mutex<VecDeque<Fault>>,
    pairing_faults: Mutex<VecDeque<Fault>>,
    accepted: Mutex<Vec<Accepted>>,
    /// Registry errors answered, by token.
    refusals: Mutex<Vec<ErrorReason>>,
    /// Pairs named by requests that a scripted registry error refused.
    faulted_pairs: Mutex<Vec<PairId>>,
    pub capability_requests: AtomicUsize,
    pub pairing_requests: AtomicUsize,
    pub mte_requests: AtomicUsize,
}

impl State {
    pub fn push_fault(&self, fault: Fault) {
        self.mte_faults.lock().expect("lock").push_back(fault);
    }

    /// Pops a scripted hang-up when it is next in line.
    fn take_hang_up(&self) -> bool {
        let mut faults = self.mte_faults.lock().expect("lock");
        let next_is_hang_up = matches!(faults.front(), Some(Fault::HangUp));
        if next_is_hang_up {
            faults.pop_front();
        }
        next_is_hang_up
    }

    pub fn push_pairing_fault(&self, fault: Fault) {
        self.pairing_faults.lock().expect("lock").push_back(fault);
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().expect("lock").clone()
    }

    pub fn refusals(&self) -> Vec<ErrorReason> {
        self.refusals.lock().expect("lock").clone()
    }

    pub fn faulted_pairs(&self) -> Vec<PairId> {
        self.faulted_pairs.lock().expect("lock").clone()
    }

    pub fn live_pairs(&self) -> usize {
        self.pairs.lock().expect("lock").len()
    }

    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

pub struct Fixture {
    pub url: String,
    pub state: Arc<State>,
}

pub async fn start(options: Options) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let state = Arc::new(State {
        options,
        authority: Mutex::new(authority(0)),
        secret_generation: AtomicUsize::new(0),
        pairs: Mutex::new(HashMap::new()),
        mte_faults: Mutex::new(VecDeque::new()),
        pairing_faults: Mutex::new(VecDeque::new()),
        accepted: Mutex::new(Vec::new()),
        refusals: Mutex::new(Vec::new()),
        faulted_pairs: Mutex::new(Vec::new()),
        capability_requests: AtomicUsize::new(0),
        pairing_requests: AtomicUsize::new(0),
        mte_requests: AtomicUsize::new(0),
    });
    let serving = Arc::clone(&state);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = Arc::clone(&serving);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let state = Arc::clone(&state);
                    // An error from the service makes hyper drop the connection
                    // without a response.
                    async move {
                        handle(state, request)
                            .await
                            .ok_or_else(|| std::io::Error::other("hanging up"))
                    }
                });
                // Serves HTTP/1.1 and h2c with prior knowledge alike.
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Fixture {
        url: format!("http://{address}"),
        state,
    }
}

fn authority(generation: usize) -> ClientIdAuthority {
    let secret = vec![u8::try_from(generation % 251).expect("small") + 1; 32];
    ClientIdAuthority::new(SecretBytes::new(secret), vec![], 3_600)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The host of the `Host` header, lowercase, without port: the protocol's domain.
fn domain_of(request: &Request<Incoming>) -> String {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .unwrap_or_default();
    host.rsplit_once(':')
        .map_or(host, |(name, _port)| name)
        .to_ascii_lowercase()
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed_unsync()
}

fn refuse(state: &State, reason: ErrorReason, retry_after: Option<&str>) -> Response<ResponseBody> {
    state.refusals.lock().expect("lock").push(reason);
    let body =
        serde_json::to_vec(&ErrorBody::new(reason, "refused by the test fixture")).expect("json");
    let mut response = Response::builder()
        .status(reason.status())
        .header(ERROR_HEADER, reason.token())
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(delay) = retry_after {
        response = response.header(http::header::RETRY_AFTER, delay);
    }
    response.body(full(body)).expect("response")
}

/// The fixture's answer, or `None` to hang up.
async fn handle(state: Arc<State>, request: Request<Incoming>) -> Option<Response<ResponseBody>> {
    Some(match (request.method(), request.uri().path()) {
        (&Method::GET, "/api/mte-relay") => capabilities(&state, &request),
        (&Method::POST, "/api/mte-pair") => pairing(&state, request).await,
        _ if request.headers().contains_key(RELAY_HEADER) => {
            if state.take_hang_up() {
                state.mte_requests.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            mte(&state, request).await
        }
        _ => refuse(&state, ErrorReason::RelayHeaderMissing, None),
    })
}

fn capabilities(state: &State, request: &Request<Incoming>) -> Response<ResponseBody> {
    state.capability_requests.fetch_add(1, Ordering::SeqCst);
    let domain = domain_of(request);
    let authority = state.authority.lock().expect("lock");
    let client_id = authority.mint(&domain, now(), &mut os_rng());
    let mut document = Capabilities::new(
        Limits::new(state.options.max_pairs_per_batch, 64, 86_400, None),
        client_id,
        now() + authority.max_age_secs(),
    );
    document.version = state.options.version.into();
    document.limits.resend_window_secs = state.options.resend_window_secs;
    document.server_time = now();
    Response::new(full(serde_json::to_vec(&document).expect("json")))
}

async fn pairing(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    state.pairing_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = state.pairing_faults.lock().expect("lock").pop_front() {
        apply_side_effect(state, &fault);
        if let Fault::Registry {
            reason,
            retry_after,
        } = fault
        {
            return refuse(state, reason, retry_after);
        }
    }
    let domain = domain_of(&request);
    let body = request
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let parsed = match PairingRequest::parse(&body, state.options.max_pairs_per_batch as usize) {
        Ok(parsed) => parsed,
        Err(error) => return refuse(state, error.reason(), None),
    };
    let verified =
        state
            .authority
            .lock()
            .expect("lock")
            .verify(&domain, parsed.client_id.as_bytes(), now());
    if let Err(error) = verified {
        return refuse(state, error.reason(), None);
    }
    let scope = PairingScope {
        domain: &domain,
        client_id: &parsed.client_id,
        psk: state.options.psk.as_deref(),
    };
    let mut answers = Vec::new();
    for offer in &parsed.pairs {
        let accepted = match accept_offer(scope, offer, now() + 86_400, &mut os_rng()) {
            Ok(accepted) => accepted,
            Err(error) => return refuse(state, error.reason(), None),
        };
        state.pairs.lock().expect("lock").insert(
            accepted.pair_id,
            StoredPair {
                client_id: parsed.client_id.clone(),
                keys: accepted.keys,
                window: ReplayWindow::new(),
            },
        );
        answers.push(accepted.answer);
    }
    let document = PairingResponse {
        pairs: answers,
        signature: None,
    };
    Response::new(full(serde_json::to_vec(&document).expect("json")))
}

fn apply_side_effect(state: &State, fault: &Fault) {
    match fault {
        Fault::ForgetPairs => state.pairs.lock().expect("lock").clear(),
        Fault::RotateClientIdSecret => {
            let generation = state.secret_generation.fetch_add(1, Ordering::SeqCst) + 1;
            *state.authority.lock().expect("lock") = authority(generation);
        }
        Fault::Registry { .. } | Fault::RefuseAfterOpening(_) | Fault::HangUp => {}
    }
}

/// The relay side of one MTE request, in the order the protocol prescribes: header,
/// client id, pair, window check, head, then window record.
async fn mte(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    state.mte_requests.fetch_add(1, Ordering::SeqCst);
    let fault = state.mte_faults.lock().expect("lock").pop_front();
    if let Some(fault) = &fault {
        apply_side_effect(state, fault);
        if let Fault::Registry {
            reason,
            retry_after,
        } = fault
        {
            if let Ok(header) = RelayHeader::parse(request.headers()[RELAY_HEADER].as_bytes()) {
                state
                    .faulted_pairs
                    .lock()
                    .expect("lock")
                    .push(header.pair_id);
            }
            return refuse(state, *reason, *retry_after);
        }
    }
    let domain = domain_of(&request);
    let header = match RelayHeader::parse(request.headers()[RELAY_HEADER].as_bytes()) {
        Ok(header) => header,
        Err(error) => return refuse(state, error.reason(), None),
    };
    let verified =
        state
            .authority
            .lock()
            .expect("lock")
            .verify(&domain, header.client_id.as_bytes(), now());
    if let Err(error) = verified {
        return refuse(state, error.reason(), None);
    }
    let method = request.method().as_str().to_owned();
    let opened = {
        let mut pairs = state.pairs.lock().expect("lock");
        let Some(pair) = pairs
            .get_mut(&header.pair_id)
            .filter(|pair| pair.client_id == header.client_id)
        else {
            drop(pairs);
            return refuse(state, ErrorReason::PairUnknown, None);
        };
        if pair.window.check(header.seq).is_err() {
            drop(pairs);
            return refuse(state, ErrorReason::Replay, None);
        }
        let Ok((secret, advanced)) = pair.keys.message_secret(header.mode, header.seq) else {
            drop(pairs);
            return refuse(state, ErrorReason::DecodeFailed, None);
        };
        let context = RequestContext::new(secret, &header, &method, &domain);
        let head_value = request
            .headers()
            .get(HEAD_HEADER)
            .map(|value| value.as_bytes().to_vec())
            .unwrap_or_default();
        match context.open_head(&head_value) {
            Ok(head) => {
                if pair.window.check_and_mark(header.seq).is_err() {
                    drop(pairs);
                    return refuse(state, ErrorReason::Replay, None);
                }
                if let Some(advanced) = advanced {
                    pair.keys.ratchet.advance_to(advanced);
                }
                Ok((context, head))
            }
            Err(error) => Err(error.reason()),
        }
    };
    let (context, head) = match opened {
        Ok(opened) => opened,
        Err(reason) => return refuse(state, reason, None),
    };
    state.accepted.lock().expect("lock").push(Accepted {
        pair_id: header.pair_id,
        seq: header.seq,
        mode: header.mode,
        method: method.clone(),
        path: head.path.clone(),
        token: head.token,
        not_after: head.not_after,
    });
    if let Some(Fault::RefuseAfterOpening(reason)) = fault {
        return refuse(state, reason, None);
    }

    let body = request.into_body();
    match head.path.as_str() {
        "/interactive" => interactive(context, body),
        "/truncated" => sealed(&context, 200, vec![], Some(b"cut short"), false),
        "/no-content" => sealed(&context, 204, vec![], None, true),
        // Never answers, for request timeouts.
        "/stall" => std::future::pending().await,
        _ => echo(state, &context, &method, &header, head, body).await,
    }
}

/// Answers with the decrypted request: method, path, mode and headers as `x-echo-*`
/// response headers, and the request body as the response body.
async fn echo(
    state: &State,
    context: &RequestContext,
    method: &str,
    header: &RelayHeader,
    head: mte_relay_protocol::head::RequestHead,
    body: Incoming,
) -> Response<ResponseBody> {
    let mut plain = Vec::new();
    if context.has_body() {
        let mut decoder = context.body_decoder(None);
        let wire = body.collect().await.expect("body").to_bytes();
        if decoder
            .push(&wire, &mut plain)
            .and_then(|()| decoder.finish())
            .is_err()
        {
            return refuse(state, ErrorReason::DecodeFailed, None);
        }
    }
    let mut headers = vec![
        HeaderField::new("x-echo-method", method),
        HeaderField::new("x-echo-path", head.path.as_str()),
        HeaderField::new("x-echo-mode", header.mode.token()),
        HeaderField::new(
            "x-echo-has-body",
            if context.has_body() { "1" } else { "0" },
        ),
    ];
    for field in head.headers {
        headers.push(HeaderField::new(
            format!("x-echo-{}", field.name),
            field.value,
        ));
    }
    let has_body = method != "HEAD";
    sealed(context, 200, headers, has_body.then_some(&plain[..]), true)
}

fn sealed(
    context: &RequestContext,
    status: u16,
    headers: Vec<HeaderField>,
    body: Option<&[u8]>,
    complete: bool,
) -> Response<ResponseBody> {
    let sealer = context.response_sealer(&mut os_rng(), status, body.is_some());
    let value = sealer.seal_head(&ResponseHead { headers }).expect("seals");
    let mut wire = Vec::new();
    if let Some(body) = body {
        let mut encoder = sealer.body_encoder();
        encoder.push(body, &mut wire).expect("push");
        encoder.flush(&mut wire).expect("flush");
        if complete {
            encoder.finish(&mut wire).expect("finish");
        }
    }
    Response::builder()
        .status(status)
        .header(HEAD_HEADER, value)
        .body(full(wire))
        .expect("response")
}

/// Streams each decrypted request record back as an encrypted response record as soon
/// as it arrives, so a test can check that both directions flow frame by frame.
fn interactive(context: RequestContext, mut body: Incoming) -> Response<ResponseBody> {
    let sealer = context.response_sealer(&mut os_rng(), 200, true);
    let value = sealer.seal_head(&ResponseHead::default()).expect("seals");
    let (mut sender, channel) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        let mut decoder = context.body_decoder(None);
        let mut encoder = sealer.body_encoder();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let mut plain = Vec::new();
            if decoder.push(&data, &mut plain).is_err() {
                return;
            }
            let mut wire = Vec::new();
            encoder.push(&plain, &mut wire).expect("push");
            encoder.flush(&mut wire).expect("flush");
            if !wire.is_empty() && sender.send_data(Bytes::from(wire)).await.is_err() {
                return;
            }
        }
        if decoder.finish().is_ok() {
            let mut wire = Vec::new();
            encoder.finish(&mut wire).expect("finish");
            let _ = sender.send_data(Bytes::from(wire)).await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(HEAD_HEADER, value)
        .body(channel.boxed_unsync())
        .expect("response")
}
