//! `mte-relay request`: a curl-like client that speaks the protocol.
//!
//! It pairs with the relay at the URL's origin, sends the request encrypted, and prints
//! the decrypted response as it streams (so Server-Sent Events appear as they arrive).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request};
use http_body::Frame;
use http_body_util::BodyExt;
use mte_relay_client::{ClientError, Mode, RelayClient, RequestBody, RequestOutcome};

/// Exit code when the relay refused the request with a registry error.
pub const EXIT_REGISTRY_ERROR: u8 = 3;
/// Exit code for transport, protocol and local errors.
pub const EXIT_FAILURE: u8 = 1;

/// Arguments of `mte-relay request`.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The HTTP method (default: GET, or POST when data is given).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A header to send encrypted, as `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body: literal text, `@FILE` to read a file, or `@-` for standard input.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        conflicts_with = "data_binary"
    )]
    pub data: Option<String>,
    /// Request body from `@FILE` (or `@-`), sent byte for byte.
    #[arg(long = "data-binary", value_name = "@FILE")]
    pub data_binary: Option<String>,
    /// Encode mode: `mke` (streaming, any size) or `mte` (padded, up to 65532 bytes).
    #[arg(long, value_name = "MODE", default_value = "mke", value_parser = parse_mode)]
    pub mode: Mode,
    /// Print the response status line and headers before the body.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Pin the relay's identity key: `sha256:<fingerprint>` as `mte-relay keygen` and
    /// `mte-relay check-config` print it. The request is then sent only if the relay
    /// signs its pairing answer with that key; an active man in the middle (a
    /// TLS-terminating proxy, say) is refused instead of going unnoticed. Repeat it to
    /// accept either of two keys, as during a key rotation.
    #[arg(long, value_name = "PIN")]
    pub pin: Vec<String>,
    /// The relay URL: the relay's origin followed by the upstream path and query.
    pub url: String,
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::from_token(text.as_bytes()).ok_or_else(|| format!("`{text}` is not a mode (mke or mte)"))
}

/// Runs the request; prints errors as one line on standard error.
pub fn run(args: RequestArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(
                EXIT_FAILURE,
                &format!("cannot start the async runtime: {error}"),
            );
        }
    };
    match runtime.block_on(send(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(error @ ClientError::Registry { .. })) => {
            fail(EXIT_REGISTRY_ERROR, &with_outcome(&error))
        }
        Err(Failure::Client(error)) => fail(EXIT_FAILURE, &with_outcome(&error)),
        Err(Failure::Local(message)) => fail(EXIT_FAILURE, &message),
    }
}

/// The error and what it tells about the upstream, which decides whether sending the
/// request again is safe.
fn with_outcome(error: &ClientError) -> String {
    let outcome = match error.outcome() {
        RequestOutcome::NotRun => "the request did not reach the upstream",
        RequestOutcome::Ran => {
            "the request reached the upstream and only its response was lost; do not send \
             it again"
        }
        RequestOutcome::Unknown => "whether the request reached the upstream is unknown",
    };
    format!("{error} ({outcome})")
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("mte-relay request: {message}");
    ExitCode::from(code)
}

enum Failure {
    Client(ClientError),
    Local(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

async fn send(args: RequestArgs) -> Result<(), Failure> {
    let (origin, target) = split_url(&args.url)?;
    let body = request_body(args.data.as_deref().or(args.data_binary.as_deref()))?;
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.as_bytes())
            .map_err(|_| Failure::Local(format!("`{method}` is not an HTTP method")))?,
        None if body.has_body() => Method::POST,
        None => Method::GET,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(target.as_str())
        .body(body)
        .map_err(|error| Failure::Local(format!("invalid request: {error}")))?;
    for header in &args.headers {
        let (name, value) = parse_header(header)?;
        request.headers_mut().append(name, value);
    }
    if args.data.is_some() && !request.headers().contains_key(http::header::CONTENT_TYPE) {
        // As curl does for -d.
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    request.extensions_mut().insert(args.mode);

    let mut builder = RelayClient::builder(origin).pairs(1);
    for pin in args.pin {
        builder = builder.pin(pin);
    }
    let client = builder.build()?;
    let response = client.send(request).await?;

    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::fs::File::create(path).map_err(|error| {
            Failure::Local(format!("cannot create {}: {error}", path.display()))
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let write_error =
        |error: std::io::Error| Failure::Local(format!("cannot write output: {error}"));
    if args.include {
        let mut head = format!("HTTP/1.1 {}\r\n", response.status());
        for (name, value) in response.headers() {
            head.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes()).map_err(write_error)?;
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            out.write_all(data).map_err(write_error)?;
            out.flush().map_err(write_error)?;
        }
    }
    Ok(())
}

/// `http://relay:8080/path?q` -> (`http://relay:8080`, `/path?q`).
fn split_url(url: &str) -> Result<(String, String), Failure> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Failure::Local(format!("`{url}` is not a URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Failure::Local(format!(
            "`{url}` is not an absolute http(s) URL"
        )));
    };
    if scheme != "http" && scheme != "https" {
        return Err(Failure::Local(format!("`{url}` is not an http(s) URL")));
    }
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((format!("{scheme}://{authority}"), target))
}

fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let invalid = || Failure::Local(format!("`{header}` is not a `Name: value` header"));
    let (name, value) = header.split_once(':').ok_or_else(invalid)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| invalid())?;
    Ok((name, value))
}

/// The request body: none, literal data, or a file / standard input streamed in pieces.
fn request_body(data: Option<&str>) -> Result<RequestBody, Failure> {
    let Some(data) = data else {
        return Ok(RequestBody::empty());
    };
    let Some(source) = data.strip_prefix('@') else {
        return Ok(RequestBody::full(Bytes::copy_from_slice(data.as_bytes())));
    };
    let reader: Box<dyn std::io::Read + Send> = if source == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(source)
                .map_err(|error| Failure::Local(format!("cannot read {source}: {error}")))?,
        )
    };
    Ok(RequestBody::streaming(read_in_pieces(reader)))
}

/// Streams a reader as body frames from a blocking thread, so large files and pipes
/// are sent as they are read rather than loaded whole.
fn read_in_pieces(
    mut reader: Box<dyn std::io::Read + Send>,
) -> http_body_util::StreamBody<ChannelStream> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let item = match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => Ok(Frame::data(Bytes::copy_from_slice(&buffer[..n]))),
                Err(error) => Err(error),
            };
            let stop = item.is_err();
            if sender.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    http_body_util::StreamBody::new(ChannelStream(receiver))
}

/// The receiving end of [`read_in_pieces`].
pub struct ChannelStream(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_target() {
        let Ok((origin, target)) = split_url("http://localhost:8080/echo?x=1") else {
            panic!("valid URL");
        };
        assert_eq!(
            (origin.as_str(), target.as_str()),
            ("http://localhost:8080", "/echo?x=1")
        );
        assert!(split_url("localhost:8080/echo").is_err());
        assert!(split_url("ftp://host/x").is_err());
    }

    #[test]
    fn headers_need_a_colon_and_valid_parts() {
        assert!(parse_header("x-a: 1").is_ok());
        assert!(parse_header("x-a 1").is_err());
        assert!(parse_header("bad name: 1").is_err());
    }
}
