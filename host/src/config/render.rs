//! Redacted views of the configuration: the startup log and `check-config` output.
//!
//! Every secret, and every configured upstream header value (they often carry
//! credentials), is replaced by [`REDACTED`]. Nothing here calls `Secret::expose`.

use serde_json::{Map, Value, json};

use super::domain::DomainConfig;
use super::outbound::PeerOrigin;
use super::secret::REDACTED;
use super::{AdapterDeclarations, Config};

/// The effective configuration as JSON, secrets redacted.
pub fn redacted_config(config: &Config) -> Value {
    let domains: Map<String, Value> = config
        .domains
        .iter()
        .map(|domain| (domain.name.clone(), redacted_domain(domain, true)))
        .collect();
    let mut effective = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "bind_address": config.bind_address.to_string(),
        "port": config.port,
        "admin_bind": config.admin.bind_address.to_string(),
        "admin_port": config.admin.port,
        "metrics": config.admin.metrics,
        "log_level": config.log.level.as_str(),
        "log_format": config.log.format.map_or("auto", |format| format.as_str()),
        "debug": config.log.debug,
        "pool_size": config.pool_size,
        "max_in_flight_per_client": config.callers.max_in_flight_per_client,
        "max_connections": config.callers.max_connections,
        "max_connections_per_address": config.callers.max_connections_per_address,
        "secret": config.secret.as_ref().map(|_| REDACTED),
        "upstream_connect_timeout_secs": config.timeouts.upstream_connect.as_secs_f64(),
        "upstream_response_timeout_secs": config.timeouts.upstream_response.as_secs_f64(),
        "body_idle_timeout_secs": config.timeouts.body_idle.as_secs_f64(),
        "shutdown_grace_secs": config.timeouts.shutdown_grace.as_secs_f64(),
        "shutdown_delay_secs": config.timeouts.shutdown_delay.as_secs(),
        "client_header_timeout_secs": config.timeouts.client_header_read.as_secs_f64(),
        "trusted_proxies": config.trusted_proxies.describe(),
        "upstream_ca_file": config.upstream_tls.ca_file.as_ref().map(|path| path.display().to_string()),
        "upstream_ca_certificates": config.upstream_tls.extra_roots,
        "max_body_bytes": config.limits.max_body_bytes,
        "max_head_bytes": config.limits.max_head_bytes,
        "pair_ttl_secs": config.pairing.pair_ttl.as_secs(),
        "max_pairs_per_client": config.pairing.max_pairs_per_client,
        "max_pairs_per_batch": config.pairing.max_pairs_per_batch,
        "client_id_max_age_secs": config.pairing.client_id_max_age.as_secs(),
        "max_concurrent_pairings": config.pairing.max_concurrent_pairings,
        "max_pairs": config.pairing.max_pairs,
        "pairing_body_timeout_secs": config.pairing.body_timeout.as_secs_f64(),
        "pairing_rate_per_address": config.pairing.rate_per_address.per_second,
        "pairing_burst_per_address": config.pairing.rate_per_address.burst,
        "pairing_rate_per_client": config.pairing.rate_per_client.per_second,
        "pairing_burst_per_client": config.pairing.rate_per_client.burst,
        "resend_window_secs": config.resend.window.as_secs(),
        "max_resend_tokens": config.resend.max_tokens,
        "adapters": redacted_adapters(config),
        "store": config.store.describe(),
        "domain_map": domains,
    });
    // Added apart: one `json!` of every field passes the macro's recursion limit.
    effective["otlp"] = json!(config.otlp.as_ref().map(|otlp| json!({
        "traces_endpoint": otlp.traces_endpoint,
        "protocol": otlp.protocol.as_str(),
        "service_name": otlp.service_name,
    })));
    effective["outbound_pairs"] = json!(config.outbound.pairs);
    effective["outbound_mode"] = json!(config.outbound.mode.token());
    effective["tls_cert_file"] = json!(
        config
            .listener_tls
            .as_ref()
            .map(|tls| tls.cert_file.display().to_string())
    );
    effective["tls_key_file"] = json!(
        config
            .listener_tls
            .as_ref()
            .map(|tls| tls.key_file.display().to_string())
    );
    effective
}

