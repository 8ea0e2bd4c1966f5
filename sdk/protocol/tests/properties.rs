//! Property tests of protocol v1 (DESIGN.md §4): everything sealed opens to what was
//! sealed, whatever the split of the bytes; any tampering with a sealed or
//! authenticated byte makes opening fail; streams refuse truncation, reordering,
//! duplication and trailing data; the replay window agrees with a simple model; and the
//! relay header parser is canonical and total.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;

use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::head::{HeaderField, RequestHead, ResponseHead};
use mte_relay_protocol::header::{Flags, Mode, RelayHeader};
use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::keys::{EPOCH_LEN, MessageSecret, PairKeys};
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::padding::MTE_MAX_MESSAGE;
use mte_relay_protocol::pairing::{PairingRequest, PairingScope, PendingPair, accept_offer};
use mte_relay_protocol::replay::{MAX_SEQUENCE_AHEAD, ReplayWindow, WINDOW_SIZE};
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::secret::SecretBytes;
use mte_relay_protocol::stream::{BodyDecoder, BodyEncoder, BodyError, CHUNK_SIZE};

const DOMAIN: &str = "api.example.com";

/// One real pairing per test binary: (client id, client keys, relay keys).
fn paired() -> &'static (String, PairKeys, PairKeys) {
    static PAIRED: OnceLock<(String, PairKeys, PairKeys)> = OnceLock::new();
    PAIRED.get_or_init(|| {
        let mut rng = os_rng();
        let authority = ClientIdAuthority::new(SecretBytes::new(vec![3u8; 32]), vec![], 3600);
        let client_id = authority.mint(DOMAIN, 1_000, &mut rng);
        let pending = PendingPair::generate(&mut rng);
        let body = serde_json::to_vec(&PairingRequest {
            client_id: client_id.clone(),
            pairs: vec![pending.offer()],
        })
        .expect("serialises");
        let request = PairingRequest::parse(&body, 4).expect("parses");
        let scope = PairingScope {
            domain: DOMAIN,
            client_id: &client_id,
            psk: None,
        };
        let accepted = accept_offer(scope, &request.pairs[0], 99, &mut rng).expect("accepts");
        let client = pending
            .complete(scope, &accepted.answer)
            .expect("completes");
        (client_id, client, accepted.keys)
    })
}

fn secrets(mode: Mode, seq: u64) -> (MessageSecret, MessageSecret) {
    let (_, client, relay) = paired();
    let (client, _) = client.message_secret(mode, seq).expect("client secret");
    let (relay, _) = relay.message_secret(mode, seq).expect("relay secret");
    (client, relay)
}

// ---------------------------------------------------------------------------------
// Strategies

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Mke), Just(Mode::Mte)]
}

/// A lowercase RFC 9110 token, often drawn from a small pool so names repeat.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("set-cookie".to_owned()),
        Just("content-type".to_owned()),
        Just("x-a".to_owned()),
        "[a-z0-9!#$%&'*+.^_`|~-]{1,24}",
    ]
}

/// A value: any RFC 9110 field-value bytes (no control character but tab; obs-text
/// included).
fn value() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..80).prop_map(|mut bytes| {
        for byte in &mut bytes {
            if (*byte < 0x20 && *byte != b'\t') || *byte == 0x7f {
                *byte = b' ';
            }
        }
        bytes
    })
}

fn fields() -> impl Strategy<Value = Vec<HeaderField>> {
    vec(
        (name(), value()).prop_map(|(name, value)| HeaderField { name, value }),
        0..12,
    )
}

fn request_head() -> impl Strategy<Value = RequestHead> {
    (any::<[u8; 16]>(), any::<u64>(), "/[!-~]{0,200}", fields()).prop_map(
        |(token, not_after, path, headers)| RequestHead {
            token: ResendToken(token),
            not_after,
            path,
            headers,
        },
    )
}

fn response_head() -> impl Strategy<Value = ResponseHead> {
    fields().prop_map(|headers| ResponseHead { headers })
}

/// Body lengths: tiny, around chunk boundaries, or anything up to 300 KiB.
fn body_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=300,
        (1usize..=4, -3isize..=3).prop_map(|(k, d)| (k * CHUNK_SIZE).saturating_add_signed(d)),
        0usize..=300 * 1024,
    ]
}

