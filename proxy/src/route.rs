//! Routes: which requests go where (§7.1, design "Routes").
//!
//! One model serves both sources of routes: lines of a Pushpin `routes` file
//! (parsed in [`crate::routes_file`]) and Fjord's TOML `[[proxy.route]]` entries
//! (built with [`Route::from_origin_url`]). A [`RouteTable`] keeps routes in the
//! order they were written; [`RouteTable::select`] picks the one route that serves a
//! request, following Pushpin's `DomainMap` rules.
//!
//! What a route is for is its [`RouteTarget`]. Matching never looks at the target,
//! so further kinds of target (Fjord's direct channel mode) fit in as new variants
//! without touching the matcher.

use std::collections::HashMap;
use std::fmt;

use http::{HeaderName, HeaderValue};

/// Protocol a route condition can be limited to (`proto=http|ws`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Ws,
}

/// The host part of a route condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// `*`: used for requests whose host has no rule of its own.
    Any,
    /// One host, stored lower-case and without brackets; compared case-insensitively
    /// with the request host stripped of its port.
    Exact(String),
    /// The condition names no host (a line such as `id=x target:80`): the route is
    /// never selected by host and path, only by its id through the `Pushpin-Route`
    /// header when `accept_pushpin_route` is on (§7.2).
    IdOnly,
}

/// What a request must look like for a route to apply (§7.1 condition).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteCondition {
    pub host: HostMatch,
    /// Path prefix (`path_beg=`), compared byte-wise with the request path as it
    /// arrived (percent-encoding included). Never empty when set.
    pub path_beg: Option<String>,
    pub proto: Option<Protocol>,
    /// `ssl=yes` (`Some(true)`) or `ssl=no` (`Some(false)`): whether the client
    /// connection must be TLS.
    pub ssl: Option<bool>,
}

impl RouteCondition {
    /// Any host, any path, any protocol.
    pub fn any() -> Self {
        RouteCondition {
            host: HostMatch::Any,
            path_beg: None,
            proto: None,
            ssl: None,
        }
    }

    fn matches(&self, path: &str, is_tls: bool, is_websocket: bool) -> bool {
        let proto_ok = match self.proto {
            None => true,
            Some(Protocol::Http) => !is_websocket,
            Some(Protocol::Ws) => is_websocket,
        };
        let ssl_ok = self.ssl.is_none_or(|ssl| ssl == is_tls);
        let path_ok = self
            .path_beg
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix));
        proto_ok && ssl_ok && path_ok
    }

    /// Rank among rules that all match one request: a rule with `proto` beats one
    /// without, then a longer `path_beg` wins, then a rule with `ssl` (§7.1).
    ///
    /// Pushpin compares each rule only with the best one found so far, which lets
    /// line order decide between "shorter path_beg with ssl" and "longer path_beg
    /// without"; its documentation says line order does not matter, and §7.1 states
    /// the ranking above, so it is applied as a strict order here.
    fn specificity(&self) -> (bool, usize, bool) {
        (
            self.proto.is_some(),
            self.path_beg.as_deref().map_or(0, str::len),
            self.ssl.is_some(),
        )
    }

    /// Two rules for the same host with the same `proto`, `ssl` and `path_beg` can
    /// never both be chosen; Pushpin keeps the first and skips the later one.
    fn same_as(&self, other: &RouteCondition) -> bool {
        self == other
    }

    /// Pushpin's id for a route without `id=`: `host,proto,ssl,path_beg` with `*`
    /// for anything unset, e.g. `*,ws,*,/chat/`.
    pub fn derived_id(&self) -> String {
        let host = match &self.host {
            HostMatch::Exact(h) => h.as_str(),
            HostMatch::Any | HostMatch::IdOnly => "*",
        };
        let proto = match self.proto {
            Some(Protocol::Http) => "http",
            Some(Protocol::Ws) => "ws",
            None => "*",
        };
        let ssl = match self.ssl {
            Some(true) => "ssl",
            Some(false) => "no-ssl",
            None => "*",
        };
        let path = self.path_beg.as_deref().unwrap_or("*");
        format!("{host},{proto},{ssl},{path}")
    }
}

/// How the request path is changed before forwarding (`path_rem=`, `replace_beg=`).
///
/// Only the request sent to the origin is rewritten; links the origin returns
/// (`Grip-Link`) are used as given (§12 #35).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRewrite {
    /// Bytes cut from the start of the path.
    pub remove: usize,
    /// Put in front of what remains.
    pub prepend: String,
}

