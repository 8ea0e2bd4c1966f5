//! The response side: opening the sealed head and decrypting the body as it streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use mte_relay_protocol::header::HEAD_HEADER;
use mte_relay_protocol::hop_by_hop;
use mte_relay_protocol::message::RequestContext;
use mte_relay_protocol::stream::{BodyDecoder, BodyError};

use crate::codec::{CodecError, OpeningBody};
use crate::error::{BoxError, ClientError};
use crate::timing::CodecTimer;

/// The body of a response received through the relay, decrypted record by record as it
/// arrives. It fails with a [`ClientError::Protocol`] if a record does not authenticate
/// or the stream ends before its final record (truncation).
pub struct Body {
    inner: Inner,
}

enum Inner {
    Empty,
    // Boxed: the decoder's cipher state is large, and an empty body should not carry
    // its size.
    Decrypting(Box<OpeningBody<UnsyncBoxBody<Bytes, BoxError>>>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Empty => f.write_str("Body::Empty"),
            Inner::Decrypting(_) => f.write_str("Body::Decrypting"),
        }
    }
}

impl Body {
    /// A body with no data.
    pub fn empty() -> Self {
        Body {
            inner: Inner::Empty,
        }
    }

    /// A body decrypting the encrypted stream `source` with `decoder`.
    pub(crate) fn decrypting<B>(source: B, decoder: BodyDecoder, timer: Option<CodecTimer>) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body {
            inner: Inner::Decrypting(Box::new(OpeningBody::new(
                source.map_err(Into::into).boxed_unsync(),
                decoder,
                timer,
            ))),
        }
    }

    /// Reads the whole body into memory. Use it for bodies known to be small; stream
    /// larger ones through [`http_body::Body`].
    pub async fn collect_bytes(self) -> Result<Bytes, ClientError> {
        Ok(BodyExt::collect(self).await?.to_bytes())
    }
}

fn body_failure(error: BodyError) -> ClientError {
    let message = match error {
        BodyError::Truncated => "response body ended before its final record (truncated)",
        BodyError::Authentication => "response body record failed to authenticate",
        BodyError::TrailingData => "response body has data after its final record",
        _ => "response body is malformed",
    };
    ClientError::protocol_from(message, error)
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let Inner::Decrypting(opening) = &mut self.get_mut().inner else {
            return Poll::Ready(None);
        };
        Pin::new(&mut **opening)
            .poll_frame(cx)
            .map_err(|error| match error {
                CodecError::Body(error) => body_failure(error),
                CodecError::Source(error) => {
                    ClientError::transport("reading the response body failed", false, error)
                }
            })
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Decrypting(opening) => opening.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Decrypting(_) => SizeHint::default(),
        }
    }
}

