//! Configuration parsing: every rule, through `Config::from_env`.

use proptest::prelude::*;

use super::*;

const SECRET_A: &str = "0123456789abcdef0123456789abcdef-a";
const SECRET_B: &str = "0123456789abcdef0123456789abcdef-b";

fn load(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    Config::from_env(&Env::from_pairs(pairs.iter().copied()))
}

fn error(pairs: &[(&str, &str)]) -> String {
    match load(pairs) {
        Ok(_) => panic!("accepted {pairs:?}"),
        Err(error) => error.to_string(),
    }
}

fn domain_map(json: &str) -> Result<Loaded, ConfigError> {
    load(&[("DOMAIN_MAP", json)])
}

#[test]
fn legacy_variables_make_a_wildcard_domain() {
    let loaded = load(&[
        ("UPSTREAM", "http://127.0.0.1:3000/base/"),
        ("CLIENT_ID_SECRET", SECRET_A),
        ("PASS_THROUGH_ROUTES", "/health, /static/*"),
        ("MTE_ROUTES", "/api/*"),
        ("CORS_ORIGINS", "https://app.example.com"),
        ("CORS_METHODS", "get,patch"),
        ("HEADERS", r#"{"x-api-key":"k"}"#),
        ("OUTBOUND_TOKEN", "an-outbound-token-of-32-characters!"),
        ("OUTBOUND_UPSTREAM", "https://Relay-B.example:8443/"),
        (
            "OUTBOUND_PEERS",
            "https://relay-b.example:8443, http://relay-c.internal:8080",
        ),
    ])
    .expect("valid");
    let config = loaded.config;
    assert_eq!(config.domains.len(), 1);
    let domain = config.domains.lookup("anything.example").expect("wildcard");
    assert_eq!(domain.name, "*");
    assert_eq!(domain.upstream.to_string(), "http://127.0.0.1:3000/base");
    assert!(domain.pass_through_routes.matches("/health"));
    assert!(domain.pass_through_routes.matches("/static/a.css"));
    assert!(domain.mte_routes.matches("/api/x"));
    assert_eq!(domain.client_id_secret.expose(), SECRET_A);
    assert!(!domain.client_id_secret_generated);
    assert!(domain.cors.allows_origin("https://APP.example.com"));
    assert_eq!(
        domain.cors.methods,
        vec![http::Method::GET, http::Method::PATCH]
    );
    assert_eq!(domain.headers.map()["x-api-key"], "k");
    let outbound = domain.outbound.as_ref().expect("outbound role");
    assert_eq!(
        outbound.default_peer.as_ref().map(|peer| peer.as_str()),
        Some("https://relay-b.example:8443")
    );
    assert_eq!(outbound.peers.len(), 2);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn globals_have_documented_defaults() {
    let config = load(&[("UPSTREAM", "http://127.0.0.1:1")])
        .expect("valid")
        .config;
    assert_eq!(config.port, 8080);
    assert_eq!(config.bind_address.to_string(), "0.0.0.0");
    assert_eq!(config.pool_size, 600);
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.format, None);
    assert!(config.secret.is_none());
    assert_eq!(config.pairing.pair_ttl.as_secs(), 86_400);
    assert_eq!(config.pairing.max_pairs_per_client, 64);
    assert_eq!(config.pairing.max_pairs_per_batch, 32);
    assert_eq!(config.pairing.client_id_max_age.as_secs(), 30 * 86_400);
    assert!(config.pairing.max_concurrent_pairings >= 2);
    assert_eq!(config.pairing.max_pairs, DEFAULT_MAX_PAIRS);
    assert_eq!(config.resend.window.as_secs(), 60);
    assert_eq!(config.resend.max_tokens, DEFAULT_MAX_RESEND_TOKENS);
    assert_eq!(config.callers.max_in_flight_per_client, 150);
    assert_eq!(config.callers.max_connections, 10_000);
    assert_eq!(config.callers.max_connections_per_address, 1024);
    assert_eq!(config.pairing.body_timeout.as_secs(), 10);
    assert_eq!(config.pairing.rate_per_address.per_second, 50.0);
    assert_eq!(config.pairing.rate_per_address.burst, 512.0);
    assert_eq!(config.pairing.rate_per_client.per_second, 1.0);
    assert_eq!(config.pairing.rate_per_client.burst, 128.0);
    assert_eq!(config.timeouts.upstream_connect.as_secs(), 5);
    assert_eq!(config.timeouts.upstream_response.as_secs(), 60);
    assert_eq!(config.timeouts.body_idle.as_secs(), 60);
    assert_eq!(config.timeouts.shutdown_grace.as_secs(), 30);
    assert_eq!(config.timeouts.client_header_read.as_secs(), 30);
}

#[test]
fn globals_are_parsed() {
    let config = load(&[
        ("UPSTREAM", "http://127.0.0.1:1"),
        ("PORT", "0"),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("LOG_LEVEL", "WARNING"),
        ("LOG_FORMAT", "pretty"),
        ("POOL_SIZE", "1000"),
        ("SECRET", SECRET_B),
        ("UPSTREAM_RESPONSE_TIMEOUT_SECS", "0.5"),
        ("BODY_IDLE_TIMEOUT_SECS", "2.5"),
        ("MAX_CONCURRENT_PAIRINGS", "3"),
        ("MAX_PAIRS", "1000"),
        ("PAIRING_RATE_PER_ADDRESS", "0.5"),
        ("PAIRING_BURST_PER_CLIENT", "40"),
        ("RESEND_WINDOW_SECS", "5"),
        ("MAX_RESEND_TOKENS", "7"),
    ])
    .expect("valid")
    .config;
    assert_eq!(config.port, 0);
    assert_eq!(config.bind_address.to_string(), "127.0.0.1");
    assert_eq!(config.log.level, LogLevel::Warning);
    assert_eq!(config.log.format, Some(LogFormat::Pretty));
    assert_eq!(config.pool_size, 1000);
    assert_eq!(config.secret.as_ref().map(Secret::expose), Some(SECRET_B));
    assert_eq!(config.timeouts.upstream_response.as_millis(), 500);
    assert_eq!(config.timeouts.body_idle.as_millis(), 2500);
    assert_eq!(config.pairing.max_concurrent_pairings, 3);
    assert_eq!(config.pairing.max_pairs, 1000);
    assert_eq!(
        config.callers.max_in_flight_per_client, 1000,
        "with SECRET the relay serves peer relays, each a whole service: all of POOL_SIZE"
    );
    assert_eq!(config.outbound.pairs, 8);
    assert_eq!(config.outbound.mode, mte_relay_protocol::header::Mode::Mke);
    let without_secret = load(&[("UPSTREAM", "http://127.0.0.1:1"), ("POOL_SIZE", "1000")])
        .expect("valid")
        .config;
    assert_eq!(
        without_secret.callers.max_in_flight_per_client, 250,
        "a quarter of POOL_SIZE"
    );
    assert_eq!(config.pairing.rate_per_address.per_second, 0.5);
    assert_eq!(config.pairing.rate_per_client.burst, 40.0);
    assert_eq!(config.resend.window.as_secs(), 5);
    assert_eq!(config.resend.max_tokens, 7);
}

#[test]
fn debug_lowers_the_default_level_but_not_an_explicit_one() {
    let debug = load(&[("UPSTREAM", "http://h"), ("DEBUG", "true")]).expect("valid");
    assert_eq!(debug.config.log.level, LogLevel::Debug);
    let explicit = load(&[
        ("UPSTREAM", "http://h"),
        ("DEBUG", "1"),
        ("LOG_LEVEL", "error"),
    ])
    .expect("valid");
    assert_eq!(explicit.config.log.level, LogLevel::Error);
}

#[test]
fn domain_map_wins_over_legacy_variables_with_a_warning() {
    let loaded = load(&[
        (
            "DOMAIN_MAP",
            r#"{"api.example.com":{"upstream":"http://10.0.0.1:80"}}"#,
        ),
        ("UPSTREAM", "http://legacy:1"),
        ("CORS_ORIGINS", "https://x.example"),
    ])
    .expect("valid");
    let domain = loaded
        .config
        .domains
        .lookup("api.example.com")
        .expect("domain");
    assert_eq!(domain.upstream.to_string(), "http://10.0.0.1:80");
    assert!(loaded.config.domains.lookup("other.example").is_none());
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.contains("DOMAIN_MAP is set"))
        .expect("precedence warning");
    assert!(warning.contains("UPSTREAM") && warning.contains("CORS_ORIGINS"));
}