impl PathRewrite {
    pub fn is_identity(&self) -> bool {
        self.remove == 0 && self.prepend.is_empty()
    }
}

/// A header set on every request forwarded by the route (`header=Name:Value`).
/// The route's value replaces any the client sent; an empty value removes the
/// header instead, as in Pushpin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// One origin server a route forwards to (§7.1 target props).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginTarget {
    /// Host to connect to: a name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Connect with TLS (`ssl`).
    pub ssl: bool,
    /// `Host` header to send instead of the client's (`host=`).
    pub host_header: Option<String>,
    /// Speak WebSocket-over-HTTP to this origin (`over_http`, §8).
    pub over_http: bool,
    /// Channels every request through this target is subscribed to, in addition to
    /// those the origin names (`sub=`, repeatable).
    pub subscriptions: Vec<String>,
    /// Do not verify the origin's TLS certificate (`insecure`).
    pub insecure: bool,
    /// The origin's GRIP instructions are not trusted (`untrusted`): its response is
    /// passed through as a plain response.
    pub untrusted: bool,
    /// Verify the origin's certificate against the connect host rather than the
    /// `Host` header (`trust_connect_host`).
    pub trust_connect_host: bool,
    /// Client certificate and key (PEM file paths) presented to a TLS origin.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl OriginTarget {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        OriginTarget {
            host: host.into(),
            port,
            ssl: false,
            host_header: None,
            over_http: false,
            subscriptions: Vec::new(),
            insecure: false,
            untrusted: false,
            trust_connect_host: false,
            client_cert: None,
            client_key: None,
        }
    }

    /// `host:port` to connect to, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What serves the requests a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// GRIP origin mode: forward to these origins, tried in order only when
    /// connecting (or the TLS handshake) fails — no load balancing (§7.1).
    Origin(Vec<OriginTarget>),
    /// Pushpin's built-in `test` origin (`/`, `/stream`, `/response`; §7.1).
    Test,
    /// Fjord's direct mode: the proxy answers with a stream of the channel the path
    /// names (design "Routes").
    Direct(std::sync::Arc<crate::direct::DirectRoute>),
    /// Static files from a directory.
    Files(std::path::PathBuf),
}

/// One route: a condition, what to do with matching requests, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The `id=` prop, or an id derived from the condition (see `explicit_id`).
    pub id: String,
    /// Whether `id` was written by the operator; Pushpin reports stats per route
    /// only for these.
    pub explicit_id: bool,
    pub condition: RouteCondition,
    pub rewrite: PathRewrite,
    /// Prepended to every channel name this route's origin subscribes to or
    /// publishes through it (`prefix=`); empty for none.
    pub channel_prefix: String,
    /// Per-route Grip-Sig issuer and key (`sig_iss=`, `sig_key=`, §1.3); each one
    /// that is set overrides the global value on its own. The key is kept in its
    /// configuration syntax (`base64:…`, `file:…` or the plain secret).
    pub sig_iss: Option<String>,
    pub sig_key: Option<String>,
    /// `no_grip`: a plain reverse proxy route; GRIP instructions are not
    /// processed and no Grip-Sig is added.
    pub no_grip: bool,
    /// `debug`: error responses carry details.
    pub debug: bool,
    /// `aco`: automatic cross-origin (CORS) headers.
    pub auto_cross_origin: bool,
    /// `orig_headers`: pass the origin's headers through on held responses.
    pub orig_headers: bool,
    /// `log_level=`, kept as written.
    pub log_level: Option<String>,
    /// `header=Name:Value`, in file order.
    pub headers: Vec<RouteHeader>,
    /// `as_host=`: the request is forwarded as if addressed to this host (which
    /// may carry a port).
    pub as_host: Option<String>,
    pub target: RouteTarget,
}

impl Route {
    /// A route with the given condition and target and every option at its default.
    pub fn new(condition: RouteCondition, target: RouteTarget) -> Self {
        let id = condition.derived_id();
        Route {
            id,
            explicit_id: false,
            condition,
            rewrite: PathRewrite::default(),
            channel_prefix: String::new(),
            sig_iss: None,
            sig_key: None,
            no_grip: false,
            debug: false,
            auto_cross_origin: false,
            orig_headers: false,
            log_level: None,
            headers: Vec::new(),
            as_host: None,
            target,
        }
    }

