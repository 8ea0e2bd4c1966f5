//! One connection handle to a single Redis node or a Redis Cluster, built lazily: the
//! relay starts while Redis is down and connects (and reconnects) on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, RedisResult, TlsCertificates, Value};

use crate::config::RedisSettings;

/// A cheap-to-clone handle: a multiplexed connection that reconnects by itself, or a
/// cluster connection that follows slot moves and node restarts. Its clones share one
/// count of the round trips they made (a command or a pipeline each).
#[derive(Clone)]
pub struct Connection {
    link: Link,
    round_trips: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Builds the handle without connecting; the first command connects.
    pub fn lazy(settings: &RedisSettings) -> RedisResult<Connection> {
        let certificates = || TlsCertificates {
            client_tls: None,
            root_cert: settings.ca_pem.clone(),
        };
        if settings.cluster {
            let mut builder =
                ClusterClientBuilder::new(settings.urls.iter().map(|url| url.expose()))
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.response_timeout);
            if settings.ca_pem.is_some() {
                builder = builder.certs(certificates());
            }
            let client = builder.build()?;
            let config = ClusterConfig::new()
                .set_connection_timeout(settings.connect_timeout)
                .set_response_timeout(settings.response_timeout);
            return Ok(Connection::new(Link::Cluster(
                client.get_pending_async_connection_with_config(config),
            )));
        }
        let url = settings.urls[0].expose();
        let client = if settings.ca_pem.is_some() {
            Client::build_with_tls(url, certificates())?
        } else {
            Client::open(url)?
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            // A command waits for at most one reconnection attempt; a request then
            // gets `store-unavailable` rather than hanging while Redis is away.
            .set_number_of_retries(1)
            .set_max_delay(std::time::Duration::from_millis(500));
        Ok(Connection::new(Link::Single(
            ConnectionManager::new_lazy_with_config(client, config)?,
        )))
    }

    fn new(link: Link) -> Connection {
        Connection {
            link,
            round_trips: Arc::default(),
        }
    }

    /// Round trips to Redis made through this handle and its clones so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match &mut self.link {
            Link::Single(connection) => connection.req_packed_command(cmd),
            Link::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match &mut self.link {
            Link::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(connection) => connection.get_db(),
            Link::Cluster(connection) => connection.get_db(),
        }
    }
}