#[test]
fn missing_client_id_secret_is_generated_with_a_warning() {
    let loaded = domain_map(r#"{"a.example":{"upstream":"http://h","client_id_secret":""}}"#)
        .expect("valid");
    let domain = loaded.config.domains.lookup("a.example").expect("domain");
    assert!(domain.client_id_secret_generated);
    assert!(domain.client_id_secret.char_len() >= 32);
    assert!(loaded.warnings.iter().any(|w| w.contains("replicas")));
}

#[test]
fn host_matching_is_exact_case_insensitive_then_wildcard() {
    let config = domain_map(
        r#"{
            "API.example.com": {"upstream": "http://a"},
            "api.example.com:8443": {"upstream": "http://b"},
            "*": {"upstream": "http://default"}
        }"#,
    )
    .expect("valid")
    .config;
    let upstream = |host: &str| {
        config
            .domains
            .lookup(host)
            .map(|d| d.upstream.authority.to_string())
    };
    assert_eq!(upstream("api.example.com").as_deref(), Some("a"));
    assert_eq!(upstream("Api.Example.COM").as_deref(), Some("a"));
    assert_eq!(upstream("api.example.com:8080").as_deref(), Some("a"));
    assert_eq!(upstream("api.example.com:8443").as_deref(), Some("b"));
    assert_eq!(upstream("api.example.com.").as_deref(), Some("a"));
    assert_eq!(upstream("other.example.com").as_deref(), Some("default"));
    assert_eq!(upstream("").as_deref(), Some("default"));
}