    /// The TOML form `path = "/api/"`, `origin = "http://127.0.0.1:8080"`
    /// (design "Configuration"): any host, `path_beg` = `path` (none when absent or
    /// `/`), one origin target taken from the URL.
    pub fn from_origin_url(path: Option<&str>, origin: &str) -> Result<Route, OriginUrlError> {
        let path_beg = match path {
            None | Some("/") => None,
            Some(p) if !p.starts_with('/') => {
                return Err(OriginUrlError::PathNotAbsolute(p.to_string()))
            }
            Some(p) if p.contains('{') => return Err(OriginUrlError::PathTemplate(p.to_string())),
            Some(p) => Some(p.to_string()),
        };
        let target = parse_origin_url(origin)?;
        let condition = RouteCondition {
            path_beg,
            ..RouteCondition::any()
        };
        Ok(Route::new(condition, RouteTarget::Origin(vec![target])))
    }

    /// A direct route (`path = "/orders/{id}"`, `channel = "orders.{id}"`): selected by
    /// the literal start of its path, any host.
    pub fn direct(direct: crate::direct::DirectRoute) -> Route {
        let prefix = direct.path.prefix();
        let condition = RouteCondition {
            path_beg: (prefix != "/").then_some(prefix),
            ..RouteCondition::any()
        };
        Route::new(condition, RouteTarget::Direct(std::sync::Arc::new(direct)))
    }

    /// A static files route: `path` (a prefix) served from `root`.
    pub fn files(path: Option<&str>, root: std::path::PathBuf) -> Result<Route, OriginUrlError> {
        let path_beg = match path {
            None | Some("/") => None,
            Some(p) if !p.starts_with('/') => {
                return Err(OriginUrlError::PathNotAbsolute(p.to_string()))
            }
            Some(p) => Some(p.to_string()),
        };
        let condition = RouteCondition {
            path_beg,
            ..RouteCondition::any()
        };
        Ok(Route::new(condition, RouteTarget::Files(root)))
    }

    /// The path and query to send to the origin for a client request's
    /// `path_and_query`: `rewrite.remove` bytes are cut from the path, then
    /// `rewrite.prepend` is put in front; the query is kept as it was.
    ///
    /// A result that would not start with `/` gets one, since an origin-form
    /// request target must (RFC 9112 §3.2.1).
    pub fn rewrite_path(&self, path_and_query: &str) -> String {
        if self.rewrite.is_identity() {
            return path_and_query.to_string();
        }
        let (path, query) = match path_and_query.find('?') {
            Some(at) => path_and_query.split_at(at),
            None => (path_and_query, ""),
        };
        let rest = path
            .as_bytes()
            .get(self.rewrite.remove..)
            .unwrap_or_default();
        let rest = String::from_utf8_lossy(rest);
        let mut out =
            String::with_capacity(self.rewrite.prepend.len() + rest.len() + query.len() + 1);
        out.push_str(&self.rewrite.prepend);
        out.push_str(&rest);
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        out.push_str(query);
        out
    }
}

/// Why a TOML `origin = "…"` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginUrlError {
    #[error("origin `{0}` is not a URL (expected e.g. \"http://127.0.0.1:8080\")")]
    NotUrl(String),
    #[error("origin `{url}` has scheme `{scheme}`; only http and https are supported")]
    Scheme { url: String, scheme: String },
    #[error("origin `{0}` has no host")]
    NoHost(String),
    #[error("origin `{0}` has an invalid port (expected 1-65535)")]
    Port(String),
    #[error(
        "origin `{0}` must be scheme://host[:port] only (no user info, path, query or fragment)"
    )]
    Extra(String),
    #[error("route path `{0}` must start with `/`")]
    PathNotAbsolute(String),
    #[error(
        "route path `{0}` is a template; templates belong to direct-mode routes (`channel = …`)"
    )]
    PathTemplate(String),
}

fn parse_origin_url(url: &str) -> Result<OriginTarget, OriginUrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| OriginUrlError::NotUrl(url.to_string()))?;
    let (ssl, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (false, 80),
        "https" => (true, 443),
        _ => {
            return Err(OriginUrlError::Scheme {
                url: url.to_string(),
                scheme: scheme.to_string(),
            })
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(OriginUrlError::Extra(url.to_string()));
    }
    let (host, port) = split_host_port(authority);
    if host.is_empty() {
        return Err(OriginUrlError::NoHost(url.to_string()));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(OriginUrlError::Port(url.to_string())),
        },
    };
    let mut target = OriginTarget::new(host, port);
    target.ssl = ssl;
    Ok(target)
}