/// Cheap deterministic filler, so large bodies cost no proptest value trees.
fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Piece sizes for splitting input: mostly small, sometimes more than a chunk.
fn plan() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![4 => 1usize..200, 1 => 1usize..(2 * CHUNK_SIZE + 7)],
        1..8,
    )
}

fn pieces<'a>(mut data: &'a [u8], plan: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for len in plan.iter().cycle() {
        if data.is_empty() {
            break;
        }
        let (piece, rest) = data.split_at((*len).min(data.len()));
        out.push(piece);
        data = rest;
    }
    out
}

fn encode(mut encoder: BodyEncoder, body: &[u8], plan: &[usize], flushes: &[bool]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (index, piece) in pieces(body, plan).into_iter().enumerate() {
        encoder.push(piece, &mut wire).expect("push");
        if flushes[index % flushes.len()] {
            encoder.flush(&mut wire).expect("flush");
        }
    }
    encoder.finish(&mut wire).expect("finish");
    wire
}

fn decode(mut decoder: BodyDecoder, wire: &[u8], plan: &[usize]) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    for piece in pieces(wire, plan) {
        decoder.push(piece, &mut out)?;
    }
    decoder.finish()?;
    Ok(out)
}

fn header(mode: Mode, seq: u64, has_body: bool) -> RelayHeader {
    RelayHeader {
        mode,
        flags: Flags::with_body(has_body),
        seq,
        pair_id: PairId([0x42; 16]),
        client_id: paired().0.clone(),
    }
}

// ---------------------------------------------------------------------------------
// Round trips

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn request_and_response_round_trip_in_any_split(
        mode in mode(),
        seq in 0u64..8 * EPOCH_LEN,
        method in "[A-Z]{1,10}",
        request in request_head(),
        response in response_head(),
        len in body_len(),
        seed in any::<u64>(),
        encode_plan in plan(),
        flushes in vec(prop::bool::weighted(0.15), 1..6),
        decode_plan in plan(),
        status in 100u16..1000,
        pad_response in any::<bool>(),
    ) {
        let mut body = body(len, seed);
        if mode == Mode::Mte {
            body.truncate(MTE_MAX_MESSAGE);
        }
        let header = header(mode, seq, true);
        let (client_secret, relay_secret) = secrets(mode, seq);

        let client = RequestContext::new(client_secret, &header, &method, DOMAIN);
        let head_value = client.seal_head(&request).expect("head seals");
        let wire = encode(client.body_encoder(), &body, &encode_plan, &flushes);

        let parsed = RelayHeader::parse(header.format().as_bytes()).expect("header parses");
        prop_assert_eq!(&parsed, &header);
        let relay = RequestContext::new(relay_secret, &parsed, &method, DOMAIN);
        prop_assert!(relay.has_body());
        prop_assert_eq!(relay.open_head(head_value.as_bytes()), Ok(request));
        let opened = decode(relay.body_decoder(None), &wire, &decode_plan);
        prop_assert_eq!(opened.as_deref(), Ok(&body[..]));

        let flags = if pad_response {
            Flags::HAS_BODY.union(Flags::PADDED_RECORDS)
        } else {
            Flags::HAS_BODY
        };
        let sealer = relay.response_sealer_with(&mut os_rng(), status, flags);
        let response_value = sealer.seal_head(&response).expect("response head seals");
        let response_wire = encode(sealer.body_encoder(), &body, &decode_plan, &flushes);
        if mode == Mode::Mke && pad_response {
            // Every record, whatever was flushed when, shows only a bucket size.
            // Record offsets and the stream's end, so the final record is checked too.
            let mut bounds = record_starts(&response_wire);
            bounds.push(response_wire.len());
            for window in bounds.windows(2) {
                let plaintext = window[1] - window[0] - 4 - 16;
                prop_assert!(
                    plaintext.is_power_of_two() && (256..=65536).contains(&plaintext),
                    "record of {} plaintext bytes", plaintext
                );
            }
        }
        let (opener, opened_head) = client
            .open_response(status, response_value.as_bytes())
            .expect("response head opens");
        prop_assert_eq!(opened_head, response);
        prop_assert!(opener.has_body());
        prop_assert_eq!(opener.pads_records(), mode == Mode::Mke && pad_response);
        let opened = decode(opener.body_decoder(None), &response_wire, &encode_plan);
        prop_assert_eq!(opened.as_deref(), Ok(&body[..]));
    }
}

// ---------------------------------------------------------------------------------
// Tampering

