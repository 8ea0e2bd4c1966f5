//! A whole exchange through the public API: capabilities, pairing, then requests and
//! responses in both modes, as a client and a relay perform them.

use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::head::{HeaderField, RequestHead, ResponseHead};
use mte_relay_protocol::header::{Flags, Mode, RelayHeader};
use mte_relay_protocol::ids::ResendToken;
use mte_relay_protocol::keys::PairKeys;
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::pairing::{PairingRequest, PairingScope, PendingPair, accept_offer};
use mte_relay_protocol::replay::ReplayWindow;
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::secret::SecretBytes;
use mte_relay_protocol::stream::{BodyError, CHUNK_SIZE};

const DOMAIN: &str = "api.example.com";

fn pair(
    psk_client: Option<&[u8]>,
    psk_relay: Option<&[u8]>,
) -> (String, Result<(PairKeys, PairKeys), String>) {
    let mut rng = os_rng();
    let authority = ClientIdAuthority::new(SecretBytes::new(vec![7u8; 32]), vec![], 3600);
    let client_id = authority.mint(DOMAIN, 1_000, &mut rng);
    let pending = PendingPair::generate(&mut rng);
    let client_scope = PairingScope {
        domain: DOMAIN,
        client_id: &client_id,
        psk: psk_client,
    };
    let request = PairingRequest {
        client_id: client_id.clone(),
        pairs: vec![pending.offer_in(client_scope)],
    };
    let body = serde_json::to_vec(&request).expect("serialises");

    let parsed = PairingRequest::parse(&body, 8).expect("valid request");
    let relay_scope = PairingScope {
        domain: DOMAIN,
        client_id: &parsed.client_id,
        psk: psk_relay,
    };
    let accepted = match accept_offer(relay_scope, &parsed.pairs[0], 99, &mut rng) {
        Ok(accepted) => accepted,
        Err(refused) => return (client_id.clone(), Err(refused.to_string())),
    };
    let (relay_keys, answer) = (accepted.keys, accepted.answer);
    let client_keys = pending
        .complete(client_scope, &answer)
        .map_err(|e| e.to_string());
    (client_id, client_keys.map(|client| (client, relay_keys)))
}

fn exchange(mode: Mode, body: &[u8], response_body: &[u8]) {
    let (client_id, keys) = pair(None, None);
    let (client_keys, relay_keys) = keys.expect("pairing completes");
    let pair_id = mte_relay_protocol::ids::PairId([3; 16]);
    let header = RelayHeader {
        mode,
        flags: Flags::with_body(!body.is_empty()),
        seq: 1,
        pair_id,
        client_id,
    };
    let head = RequestHead {
        token: ResendToken([9; 16]),
        not_after: 1_700_000_000,
        path: "/orders?id=7".into(),
        headers: vec![
            HeaderField::new("content-type", "application/json"),
            HeaderField::new("cookie", "a=b"),
        ],
    };

    // Client seals.
    let (secret, _) = client_keys
        .message_secret(mode, header.seq)
        .expect("secret");
    let client = RequestContext::new(secret, &header, "POST", DOMAIN);
    let head_value = client.seal_head(&head).expect("seals");
    let mut wire = Vec::new();
    let mut encoder = client.body_encoder();
    for piece in body.chunks(1000) {
        encoder.push(piece, &mut wire).expect("push");
    }
    encoder.finish(&mut wire).expect("finish");

    // Relay opens, checking the window first.
    let parsed = RelayHeader::parse(header.format().as_bytes()).expect("header parses");
    let mut window = ReplayWindow::new();
    window.check_and_mark(parsed.seq).expect("fresh");
    let (secret, _) = relay_keys
        .message_secret(parsed.mode, parsed.seq)
        .expect("secret");
    let relay = RequestContext::new(secret, &parsed, "POST", DOMAIN);
    assert_eq!(relay.open_head(head_value.as_bytes()).expect("opens"), head);
    let mut plain = Vec::new();
    let mut decoder = relay.body_decoder(None);
    for piece in wire.chunks(777) {
        decoder.push(piece, &mut plain).expect("decodes");
    }
    decoder.finish().expect("complete");
    assert_eq!(plain, body);
    assert_eq!(
        window.check_and_mark(parsed.seq),
        Err(mte_relay_protocol::replay::ReplayError::Duplicate)
    );

    // Relay answers; client opens.
    let response_head = ResponseHead {
        headers: vec![
            HeaderField::new("set-cookie", "x=1"),
            HeaderField::new("set-cookie", "y=2"),
        ],
    };
    let sealer = relay.response_sealer(&mut os_rng(), 201, true);
    let response_value = sealer.seal_head(&response_head).expect("seals");
    let mut response_wire = Vec::new();
    let mut encoder = sealer.body_encoder();
    encoder
        .push(response_body, &mut response_wire)
        .expect("push");
    encoder.finish(&mut response_wire).expect("finish");

    let (opener, opened_head) = client
        .open_response(201, response_value.as_bytes())
        .expect("opens");
    assert_eq!(opened_head, response_head);
    assert!(opener.has_body());
    let mut plain = Vec::new();
    let mut decoder = opener.body_decoder(None);
    decoder.push(&response_wire, &mut plain).expect("decodes");
    decoder.finish().expect("complete");
    assert_eq!(plain, response_body);

    // The status is authenticated.
    assert!(
        client
            .open_response(200, response_value.as_bytes())
            .is_err()
    );
}

