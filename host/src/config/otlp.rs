//! OTLP export of request spans (`OTEL_EXPORTER_OTLP_*`, the OpenTelemetry SDKs'
//! variable names), off unless an endpoint is set.

use super::env::Env;
use super::error::ConfigError;
use super::target::UpstreamTarget;

/// The service name spans carry unless `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "mte-relay";

/// How spans are encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`, the OTLP/HTTP default.
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

/// Where and how the relay exports one span per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's traces URL (`.../v1/traces`).
    pub traces_endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: String,
}

impl OtlpSettings {
    /// `None` when neither endpoint variable is set.
    pub(crate) fn from_env(env: &Env) -> Result<Option<OtlpSettings>, ConfigError> {
        let (name, traces_endpoint) = match (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal's own endpoint is used as given; the base one gets the
            // signal's path, as the OpenTelemetry specification says.
            (Some(traces), _) => (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                traces.trim().to_owned(),
            ),
            (None, Some(base)) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        UpstreamTarget::parse(&traces_endpoint)
            .map_err(|problem| ConfigError::new(name, problem))?;
        let protocol = match env.get("OTEL_EXPORTER_OTLP_PROTOCOL").map(str::trim) {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("http/json") => OtlpProtocol::HttpJson,
            Some("grpc") => {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "grpc is not supported; use http/protobuf (a collector's OTLP/HTTP \
                     port, 4318 by default)",
                ));
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "expected http/protobuf or http/json",
                ));
            }
        };
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .map_or(DEFAULT_SERVICE_NAME, str::trim)
            .to_owned();
        Ok(Some(OtlpSettings {
            traces_endpoint,
            protocol,
            service_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<OtlpSettings>, ConfigError> {
        OtlpSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn endpoints_protocols_and_names() {
        assert_eq!(settings(&[]), Ok(None));
        let base = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .expect("valid")
            .expect("on");
        assert_eq!(base.traces_endpoint, "http://collector:4318/v1/traces");
        assert_eq!(base.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(base.service_name, "mte-relay");
        let own = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://traces.example/otlp",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_SERVICE_NAME", "edge-relay"),
        ])
        .expect("valid")
        .expect("on");
        assert_eq!(own.traces_endpoint, "https://traces.example/otlp");
        assert_eq!(own.protocol, OtlpProtocol::HttpJson);
        assert_eq!(own.service_name, "edge-relay");

        let grpc = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .expect_err("grpc");
        assert!(grpc.problem.contains("use http/protobuf"), "{grpc}");
        let bare =
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).expect_err("no scheme");
        assert!(bare.problem.contains("did you mean"), "{bare}");
    }
}
