//! Replays every seed corpus of `fuzz/` through its fuzz target body, so that a plain
//! `cargo test` exercises the targets and the seeds stay valid.
//!
//! The seeds are generated here ([`seeds`]) and committed as files. After a change to
//! the wire format, regenerate them with
//!
//! ```text
//! cargo test -p mte-relay-protocol --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use mte_relay_protocol::capabilities::{Capabilities, Limits};
use mte_relay_protocol::fuzzing::{
    self, CLIENT_ID, FuzzRng, MAX_PAIRS, PENDING_SEED, TARGETS, request_context,
};
use mte_relay_protocol::head::{HeaderField, RequestHead, ResponseHead};
use mte_relay_protocol::header::{Flags, Mode, RelayHeader};
use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::pairing::{PairingRequest, PairingResponse, PendingPair, accept_offer};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

fn corpus_files(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("seed corpus {} is missing: {error}", dir.display()));
    let mut files = BTreeMap::new();
    for entry in entries {
        let entry = entry.expect("corpus entry");
        if entry.file_type().expect("file type").is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, fs::read(entry.path()).expect("corpus file reads"));
        }
    }
    assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
    files
}

#[test]
fn every_target_replays_its_seed_corpus() {
    for (target, body) in TARGETS {
        for (name, input) in corpus_files(target) {
            eprintln!("{target}/{name}");
            body(&input);
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_entry_point() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = fs::read_to_string(&source)
            .unwrap_or_else(|error| panic!("{} is missing: {error}", source.display()));
        assert!(
            text.contains(&format!("fuzzing::{target}(")),
            "{} does not call fuzzing::{target}",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {target}"
        );
    }
}

#[test]
fn committed_seeds_match_the_generator() {
    for (target, generated) in seeds() {
        let committed = corpus_files(target);
        for (name, bytes) in generated {
            assert_eq!(
                committed.get(&name),
                Some(&bytes),
                "fuzz/corpus/{target}/{name} is missing or stale; regenerate the seed corpus \
                 (see the top of tests/fuzz_corpus.rs)"
            );
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after a wire format change"]
fn regenerate_seed_corpus() {
    for (target, generated) in seeds() {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in generated {
            fs::write(dir.join(name), bytes).expect("seed writes");
        }
    }
}

type Seeds = Vec<(&'static str, Vec<(String, Vec<u8>)>)>;

/// Valid and invalid seeds for every target, deterministic.
fn seeds() -> Seeds {
    vec![
        ("relay_header", relay_header_seeds()),
        ("error_header", error_header_seeds()),
        ("capabilities", capabilities_seeds()),
        ("pairing_request", pairing_request_seeds()),
        ("pairing_response", pairing_response_seeds()),
        ("head_block", head_block_seeds()),
        ("body_stream", body_stream_seeds()),
        ("identity", identity_seeds()),
    ]
}

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_owned(), bytes.into())
}

fn relay_header_seeds() -> Vec<(String, Vec<u8>)> {
    let header = RelayHeader {
        mode: Mode::Mke,
        flags: Flags::HAS_BODY,
        seq: 42,
        pair_id: PairId([9; 16]),
        client_id: CLIENT_ID.into(),
    };
    let mte = RelayHeader {
        mode: Mode::Mte,
        flags: Flags::empty(),
        seq: u64::MAX,
        ..header.clone()
    };
    let good = header.format();
    vec![
        seed("valid-mke", good.clone()),
        seed("valid-mte", mte.format()),
        seed("invalid-version", good.replace("v=1", "v=2")),
        seed("invalid-seq", good.replace("s=42", "s=042")),
        seed("invalid-trailing", format!("{good};x=1")),
        seed("invalid-empty", ""),
    ]
}

fn error_header_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        seed("valid-replay", "replay"),
        seed("valid-pair-unknown", "pair-unknown"),
        seed("invalid-space", " replay"),
        seed("invalid-utf8", &b"\xffreplay"[..]),
    ]
}

fn capabilities_seeds() -> Vec<(String, Vec<u8>)> {
    let document = Capabilities::new(
        Limits::new(32, 64, 86_400, Some(1 << 20)),
        CLIENT_ID.into(),
        99,
    );
    let valid = serde_json::to_vec(&document).expect("serialises");
    let mut future = serde_json::to_value(&document).expect("serialises");
    future["version"] = "1.9".into();
    future["future_field"] = serde_json::json!({"x": [1, 2]});
    let mut major = document.clone();
    major.version = "2.0".into();
    vec![
        seed("valid", valid.clone()),
        seed(
            "valid-future-minor",
            serde_json::to_vec(&future).expect("serialises"),
        ),
        seed(
            "invalid-major",
            serde_json::to_vec(&major).expect("serialises"),
        ),
        seed("invalid-truncated", &valid[..valid.len() / 2]),
    ]
}

fn pending(seed: u8) -> PendingPair {
    PendingPair::generate(&mut FuzzRng::new(seed))
}

fn pairing_request_seeds() -> Vec<(String, Vec<u8>)> {
    let one = PairingRequest {
        client_id: CLIENT_ID.into(),
        pairs: vec![pending(PENDING_SEED).offer()],
    };
    let two = PairingRequest {
        client_id: CLIENT_ID.into(),
        pairs: vec![pending(10).offer(), pending(11).offer()],
    };
    let mut duplicate = two.clone();
    duplicate.pairs[1].pair_id = duplicate.pairs[0].pair_id.clone();
    let mut short_key = one.clone();
    short_key.pairs[0].public_key.truncate(100);
    let too_many = PairingRequest {
        client_id: CLIENT_ID.into(),
        pairs: vec![short_key.pairs[0].clone(); MAX_PAIRS + 1],
    };
    let json = |request: &PairingRequest| serde_json::to_vec(request).expect("serialises");
    vec![
        seed("valid-one", json(&one)),
        seed("valid-two", json(&two)),
        seed("valid-shape-short-key", json(&short_key)),
        seed("invalid-duplicate", json(&duplicate)),
        seed("invalid-too-many", json(&too_many)),
        seed("invalid-empty", r#"{"client_id":"abc","pairs":[]}"#),
        seed("invalid-json", "{\"client_id\":"),
    ]
}

fn pairing_response_seeds() -> Vec<(String, Vec<u8>)> {
    let offer = pending(PENDING_SEED).offer();
    let answer = accept_offer(
        fuzzing::scope(),
        &offer,
        1_700_000_000,
        &mut FuzzRng::new(9),
    )
    .expect("valid offer")
    .answer;
    let valid = PairingResponse {
        pairs: vec![answer.clone()],
        signature: None,
    };
    let mut bad_confirm = valid.clone();
    bad_confirm.pairs[0].confirm = "A".repeat(43);
    let mut other_pair = valid.clone();
    other_pair.pairs[0].pair_id = PairId([1; 16]).to_string();
    let json = |response: &PairingResponse| serde_json::to_vec(response).expect("serialises");
    vec![
        seed("valid", json(&valid)),
        seed("invalid-confirm", json(&bad_confirm)),
        seed("invalid-pair-id", json(&other_pair)),
        seed("invalid-empty", r#"{"pairs":[]}"#),
        seed("invalid-unknown-field", r#"{"pairs":[],"x":1}"#),
    ]
}

fn identity_seeds() -> Vec<(String, Vec<u8>)> {
    let public = fuzzing::relay_identity().public_key();
    let genuine = fuzzing::signed_pairing();
    let json = |response: &PairingResponse| serde_json::to_vec(response).expect("serialises");
    let mut later = genuine.clone();
    later.pairs[0].expires_at += 1;
    let mut renamed = genuine.clone();
    renamed.pairs[0].pair_id = PairId([1; 16]).to_string();
    let mut unsigned = genuine.clone();
    unsigned.signature = None;
    let mut truncated = genuine.clone();
    if let Some(signature) = truncated.signature.as_mut() {
        signature.truncate(100);
    }
    vec![
        seed("pin-valid", with_selector(&[0], public.pin().to_string())),
        seed("pin-whole-key", with_selector(&[0], public.to_text())),
        seed("pin-invalid", with_selector(&[0], "sha256:abc")),
        seed("public-key-valid", with_selector(&[1], public.to_text())),
        seed(
            "public-key-short",
            with_selector(&[1], &public.to_text()[..100]),
        ),
        seed("signed-valid", with_selector(&[2], json(genuine))),
        seed("signed-changed-answer", with_selector(&[2], json(&later))),
        seed("signed-renamed-pair", with_selector(&[2], json(&renamed))),
        seed("signed-truncated", with_selector(&[2], json(&truncated))),
        seed("unsigned", with_selector(&[2], json(&unsigned))),
    ]
}

fn with_selector(selector: &[u8], rest: impl AsRef<[u8]>) -> Vec<u8> {
    let mut input = selector.to_vec();
    input.extend_from_slice(rest.as_ref());
    input
}

fn head_block_seeds() -> Vec<(String, Vec<u8>)> {
    let request = RequestHead {
        token: ResendToken([5; 16]),
        not_after: 1_700_000_000,
        path: "/orders?id=7".into(),
        headers: vec![
            HeaderField::new("content-type", "application/json"),
            HeaderField::new("cookie", "a=b"),
        ],
    };
    let response = ResponseHead {
        headers: vec![
            HeaderField::new("set-cookie", "x=1"),
            HeaderField::new("set-cookie", "y=2"),
        ],
    };
    let mut seeds = Vec::new();
    for (bit, mode) in [(0u8, Mode::Mke), (1, Mode::Mte)] {
        let context = request_context(mode);
        let sealed = context.seal_head(&request).expect("seals");
        seeds.push(seed(
            &format!("valid-{mode}-request"),
            with_selector(&[bit], &sealed),
        ));
        let sealer = context.response_sealer(&mut FuzzRng::new(4), 201, true);
        let sealed = sealer.seal_head(&response).expect("seals");
        seeds.push(seed(
            &format!("valid-{mode}-response"),
            with_selector(&[2 | bit, 0, 201], &sealed),
        ));
    }
    let mut plain = Vec::new();
    request.encode_into(&mut plain).expect("encodes");
    seeds.push(seed("valid-plain-request", with_selector(&[4], &plain)));
    let mut plain = Vec::new();
    response.encode_into(&mut plain).expect("encodes");
    seeds.push(seed("valid-plain-response", with_selector(&[7], &plain)));
    seeds.push(seed("invalid-base64", with_selector(&[0], "AQ+/")));
    seeds.push(seed(
        "invalid-plain",
        with_selector(&[4], [0, 1, b'x', 0, 0]),
    ));
    seeds
}

fn body_stream_seeds() -> Vec<(String, Vec<u8>)> {
    let body: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8).collect();
    let mut seeds = Vec::new();
    for (bit, mode) in [(0u8, Mode::Mke), (1, Mode::Mte)] {
        let mut wire = Vec::new();
        let mut encoder = request_context(mode).body_encoder();
        for piece in body.chunks(300) {
            encoder.push(piece, &mut wire).expect("push");
            encoder.flush(&mut wire).expect("flush");
        }
        encoder.finish(&mut wire).expect("finish");
        seeds.push(seed(
            &format!("valid-{mode}-stream"),
            with_selector(&[bit, 17], &wire),
        ));
        seeds.push(seed(
            &format!("valid-{mode}-stream-limited"),
            with_selector(&[4 | bit, 1], &wire),
        ));
        seeds.push(seed(
            &format!("invalid-{mode}-truncated"),
            with_selector(&[bit, 3], &wire[..wire.len() - 1]),
        ));
        seeds.push(seed(
            &format!("valid-{mode}-plaintext"),
            with_selector(&[2 | bit, 5], &body),
        ));
    }
    let mut padded = Vec::new();
    let mut encoder = fuzzing::padded_body_encoder(Mode::Mke);
    for piece in body.chunks(300) {
        encoder.push(piece, &mut padded).expect("push");
        encoder.flush(&mut padded).expect("flush");
    }
    encoder.finish(&mut padded).expect("finish");
    seeds.push(seed(
        "valid-mke-padded-stream",
        with_selector(&[8, 17], &padded),
    ));
    seeds.push(seed(
        "invalid-mke-padded-read-unpadded",
        with_selector(&[0, 17], &padded),
    ));
    seeds.push(seed(
        "valid-mke-padded-plaintext",
        with_selector(&[8 | 2, 5], &body),
    ));
    seeds.push(seed("invalid-header", with_selector(&[0, 0], [0, 0, 0, 3])));
    seeds
}
