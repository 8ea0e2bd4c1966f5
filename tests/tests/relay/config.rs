//! Configuration through the real binary: exit code 2 with one line naming the
//! variable and field; DOMAIN_MAP precedence; check-config redaction; version.

use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::relay::{Relay, run};

use crate::support::named_upstream;

const SECRET: &str = "client-id-secret-0123456789abcdef0123";

/// Each case: the environment, and what the one error line must contain.
#[test]
fn each_invalid_setting_exits_2_naming_variable_and_field() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "DOMAIN_MAP: not set"),
        (&[("DOMAIN_MAP", "not json")], "DOMAIN_MAP: not valid JSON"),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"api.example.com":{"upstream":"localhost:3000"}}"#,
            )],
            r#"DOMAIN_MAP["api.example.com"].upstream: "localhost:3000" is not an absolute http(s) URL; did you mean "http://localhost:3000"?"#,
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"a.example":{"upstream":"http://h","pass_thru_routes":[]}}"#,
            )],
            r#"DOMAIN_MAP["a.example"].pass_thru_routes: unknown field"#,
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"a.example":{"upstream":"http://h","client_id_secret":"too-short"}}"#,
            )],
            r#"DOMAIN_MAP["a.example"].client_id_secret: must be at least 32 characters"#,
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"a.example":{"upstream":"http://h","mte_routes":["api/*"]}}"#,
            )],
            r#"DOMAIN_MAP["a.example"].mte_routes[0]"#,
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"a.example":{"upstream":"http://h","headers":{"x-a":5}}}"#,
            )],
            r#"DOMAIN_MAP["a.example"].headers["x-a"]: expected a string value"#,
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"a.example":{"upstream":"http://h","cors_origins":["web.example"]}}"#,
            )],
            r#"DOMAIN_MAP["a.example"].cors_origins[0]: not an origin"#,
        ),
        (
            &[("UPSTREAM", "not a url")],
            "UPSTREAM: not an absolute http(s) URL",
        ),
        (
            &[("UPSTREAM", "http://h"), ("PASS_THROUGH_ROUTES", "health")],
            "PASS_THROUGH_ROUTES[0]",
        ),
        (
            &[("UPSTREAM", "http://h"), ("HEADERS", "{")],
            "HEADERS: not valid JSON",
        ),
        (
            &[("UPSTREAM", "http://h"), ("PORT", "http")],
            "PORT: expected a port number",
        ),
        (
            &[("UPSTREAM", "http://h"), ("BIND_ADDRESS", "everywhere")],
            "BIND_ADDRESS: not an IP address",
        ),
        (
            &[("UPSTREAM", "http://h"), ("LOG_LEVEL", "loud")],
            r#"LOG_LEVEL: "loud" is not a level; expected one of"#,
        ),
        (
            &[("UPSTREAM", "http://h"), ("LOG_FORMAT", "yaml")],
            "LOG_FORMAT: expected json or pretty",
        ),
        (
            &[("UPSTREAM", "http://h"), ("POOL_SIZE", "5000")],
            "POOL_SIZE: expected a whole number from 1 to 1000",
        ),
        (
            &[("UPSTREAM", "http://h"), ("SECRET", "short")],
            "SECRET: must be at least 32 characters",
        ),
        (
            &[("UPSTREAM", "http://h"), ("DEBUG", "sometimes")],
            "DEBUG: expected true or false",
        ),
        (
            &[
                ("UPSTREAM", "http://h"),
                ("UPSTREAM_RESPONSE_TIMEOUT_SECS", "-1"),
            ],
            "UPSTREAM_RESPONSE_TIMEOUT_SECS: expected a number of seconds",
        ),
        (
            &[("UPSTREAM", "http://h"), ("MAX_PAIRS_PER_BATCH", "0")],
            "MAX_PAIRS_PER_BATCH: expected a whole number",
        ),
    ];
    for (env, expected) in cases {
        for command in ["serve", "check-config"] {
            let finished = run(&[command], env);
            assert_eq!(
                finished.status.code(),
                Some(2),
                "{command} {env:?}: {}",
                finished.stderr
            );
            let lines: Vec<&str> = finished.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{command} {env:?}: not one line: {lines:?}");
            assert!(
                lines[0].contains(expected),
                "{command} {env:?}\n expected: {expected}\n got: {}",
                lines[0]
            );
            assert!(
                finished.stdout.is_empty(),
                "{command} printed: {}",
                finished.stdout
            );
        }
    }
}

#[tokio::test]
async fn domain_map_wins_over_legacy_variables_and_says_so() {
    let mapped = named_upstream("from-domain-map").await;
    let legacy = named_upstream("from-legacy").await;
    let map =
        serde_json::json!({ "*": { "upstream": mapped.url(), "pass_through_routes": ["/who"] } })
            .to_string();
    let relay = Relay::start(&[
        ("DOMAIN_MAP", &map),
        ("UPSTREAM", &legacy.url()),
        ("PASS_THROUGH_ROUTES", "/who"),
    ]);
    let response = get(relay.addr(), "x.example", "/who").await;
    assert_eq!(body_bytes(response).await, "from-domain-map");
    let warning = relay
        .wait_for_log(|line| {
            line["level"] == "WARN"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("DOMAIN_MAP is set"))
        })
        .expect("precedence warning");
    let message = warning["message"].as_str().expect("message");
    assert!(
        message.contains("UPSTREAM") && message.contains("PASS_THROUGH_ROUTES"),
        "{message}"
    );
}