/// Where adapters are declared. Inline declarations are not echoed: their `config`
/// objects may hold an adapter's secrets.
fn redacted_adapters(config: &Config) -> Value {
    let declared_in = match &config.adapters.declarations {
        AdapterDeclarations::None => Value::Null,
        AdapterDeclarations::File(path) => json!(format!("ADAPTERS_FILE {}", path.display())),
        AdapterDeclarations::Inline(_) => json!("ADAPTERS (inline)"),
    };
    json!({
        "declared_in": declared_in,
        "tick_secs": config.adapters.tick.as_secs(),
    })
}

/// `export DOMAIN_MAP='...'` reproducing the domains, secrets as placeholders.
/// A generated `client_id_secret` is left out, so the relay generates one again.
pub fn domain_map_export_line(config: &Config) -> String {
    let domains: Map<String, Value> = config
        .domains
        .iter()
        .map(|domain| (domain.name.clone(), redacted_domain(domain, false)))
        .collect();
    let json = Value::Object(domains).to_string();
    format!("export DOMAIN_MAP='{}'", json.replace('\'', r"'\''"))
}

/// One domain in `DOMAIN_MAP` form. `annotate` adds what is not a field: the fact that
/// a secret was generated, and the pin of the identity key.
fn redacted_domain(domain: &DomainConfig, annotate: bool) -> Value {
    let mut entry = Map::new();
    entry.insert("upstream".into(), json!(domain.upstream.to_string()));
    let routes = |set: &super::RouteSet| -> Value {
        Value::Array(
            set.patterns()
                .iter()
                .map(|p| json!(p.to_string()))
                .collect(),
        )
    };
    entry.insert(
        "pass_through_routes".into(),
        routes(&domain.pass_through_routes),
    );
    entry.insert("mte_routes".into(), routes(&domain.mte_routes));
    if !domain.client_id_secret_generated {
        entry.insert("client_id_secret".into(), json!(REDACTED));
    } else if annotate {
        entry.insert("client_id_secret".into(), json!("<generated at startup>"));
    }
    entry.insert(
        "client_id_previous_secrets".into(),
        json!(vec![REDACTED; domain.client_id_previous_secrets.len()]),
    );
    let mut origins: Vec<String> = domain.cors.origins.clone();
    if domain.cors.any_origin {
        origins.insert(0, "*".to_owned());
    }
    entry.insert("cors_origins".into(), json!(origins));
    entry.insert(
        "cors_methods".into(),
        json!(
            domain
                .cors
                .methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
        ),
    );
    let headers: Map<String, Value> = domain
        .headers
        .map()
        .keys()
        .map(|name| (name.as_str().to_owned(), json!(REDACTED)))
        .collect();
    entry.insert("headers".into(), Value::Object(headers));
    if let Some(outbound) = &domain.outbound {
        entry.insert("outbound_token".into(), json!(REDACTED));
        if let Some(peer) = &outbound.default_peer {
            entry.insert("outbound_upstream".into(), json!(peer.as_str()));
        }
        if !outbound.pins.is_empty() {
            entry.insert("outbound_pins".into(), json!(outbound.pins));
        }
        if !outbound.peers.is_empty() {
            let peers: Vec<&str> = outbound.peers.iter().map(PeerOrigin::as_str).collect();
            entry.insert("outbound_peers".into(), json!(peers));
        }
    }
    if let Some(identity) = &domain.identity {
        entry.insert("identity_key".into(), json!(REDACTED));
        if annotate {
            // The public half is what clients pin: safe to show, and what an operator
            // needs. Not a DOMAIN_MAP field, so never in the export line.
            entry.insert(
                "identity_pin".into(),
                json!(identity.public_key().pin().to_string()),
            );
        }
    }
    if let Some(bytes) = domain.verify_body_before_forward {
        entry.insert("verify_body_before_forward".into(), json!(bytes));
    }
    entry.insert(
        "pad_stream_records".into(),
        json!(domain.pad_stream_records.as_str()),
    );
    entry.insert("adapters".into(), json!(domain.adapters));
    Value::Object(entry)
}
