//! JWT bearer authentication. Verification (signature, `exp`, `nbf`, `iss`,
//! `aud`) is done by `jwt-simple`; this adapter only picks the configured key for
//! the token's algorithm (and `kid`), maps failures to a 401, and forwards the
//! selected claims upstream as headers.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration as StdDuration;

use jwt_simple::prelude::*;
use mte_relay_adapter::{Config, Filter, HeaderEdit, RequestAction, RequestInfo};
use serde::Deserialize;

type VerifiedClaims = JWTClaims<serde_json::Map<String, serde_json::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Header carrying `Bearer <token>`.
    #[serde(default = "default_header")]
    header: String,
    keys: Vec<KeySettings>,
    issuer: Option<String>,
    /// Accepted audiences; the token must name at least one.
    #[serde(default)]
    audiences: Vec<String>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    leeway_s: u64,
    /// Refuse tokens without `exp`.
    #[serde(default = "default_true")]
    require_exp: bool,
    /// Claim name -> upstream header name.
    #[serde(default)]
    forward_claims: BTreeMap<String, String>,
    /// Remove the token header before the request goes upstream.
    #[serde(default = "default_true")]
    strip_token: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySettings {
    alg: String,
    kid: Option<String>,
    /// HS256 shared secret (UTF-8).
    secret: Option<String>,
    /// RS256 / ES256 public key, PEM.
    pem: Option<String>,
}

fn default_header() -> String {
    "authorization".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_true() -> bool {
    true
}

enum Key {
    Hs256(HS256Key),
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
}

impl Key {
    fn alg(&self) -> &'static str {
        match self {
            Key::Hs256(_) => "HS256",
            Key::Rs256(_) => "RS256",
            Key::Es256(_) => "ES256",
        }
    }

    fn verify(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<VerifiedClaims, jwt_simple::Error> {
        let options = Some(options);
        match self {
            Key::Hs256(k) => k.verify_token(token, options),
            Key::Rs256(k) => k.verify_token(token, options),
            Key::Es256(k) => k.verify_token(token, options),
        }
    }
}

pub struct JwtAuth {
    header: String,
    keys: Vec<(Option<String>, Key)>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: StdDuration,
    require_exp: bool,
    forward_claims: BTreeMap<String, String>,
    strip_token: bool,
}

fn parse_key(k: KeySettings) -> Result<(Option<String>, Key), String> {
    let bad = |why: String| format!("invalid config: key {:?} ({}): {why}", k.kid, k.alg);
    let key = match (k.alg.as_str(), &k.secret, &k.pem) {
        ("HS256", Some(secret), None) if !secret.is_empty() => {
            Key::Hs256(HS256Key::from_bytes(secret.as_bytes()))
        }
        ("RS256", None, Some(pem)) => Key::Rs256(Box::new(
            RS256PublicKey::from_pem(pem).map_err(|e| bad(e.to_string()))?,
        )),
        ("ES256", None, Some(pem)) => {
            Key::Es256(ES256PublicKey::from_pem(pem).map_err(|e| bad(e.to_string()))?)
        }
        ("HS256", ..) => return Err(bad("needs a non-empty `secret` and no `pem`".into())),
        ("RS256" | "ES256", ..) => return Err(bad("needs a `pem` and no `secret`".into())),
        _ => return Err(bad("alg must be HS256, RS256 or ES256".into())),
    };
    Ok((k.kid, key))
}

fn claim_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl JwtAuth {
    pub fn from_json(config: &str) -> Result<Self, String> {
        let settings: Settings = Config::from_raw(config.to_owned()).parse()?;
        if settings.keys.is_empty() {
            return Err("invalid config: `keys` is empty".into());
        }
        let keys = settings
            .keys
            .into_iter()
            .map(parse_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            header: settings.header,
            keys,
            issuer: settings.issuer,
            audiences: settings.audiences,
            leeway: StdDuration::from_secs(settings.leeway_s),
            require_exp: settings.require_exp,
            forward_claims: settings.forward_claims,
            strip_token: settings.strip_token,
        })
    }

    fn options(&self) -> VerificationOptions {
        VerificationOptions {
            allowed_issuers: self.issuer.as_ref().map(|i| HashSet::from([i.clone()])),
            allowed_audiences: (!self.audiences.is_empty())
                .then(|| self.audiences.iter().cloned().collect()),
            time_tolerance: Some(Duration::from_secs(self.leeway.as_secs())),
            ..Default::default()
        }
    }

    /// Verify a compact token; `Err` carries a reason safe to show the client.
    pub fn verify(&self, token: &str) -> Result<VerifiedClaims, &'static str> {
        let metadata = Token::decode_metadata(token).map_err(|_| "malformed token")?;
        let candidates = self.keys.iter().filter(|(kid, key)| {
            key.alg() == metadata.algorithm()
                && match (kid, metadata.key_id()) {
                    (Some(want), Some(got)) => want == got,
                    _ => true,
                }
        });
        let mut tried = false;
        for (_, key) in candidates {
            tried = true;
            if let Ok(claims) = key.verify(token, self.options()) {
                if self.require_exp && claims.expires_at.is_none() {
                    return Err("token has no expiry");
                }
                return Ok(claims);
            }
        }
        Err(if tried {
            "token rejected"
        } else {
            "no key for the token's algorithm"
        })
    }

    /// Upstream headers for the configured claims present in `claims`.
    pub fn forwarded(&self, claims: &VerifiedClaims) -> Vec<HeaderEdit> {
        self.forward_claims
            .iter()
            .filter_map(|(claim, header)| {
                let value = match claim.as_str() {
                    "sub" => claims.subject.clone(),
                    "iss" => claims.issuer.clone(),
                    "jti" => claims.jwt_id.clone(),
                    other => claims.custom.get(other).and_then(claim_text),
                }?;
                Some(HeaderEdit::set(header.clone(), value))
            })
            .collect()
    }
}

