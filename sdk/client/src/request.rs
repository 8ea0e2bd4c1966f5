//! The request side: the caller's body, the protected head, and the encrypting body
//! stream that seals the caller's frames as they come.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use mte_relay_protocol::head::{HeaderField, RequestHead, parse_content_length};
use mte_relay_protocol::header::{HEAD_HEADER, RELAY_HEADER, RelayHeader};
use mte_relay_protocol::hop_by_hop;
use mte_relay_protocol::padding::MTE_MAX_MESSAGE;
use mte_relay_protocol::stream::BodyEncoder;

use crate::codec::SealingBody;
use crate::error::{BoxError, ClientError};
use crate::timing::CodecTimer;
use crate::transport::OuterBody;

/// The content type of an encrypted body stream on the wire.
pub(crate) const STREAM_CONTENT_TYPE: &str = "application/octet-stream";

type SourceBody = UnsyncBoxBody<Bytes, BoxError>;
type SourceSlot = Arc<Mutex<Option<SourceBody>>>;

/// The body of a request sent through [`RelayClient::send`](crate::RelayClient::send).
///
/// Whole bodies (`Bytes`, `Vec<u8>`, `String`, `&'static str`, `()`) are replayable: the
/// client may resend them after a registry error when the method is idempotent.
/// Streaming bodies ([`RequestBody::streaming`]) are encrypted frame by frame as they
/// are produced and are never buffered, so they can be resent only if none of their
/// bytes was read yet.
pub struct RequestBody {
    payload: Payload,
}

enum Payload {
    Empty,
    Full(Bytes),
    /// Shared with the attempt in flight, which takes the body on its first poll; a body
    /// still in the slot after a failed attempt was never read.
    Streaming(SourceSlot),
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.payload {
            Payload::Empty => f.write_str("RequestBody::Empty"),
            Payload::Full(bytes) => write!(f, "RequestBody::Full({} bytes)", bytes.len()),
            Payload::Streaming(_) => f.write_str("RequestBody::Streaming"),
        }
    }
}

impl RequestBody {
    /// No body.
    pub fn empty() -> Self {
        RequestBody {
            payload: Payload::Empty,
        }
    }

    /// A whole, replayable body. An empty one is no body at all.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return RequestBody::empty();
        }
        RequestBody {
            payload: Payload::Full(bytes),
        }
    }

    /// A streaming body, encrypted frame by frame as it yields data; each frame is
    /// sent without waiting for more, so small interactive writes go out at once. A
    /// body that reports its end before yielding anything is no body at all.
    pub fn streaming<B>(body: B) -> Self
    where
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return RequestBody::empty();
        }
        let boxed = body
            .map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            .map_err(Into::into)
            .boxed_unsync();
        RequestBody {
            payload: Payload::Streaming(Arc::new(Mutex::new(Some(boxed)))),
        }
    }

    /// True when a body stream follows the head (`HAS_BODY`).
    pub fn has_body(&self) -> bool {
        !matches!(self.payload, Payload::Empty)
    }

    /// True when the body can be sent again whatever happened to a first attempt: no
    /// body, or a whole body.
    pub fn is_replayable(&self) -> bool {
        matches!(self.payload, Payload::Empty | Payload::Full(_))
    }

    /// The length of a whole body.
    pub(crate) fn known_len(&self) -> Option<usize> {
        match &self.payload {
            Payload::Empty => Some(0),
            Payload::Full(bytes) => Some(bytes.len()),
            Payload::Streaming(_) => None,
        }
    }

    /// The plaintext source of one attempt, or `None` when the content is gone: a
    /// streaming body that an earlier attempt already started to read.
    pub(crate) fn next_attempt(&mut self) -> Option<AttemptSource> {
        match &mut self.payload {
            Payload::Empty => Some(AttemptSource::Empty),
            Payload::Full(bytes) => Some(AttemptSource::Full(bytes.clone())),
            Payload::Streaming(slot) => {
                // Moving the unread body into a fresh slot detaches it from the earlier
                // attempt, which may still be polled by a connection winding down.
                let unread = slot.lock().ok().and_then(|mut body| body.take())?;
                let fresh = Arc::new(Mutex::new(Some(unread)));
                *slot = Arc::clone(&fresh);
                Some(AttemptSource::Streaming(fresh))
            }
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl From<()> for RequestBody {
    fn from((): ()) -> Self {
        RequestBody::empty()
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        RequestBody::full(bytes)
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        RequestBody::full(bytes)
    }
}

impl From<String> for RequestBody {
    fn from(text: String) -> Self {
        RequestBody::full(text)
    }
}

impl From<&'static str> for RequestBody {
    fn from(text: &'static str) -> Self {
        RequestBody::full(text)
    }
}

impl From<&'static [u8]> for RequestBody {
    fn from(bytes: &'static [u8]) -> Self {
        RequestBody::full(bytes)
    }
}