/// A sealed request and response in `mode` with small multi-record bodies.
struct Sealed {
    header: RelayHeader,
    relay_secret: MessageSecret,
    client: RequestContext,
    head_block: Vec<u8>,
    wire: Vec<u8>,
    response_block: Vec<u8>,
    response_wire: Vec<u8>,
    request: RequestHead,
    body: Vec<u8>,
}

const METHOD: &str = "POST";
const SEQ: u64 = 5;
const STATUS: u16 = 200;

fn sealed(mode: Mode) -> Sealed {
    let header = header(mode, SEQ, true);
    let (client_secret, relay_secret) = secrets(mode, SEQ);
    let client = RequestContext::new(client_secret, &header, METHOD, DOMAIN);
    let request = RequestHead {
        token: ResendToken([3; 16]),
        not_after: 1_700_000_000,
        path: "/pay?x=1".into(),
        headers: vec![HeaderField::new("content-type", "application/json")],
    };
    let head_block = b64(client.seal_head(&request).expect("seals"));
    let body = body(180, 9);
    // Records of 100, 50 and 30 bytes (one padded record in MTE mode).
    let wire = encode(client.body_encoder(), &body, &[100, 50, 30], &[true]);
    let relay = RequestContext::new(relay_secret.clone(), &header, METHOD, DOMAIN);
    let sealer = relay.response_sealer(&mut os_rng(), STATUS, true);
    let response = ResponseHead {
        headers: vec![HeaderField::new("set-cookie", "a=1")],
    };
    let response_block = b64(sealer.seal_head(&response).expect("seals"));
    let response_wire = encode(sealer.body_encoder(), &body, &[60, 60], &[true]);
    Sealed {
        header,
        relay_secret,
        client,
        head_block,
        wire,
        response_block,
        response_wire,
        request,
        body,
    }
}

fn b64(value: String) -> Vec<u8> {
    base64_decode(value.as_bytes()).expect("the crate emits base64url")
}

