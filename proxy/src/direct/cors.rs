//! CORS for direct routes: an allow-list of origins (design "Security"). Browsers send
//! `Origin` on cross-origin EventSource and fetch requests; only listed origins get the
//! `Access-Control-Allow-*` headers, and credentials (the token cookie) are allowed for
//! them.

use http::header::{HeaderMap, HeaderValue};

/// Origins allowed to read a route from another site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

const ALLOW_HEADERS: &str = "Authorization, Last-Event-ID, Cache-Control, Accept";

impl CorsPolicy {
    /// `["*"]` allows any origin; an empty list allows none (same-origin only).
    pub fn new(origins: Vec<String>) -> CorsPolicy {
        CorsPolicy { origins }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }

    /// The allowed request origin, if the request has one and it is listed.
    pub fn allowed_origin<'a>(&self, request: &'a HeaderMap) -> Option<&'a HeaderValue> {
        request
            .get(http::header::ORIGIN)
            .filter(|v| v.to_str().is_ok_and(|o| self.allows(o)))
    }

    /// Adds the headers of an actual (non-preflight) response.
    pub fn apply(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if let Some(origin) = self.allowed_origin(request) {
            response.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            response.insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            response.append(http::header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// The headers of a preflight answer, or `None` when the origin is not allowed.
    pub fn preflight(&self, request: &HeaderMap) -> Option<HeaderMap> {
        let origin = self.allowed_origin(request)?;
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, OPTIONS"),
        );
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            http::header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        headers.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", origin.parse().unwrap());
        h
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let policy = CorsPolicy::new(vec!["https://app.example".into()]);
        let mut response = HeaderMap::new();
        policy.apply(&with_origin("https://evil.example"), &mut response);
        assert!(response.is_empty());
        policy.apply(&with_origin("https://app.example"), &mut response);
        assert_eq!(
            response["access-control-allow-origin"],
            "https://app.example"
        );
        assert!(policy
            .preflight(&with_origin("https://evil.example"))
            .is_none());
        let preflight = policy
            .preflight(&with_origin("https://app.example"))
            .unwrap();
        assert!(preflight["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Last-Event-ID"));
    }

    #[test]
    fn a_star_allows_every_origin_and_no_list_allows_none() {
        assert!(CorsPolicy::new(vec!["*".into()])
            .preflight(&with_origin("http://x"))
            .is_some());
        assert!(CorsPolicy::default()
            .preflight(&with_origin("http://x"))
            .is_none());
    }
}