impl From<http_body_util::Empty<Bytes>> for RequestBody {
    fn from(_: http_body_util::Empty<Bytes>) -> Self {
        RequestBody::empty()
    }
}

/// Where one attempt reads its plaintext from.
pub(crate) enum AttemptSource {
    Empty,
    Full(Bytes),
    Streaming(SourceSlot),
}

/// Hop-by-hop headers (the protocol crate's one list) and the fields the protocol
/// re-creates itself; none of them travels in the encrypted head.
fn is_hop_by_hop_or_framing(name: &HeaderName) -> bool {
    hop_by_hop::is_hop_by_hop(name.as_str())
        || name == header::HOST
        || name == header::CONTENT_LENGTH
}

/// Headers the client sets on the outer request itself; configured extra headers must
/// not collide with them.
pub(crate) fn is_reserved_outer_header(name: &HeaderName) -> bool {
    is_hop_by_hop_or_framing(name)
        || name == header::CONTENT_TYPE
        || name.as_str().starts_with("x-mte-relay")
}

/// The end-to-end headers of a request, in order, as the head carries them. Names are
/// lowercase already (the `http` crate normalises them). Fields named by `Connection`
/// are hop-by-hop too.
pub(crate) fn end_to_end_headers(headers: &HeaderMap) -> Vec<HeaderField> {
    let connection_listed: Vec<String> = hop_by_hop::connection_named(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
    .collect();
    headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop_or_framing(name))
        .filter(|(name, _)| {
            !connection_listed
                .iter()
                .any(|listed| listed == name.as_str())
        })
        .map(|(name, value)| HeaderField::new(name.as_str(), value.as_bytes()))
        .collect()
}

/// The origin-form target (`/path?query`) of a request URI; absolute URIs contribute
/// only their path and query, since the relay decides where the request goes.
pub(crate) fn origin_form(uri: &Uri) -> Result<String, ClientError> {
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let target = if target.is_empty() { "/" } else { target };
    if !target.starts_with('/') {
        return Err(ClientError::invalid_request(format!(
            "request target {target:?} is not a path; the relay only forwards origin-form targets"
        )));
    }
    Ok(target.to_owned())
}

/// The protected head of a request: its target and end-to-end headers (the caller
/// adds the resend token and deadline).
pub(crate) fn request_head(uri: &Uri, headers: &HeaderMap) -> Result<RequestHead, ClientError> {
    Ok(RequestHead {
        path: origin_form(uri)?,
        headers: end_to_end_headers(headers),
        ..RequestHead::default()
    })
}

/// The plaintext length the sealed head states in `content-length`, so the relay can
/// send the request upstream with its length instead of chunked: a whole body's own
/// length, or the caller's `content-length` for a streaming body (the relay holds the
/// records to it and fails the request if they differ). No body, no length.
pub(crate) fn stated_length(body: &RequestBody, headers: &HeaderMap) -> Option<u64> {
    if !body.has_body() {
        return None;
    }
    match body.known_len() {
        Some(len) => u64::try_from(len).ok(),
        None => headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| parse_content_length(value.as_bytes())),
    }
}

/// Refuses, before anything is sent, a whole body that MTE mode cannot carry.
pub(crate) fn check_mte_body_len(len: Option<usize>) -> Result<(), ClientError> {
    match len {
        Some(len) if len > MTE_MAX_MESSAGE => Err(ClientError::invalid_request(
            RequestBodyError::TooLarge.to_string(),
        )),
        _ => Ok(()),
    }
}

