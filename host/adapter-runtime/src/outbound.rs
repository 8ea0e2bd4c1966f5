//! Outbound `wasi:http` requests: allowed only to the adapter's allow-listed hosts.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// The allow-list of one adapter instance.
pub(crate) struct OutboundPolicy {
    adapter: Arc<str>,
    allowed: Arc<[String]>,
}

impl OutboundPolicy {
    pub fn new(adapter: Arc<str>, allowed: Arc<[String]>) -> Self {
        Self { adapter, allowed }
    }

    /// `host` matches any port; `host:port` matches only that port.
    fn permits(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        self.allowed
            .iter()
            .any(|entry| match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    h == host && p.parse::<u16>().ok() == port
                }
                _ => *entry == host,
            })
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        if !self.permits(request.uri()) {
            tracing::warn!(
                adapter = %self.adapter,
                uri = %request.uri(),
                "outbound request refused: host is not on the adapter's allowed_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(
            Arc::from("t"),
            hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .into(),
        )
    }

    #[test]
    fn matches_host_and_optional_port() {
        let p = policy(&["api.example.com", "127.0.0.1:8080"]);
        assert!(p.permits(&"https://API.example.com/x".parse().unwrap()));
        assert!(p.permits(&"http://api.example.com:9000/x".parse().unwrap()));
        assert!(p.permits(&"http://127.0.0.1:8080/".parse().unwrap()));
        assert!(!p.permits(&"http://127.0.0.1:8081/".parse().unwrap()));
        assert!(!p.permits(&"https://evil.example.com/".parse().unwrap()));
        assert!(!p.permits(&"https://api.example.com.evil.test/".parse().unwrap()));
        assert!(!policy(&[]).permits(&"https://api.example.com/".parse().unwrap()));
    }
}