#[tokio::test]
async fn startup_logs_version_and_redacted_configuration() {
    let relay_secret = "relay-secret-relay-secret-relay-secret-42";
    let relay = Relay::start(&[
        ("UPSTREAM", "http://127.0.0.1:9"),
        ("CLIENT_ID_SECRET", SECRET),
        ("SECRET", relay_secret),
        ("OUTBOUND_TOKEN", "outbound-token-value-0123456789abcdef"),
        (
            "HEADERS",
            r#"{"authorization":"Bearer upstream-credential"}"#,
        ),
    ]);
    relay
        .wait_for_log(|line| line["message"] == "mte-relay starting" && line["version"].is_string())
        .expect("version line");
    let effective = relay
        .wait_for_log(|line| line["message"] == "effective configuration")
        .expect("configuration line");
    assert!(
        effective["config"]
            .as_str()
            .is_some_and(|c| c.contains("<redacted>"))
    );
    let all = relay.logs().join("\n");
    for secret in [
        SECRET,
        relay_secret,
        "outbound-token-value-0123456789abcdef",
        "upstream-credential",
    ] {
        assert!(!all.contains(secret), "{secret} in logs");
    }
}

#[test]
fn check_config_prints_redacted_configuration_and_an_export_line() {
    let map = serde_json::json!({
        "api.example.com": {
            "upstream": "http://10.1.2.3:8080",
            "pass_through_routes": ["/health"],
            "client_id_secret": SECRET,
            "client_id_previous_secrets": ["previous-secret-0123456789abcdef0123"],
            "outbound_token": "outbound-token-value-0123456789abcdef",
            "headers": { "x-api-key": "upstream-credential" },
        },
        "*": { "upstream": "http://10.1.2.4:8080" },
    })
    .to_string();
    let relay_secret = "relay-secret-relay-secret-relay-secret-42";
    let finished = run(
        &["check-config"],
        &[("DOMAIN_MAP", &map), ("SECRET", relay_secret)],
    );
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    let output = format!("{}\n{}", finished.stdout, finished.stderr);
    for secret in [
        SECRET,
        "previous-secret-0123456789abcdef0123",
        "outbound-token-value-0123456789abcdef",
        "upstream-credential",
        relay_secret,
    ] {
        assert!(!output.contains(secret), "{secret} printed:\n{output}");
    }
    assert!(finished.stdout.contains("http://10.1.2.3:8080"));
    let export = finished
        .stdout
        .lines()
        .find(|line| line.starts_with("export DOMAIN_MAP='"))
        .expect("export line");
    let json = export
        .strip_prefix("export DOMAIN_MAP='")
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("quoted");
    let exported: serde_json::Value = serde_json::from_str(json).expect("export is JSON");
    assert_eq!(
        exported["api.example.com"]["client_id_secret"],
        "<redacted>"
    );
    assert_eq!(
        exported["api.example.com"]["pass_through_routes"][0],
        "/health"
    );
    // The wildcard had no secret: it is generated, and the export leaves it out.
    assert!(exported["*"].get("client_id_secret").is_none());
    assert!(
        finished.stderr.contains("generated a random one"),
        "{}",
        finished.stderr
    );
}