/// Why the encrypting body stopped; found again in hyper's error chain so that the
/// caller gets the real cause rather than a bare transport error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// The body outgrew the MTE message cap.
    #[error(
        "request body exceeds the MTE message cap of {MTE_MAX_MESSAGE} bytes; send it in MKE mode"
    )]
    TooLarge,
    /// The caller's body failed, or was handed to another attempt.
    #[error("{0}")]
    Source(String),
}

/// The outer request: `METHOD /` with the relay header, the sealed head and, when the
/// request has a body, the encrypted stream.
pub(crate) fn outer_request(
    uri: Uri,
    method: Method,
    relay_header: &RelayHeader,
    sealed_head: String,
    extra_headers: &HeaderMap,
    body: Option<SealingBody<AttemptBody>>,
) -> Result<Request<OuterBody>, ClientError> {
    let invalid =
        |what: &str| ClientError::invalid_request(format!("{what} is not a valid header value"));
    // hyper sends a body of unknown length chunked, except on GET, HEAD and CONNECT,
    // where it sends none unless told: a GET with a body would reach the relay empty.
    // (Over HTTP/2 hyper drops the field and frames the body itself.)
    let chunked_by_hand = matches!(method, Method::GET | Method::HEAD | Method::CONNECT);
    let mut request = Request::builder().method(method).uri(uri);
    let headers = request
        .headers_mut()
        .ok_or_else(|| ClientError::invalid_request("request parts are invalid"))?;
    headers.extend(
        extra_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    headers.insert(
        HeaderName::from_static(RELAY_HEADER),
        HeaderValue::try_from(relay_header.format()).map_err(|_| invalid("relay header"))?,
    );
    headers.insert(
        HeaderName::from_static(HEAD_HEADER),
        HeaderValue::try_from(sealed_head).map_err(|_| invalid("sealed head"))?,
    );
    let body = match body {
        Some(body) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(STREAM_CONTENT_TYPE),
            );
            if chunked_by_hand {
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            body.map_err(|error| -> BoxError { Box::new(error) })
                .boxed_unsync()
        }
        None => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    };
    request
        .body(body)
        .map_err(|error| ClientError::invalid_request(format!("request is invalid: {error}")))
}

/// The caller's body sealed as it streams (see [`crate::codec`]), or `None` when there
/// is nothing to send.
pub(crate) fn encrypting_body(
    source: AttemptSource,
    encoder: BodyEncoder,
    timer: Option<CodecTimer>,
) -> Option<SealingBody<AttemptBody>> {
    let source = match source {
        AttemptSource::Empty => return None,
        AttemptSource::Full(bytes) => Source::Full(Some(bytes)),
        AttemptSource::Streaming(slot) => Source::Slot(slot),
    };
    Some(SealingBody::new(AttemptBody { source }, encoder, timer))
}

/// The plaintext of one attempt: a whole body, or the caller's stream, taken out of its
/// slot on the first poll (a retry finds the slot empty once the stream was started).
pub(crate) struct AttemptBody {
    source: Source,
}

enum Source {
    Full(Option<Bytes>),
    /// Not read yet; taken out of the slot on the first poll.
    Slot(SourceSlot),
    Reading(SourceBody),
}