/// Splits `host[:port]` or `[v6][:port]` into the host (brackets removed) and the
/// port text. A bare IPv6 address (several colons, no brackets) is all host.
pub(crate) fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(inner) = s.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (s, None),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (s, None),
    }
}

/// The request host as routes compare it: port removed, lower-case.
///
/// Pushpin looks routes up by the request URI's host, which has no port, so a
/// request to `Example.com:7999` uses the rules for `example.com`.
pub fn normalize_host(host: &str) -> String {
    split_host_port(host.trim()).0.to_ascii_lowercase()
}

/// A route was not added because an earlier route for the same host has the same
/// condition (§7.1: duplicates are skipped, the first wins).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "duplicate route condition `{id}`: an earlier route has the same host, proto, ssl and path_beg"
)]
pub struct DuplicateRoute {
    /// Id of the route that was already there.
    pub id: String,
}

/// Something in the routes that was accepted but deserves the operator's attention
/// (an ignored prop, a skipped duplicate line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWarning {
    pub line: usize,
    pub token: String,
    pub message: String,
}

impl fmt::Display for RouteWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: `{}`: {}", self.line, self.token, self.message)
    }
}

/// Routes in the order they were written, indexed by host for [`RouteTable::select`].
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Indexes into `routes` of rules naming one host, keyed by that host.
    by_host: HashMap<String, Vec<usize>>,
    /// Indexes into `routes` of `*` rules.
    any_host: Vec<usize>,
    warnings: Vec<RouteWarning>,
}

impl RouteTable {
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Appends a route unless an earlier one for the same host has the same
    /// condition. Id-only routes are never duplicates of each other by condition.
    pub fn push(&mut self, route: Route) -> Result<(), DuplicateRoute> {
        let index = self.routes.len();
        let bucket = match &route.condition.host {
            HostMatch::Any => Some(&mut self.any_host),
            HostMatch::Exact(host) => Some(self.by_host.entry(host.clone()).or_default()),
            HostMatch::IdOnly => None,
        };
        if let Some(bucket) = bucket {
            let earlier = bucket
                .iter()
                .filter_map(|&i| self.routes.get(i))
                .find(|r| r.condition.same_as(&route.condition));
            if let Some(earlier) = earlier {
                return Err(DuplicateRoute {
                    id: earlier.id.clone(),
                });
            }
            bucket.push(index);
        }
        self.routes.push(route);
        Ok(())
    }

    pub(crate) fn push_warning(&mut self, warning: RouteWarning) {
        self.warnings.push(warning);
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// What the parser accepted with reservations (ignored props, skipped
    /// duplicates), in line order.
    pub fn warnings(&self) -> &[RouteWarning] {
        &self.warnings
    }

    /// The route for a request (§7.1 matching).
    ///
    /// `host` is the request's `Host` (a port and letter case do not matter); `path`
    /// is the request path as received, a query part is ignored. If any rule names
    /// the request's host, only those rules are considered — a host with rules of
    /// its own never falls back to `*` rules, as in Pushpin. Among the rules that
    /// match, the most specific wins (see `RouteCondition::specificity`); between
    /// equally specific rules the earlier line wins.
    pub fn select(
        &self,
        host: Option<&str>,
        path: &str,
        is_tls: bool,
        is_websocket: bool,
    ) -> Option<&Route> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let host = host.map(normalize_host).filter(|h| !h.is_empty());
        let candidates = match host.as_deref().and_then(|h| self.by_host.get(h)) {
            Some(exact) => exact,
            None => &self.any_host,
        };
        let mut best: Option<&Route> = None;
        for route in candidates.iter().filter_map(|&i| self.routes.get(i)) {
            if !route.condition.matches(path, is_tls, is_websocket) {
                continue;
            }
            let better =
                best.is_none_or(|b| route.condition.specificity() > b.condition.specificity());
            if better {
                best = Some(route);
            }
        }
        best
    }

    /// The route with this id, for the `Pushpin-Route` request header
    /// (`accept_pushpin_route`, §7.2). An id carried by more than one route picks
    /// none, as Pushpin treats shared ids as unusable.
    pub fn by_id(&self, id: &str) -> Option<&Route> {
        let mut found = self.routes.iter().filter(|r| r.id == id);
        let first = found.next()?;
        match found.next() {
            Some(_) => None,
            None => Some(first),
        }
    }
}

#[cfg(test)]
mod tests;