#[test]
fn version_prints_the_crate_version() {
    let finished = run(&["version"], &[]);
    assert_eq!(finished.status.code(), Some(0));
    assert_eq!(
        finished.stdout.trim(),
        format!("mte-relay {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Secrets from mounted files (with the trailing newline `echo` leaves), and a
/// misspelt variable named with a did-you-mean instead of being ignored silently.
#[test]
fn variables_come_from_files_and_misspellings_are_named() {
    let dir = std::env::temp_dir().join(format!("mte-relay-file-vars-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret_file = dir.join("CLIENT_ID_SECRET");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let map_file = dir.join("domains.json");
    std::fs::write(
        &map_file,
        format!(
            r#"{{"api.example":{{"upstream":"http://127.0.0.1:9","client_id_secret":"{SECRET}"}}}}"#
        ),
    )
    .expect("map file");
    let checked = run(
        &["check-config"],
        &[
            ("DOMAIN_MAP_FILE", map_file.to_str().expect("utf-8")),
            ("SECRET_FILE", secret_file.to_str().expect("utf-8")),
            ("PASS_THRU_ROUTES", "/health"),
            // Set by ECS in every task; the relay says it does not need it.
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert_eq!(checked.status.code(), Some(0), "{}", checked.stderr);
    assert!(
        checked
            .stderr
            .contains("note: AWS_REGION is set: the relay does not need it"),
        "{}",
        checked.stderr
    );
    assert!(
        !checked.stderr.contains("AWS_REGION is not a variable"),
        "an acknowledged variable is no misspelling: {}",
        checked.stderr
    );
    assert!(
        checked.stdout.contains("\"api.example\""),
        "{}",
        checked.stdout
    );
    assert!(
        checked.stderr.contains(
            "PASS_THRU_ROUTES is not a variable the relay reads; did you mean PASS_THROUGH_ROUTES?"
        ),
        "{}",
        checked.stderr
    );
    let both = run(
        &["check-config"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", SECRET),
            (
                "CLIENT_ID_SECRET_FILE",
                secret_file.to_str().expect("utf-8"),
            ),
        ],
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(both.stderr.contains("not both"), "{}", both.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--help` names every variable the relay reads: a container has no docs/ directory.
#[test]
fn help_lists_every_variable() {
    let help = run(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0), "{}", help.stderr);
    for name in mte_relay::config::env::VARIABLES {
        assert!(
            help.stdout.split_whitespace().any(|word| word == *name),
            "{name} missing from --help"
        );
    }
}

/// The `DOMAIN_MAP` examples in the docs: each one is valid for the relay itself and
/// for `docs/domain-map.schema.json`, whose fields are exactly the relay's.
#[test]
fn the_domain_map_schema_and_the_relay_accept_the_documented_examples() {
    use std::path::Path;

    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema_path = repository.join("docs/domain-map.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).expect("schema"))
            .expect("the schema is JSON");
    let mut fields: Vec<&str> = schema["$defs"]["domain"]["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut known = mte_relay::config::domain::DOMAIN_FIELDS.to_vec();
    known.sort_unstable();
    assert_eq!(fields, known, "the schema's fields are the relay's");

    let mut examples = Vec::new();
    for doc in ["docs/configuration.md", "README.md"] {
        let text = std::fs::read_to_string(repository.join(doc)).expect("doc");
        for block in text.split("```json\n").skip(1) {
            examples.push(block.split("```").next().expect("block").to_owned());
        }
        for start in text.split("DOMAIN_MAP='").skip(1) {
            let example = start.split('\'').next().expect("quoted");
            // An elided example (`,...}`) shows a shape, not a value; prose that
            // names the variable (`DOMAIN_MAP='...'`) is no example.
            if example.trim_start().starts_with('{') && !example.contains(",...") {
                examples.push(example.to_owned());
            }
        }
    }
    assert!(examples.len() >= 4, "{examples:?}");
    let filler = "a-placeholder-secret-of-32-characters-or-more";
    for example in &examples {
        let example = example
            .replace("\"...32+ chars...\"", &format!("\"{filler}\""))
            .replace("\"...\"", &format!("\"{filler}\""))
            .replace(
                "paste-the-key-that-mte-relay-keygen-printed",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            );
        // The relay's own parser (adapter names are resolved later, against
        // declarations the examples do not show).
        let env = mte_relay::config::Env::from_pairs([("DOMAIN_MAP", example.as_str())]);
        if let Err(error) = mte_relay::config::Config::from_env(&env) {
            panic!("the relay refuses a documented example: {error}\n{example}");
        }
        let script = "import json, sys, jsonschema\n\
            schema = json.load(open(sys.argv[1]))\n\
            errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(json.loads(sys.argv[2]))]\n\
            print('\\n'.join(errors)); sys.exit(1 if errors else 0)";
        let validated = std::process::Command::new("python3")
            .args(["-c", script, schema_path.to_str().expect("utf-8"), &example])
            .output()
            .expect("python3 with jsonschema (scripts/test.sh's lint environment)");
        assert!(
            validated.status.success(),
            "the schema refuses a documented example: {}{}\n{example}",
            String::from_utf8_lossy(&validated.stdout),
            String::from_utf8_lossy(&validated.stderr)
        );
    }
}

/// docs/operations.md's table of errors names every registry reason the relay can
/// answer, so an operator can look up any status it emits.
#[test]
fn the_operations_guide_explains_every_registry_error() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .expect("docs/operations.md");
    let section = guide
        .split("## Errors clients see from the relay")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the errors section");
    for reason in mte_relay_protocol::registry::ErrorReason::ALL {
        let row = format!("| {} | `{}` |", reason.status(), reason.token());
        assert!(section.contains(&row), "no row {row}");
    }
}

/// docs/configuration.md's reference table has a row for every variable the relay
/// reads, so an operator finds each one's type, default and an example in one place.
#[test]
fn the_configuration_reference_lists_every_variable() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    let reference = guide
        .split("\n## Reference\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the reference section");
    for name in mte_relay::config::env::VARIABLES {
        let row = format!("| `{name}` |");
        let cells = reference
            .lines()
            .find(|line| line.starts_with(&row))
            .unwrap_or_else(|| panic!("no reference row for {name}"));
        assert_eq!(
            cells.matches(" | ").count(),
            4,
            "{name}: type, default, required and example: {cells}"
        );
    }
}