impl HttpBody for AttemptBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            return match &mut this.source {
                Source::Full(bytes) => {
                    Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes))))
                }
                Source::Slot(slot) => {
                    let taken = slot.lock().ok().and_then(|mut body| body.take());
                    match taken {
                        Some(body) => {
                            this.source = Source::Reading(body);
                            continue;
                        }
                        None => Poll::Ready(Some(Err(Box::new(RequestBodyError::Source(
                            "request body was handed to a retry".into(),
                        ))))),
                    }
                }
                Source::Reading(body) => match ready!(Pin::new(body).poll_frame(cx)) {
                    Some(Err(error)) => Poll::Ready(Some(Err(Box::new(RequestBodyError::Source(
                        error.to_string(),
                    ))))),
                    other => Poll::Ready(other),
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fields: &[HeaderField]) -> Vec<&str> {
        fields.iter().map(|field| field.name.as_str()).collect()
    }

    #[test]
    fn hop_by_hop_and_framing_headers_are_stripped_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", HeaderValue::from_static("application/json"));
        headers.insert("Host", HeaderValue::from_static("api.example.com"));
        headers.insert("Content-Length", HeaderValue::from_static("12"));
        headers.insert(
            "Connection",
            HeaderValue::from_static("keep-alive, X-Private"),
        );
        headers.insert("Keep-Alive", HeaderValue::from_static("timeout=5"));
        headers.insert("Transfer-Encoding", HeaderValue::from_static("chunked"));
        headers.insert("TE", HeaderValue::from_static("trailers"));
        headers.insert("Trailer", HeaderValue::from_static("x-sum"));
        headers.insert("Upgrade", HeaderValue::from_static("websocket"));
        headers.insert("Proxy-Authorization", HeaderValue::from_static("secret"));
        headers.insert("X-Private", HeaderValue::from_static("hop"));
        headers.append("Set-Cookie", HeaderValue::from_static("a=1"));
        headers.append("Set-Cookie", HeaderValue::from_static("b=2"));
        headers.insert("Authorization", HeaderValue::from_static("Bearer t"));

        let fields = end_to_end_headers(&headers);
        assert_eq!(
            names(&fields),
            ["content-type", "set-cookie", "set-cookie", "authorization"]
        );
        assert_eq!(fields[1].value, b"a=1");
        assert_eq!(fields[2].value, b"b=2");
    }

    #[test]
    fn targets_keep_path_and_query_only() {
        let target = |uri: &str| origin_form(&uri.parse::<Uri>().expect("uri"));
        assert_eq!(target("/orders?id=7").expect("ok"), "/orders?id=7");
        assert_eq!(
            target("http://elsewhere.test:81/a/b?c=d").expect("ok"),
            "/a/b?c=d"
        );
        assert_eq!(target("http://elsewhere.test").expect("ok"), "/");
        assert!(matches!(
            target("*"),
            Err(ClientError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn reserved_outer_headers_include_protocol_and_framing_fields() {
        for name in [
            "x-mte-relay",
            "x-mte-relay-head",
            "host",
            "content-type",
            "connection",
        ] {
            assert!(
                is_reserved_outer_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        assert!(!is_reserved_outer_header(&HeaderName::from_static(
            "x-api-key"
        )));
    }

    #[test]
    fn whole_bodies_replay_and_streams_only_while_unread() {
        let mut empty = RequestBody::from(());
        assert!(!empty.has_body() && empty.is_replayable());
        assert!(matches!(empty.next_attempt(), Some(AttemptSource::Empty)));
        assert!(!RequestBody::full(Bytes::new()).has_body());

        let mut whole = RequestBody::from("payload");
        assert!(whole.has_body() && whole.is_replayable());
        for _ in 0..2 {
            assert!(matches!(whole.next_attempt(), Some(AttemptSource::Full(b)) if b == "payload"));
        }

        let ended = RequestBody::streaming(http_body_util::Empty::<Bytes>::new());
        assert!(!ended.has_body(), "a body at its end up front is no body");

        let mut stream = RequestBody::streaming(http_body_util::Full::new(Bytes::from("x")));
        assert!(stream.has_body() && !stream.is_replayable());
        let Some(AttemptSource::Streaming(first)) = stream.next_attempt() else {
            panic!("first attempt gets the stream");
        };
        // Unread: a second attempt may take it over.
        let Some(AttemptSource::Streaming(second)) = stream.next_attempt() else {
            panic!("an unread stream can be resent");
        };
        assert!(
            first.lock().expect("lock").is_none(),
            "detached from the first attempt"
        );
        // Read by the second attempt: gone for good.
        second.lock().expect("lock").take();
        assert!(stream.next_attempt().is_none());
    }

    #[test]
    fn whole_mte_bodies_over_the_cap_are_refused_before_sending() {
        assert!(check_mte_body_len(Some(MTE_MAX_MESSAGE)).is_ok());
        assert!(check_mte_body_len(None).is_ok());
        assert!(matches!(
            check_mte_body_len(Some(MTE_MAX_MESSAGE + 1)),
            Err(ClientError::InvalidRequest { .. })
        ));
    }
}