#[test]
fn mke_request_and_response_round_trip() {
    let body: Vec<u8> = (0..CHUNK_SIZE * 2 + 123).map(|i| (i % 251) as u8).collect();
    exchange(Mode::Mke, &body, b"{\"ok\":true}");
    exchange(Mode::Mke, b"", b"");
}

#[test]
fn mte_request_and_response_round_trip() {
    exchange(Mode::Mte, b"{\"card\":\"4111\"}", b"{\"ok\":true}");
    exchange(Mode::Mte, b"", &[0u8; 3000]);
}

#[test]
fn mte_body_over_the_cap_is_refused() {
    let (client_id, keys) = pair(None, None);
    let (client_keys, _) = keys.expect("pairs");
    let header = RelayHeader {
        mode: Mode::Mte,
        flags: Flags::HAS_BODY,
        seq: 0,
        pair_id: mte_relay_protocol::ids::PairId([1; 16]),
        client_id,
    };
    let (secret, _) = client_keys.message_secret(Mode::Mte, 0).expect("secret");
    let context = RequestContext::new(secret, &header, "PUT", DOMAIN);
    let mut encoder = context.body_encoder();
    let too_big = vec![0u8; mte_relay_protocol::padding::MTE_MAX_MESSAGE + 1];
    assert_eq!(
        encoder.push(&too_big, &mut Vec::new()),
        Err(BodyError::TooLarge)
    );
}

#[test]
fn pre_shared_keys_must_match() {
    let (_, keys) = pair(Some(b"relay-secret-one"), Some(b"relay-secret-one"));
    let (client, relay) = keys.expect("same secret pairs");
    assert_eq!(client, relay);
    let (_, mismatched) = pair(Some(b"relay-secret-one"), Some(b"relay-secret-two"));
    assert!(
        mismatched
            .expect_err("different secrets fail")
            .contains("SECRET")
    );
    let (_, one_sided) = pair(None, Some(b"relay-secret-one"));
    assert!(one_sided.expect_err("no proof").contains("SECRET"));
    let (_, other_side) = pair(Some(b"relay-secret-one"), None);
    assert!(other_side.expect_err("unexpected proof").contains("SECRET"));
}

/// The relay refuses a wrong `SECRET` from the offer's proof; the key confirmation
/// still catches a client whose offer carried no proof to a relay without one while
/// the client itself holds a `SECRET` (an offer altered on the path, say).
#[test]
fn the_key_confirmation_still_catches_a_secret_the_offer_did_not_prove() {
    let mut rng = os_rng();
    let authority = ClientIdAuthority::new(SecretBytes::new(vec![7u8; 32]), vec![], 3600);
    let client_id = authority.mint(DOMAIN, 1_000, &mut rng);
    let pending = PendingPair::generate(&mut rng);
    let relay_scope = PairingScope {
        domain: DOMAIN,
        client_id: &client_id,
        psk: None,
    };
    let accepted = accept_offer(relay_scope, &pending.offer(), 99, &mut rng).expect("accepted");
    let client_scope = PairingScope {
        psk: Some(b"relay-secret-one"),
        ..relay_scope
    };
    let refused = pending
        .complete(client_scope, &accepted.answer)
        .expect_err("confirmation fails");
    assert_eq!(
        refused,
        mte_relay_protocol::pairing::PairingError::ConfirmationFailed
    );
}
