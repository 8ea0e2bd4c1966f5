//! The WIT records, re-exported under short names, with helpers to read them.

use crate::bindings::common::mte_relay::adapter::types as wit;

pub use wit::{
    FilterHooks, Header, HeaderEdit, LocalResponse, RequestAction, RequestInfo, ResponseInfo,
    RouteClass, UsageRecord,
};

/// Case-insensitive lookup over a header list (HTTP names are case-insensitive).
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

impl RequestInfo {
    /// The first value of `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(path, _)| path)
    }
}

impl ResponseInfo {
    /// The first value of `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl HeaderEdit {
    /// Replace every value of `name`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set(Header {
            name: name.into(),
            value: value.into(),
        })
    }

    /// Add a value to `name`.
    pub fn append(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Append(Header {
            name: name.into(),
            value: value.into(),
        })
    }

    /// Drop `name`.
    pub fn remove(name: impl Into<String>) -> Self {
        Self::Remove(name.into())
    }
}

impl RequestAction {
    /// Forward the request unchanged.
    pub fn proceed() -> Self {
        Self::Continue(Vec::new())
    }

    /// Forward the request after these header edits.
    pub fn proceed_with(edits: Vec<HeaderEdit>) -> Self {
        Self::Continue(edits)
    }

    /// Answer locally with a JSON body; `content-type` is set for you.
    pub fn respond_json(status: u16, body: &serde_json::Value) -> Self {
        Self::Respond(LocalResponse {
            status,
            headers: vec![Header {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            body: body.to_string().into_bytes(),
        })
    }

    /// Answer locally with arbitrary headers and body.
    pub fn respond(status: u16, headers: Vec<Header>, body: Vec<u8>) -> Self {
        Self::Respond(LocalResponse {
            status,
            headers,
            body,
        })
    }
}