/// Strict unpadded base64url, written here so the tests do not trust the crate's codec.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for group in text.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in group.iter().enumerate() {
            acc |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match group.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in group.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=group.len() {
            out.push(char::from(ALPHABET[(acc >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn flip(bytes: &[u8], index: usize, bit: u8) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[index] ^= 1 << bit;
    flipped
}

fn relay_context(sealed: &Sealed) -> RequestContext {
    RequestContext::new(sealed.relay_secret.clone(), &sealed.header, METHOD, DOMAIN)
}

/// Offsets of the record headers of a well-formed stream.
fn record_starts(wire: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        starts.push(at);
        let header = u32::from_be_bytes(wire[at..at + 4].try_into().expect("4 bytes"));
        at += 4 + (header & 0x7fff_ffff) as usize;
    }
    assert_eq!(at, wire.len(), "records tile the stream");
    starts
}

/// An index into `len` bytes: uniform, or biased to the first and last bytes of the
/// records (headers and tags), given as a fraction to resolve against the stream.
fn position() -> impl Strategy<Value = (u8, prop::sample::Index)> {
    (0u8..3, any::<prop::sample::Index>())
}

fn resolve(wire: &[u8], (kind, index): (u8, prop::sample::Index)) -> usize {
    let starts = record_starts(wire);
    let record = index.index(starts.len());
    let start = starts[record];
    let end = starts.get(record + 1).copied().unwrap_or(wire.len());
    match kind {
        // Record header.
        0 => start + index.index(4),
        // Tag.
        1 => end - 16 + index.index(16),
        _ => index.index(wire.len()),
    }
}

/// The request's clear fields, each changed to something else.
#[derive(Debug, Clone)]
enum Field {
    Method(String),
    Domain(String),
    ClientId(String),
    PairId([u8; 16]),
    Seq(u64),
    Mode,
    Flags,
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        "[A-Z]{1,8}".prop_map(Field::Method),
        "[a-z0-9.-]{1,30}".prop_map(Field::Domain),
        "[A-Za-z0-9_-]{1,128}".prop_map(Field::ClientId),
        any::<[u8; 16]>().prop_map(Field::PairId),
        any::<u64>().prop_map(Field::Seq),
        Just(Field::Mode),
        Just(Field::Flags),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn flipping_any_bit_of_a_body_stream_fails(
        mode in mode(),
        response in any::<bool>(),
        at in position(),
        bit in 0u8..8,
        plan in plan(),
    ) {
        let sealed = sealed(mode);
        let relay = relay_context(&sealed);
        let (wire, decoder) = if response {
            let (opener, _) = sealed
                .client
                .open_response(STATUS, base64_encode(&sealed.response_block).as_bytes())
                .expect("opens");
            (&sealed.response_wire, opener.body_decoder(None))
        } else {
            (&sealed.wire, relay.body_decoder(None))
        };
        // The untouched stream opens, so the failure below is the flip's doing.
        let fresh = if response {
            let (opener, _) = sealed
                .client
                .open_response(STATUS, base64_encode(&sealed.response_block).as_bytes())
                .expect("opens");
            opener.body_decoder(None)
        } else {
            relay.body_decoder(None)
        };
        prop_assert_eq!(decode(fresh, wire, &plan), Ok(sealed.body.clone()));
        let index = resolve(wire, at);
        prop_assert!(decode(decoder, &flip(wire, index, bit), &plan).is_err());
    }

    #[test]
    fn flipping_any_bit_of_a_head_block_fails(
        mode in mode(),
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let sealed = sealed(mode);
        let relay = relay_context(&sealed);
        // The untouched block opens, so the failure below is the flip's doing.
        prop_assert_eq!(
            relay.open_head(base64_encode(&sealed.head_block).as_bytes()),
            Ok(sealed.request.clone())
        );
        let tampered = flip(&sealed.head_block, index.index(sealed.head_block.len()), bit);
        prop_assert!(relay.open_head(base64_encode(&tampered).as_bytes()).is_err());
    }

    #[test]
    fn flipping_any_bit_of_a_response_block_fails(
        mode in mode(),
        prefix in any::<bool>(),
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let sealed = sealed(mode);
        let block = &sealed.response_block;
        prop_assert!(
            sealed.client.open_response(STATUS, base64_encode(block).as_bytes()).is_ok()
        );
        // The flags byte and the 32-byte response nonce, or anywhere.
        let index = if prefix { index.index(33) } else { index.index(block.len()) };
        let tampered = flip(block, index, bit);
        prop_assert!(
            sealed.client.open_response(STATUS, base64_encode(&tampered).as_bytes()).is_err()
        );
    }

    #[test]
    fn changing_the_response_status_fails(mode in mode(), status in any::<u16>()) {
        prop_assume!(status != STATUS);
        let sealed = sealed(mode);
        let value = base64_encode(&sealed.response_block);
        prop_assert!(sealed.client.open_response(status, value.as_bytes()).is_err());
    }

    #[test]
    fn changing_any_authenticated_field_fails(mode in mode(), field in field()) {
        let sealed = sealed(mode);
        let mut header = sealed.header.clone();
        let mut method = METHOD.to_owned();
        let mut domain = DOMAIN.to_owned();
        match field {
            Field::Method(value) => method = value,
            Field::Domain(value) => domain = value,
            Field::ClientId(value) => header.client_id = value,
            Field::PairId(value) => header.pair_id = PairId(value),
            Field::Seq(value) => header.seq = value,
            Field::Mode => {
                header.mode = match header.mode {
                    Mode::Mke => Mode::Mte,
                    Mode::Mte => Mode::Mke,
                }
            }
            Field::Flags => header.flags = Flags::with_body(!header.flags.contains(Flags::HAS_BODY)),
        }
        prop_assume!(header != sealed.header || method != METHOD || domain != DOMAIN);
        // The same message secret: only the associated data differs.
        let relay = RequestContext::new(sealed.relay_secret.clone(), &header, &method, &domain);
        prop_assert!(relay.open_head(base64_encode(&sealed.head_block).as_bytes()).is_err());
        prop_assert!(decode(relay.body_decoder(None), &sealed.wire, &[usize::MAX]).is_err());
    }

    #[test]
    fn replacing_a_base64_character_of_a_head_fails(
        mode in mode(),
        index in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_=+/ -]",
    ) {
        let sealed = sealed(mode);
        let mut value = base64_encode(&sealed.head_block).into_bytes();
        let at = index.index(value.len());
        prop_assume!(value[at] != replacement.as_bytes()[0]);
        value[at] = replacement.as_bytes()[0];
        prop_assert!(relay_context(&sealed).open_head(&value).is_err());
    }
}

// ---------------------------------------------------------------------------------
// Stream structure

fn records(wire: &[u8]) -> Vec<&[u8]> {
    let starts = record_starts(wire);
    let mut ends = starts[1..].to_vec();
    ends.push(wire.len());
    starts.iter().zip(ends).map(|(s, e)| &wire[*s..e]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_stream_cut_before_its_final_record_is_truncated(
        mode in mode(),
        cut in any::<prop::sample::Index>(),
        plan in plan(),
    ) {
        let sealed = sealed(mode);
        let cut = cut.index(sealed.wire.len());
        let mut decoder = relay_context(&sealed).body_decoder(None);
        let mut out = Vec::new();
        for piece in pieces(&sealed.wire[..cut], &plan) {
            prop_assert_eq!(decoder.push(piece, &mut out), Ok(()));
        }
        prop_assert_eq!(decoder.finish(), Err(BodyError::Truncated));
        prop_assert!(sealed.body.starts_with(&out), "what was released is genuine");
    }

    #[test]
    fn reordered_duplicated_or_dropped_records_fail(
        edit in 0u8..3,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let sealed = sealed(Mode::Mke);
        let mut records = records(&sealed.wire);
        prop_assert_eq!(records.len(), 4);
        let i = a.index(records.len());
        match edit {
            0 => {
                let j = b.index(records.len());
                prop_assume!(i != j);
                records.swap(i, j);
            }
            1 => {
                let copy = records[i];
                records.insert(b.index(records.len() + 1), copy);
            }
            _ => {
                records.remove(i);
            }
        }
        let wire = records.concat();
        prop_assert!(decode(relay_context(&sealed).body_decoder(None), &wire, &[usize::MAX]).is_err());
    }

    #[test]
    fn bytes_after_the_final_record_fail(
        mode in mode(),
        extra in vec(any::<u8>(), 1..40),
        plan in plan(),
    ) {
        let sealed = sealed(mode);
        let mut wire = sealed.wire.clone();
        wire.extend_from_slice(&extra);
        prop_assert_eq!(
            decode(relay_context(&sealed).body_decoder(None), &wire, &plan),
            Err(BodyError::TrailingData)
        );
    }
}

// ---------------------------------------------------------------------------------
// Replay window

#[derive(Debug, Clone)]
enum Step {
    /// Just below the highest accepted number.
    Below(u64),
    /// Just above it.
    Above(u64),
    /// Far above it, around the look-ahead bound.
    Ahead(u64),
    /// Any number at all.
    Any(u64),
    /// One that was seen before.
    Seen(prop::sample::Index),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..WINDOW_SIZE + 64).prop_map(Step::Below),
        3 => (0..WINDOW_SIZE + 64).prop_map(Step::Above),
        1 => (MAX_SEQUENCE_AHEAD - 4..MAX_SEQUENCE_AHEAD + 4).prop_map(Step::Ahead),
        1 => any::<u64>().prop_map(Step::Any),
        2 => any::<prop::sample::Index>().prop_map(Step::Seen),
    ]
}

proptest! {
    #[test]
    fn replay_window_agrees_with_a_model(steps in vec(step(), 1..300)) {
        let mut window = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut history = Vec::new();
        let mut highest: Option<u64> = None;
        for step in steps {
            let base = highest.unwrap_or(0);
            let seq = match step {
                Step::Below(d) => base.saturating_sub(d),
                Step::Above(d) => base.saturating_add(d),
                Step::Ahead(d) => base.saturating_add(d),
                Step::Any(seq) => seq,
                Step::Seen(index) if !history.is_empty() => history[index.index(history.len())],
                Step::Seen(_) => base,
            };
            let expected = !seen.contains(&seq)
                && match highest {
                    None => seq < MAX_SEQUENCE_AHEAD,
                    Some(h) if seq <= h => h - seq < WINDOW_SIZE,
                    Some(h) => seq - h <= MAX_SEQUENCE_AHEAD,
                };
            prop_assert_eq!(window.check(seq).is_ok(), expected, "check {}", seq);
            prop_assert_eq!(window.check_and_mark(seq).is_ok(), expected, "mark {}", seq);
            if expected {
                seen.insert(seq);
                history.push(seq);
                highest = Some(highest.map_or(seq, |h| h.max(seq)));
            }
            prop_assert_eq!(window.highest(), highest);
            let bytes = window.to_bytes();
            prop_assert_eq!(ReplayWindow::from_bytes(&bytes), Some(window.clone()));
        }
    }
}

// ---------------------------------------------------------------------------------
// Relay header

proptest! {
    #[test]
    fn relay_header_round_trips(
        mode in mode(),
        has_body in any::<bool>(),
        seq in any::<u64>(),
        pair_id in any::<[u8; 16]>(),
        client_id in "[A-Za-z0-9_-]{1,128}",
    ) {
        let header = RelayHeader {
            mode,
            flags: Flags::with_body(has_body),
            seq,
            pair_id: PairId(pair_id),
            client_id,
        };
        let text = header.format();
        prop_assert_eq!(RelayHeader::parse(text.as_bytes()), Ok(header));
    }

    #[test]
    fn relay_header_parse_is_total_and_canonical(bytes in vec(any::<u8>(), 0..300)) {
        if let Ok(header) = RelayHeader::parse(&bytes) {
            prop_assert_eq!(header.format().into_bytes(), bytes);
        }
    }

    #[test]
    fn mutated_relay_headers_parse_canonically_or_not_at_all(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut text = header(Mode::Mke, 77, true).format().into_bytes();
        let at = index.index(text.len());
        text[at] = byte;
        if let Ok(header) = RelayHeader::parse(&text) {
            prop_assert_eq!(header.format().into_bytes(), text);
        }
    }
}

// ---------------------------------------------------------------------------------
// Padded records

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A padded response stream fails on any flipped bit, and a stream whose head
    /// claims the other padding than its records carry never opens.
    #[test]
    fn padded_records_fail_on_any_change(
        len in 0usize..3000,
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let header = header(Mode::Mke, SEQ, true);
        let (client_secret, relay_secret) = secrets(Mode::Mke, SEQ);
        let client = RequestContext::new(client_secret, &header, METHOD, DOMAIN);
        let relay = RequestContext::new(relay_secret, &header, METHOD, DOMAIN);
        let body = body(len, seed);
        let padded = Flags::HAS_BODY.union(Flags::PADDED_RECORDS);
        let sealer = relay.response_sealer_with(&mut os_rng(), STATUS, padded);
        let value = sealer.seal_head(&ResponseHead { headers: vec![] }).expect("seals");
        let wire = encode(sealer.body_encoder(), &body, &[700], &[true]);
        let (opener, _) = client.open_response(STATUS, value.as_bytes()).expect("opens");
        let opened = decode(opener.body_decoder(None), &wire, &[97]);
        prop_assert_eq!(opened.as_deref(), Ok(&body[..]));
        let index = at.index(wire.len());
        let flipped = flip(&wire, index, bit);
        prop_assert!(decode(opener.body_decoder(None), &flipped, &[97]).is_err());

        // The flag byte leads the response block: clearing PADDED_RECORDS breaks the
        // head's authentication, so padding cannot be stripped or claimed in transit.
        let mut block = base64_decode(value.as_bytes()).expect("base64url");
        block[0] = Flags::HAS_BODY.bits();
        let stripped = base64_encode(&block);
        prop_assert!(client.open_response(STATUS, stripped.as_bytes()).is_err());
    }
}

