//! The listener: accepts connections (HTTP/1.1 and h2c), serves each on its own task,
//! and drains them on shutdown.

pub mod cors;
pub mod handler;
pub mod io;
pub mod route;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::admission::{LogThrottle, SlotRefused, address_key};
use crate::state::AppState;
use io::StalledWriteTimeout;

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the grace period.
    Cleanly,
    /// The grace period ran out with connections still open; they were dropped.
    GraceExpired,
}

/// A bound listener, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    /// TLS on the data port, when configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Binds `BIND_ADDRESS:PORT`.
    pub async fn bind(state: Arc<AppState>) -> std::io::Result<Server> {
        let address = SocketAddr::new(state.config.bind_address, state.config.port);
        let listener = TcpListener::bind(address).await?;
        Ok(Server {
            listener,
            state,
            tls: None,
        })
    }

    /// Serves TLS with `config` (from [`tls::server_config`]).
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Server {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// The bound address (the real port when `PORT=0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight
    /// requests up to the shutdown grace period to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Drained {
        let Server {
            listener,
            state,
            tls,
        } = self;
        let grace = state.config.timeouts.shutdown_grace;
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Without a timer hyper enforces no header deadline, and a client could hold a
        // connection forever by sending its request head one byte at a time.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.timeouts.client_header_read);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let write_limit = state.config.timeouts.body_idle;
        let header_limit = state.config.timeouts.client_header_read;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, remote_addr) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Usually EMFILE: back off instead of spinning on the error.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let address = address_key(remote_addr.ip());
                    let slot = match state.connections.try_take(&address) {
                        Ok(slot) => slot,
                        Err(refused) => {
                            // Closed before a byte is read: the cheapest answer to a
                            // connection flood, and the peer sees a reset, not a hang.
                            drop(stream);
                            report_refused_connection(remote_addr, refused, &state);
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let service = service_fn(move |request| {
                        handler::handle(state.clone(), remote_addr, request)
                    });
                    let stream = StalledWriteTimeout::new(stream, write_limit);
                    match &tls {
                        None => {
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .into_owned();
                            let connection = graceful.watch(connection);
                            tokio::spawn(async move {
                                let _slot = slot;
                                if let Err(error) = connection.await {
                                    tracing::debug!(%remote_addr, %error, "connection ended with an error");
                                }
                            });
                        }
                        Some(acceptor) => {
                            // The handshake runs on the connection's task, bounded like a
                            // request head, so a slow client holds no accept loop.
                            let (acceptor, builder, watcher) =
                                (acceptor.clone(), builder.clone(), graceful.watcher());
                            let handshake_limit = header_limit;
                            tokio::spawn(async move {
                                let _slot = slot;
                                let accepted =
                                    tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await;
                                let stream = match accepted {
                                    Ok(Ok(stream)) => stream,
                                    Ok(Err(error)) => {
                                        tracing::debug!(%remote_addr, %error, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%remote_addr, "TLS handshake timed out");
                                        return;
                                    }
                                };
                                let connection = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned();
                                if let Err(error) = watcher.watch(connection).await {
                                    tracing::debug!(%remote_addr, %error, "connection ended with an error");
                                }
                            });
                        }
                    }
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(
            in_flight_connections = graceful.count(),
            grace_secs = grace.as_secs_f64(),
            "shutting down: no longer accepting, draining connections"
        );
        match tokio::time::timeout(grace, graceful.shutdown()).await {
            Ok(()) => Drained::Cleanly,
            Err(_) => Drained::GraceExpired,
        }
    }
}

/// Logs a refused connection, at most once every ten seconds per bound.
fn report_refused_connection(remote_addr: SocketAddr, refused: SlotRefused, state: &AppState) {
    static PER_ADDRESS: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    static TOTAL: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    let callers = state.config.callers;
    match refused {
        SlotRefused::PerKey => {
            if let Some(held_back) = PER_ADDRESS.admit() {
                tracing::warn!(
                    %remote_addr,
                    max_connections_per_address = callers.max_connections_per_address,
                    refusals_not_logged = held_back,
                    "connection refused: MAX_CONNECTIONS_PER_ADDRESS reached for this address"
                );
            }
        }
        SlotRefused::Total => {
            if let Some(held_back) = TOTAL.admit() {
                tracing::warn!(
                    %remote_addr,
                    max_connections = callers.max_connections,
                    refusals_not_logged = held_back,
                    "connection refused: MAX_CONNECTIONS reached"
                );
            }
        }
    }
}