/// True when a response to `method` with `status` has no body whatever its headers say.
fn bodiless(method: &Method, status: StatusCode) -> bool {
    method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

/// Opens an encrypted response: the head with the request's context, then a body that
/// decrypts as it streams.
pub(crate) fn decrypt_response<B>(
    context: &RequestContext,
    method: &Method,
    response: Response<B>,
    timer: Option<&CodecTimer>,
) -> Result<Response<Body>, ClientError>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, source) = response.into_parts();
    let sealed = parts.headers.get(HEAD_HEADER).ok_or_else(|| {
        ClientError::protocol(format!(
            "response with status {} carries neither an encrypted head nor a registry error",
            parts.status.as_u16()
        ))
    })?;
    let (opener, head) = CodecTimer::open(timer, || {
        context.open_response(parts.status.as_u16(), sealed.as_bytes())
    })
    .map_err(|error| ClientError::protocol_from("response head failed to open", error))?;

    let mut response = Response::builder()
        .status(parts.status)
        .version(parts.version)
        .body(())
        .map_err(|error| ClientError::protocol_from("response is invalid", error))?;
    let headers = response.headers_mut();
    for field in head.headers {
        // Hop-by-hop fields never describe the decrypted message; a relay does not
        // send them inside the head, and they are dropped if one does.
        if hop_by_hop::is_hop_by_hop(&field.name) {
            continue;
        }
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|error| {
            ClientError::protocol_from("response header name is invalid", error)
        })?;
        let value = HeaderValue::from_bytes(&field.value).map_err(|error| {
            ClientError::protocol_from("response header value is invalid", error)
        })?;
        headers.append(name, value);
    }
    let body = if opener.has_body() && !bodiless(method, parts.status) {
        Body::decrypting(source, opener.body_decoder(None), timer.cloned())
    } else {
        Body::empty()
    };
    Ok(response.map(|()| body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mte_relay_protocol::head::{HeaderField, ResponseHead};
    use mte_relay_protocol::header::{Flags, Mode, RelayHeader};
    use mte_relay_protocol::ids::PairId;
    use mte_relay_protocol::keys::PairKeys;
    use mte_relay_protocol::rng::os_rng;
    use mte_relay_protocol::secret::Secret32;

    fn context(mode: Mode) -> RequestContext {
        let keys =
            PairKeys::from_roots(Secret32::from_bytes([4; 32]), Secret32::from_bytes([5; 32]));
        let header = RelayHeader {
            mode,
            flags: Flags::empty(),
            seq: 3,
            pair_id: PairId([9; 16]),
            client_id: "client".into(),
        };
        let (secret, _) = keys.message_secret(mode, 3).expect("secret");
        RequestContext::new(secret, &header, "GET", "relay.test")
    }

    /// A response as the relay would seal it, with its body in `pieces` of wire bytes.
    fn sealed_response(
        context: &RequestContext,
        status: u16,
        body: &[u8],
        drop_final: bool,
    ) -> Response<http_body_util::Full<Bytes>> {
        let sealer = context.response_sealer(&mut os_rng(), status, true);
        let head = ResponseHead {
            headers: vec![
                HeaderField::new("content-type", "text/plain"),
                HeaderField::new("set-cookie", "a=1"),
                HeaderField::new("set-cookie", "b=2"),
                HeaderField::new("transfer-encoding", "chunked"),
            ],
        };
        let value = sealer.seal_head(&head).expect("seals");
        let mut wire = Vec::new();
        let mut encoder = sealer.body_encoder();
        encoder.push(body, &mut wire).expect("push");
        encoder.flush(&mut wire).expect("flush");
        if !drop_final {
            encoder.finish(&mut wire).expect("finish");
        }
        Response::builder()
            .status(status)
            .header(HEAD_HEADER, value)
            .body(http_body_util::Full::new(Bytes::from(wire)))
            .expect("response")
    }

    #[tokio::test]
    async fn response_head_and_body_decrypt() {
        let context = context(Mode::Mke);
        let response = sealed_response(&context, 200, b"hello", false);
        let opened = decrypt_response(&context, &Method::GET, response, None).expect("opens");
        assert_eq!(opened.status(), 200);
        let cookies: Vec<_> = opened.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(opened.headers().get("transfer-encoding").is_none());
        let body = opened.into_body().collect_bytes().await.expect("body");
        assert_eq!(body, "hello");
    }

    #[tokio::test]
    async fn truncated_body_is_an_error() {
        let context = context(Mode::Mke);
        let response = sealed_response(&context, 200, b"partial", true);
        let opened = decrypt_response(&context, &Method::GET, response, None).expect("opens");
        let error = opened
            .into_body()
            .collect_bytes()
            .await
            .expect_err("truncated");
        assert!(matches!(error, ClientError::Protocol { .. }), "{error}");
        assert!(error.to_string().contains("truncated"), "{error}");
    }

    #[test]
    fn head_for_another_status_or_missing_head_is_refused() {
        let context = context(Mode::Mte);
        let mut response = sealed_response(&context, 201, b"x", false);
        *response.status_mut() = StatusCode::OK;
        assert!(matches!(
            decrypt_response(&context, &Method::GET, response, None),
            Err(ClientError::Protocol { .. })
        ));
        let plain = Response::builder()
            .status(502)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("response");
        assert!(matches!(
            decrypt_response(&context, &Method::GET, plain, None),
            Err(ClientError::Protocol { .. })
        ));
    }

    #[test]
    fn head_requests_have_no_body() {
        let context = context(Mode::Mke);
        let response = sealed_response(&context, 200, b"ignored", false);
        let opened = decrypt_response(&context, &Method::HEAD, response, None).expect("opens");
        assert!(opened.body().is_end_stream());
    }
}