#[test]
fn response_flags_refuse_padding_without_a_body_and_unknown_bits() {
    assert!(Flags::from_response_bits(0b11).is_some());
    assert!(
        Flags::from_response_bits(0b10).is_none(),
        "padded records without a body"
    );
    assert!(Flags::from_response_bits(0b100).is_none());
    assert!(
        Flags::from_bits(0b10).is_none(),
        "requests have no padded records"
    );

    // A sealer keeps the padding flag only for an MKE response with a body.
    for (mode, has_body, kept) in [
        (Mode::Mke, true, true),
        (Mode::Mke, false, false),
        (Mode::Mte, true, false),
    ] {
        let header = header(mode, SEQ, true);
        let (client_secret, relay_secret) = secrets(mode, SEQ);
        let client = RequestContext::new(client_secret, &header, METHOD, DOMAIN);
        let relay = RequestContext::new(relay_secret, &header, METHOD, DOMAIN);
        let flags = Flags::with_body(has_body).union(Flags::PADDED_RECORDS);
        let sealer = relay.response_sealer_with(&mut os_rng(), STATUS, flags);
        let value = sealer
            .seal_head(&ResponseHead { headers: vec![] })
            .expect("seals");
        let (opener, _) = client
            .open_response(STATUS, value.as_bytes())
            .expect("the head opens");
        assert_eq!(opener.pads_records(), kept, "{mode} with body {has_body}");
    }
}
