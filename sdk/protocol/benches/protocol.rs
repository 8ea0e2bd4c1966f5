//! Criterion benchmarks of protocol v1's hot paths; `docs/PERFORMANCE.md` ("Protocol")
//! records the figures and the targets they are compared with.
//!
//! ```text
//! cargo bench -p mte-relay-protocol
//! ```

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use mte_relay_protocol::head::{HeaderField, RequestHead};
use mte_relay_protocol::header::{Flags, Mode, RelayHeader};
use mte_relay_protocol::identity::RelayIdentity;
use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::keys::PairKeys;
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::pairing::{
    PairAnswer, PairingRequest, PairingScope, PendingPair, accept_offer,
};
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::secret::Secret32;

const DOMAIN: &str = "api.example.com";
const CLIENT_ID: &str =
    "AQAAAABlU_EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn scope() -> PairingScope<'static> {
    PairingScope {
        domain: DOMAIN,
        client_id: CLIENT_ID,
        psk: None,
    }
}

fn pairing_body(pending: &PendingPair) -> Vec<u8> {
    serde_json::to_vec(&PairingRequest {
        client_id: CLIENT_ID.into(),
        pairs: vec![pending.offer()],
    })
    .expect("serialises")
}

fn pairing(c: &mut Criterion) {
    let mut group = c.benchmark_group("pairing");
    let mut rng = os_rng();

    group.bench_function("client_keygen", |b| {
        b.iter(|| PendingPair::generate(&mut rng))
    });

    let body = pairing_body(&PendingPair::generate(&mut rng));
    group.bench_function("server_accept_offer", |b| {
        b.iter(|| {
            let request = PairingRequest::parse(black_box(&body), 32).expect("parses");
            accept_offer(scope(), &request.pairs[0], 0, &mut rng).expect("accepts")
        })
    });

    group.bench_function("client_complete", |b| {
        b.iter_batched(
            || {
                let pending = PendingPair::generate(&mut rng);
                let answer = accept_offer(scope(), &pending.offer(), 0, &mut rng)
                    .expect("accepts")
                    .answer;
                (pending, answer)
            },
            |(pending, answer)| pending.complete(scope(), &answer).expect("completes"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// What the relay does for one pairing request: parse it and answer every offer.
fn accept_all(
    body: &[u8],
    rng: &mut impl rand_core::CryptoRng,
) -> (Vec<[u8; 32]>, Vec<PairAnswer>) {
    let request = PairingRequest::parse(black_box(body), 32).expect("parses");
    request
        .pairs
        .iter()
        .map(|offer| {
            let accepted = accept_offer(scope(), offer, 0, rng).expect("accepts");
            (accepted.transcript_hash, accepted.answer)
        })
        .unzip()
}

/// The relay's side of one pairing request of eight offers, without and with a relay
/// identity (one hybrid signature over the batch), and the client's verification.
fn signed_pairing(c: &mut Criterion) {
    const BATCH: usize = 8;
    let mut group = c.benchmark_group("pairing_batch_8");
    let mut rng = os_rng();
    let body = serde_json::to_vec(&PairingRequest {
        client_id: CLIENT_ID.into(),
        pairs: (0..BATCH)
            .map(|_| PendingPair::generate(&mut rng).offer())
            .collect(),
    })
    .expect("serialises");
    let identity = RelayIdentity::from_key(&Secret32::from_bytes([7; 32]));

    group.bench_function("server_unsigned", |b| {
        b.iter(|| accept_all(&body, &mut rng))
    });
    group.bench_function("server_signed", |b| {
        b.iter(|| {
            let (hashes, answers) = accept_all(&body, &mut rng);
            identity
                .sign_pairing(scope(), &hashes, &answers, &mut rng)
                .expect("signs")
        })
    });
    let (hashes, answers) = accept_all(&body, &mut rng);
    group.bench_function("sign_only", |b| {
        b.iter(|| {
            identity
                .sign_pairing(scope(), &hashes, &answers, &mut rng)
                .expect("signs")
        })
    });
    let signature = identity
        .sign_pairing(scope(), &hashes, &answers, &mut rng)
        .expect("signs");
    let public = identity.public_key();
    group.bench_function("client_verify", |b| {
        b.iter(|| {
            public
                .verify_pairing(scope(), &hashes, &answers, black_box(&signature))
                .expect("verifies")
        })
    });
    group.finish();
}

/// A pair's keys on both sides (equal, as after pairing).
fn keys() -> PairKeys {
    let mut rng = os_rng();
    let pending = PendingPair::generate(&mut rng);
    accept_offer(scope(), &pending.offer(), 0, &mut rng)
        .expect("accepts")
        .keys
}

fn header(mode: Mode, seq: u64) -> RelayHeader {
    RelayHeader {
        mode,
        flags: Flags::HAS_BODY,
        seq,
        pair_id: PairId([7; 16]),
        client_id: CLIENT_ID.into(),
    }
}

fn head() -> RequestHead {
    RequestHead {
        token: ResendToken([1; 16]),
        not_after: 1_700_000_000,
        path: "/api/orders?id=12345".into(),
        headers: vec![
            HeaderField::new("content-type", "application/json"),
            HeaderField::new("accept", "application/json"),
            HeaderField::new(
                "authorization",
                "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
            ),
        ],
    }
}

/// Everything both sides do for one request with `body`: derive the message secret,
/// build the context, seal head and body (client), then the same and open (relay).
fn request_round_trip(keys: &PairKeys, mode: Mode, seq: u64, head: &RequestHead, body: &[u8]) {
    let header = header(mode, seq);
    let (secret, _) = keys.message_secret(mode, seq).expect("secret");
    let client = RequestContext::new(secret, &header, "POST", DOMAIN);
    let head_value = client.seal_head(head).expect("seals");
    let mut wire = Vec::with_capacity(body.len() + 64);
    let mut encoder = client.body_encoder();
    encoder.push(body, &mut wire).expect("push");
    encoder.finish(&mut wire).expect("finish");

    let (secret, _) = keys.message_secret(mode, seq).expect("secret");
    let relay = RequestContext::new(secret, &header, "POST", DOMAIN);
    let opened = relay.open_head(head_value.as_bytes()).expect("opens");
    let mut plain = Vec::with_capacity(body.len());
    let mut decoder = relay.body_decoder(None);
    decoder.push(&wire, &mut plain).expect("decodes");
    decoder.finish().expect("complete");
    black_box((opened, plain));
}

fn requests(c: &mut Criterion) {
    let keys = keys();
    let head = head();
    let body = vec![0x5a_u8; 1024];
    let mut group = c.benchmark_group("request_1k");
    for mode in [Mode::Mke, Mode::Mte] {
        group.bench_function(format!("{mode}_seal_open"), |b| {
            b.iter(|| request_round_trip(&keys, mode, 5, &head, black_box(&body)))
        });
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    const LEN: usize = 1 << 20;
    let keys = keys();
    let header = header(Mode::Mke, 9);
    let (secret, _) = keys.message_secret(Mode::Mke, 9).expect("secret");
    let context = RequestContext::new(secret, &header, "POST", DOMAIN);
    let body = vec![0xa5_u8; LEN];
    // Bytes arrive from the network in pieces; 16 KiB is a typical read size.
    const PIECE: usize = 16 * 1024;

    let mut group = c.benchmark_group("body_1mib");
    group.throughput(Throughput::Bytes(LEN as u64));
    let mut wire = Vec::with_capacity(LEN + 1024);
    group.bench_function("seal", |b| {
        b.iter(|| {
            wire.clear();
            let mut encoder = context.body_encoder();
            for piece in body.chunks(PIECE) {
                encoder.push(piece, &mut wire).expect("push");
            }
            encoder.finish(&mut wire).expect("finish");
            black_box(wire.len())
        })
    });
    let sealed = wire.clone();
    let mut plain = Vec::with_capacity(LEN);
    group.bench_function("open", |b| {
        b.iter(|| {
            plain.clear();
            let mut decoder = context.body_decoder(None);
            for piece in sealed.chunks(PIECE) {
                decoder.push(piece, &mut plain).expect("decodes");
            }
            decoder.finish().expect("complete");
            black_box(plain.len())
        })
    });
    group.finish();
}

/// A streamed response of small events (Server-Sent Events of model tokens): each
/// event is one flushed record, unpadded or padded (`PADDED_RECORDS`). The sealed sizes
/// are printed once, so the bandwidth cost sits beside the time.
fn padded_streams(c: &mut Criterion) {
    use mte_relay_protocol::header::Flags;
    const EVENTS: usize = 1000;
    // "data: <token>\n\n" with a short token: 16 to 40 bytes.
    let events: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| format!("data: {}\n\n", "tok".repeat(1 + i % 11)).into_bytes())
        .collect();
    let plain_len: usize = events.iter().map(Vec::len).sum();
    let keys = keys();
    let header = header(Mode::Mke, 11);
    let (secret, _) = keys.message_secret(Mode::Mke, 11).expect("secret");
    let context = RequestContext::new(secret, &header, "GET", DOMAIN);
    let mut rng = os_rng();
    let mut group = c.benchmark_group("sse_1000_events");
    group.throughput(Throughput::Bytes(plain_len as u64));
    for (name, flags) in [
        ("seal_unpadded", Flags::HAS_BODY),
        ("seal_padded", Flags::HAS_BODY.union(Flags::PADDED_RECORDS)),
    ] {
        let sealer = context.response_sealer_with(&mut rng, 200, flags);
        let mut wire = Vec::new();
        let seal = |wire: &mut Vec<u8>| {
            wire.clear();
            let mut encoder = sealer.body_encoder();
            for event in &events {
                encoder.push(event, wire).expect("push");
                encoder.flush(wire).expect("flush");
            }
            encoder.finish(wire).expect("finish");
        };
        seal(&mut wire);
        eprintln!(
            "sse_1000_events/{name}: {plain_len} bytes of events -> {} bytes sealed ({:.2}x)",
            wire.len(),
            wire.len() as f64 / plain_len as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                seal(&mut wire);
                black_box(wire.len())
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    pairing,
    signed_pairing,
    requests,
    streams,
    padded_streams
);
criterion_main!(benches);
