//! Rewrites headers on requests (before the upstream) and responses (before the
//! client): set, append, remove and rename, with values templated from
//! `{client_id}`, `{domain}` and `{correlation_id}`.

use mte_relay_adapter::{
    Config, Filter, Header, HeaderEdit, RequestAction, RequestInfo, ResponseInfo,
};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Rule {
    Set { name: String, value: String },
    Append { name: String, value: String },
    Remove { name: String },
    Rename { from: String, to: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    request: Vec<Rule>,
    #[serde(default)]
    response: Vec<Rule>,
}

pub struct HeaderRewrite {
    request: Vec<Rule>,
    response: Vec<Rule>,
}

const PLACEHOLDERS: [&str; 3] = ["{client_id}", "{domain}", "{correlation_id}"];

/// Fill the placeholders from the request; an absent client id renders empty.
pub fn render(template: &str, request: &RequestInfo) -> String {
    template
        .replace("{client_id}", request.client_id.as_deref().unwrap_or(""))
        .replace("{domain}", &request.domain)
        .replace("{correlation_id}", &request.correlation_id)
}

fn check_template(value: &str) -> Result<(), String> {
    let mut rest = value;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        match PLACEHOLDERS.iter().find(|p| tail.starts_with(*p)) {
            Some(p) => rest = &tail[p.len()..],
            None => return Err(format!("invalid config: unknown placeholder in `{value}`")),
        }
    }
    Ok(())
}

/// The edits `rules` produce for `headers`, in rule order.
pub fn edits_for(rules: &[Rule], headers: &[Header], request: &RequestInfo) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    for rule in rules {
        match rule {
            Rule::Set { name, value } => edits.push(HeaderEdit::set(name, render(value, request))),
            Rule::Append { name, value } => {
                edits.push(HeaderEdit::append(name, render(value, request)))
            }
            Rule::Remove { name } => edits.push(HeaderEdit::remove(name)),
            Rule::Rename { from, to } => {
                let values: Vec<&str> = headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(from))
                    .map(|h| h.value.as_str())
                    .collect();
                if !values.is_empty() {
                    edits.push(HeaderEdit::remove(from));
                    for value in values {
                        edits.push(HeaderEdit::append(to, value));
                    }
                }
            }
        }
    }
    edits
}

impl HeaderRewrite {
    pub fn from_json(config: &str) -> Result<Self, String> {
        let settings: Settings = Config::from_raw(config.to_owned()).parse()?;
        for rule in settings.request.iter().chain(&settings.response) {
            if let Rule::Set { value, .. } | Rule::Append { value, .. } = rule {
                check_template(value)?;
            }
        }
        Ok(Self {
            request: settings.request,
            response: settings.response,
        })
    }
}

impl Filter for HeaderRewrite {
    fn init(config: Config) -> Result<Self, String> {
        Self::from_json(config.raw())
    }

    /// Without `response` rules there is nothing to do on responses.
    fn edits_responses(&self) -> bool {
        !self.response.is_empty()
    }

    /// Only `rename` reads request headers (the value it moves); templates use the
    /// request's other fields.
    fn request_headers(&self) -> Option<Vec<String>> {
        Some(
            self.request
                .iter()
                .filter_map(|rule| match rule {
                    Rule::Rename { from, .. } => Some(from.clone()),
                    _ => None,
                })
                .collect(),
        )
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        Ok(RequestAction::proceed_with(edits_for(
            &self.request,
            &request.headers,
            request,
        )))
    }

    fn on_response(
        &mut self,
        request: &RequestInfo,
        response: &ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, String> {
        Ok(edits_for(&self.response, &response.headers, request))
    }
}

mte_relay_adapter::export_filter!(HeaderRewrite);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mte_relay_adapter::RouteClass;

    fn request() -> RequestInfo {
        RequestInfo {
            method: "GET".into(),
            path_with_query: "/".into(),
            headers: vec![Header {
                name: "X-Old".into(),
                value: "1".into(),
            }],
            domain: "api.example.com".into(),
            route_class: RouteClass::Mte,
            client_id: Some("c-1".into()),
            pair_id: None,
            correlation_id: "req-9".into(),
            remote_addr: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn renders_placeholders() {
        assert_eq!(
            render("{client_id}@{domain}#{correlation_id}", &request()),
            "c-1@api.example.com#req-9"
        );
    }

    #[test]
    fn rename_moves_values_and_skips_absent_headers() {
        let rules = vec![
            Rule::Rename {
                from: "x-old".into(),
                to: "x-new".into(),
            },
            Rule::Rename {
                from: "x-absent".into(),
                to: "x-other".into(),
            },
        ];
        let req = request();
        let edits = edits_for(&rules, &req.headers, &req);
        assert_eq!(
            edits,
            vec![
                HeaderEdit::remove("x-old"),
                HeaderEdit::append("x-new", "1")
            ]
        );
    }

    #[test]
    fn rejects_unknown_placeholders_and_ops() {
        assert!(
            HeaderRewrite::from_json(r#"{"request":[{"op":"set","name":"a","value":"{user}"}]}"#)
                .is_err()
        );
        assert!(HeaderRewrite::from_json(r#"{"request":[{"op":"copy","name":"a"}]}"#).is_err());
        assert!(
            HeaderRewrite::from_json(r#"{"request":[{"op":"set","name":"a","value":"{domain}"}]}"#)
                .is_ok()
        );
    }
}