#[test]
fn without_a_wildcard_unknown_hosts_match_nothing() {
    let config = domain_map(r#"{"a.example":{"upstream":"http://h"}}"#)
        .expect("valid")
        .config;
    assert!(config.domains.lookup("b.example").is_none());
    assert!(config.domains.lookup("a.example.evil").is_none());
}

/// Each invalid setting names its variable and field. (variables, expected prefix)
#[test]
fn invalid_settings_name_the_variable_and_field() {
    let long = SECRET_A;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "DOMAIN_MAP: not set"),
        (
            vec![("DOMAIN_MAP", "{".into())],
            "DOMAIN_MAP: not valid JSON",
        ),
        (
            vec![("DOMAIN_MAP", "[]".into())],
            "DOMAIN_MAP: expected a JSON object",
        ),
        (
            vec![("DOMAIN_MAP", "{}".into())],
            "DOMAIN_MAP: has no domains",
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":1}"#.into())],
            r#"DOMAIN_MAP["a"]: expected a JSON object"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: required"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"api.example.com":{"upstream":"ftp://x"}}"#.into(),
            )],
            r#"DOMAIN_MAP["api.example.com"].upstream: not an absolute http(s) URL"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{"upstream":"backend:3000"}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: "backend:3000" is not an absolute http(s) URL; did you mean "http://backend:3000"?"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{"upstream":"/relative"}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: not an absolute http(s) URL"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{"upstream":"http://u:p@h"}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: credentials"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{"upstream":"http://h/?q=1"}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: must not have a query"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a":{"upstream":7}}"#.into())],
            r#"DOMAIN_MAP["a"].upstream: expected a string"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","upstrem":"x"}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].upstrem: unknown field"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","client_id_secret":"short"}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].client_id_secret: must be at least 32 characters (got 5); generate one with `openssl rand -hex 32`"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                format!(
                    r#"{{"a":{{"upstream":"http://h","client_id_previous_secrets":["{long}","x"]}}}}"#
                ),
            )],
            r#"DOMAIN_MAP["a"].client_id_previous_secrets[1]: must be at least 32"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","pass_through_routes":"/health"}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].pass_through_routes: expected a list of strings"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","pass_through_routes":["/ok","bad"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].pass_through_routes[1]: route "bad" must start with '/'"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","mte_routes":["/a*"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].mte_routes[0]: route "/a*""#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","cors_origins":["app.example.com"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].cors_origins[0]: not an origin"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","cors_origins":["https://a.example/path"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].cors_origins[0]: not an origin"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","cors_methods":["GET","BAD METHOD"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].cors_methods[1]: not an HTTP method"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":["x"]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers: expected a JSON object"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":{"bad name":"v"}}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers["bad name"]: not a valid header name"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":{"x-a":"line\nbreak"}}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers["x-a"]: not a valid header value"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":{"x-a":1}}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers["x-a"]: expected a string value"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":{"Connection":"close"}}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers["Connection"]: hop-by-hop"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","headers":{"x-mte-relay":"1"}}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].headers["x-mte-relay"]: the relay's own"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","outbound_token":5}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].outbound_token: expected a string"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","adapters":["ok",""]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].adapters[1]: adapter names"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","adapters":[1]}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"].adapters[0]: expected a string"#,
        ),
        (
            vec![("DOMAIN_MAP", r#"{"a b":{"upstream":"http://h"}}"#.into())],
            r#"DOMAIN_MAP["a b"]: not a host name"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"A":{"upstream":"http://h"},"a":{"upstream":"http://h"}}"#.into(),
            )],
            r#"DOMAIN_MAP["a"]: configured twice"#,
        ),
        (
            vec![("UPSTREAM", "nope".into())],
            r#"UPSTREAM: "nope" is not an absolute http(s) URL; did you mean "http://nope"?"#,
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("CLIENT_ID_SECRET", "short".into()),
            ],
            "CLIENT_ID_SECRET: must be at least 32",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("PASS_THROUGH_ROUTES", "/ok,nope".into()),
            ],
            "PASS_THROUGH_ROUTES[1]: route \"nope\"",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MTE_ROUTES", "/x/*/y".into()),
            ],
            "MTE_ROUTES[0]: route",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("CORS_ORIGINS", "nope".into()),
            ],
            "CORS_ORIGINS[0]: not an origin",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("CORS_METHODS", "G(T".into()),
            ],
            "CORS_METHODS[0]: not an HTTP method",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("HEADERS", "x-a: 1".into()),
            ],
            "HEADERS: not valid JSON",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("HEADERS", r#"{"x-a":[1]}"#.into()),
            ],
            r#"HEADERS["x-a"]: expected a string value"#,
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("PORT", "70000".into())],
            "PORT: expected a port",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("PORT", "-1".into())],
            "PORT: expected a port",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("BIND_ADDRESS", "localhost".into()),
            ],
            "BIND_ADDRESS: not an IP",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("LOG_LEVEL", "verbose".into()),
            ],
            "LOG_LEVEL: \"verbose\" is not a level; expected one of",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("LOG_FORMAT", "xml".into()),
            ],
            "LOG_FORMAT: expected json or pretty",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("DEBUG", "maybe".into())],
            "DEBUG: expected true or false",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("POOL_SIZE", "1001".into()),
            ],
            "POOL_SIZE: expected a whole number from 1 to 1000",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("POOL_SIZE", "0".into())],
            "POOL_SIZE: expected a whole number",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("POOL_SIZE", "ten".into())],
            "POOL_SIZE: expected a whole number",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("SECRET", "short".into())],
            "SECRET: must be at least 32",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("PAIRING_BURST_PER_ADDRESS", "31".into()),
            ],
            "PAIRING_BURST_PER_ADDRESS: must be at least MAX_PAIRS_PER_BATCH (32)",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_PAIRS_PER_CLIENT", "8".into()),
                ("MAX_PAIRS_PER_BATCH", "9".into()),
            ],
            "MAX_PAIRS_PER_BATCH: must be at most MAX_PAIRS_PER_CLIENT (8)",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("PAIRING_RATE_PER_CLIENT", "0".into()),
            ],
            "PAIRING_RATE_PER_CLIENT: expected pairs per second",
        ),
        (
            vec![("UPSTREAM", "http://h".into()), ("MAX_PAIRS", "0".into())],
            "MAX_PAIRS: expected a whole number",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("POOL_SIZE", "10".into()),
                ("MAX_IN_FLIGHT_PER_CLIENT", "11".into()),
            ],
            "MAX_IN_FLIGHT_PER_CLIENT: expected a whole number from 1 to 10",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("UPSTREAM_CONNECT_TIMEOUT_SECS", "0".into()),
            ],
            "UPSTREAM_CONNECT_TIMEOUT_SECS: expected a number of seconds",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("UPSTREAM_RESPONSE_TIMEOUT_SECS", "NaN".into()),
            ],
            "UPSTREAM_RESPONSE_TIMEOUT_SECS: expected a number of seconds",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("SHUTDOWN_GRACE_SECS", "1e9".into()),
            ],
            "SHUTDOWN_GRACE_SECS: expected a number of seconds",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_BODY_BYTES", "0".into()),
            ],
            "MAX_BODY_BYTES: expected a whole number",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_HEAD_BYTES", "10".into()),
            ],
            "MAX_HEAD_BYTES: expected a whole number",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("PAIR_TTL_SECS", "0".into()),
            ],
            "PAIR_TTL_SECS: expected a whole number",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_PAIRS_PER_CLIENT", "x".into()),
            ],
            "MAX_PAIRS_PER_CLIENT: expected",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_PAIRS_PER_BATCH", "5000".into()),
            ],
            "MAX_PAIRS_PER_BATCH: expected",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("CLIENT_ID_MAX_AGE_SECS", "-5".into()),
            ],
            "CLIENT_ID_MAX_AGE_SECS: expected",
        ),
        (
            vec![
                ("UPSTREAM", "http://h".into()),
                ("MAX_CONCURRENT_PAIRINGS", "0".into()),
            ],
            "MAX_CONCURRENT_PAIRINGS: expected",
        ),
    ];
    for (vars, expected) in cases {
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let message = error(&pairs);
        assert!(
            message.starts_with(expected),
            "for {vars:?}\n  expected prefix: {expected}\n  got: {message}"
        );
        assert!(!message.contains('\n'), "multi-line error: {message}");
    }
}

#[test]
fn errors_never_echo_secret_values() {
    let secret = "s3cr3t-value-that-is-too-short";
    let message = error(&[("UPSTREAM", "http://h"), ("CLIENT_ID_SECRET", secret)]);
    assert!(!message.contains(secret), "{message}");
    let message = error(&[("UPSTREAM", "http://h"), ("SECRET", secret)]);
    assert!(!message.contains(secret), "{message}");
}

#[test]
fn blank_variables_count_as_unset() {
    let config = load(&[("UPSTREAM", "http://h"), ("PORT", ""), ("DOMAIN_MAP", "  ")])
        .expect("valid")
        .config;
    assert_eq!(config.port, 8080);
    assert_eq!(
        config.domains.lookup("x").map(|d| d.name.as_str()),
        Some("*")
    );
}

#[test]
fn redacted_views_contain_no_secret() {
    let json = format!(
        r#"{{"a.example":{{"upstream":"http://h","client_id_secret":"{SECRET_A}",
            "client_id_previous_secrets":["{SECRET_B}"],"outbound_token":"tok-123-secret-tok-123-secret-tok-123",
            "headers":{{"authorization":"Bearer upstream-credential"}}}}}}"#
    );
    let relay_secret = "relay-secret-relay-secret-relay-secret";
    let loaded = load(&[("DOMAIN_MAP", &json), ("SECRET", relay_secret)]).expect("valid");
    let rendered = format!(
        "{}\n{}\n{:?}",
        render::redacted_config(&loaded.config),
        render::domain_map_export_line(&loaded.config),
        loaded.config,
    );
    for secret in [
        SECRET_A,
        SECRET_B,
        "tok-123-secret-tok-123-secret-tok-123",
        "upstream-credential",
        relay_secret,
    ] {
        assert!(!rendered.contains(secret), "{secret} leaked:\n{rendered}");
    }
    assert!(rendered.contains(secret::REDACTED));
}

#[test]
fn export_line_reloads_to_the_same_domains() {
    let json = r#"{"a.example":{"upstream":"http://h:1/base","pass_through_routes":["/health","/s/*"],
        "mte_routes":["/api/*"],"cors_origins":["*","https://o.example"],"cors_methods":["GET"],
        "adapters":["auth","meter"]},"*":{"upstream":"http://default"}}"#;
    let loaded = domain_map(json).expect("valid");
    let line = render::domain_map_export_line(&loaded.config);
    let exported = line
        .strip_prefix("export DOMAIN_MAP='")
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("export form");
    let reloaded = domain_map(exported).expect("export reloads").config;
    assert_eq!(
        render::redacted_config(&reloaded)["domain_map"],
        render::redacted_config(&loaded.config)["domain_map"]
    );
}

/// A fixed identity key (32 bytes of 0x07, base64url) for the tests below.
const IDENTITY_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

#[test]
fn identity_keys_sign_per_domain_and_only_their_pin_is_shown() {
    let json = format!(
        r#"{{"a.example":{{"upstream":"http://h","identity_key":"{IDENTITY_KEY}"}},
            "b.example":{{"upstream":"http://h"}}}}"#
    );
    let loaded = domain_map(&json).expect("valid");
    let a = loaded.config.domains.lookup("a.example").expect("a");
    let b = loaded.config.domains.lookup("b.example").expect("b");
    let pin = a
        .identity
        .as_ref()
        .expect("a has an identity")
        .public_key()
        .pin();
    assert!(b.identity.is_none());
    let legacy = load(&[
        ("UPSTREAM", "http://h"),
        ("RELAY_IDENTITY_KEY", IDENTITY_KEY),
    ])
    .expect("valid");
    let wildcard = legacy
        .config
        .domains
        .lookup("any.example")
        .expect("wildcard");
    assert_eq!(
        wildcard
            .identity
            .as_ref()
            .map(|identity| identity.public_key().pin()),
        Some(pin),
        "the same key is the same identity in both forms"
    );

    let shown = render::redacted_config(&loaded.config);
    assert_eq!(
        shown["domain_map"]["a.example"]["identity_pin"],
        pin.to_string()
    );
    assert_eq!(
        shown["domain_map"]["a.example"]["identity_key"],
        secret::REDACTED
    );
    let export = render::domain_map_export_line(&loaded.config);
    let debug = format!("{:?}", loaded.config);
    for text in [shown.to_string(), export.clone(), debug] {
        assert!(!text.contains(IDENTITY_KEY), "the key leaked: {text}");
    }
    assert!(!export.contains("identity_pin"), "not a field: {export}");

    assert!(
        error(&[
            ("UPSTREAM", "http://h"),
            ("RELAY_IDENTITY_KEY", &IDENTITY_KEY[1..])
        ])
        .starts_with("RELAY_IDENTITY_KEY: identity key is not 32 bytes")
    );
    assert!(
        error(&[(
            "DOMAIN_MAP",
            r#"{"a":{"upstream":"http://h","identity_key":7}}"#
        )])
        .starts_with(r#"DOMAIN_MAP["a"].identity_key: expected a string"#)
    );
}

#[test]
fn verify_body_before_forward_is_a_bounded_byte_count() {
    let limit = |pairs: &[(&str, &str)]| {
        load(pairs)
            .expect("valid")
            .config
            .domains
            .lookup("x")
            .expect("domain")
            .verify_body_before_forward
    };
    assert_eq!(limit(&[("UPSTREAM", "http://h")]), None, "off by default");
    assert_eq!(
        limit(&[
            ("UPSTREAM", "http://h"),
            ("VERIFY_BODY_BEFORE_FORWARD", "0")
        ]),
        None
    );
    assert_eq!(
        limit(&[
            ("UPSTREAM", "http://h"),
            ("VERIFY_BODY_BEFORE_FORWARD", "65536")
        ]),
        Some(65_536)
    );
    assert_eq!(
        limit(&[(
            "DOMAIN_MAP",
            r#"{"*":{"upstream":"http://h","verify_body_before_forward":1048576}}"#
        )]),
        Some(1_048_576)
    );
    for (pairs, expected) in [
        (
            vec![
                ("UPSTREAM", "http://h"),
                ("VERIFY_BODY_BEFORE_FORWARD", "16777217"),
            ],
            "VERIFY_BODY_BEFORE_FORWARD: expected a whole number of bytes from 0 (off) to 16777216",
        ),
        (
            vec![
                ("UPSTREAM", "http://h"),
                ("VERIFY_BODY_BEFORE_FORWARD", "1MB"),
            ],
            "VERIFY_BODY_BEFORE_FORWARD: expected a whole number",
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","verify_body_before_forward":"1"}}"#,
            )],
            r#"DOMAIN_MAP["a"].verify_body_before_forward: expected a number of bytes"#,
        ),
        (
            vec![(
                "DOMAIN_MAP",
                r#"{"a":{"upstream":"http://h","verify_body_before_forward":-1}}"#,
            )],
            r#"DOMAIN_MAP["a"].verify_body_before_forward: expected a whole number"#,
        ),
    ] {
        let message = error(&pairs);
        assert!(message.starts_with(expected), "{pairs:?}: {message}");
    }
}

#[test]
fn the_batch_limit_follows_a_lower_per_client_limit_unless_set() {
    let pairing = |pairs: &[(&str, &str)]| load(pairs).expect("valid").config.pairing;
    let default = pairing(&[("UPSTREAM", "http://h")]);
    assert_eq!(
        (default.max_pairs_per_client, default.max_pairs_per_batch),
        (64, 32)
    );
    let small = pairing(&[("UPSTREAM", "http://h"), ("MAX_PAIRS_PER_CLIENT", "8")]);
    assert_eq!(
        (small.max_pairs_per_client, small.max_pairs_per_batch),
        (8, 8)
    );
}

#[test]
fn pad_stream_records_chooses_which_responses_are_padded() {
    let padding = |pairs: &[(&str, &str)]| {
        load(pairs)
            .expect("valid")
            .config
            .domains
            .lookup("x")
            .expect("domain")
            .pad_stream_records
    };
    let event_stream = http::HeaderValue::from_static("text/event-stream; charset=utf-8");
    let json = http::HeaderValue::from_static("application/json");
    let auto = padding(&[("UPSTREAM", "http://h")]);
    assert_eq!(
        auto,
        StreamPadding::EventStreams,
        "event streams by default"
    );
    assert!(auto.applies_to(Some(&event_stream)));
    assert!(auto.applies_to(Some(&http::HeaderValue::from_static("Text/Event-Stream"))));
    assert!(!auto.applies_to(Some(&json)));
    assert!(!auto.applies_to(None));
    let always = padding(&[("UPSTREAM", "http://h"), ("PAD_STREAM_RECORDS", "always")]);
    assert!(always.applies_to(Some(&json)) && always.applies_to(None));
    let never = padding(&[(
        "DOMAIN_MAP",
        r#"{"*":{"upstream":"http://h","pad_stream_records":false}}"#,
    )]);
    assert!(!never.applies_to(Some(&event_stream)));
    assert_eq!(
        padding(&[(
            "DOMAIN_MAP",
            r#"{"*":{"upstream":"http://h","pad_stream_records":true}}"#,
        )]),
        StreamPadding::Always
    );
    assert!(
        error(&[
            ("UPSTREAM", "http://h"),
            ("PAD_STREAM_RECORDS", "sometimes")
        ])
        .starts_with("PAD_STREAM_RECORDS: expected auto")
    );
    assert!(
        error(&[(
            "DOMAIN_MAP",
            r#"{"a":{"upstream":"http://h","pad_stream_records":1}}"#
        )])
        .starts_with(r#"DOMAIN_MAP["a"].pad_stream_records: expected"#)
    );
}

#[test]
fn the_product_documents_spellings_work() {
    let loaded = load(&[
        ("UPSTREAM", "http://127.0.0.1:1"),
        ("LOG_LEVEL", "disabled"),
        ("CORS_ORIGINS", "*"),
    ])
    .expect("valid");
    assert_eq!(loaded.config.log.level, LogLevel::Off);
    let warn = load(&[("UPSTREAM", "http://127.0.0.1:1"), ("LOG_LEVEL", "warn")]).expect("valid");
    assert_eq!(warn.config.log.level, LogLevel::Warning);
    let map = domain_map(r#"{"a":{"upstream":"http://h","cors_origins":"*"}}"#).expect("valid");
    let domain = map.config.domains.iter().next().expect("a domain");
    assert_eq!(
        format!("{:?}", domain.cors),
        format!(
            "{:?}",
            domain_map(r#"{"a":{"upstream":"http://h","cors_origins":["*"]}}"#)
                .expect("valid")
                .config
                .domains
                .iter()
                .next()
                .expect("a domain")
                .cors
        ),
        "a lone \"*\" is the list [\"*\"]"
    );
    let typo = error(&[("UPSTREAM", "http://127.0.0.1:1"), ("LOG_LEVEL", "verbose")]);
    assert!(typo.contains("\"verbose\" is not a level"), "{typo}");
}

#[test]
fn export_line_escapes_single_quotes() {
    let loaded = load(&[("UPSTREAM", "http://h"), ("ADAPTER_CHAIN", "it's")]).expect("valid");
    assert!(render::domain_map_export_line(&loaded.config).contains(r"it'\''s"));
}

proptest! {
    #[test]
    fn any_env_value_yields_a_config_or_a_one_line_error(
        name in prop::sample::select(env::VARIABLES.to_vec()),
        value in "\\PC{0,40}",
    ) {
        let mut pairs = vec![("UPSTREAM", "http://127.0.0.1:1")];
        pairs.push((name, value.as_str()));
        if let Err(error) = load(&pairs) {
            let message = error.to_string();
            prop_assert!(!message.contains('\n'));
            prop_assert!(message.starts_with(&error.location));
            let variable = error.location.split(['[', '.']).next().unwrap_or_default().to_owned();
            prop_assert!(env::VARIABLES.contains(&variable.as_str()), "{}", message);
        }
    }

    #[test]
    fn any_domain_map_json_yields_a_config_or_a_domain_map_error(
        host in "[a-zA-Z0-9.*:-]{0,12}",
        field in prop::sample::select(vec![
            "upstream", "pass_through_routes", "mte_routes", "cors_origins", "headers", "typo",
        ]),
        value in prop_oneof![
            "\\PC{0,16}".prop_map(serde_json::Value::from),
            prop::collection::vec("\\PC{0,8}", 0..3).prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
        ],
    ) {
        let mut entry = serde_json::Map::new();
        entry.insert("upstream".into(), "http://127.0.0.1:1".into());
        entry.insert(field.into(), value);
        let map = serde_json::json!({ host: entry }).to_string();
        if let Err(error) = domain_map(&map) {
            prop_assert!(error.location.starts_with("DOMAIN_MAP"), "{}", error);
            prop_assert!(!error.to_string().contains('\n'));
        }
    }
}

#[test]
fn outbound_settings_are_checked() {
    let outbound = load(&[
        ("UPSTREAM", "http://127.0.0.1:1"),
        ("OUTBOUND_TOKEN", "an-outbound-token-of-32-characters!"),
        ("OUTBOUND_PAIRS", "3"),
        ("OUTBOUND_MODE", "MTE"),
    ])
    .expect("valid");
    assert_eq!(outbound.config.outbound.pairs, 3);
    assert_eq!(
        outbound.config.outbound.mode,
        mte_relay_protocol::header::Mode::Mte
    );
    assert!(
        outbound
            .warnings
            .iter()
            .any(|warning| warning.contains("no outbound_peers allow-list")),
        "{:?}",
        outbound.warnings
    );
    for (env, location) in [
        (vec![("OUTBOUND_TOKEN", "short")], "OUTBOUND_TOKEN"),
        (
            vec![("OUTBOUND_UPSTREAM", "http://peer:1")],
            "OUTBOUND_UPSTREAM",
        ),
        (vec![("OUTBOUND_PAIRS", "0")], "OUTBOUND_PAIRS"),
        (vec![("OUTBOUND_MODE", "aes")], "OUTBOUND_MODE"),
        (
            vec![
                ("OUTBOUND_TOKEN", "an-outbound-token-of-32-characters!"),
                ("OUTBOUND_PEERS", "http://peer:1,peer-two:2"),
            ],
            "OUTBOUND_PEERS[1]",
        ),
    ] {
        let mut env = env;
        env.push(("UPSTREAM", "http://127.0.0.1:1"));
        let error = load(&env).expect_err("refused");
        assert_eq!(error.location, location, "{error}");
    }
    let map = r#"{"a":{"upstream":"http://h","outbound_token":"an-outbound-token-of-32-characters!",
        "outbound_upstream":"http://peer:1/path"}}"#;
    let error = load(&[("DOMAIN_MAP", map)]).expect_err("a path");
    assert_eq!(error.location, r#"DOMAIN_MAP["a"].outbound_upstream"#);
}