fn unauthorized(reason: &str) -> RequestAction {
    RequestAction::respond_json(
        401,
        &serde_json::json!({ "error": "unauthorized", "reason": reason }),
    )
}

impl Filter for JwtAuth {
    fn init(config: Config) -> Result<Self, String> {
        Self::from_json(config.raw())
    }

    /// Only requests are checked: the relay skips this filter on responses.
    fn edits_responses(&self) -> bool {
        false
    }

    /// The token header is all it reads.
    fn request_headers(&self) -> Option<Vec<String>> {
        Some(vec![self.header.clone()])
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        let Some(value) = request.header(&self.header) else {
            return Ok(unauthorized("missing bearer token"));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Ok(unauthorized("missing bearer token"));
        };
        match self.verify(token.trim()) {
            Ok(claims) => {
                let mut edits = self.forwarded(&claims);
                if self.strip_token {
                    edits.push(HeaderEdit::remove(self.header.clone()));
                }
                Ok(RequestAction::proceed_with(edits))
            }
            Err(reason) => Ok(unauthorized(reason)),
        }
    }
}

mte_relay_adapter::export_filter!(JwtAuth);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn claims(valid_for: Duration) -> JWTClaims<serde_json::Map<String, serde_json::Value>> {
        let mut custom = serde_json::Map::new();
        custom.insert("tenant".into(), "acme".into());
        Claims::with_custom_claims(custom, valid_for)
            .with_issuer("https://idp.test")
            .with_audience("relay")
            .with_subject("user-1")
    }

    fn config(keys: &str) -> String {
        format!(
            r#"{{"keys":{keys},"issuer":"https://idp.test","audiences":["relay"],
                "forward_claims":{{"sub":"x-user","tenant":"x-tenant"}}}}"#
        )
    }

    #[test]
    fn hs256_valid_token_forwards_claims() {
        let key = HS256Key::from_bytes(b"0123456789abcdef0123456789abcdef");
        let token = key.authenticate(claims(Duration::from_mins(5))).unwrap();
        let auth = JwtAuth::from_json(&config(
            r#"[{"alg":"HS256","secret":"0123456789abcdef0123456789abcdef"}]"#,
        ))
        .unwrap();
        let verified = auth.verify(&token).unwrap();
        let edits = auth.forwarded(&verified);
        assert!(edits.contains(&HeaderEdit::set("x-user", "user-1")));
        assert!(edits.contains(&HeaderEdit::set("x-tenant", "acme")));
    }

    #[test]
    fn wrong_secret_issuer_audience_or_expired_are_rejected() {
        let key = HS256Key::from_bytes(b"another-secret-another-secret-xx");
        let auth = JwtAuth::from_json(&config(
            r#"[{"alg":"HS256","secret":"0123456789abcdef0123456789abcdef"}]"#,
        ))
        .unwrap();
        let forged = key.authenticate(claims(Duration::from_mins(5))).unwrap();
        assert!(auth.verify(&forged).is_err());

        let good = HS256Key::from_bytes(b"0123456789abcdef0123456789abcdef");
        let wrong_iss = good
            .authenticate(claims(Duration::from_mins(5)).with_issuer("https://evil.test"))
            .unwrap();
        assert!(auth.verify(&wrong_iss).is_err());
        let wrong_aud = good
            .authenticate(claims(Duration::from_mins(5)).with_audience("other"))
            .unwrap();
        assert!(auth.verify(&wrong_aud).is_err());
        let mut expired = claims(Duration::from_mins(5));
        expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_mins(10));
        let expired = good.authenticate(expired).unwrap();
        assert!(auth.verify(&expired).is_err());
        let mut not_yet = claims(Duration::from_mins(30));
        not_yet.invalid_before = Some(Clock::now_since_epoch() + Duration::from_mins(10));
        let not_yet = good.authenticate(not_yet).unwrap();
        assert!(auth.verify(&not_yet).is_err());
        assert!(auth.verify("not.a.token").is_err());
    }

    #[test]
    fn es256_and_rs256_keys_verify() {
        let es = ES256KeyPair::generate();
        let es_pem = es.public_key().to_pem().unwrap();
        let token = es.sign(claims(Duration::from_mins(5))).unwrap();
        let auth = JwtAuth::from_json(&config(
            &serde_json::json!([{"alg":"ES256","pem":es_pem}]).to_string(),
        ))
        .unwrap();
        assert!(auth.verify(&token).is_ok());

        let rs = RS256KeyPair::generate(2048).unwrap();
        let rs_pem = rs.public_key().to_pem().unwrap();
        let token = rs.sign(claims(Duration::from_mins(5))).unwrap();
        let auth = JwtAuth::from_json(&config(
            &serde_json::json!([{"alg":"RS256","pem":rs_pem}]).to_string(),
        ))
        .unwrap();
        assert!(auth.verify(&token).is_ok());
        // An HS256 token against an RS256-only configuration finds no key.
        let hs = HS256Key::from_bytes(b"some-other-secret-of-decent-size")
            .authenticate(claims(Duration::from_mins(5)))
            .unwrap();
        assert_eq!(
            auth.verify(&hs).unwrap_err(),
            "no key for the token's algorithm"
        );
    }

    #[test]
    fn bad_key_configs_are_refused() {
        assert!(JwtAuth::from_json(&config(r#"[{"alg":"none","secret":"x"}]"#)).is_err());
        assert!(JwtAuth::from_json(&config(r#"[{"alg":"RS256","pem":"garbage"}]"#)).is_err());
        assert!(JwtAuth::from_json(&config(r#"[{"alg":"HS256"}]"#)).is_err());
    }
}
