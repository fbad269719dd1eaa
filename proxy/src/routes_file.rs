//! Pushpin `routes` files (§7.1): the parser and the watcher that reloads them.
//!
//! Syntax, as in Pushpin's `routesfile.cpp`: one rule per line, sections separated
//! by spaces, each section a value followed by `,prop` or `,prop=value` items;
//! `#` outside quotes starts a comment; any part of an item may be `"quoted"`, with
//! `\"` and `\\` as the only escapes. A first item containing `=` is a prop, which
//! leaves the section's value empty (`id=x target:80`). Tabs separate sections too
//! (Pushpin only knows spaces, which made a tab part of the token).
//!
//! Where Pushpin logs a bad line and carries on without it, this parser rejects
//! the whole file with the line, column and token, so a typo never silently drops
//! a route; the watcher then keeps the previous routes. Props Pushpin ignores
//! (unknown ones) or that Fjord does not implement are ignored too, each with a
//! [`RouteWarning`] in the returned table.

use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};

use crate::route::{
    split_host_port, HostMatch, OriginTarget, PathRewrite, Protocol, Route, RouteCondition,
    RouteHeader, RouteTable, RouteTarget, RouteWarning,
};

/// A line of a routes file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}, at `{token}`: {kind}")]
pub struct LineError {
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub token: String,
    pub kind: LineErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineErrorKind {
    #[error("unterminated quoted value")]
    UnterminatedQuote,
    #[error("invalid escape in quoted value (only \\\" and \\\\ are allowed)")]
    BadEscape,
    #[error("expecting a prop after `,`")]
    ExpectingProp,
    #[error("empty prop name")]
    EmptyPropName,
    #[error("a rule needs a condition and at least one target")]
    MissingTarget,
    #[error("the condition has neither a domain (or `*`) nor an id")]
    NoDomainOrId,
    #[error("proto must be `http` or `ws`")]
    BadProto,
    #[error("ssl must be `yes` or `no`")]
    BadSsl,
    #[error("path_beg cannot be empty")]
    EmptyPathBeg,
    #[error("path_rem must be a non-negative integer")]
    BadPathRem,
    #[error("header must use the format `Name:Value`")]
    BadHeader,
    #[error("invalid header name")]
    BadHeaderName,
    #[error("invalid header value")]
    BadHeaderValue,
    #[error("a target must be `host:port`, `[ipv6]:port` or `test`")]
    TargetFormat,
    #[error("target port must be a number from 1 to 65535")]
    TargetPort,
    #[error("an IPv6 target must be written in brackets, e.g. `[::1]:8000`")]
    Ipv6Brackets,
    #[error("invalid IPv6 address")]
    BadIpv6,
    #[error(
        "ZeroMQ targets (zhttp/, zhttpreq/) are not supported; use an HTTP origin `host:port`"
    )]
    ZhttpNotSupported,
    #[error("the `test` target cannot be combined with other targets")]
    TestMixed,
}

/// A routes file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RoutesFileError {
    /// From [`parse_routes`], which does not know the file's name.
    #[error("{0}")]
    Line(#[from] LineError),
    #[error("routes file {}: {error}", path.display())]
    InFile { path: PathBuf, error: LineError },
    #[error("routes file {}: line {line} is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("cannot read routes file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the routes file watcher must be started inside a tokio runtime")]
    NoRuntime,
}

/// Parses the text of a routes file. Relative `sig_key=file:…` paths are left as
/// written; [`load_routes_file`] resolves them against the file's directory.
pub fn parse_routes(text: &str) -> Result<RouteTable, RoutesFileError> {
    Ok(parse_routes_in(text, None)?)
}

/// Reads and parses a routes file. As in Pushpin, a relative `sig_key=file:…`
/// path is taken relative to the routes file.
pub fn load_routes_file(path: &Path) -> Result<RouteTable, RoutesFileError> {
    let bytes = std::fs::read(path).map_err(|error| RoutesFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_file_bytes(path, &bytes)
}

fn parse_file_bytes(path: &Path, bytes: &[u8]) -> Result<RouteTable, RoutesFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
        RoutesFileError::NotUtf8 {
            path: path.to_path_buf(),
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
        }
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    parse_routes_in(text, dir).map_err(|error| RoutesFileError::InFile {
        path: path.to_path_buf(),
        error,
    })
}

fn parse_routes_in(text: &str, base_dir: Option<&Path>) -> Result<RouteTable, LineError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut table = RouteTable::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let sections = split_line(line, line_no)?;
        if sections.is_empty() {
            continue;
        }
        let mut warnings = Vec::new();
        let (route, condition_token) = build_route(sections, line_no, base_dir, &mut warnings)?;
        for warning in warnings {
            table.push_warning(warning);
        }
        if let Err(duplicate) = table.push(route) {
            table.push_warning(RouteWarning {
                line: line_no,
                token: condition_token,
                message: format!(
                    "skipping duplicate condition (route `{}` already has it)",
                    duplicate.id
                ),
            });
        }
    }
    Ok(table)
}

/// One `name` or `name=value` item after a section's value.
#[derive(Debug)]
struct Prop {
    name: String,
    value: Option<String>,
    column: usize,
    raw: String,
}

impl Prop {
    fn text(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// A condition or a target: its value and props as written.
#[derive(Debug)]
struct Section {
    value: String,
    column: usize,
    raw: String,
    props: Vec<Prop>,
}

/// One comma-separated item with quotes decoded.
struct Item {
    text: String,
    raw: String,
    column: usize,
    comma_follows: bool,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Lexer {
    fn error(&self, start: usize, column: usize, kind: LineErrorKind) -> LineError {
        let end = self.pos.min(self.chars.len());
        LineError {
            line: self.line,
            column: column + 1,
            token: self
                .chars
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .collect(),
            kind,
        }
    }

    fn read_item(&mut self) -> Result<Item, LineError> {
        let start = self.pos;
        let mut text = String::new();
        let mut comma_follows = false;
        while let Some(&c) = self.chars.get(self.pos) {
            if is_separator(c) || c == '#' {
                break;
            }
            if c == ',' {
                comma_follows = true;
                break;
            }
            if c != '"' {
                text.push(c);
                self.pos += 1;
                continue;
            }
            let open = self.pos;
            self.pos += 1;
            loop {
                match self.chars.get(self.pos) {
                    None => return Err(self.error(start, open, LineErrorKind::UnterminatedQuote)),
                    Some('"') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') => match self.chars.get(self.pos + 1) {
                        Some(&e @ ('\\' | '"')) => {
                            text.push(e);
                            self.pos += 2;
                        }
                        _ => {
                            let at = self.pos;
                            self.pos = (self.pos + 2).min(self.chars.len());
                            return Err(self.error(start, at, LineErrorKind::BadEscape));
                        }
                    },
                    Some(&other) => {
                        text.push(other);
                        self.pos += 1;
                    }
                }
            }
        }
        let raw = self
            .chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        if comma_follows {
            self.pos += 1;
        }
        Ok(Item {
            text,
            raw,
            column: start + 1,
            comma_follows,
        })
    }

    fn prop(&self, item: Item, section_start: usize) -> Result<Prop, LineError> {
        if item.text.is_empty() {
            return Err(self.error(section_start, item.column - 1, LineErrorKind::ExpectingProp));
        }
        let (name, value) = match item.text.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (item.text, None),
        };
        if name.is_empty() {
            return Err(LineError {
                line: self.line,
                column: item.column,
                token: item.raw,
                kind: LineErrorKind::EmptyPropName,
            });
        }
        Ok(Prop {
            name,
            value,
            column: item.column,
            raw: item.raw,
        })
    }
}

fn split_line(line: &str, line_no: usize) -> Result<Vec<Section>, LineError> {
    let mut lexer = Lexer {
        chars: line.chars().collect(),
        pos: 0,
        line: line_no,
    };
    let mut sections = Vec::new();
    loop {
        while lexer.chars.get(lexer.pos).is_some_and(|&c| is_separator(c)) {
            lexer.pos += 1;
        }
        match lexer.chars.get(lexer.pos) {
            None | Some('#') => break,
            Some(_) => {}
        }
        let start = lexer.pos;
        let first = lexer.read_item()?;
        let mut comma_follows = first.comma_follows;
        let column = first.column;
        let mut section = if first.text.contains('=') {
            Section {
                value: String::new(),
                column,
                raw: String::new(),
                props: vec![lexer.prop(first, start)?],
            }
        } else {
            Section {
                value: first.text,
                column,
                raw: String::new(),
                props: Vec::new(),
            }
        };
        while comma_follows {
            let item = lexer.read_item()?;
            comma_follows = item.comma_follows;
            section.props.push(lexer.prop(item, start)?);
        }
        section.raw = lexer
            .chars
            .get(start..lexer.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        sections.push(section);
    }
    Ok(sections)
}

fn line_error(line: usize, column: usize, token: &str, kind: LineErrorKind) -> LineError {
    LineError {
        line,
        column,
        token: token.to_string(),
        kind,
    }
}

fn prop_error(line: usize, prop: &Prop, kind: LineErrorKind) -> LineError {
    line_error(line, prop.column, &prop.raw, kind)
}

fn warn(warnings: &mut Vec<RouteWarning>, line: usize, token: &str, message: String) {
    warnings.push(RouteWarning {
        line,
        token: token.to_string(),
        message,
    });
}

/// Flags are set by their presence, whatever the value (Pushpin reads `ssl=no` on
/// a target as `ssl`); a value that reads as "off" gets a warning so the surprise
/// shows up in the logs.
fn flag(prop: &Prop, line: usize, warnings: &mut Vec<RouteWarning>) -> bool {
    if let Some(v) = prop.value.as_deref() {
        if matches!(
            v.to_ascii_lowercase().as_str(),
            "no" | "false" | "0" | "off"
        ) {
            let message = format!(
                "`{}` is a flag, set by its presence; the value `{v}` does not turn it off",
                prop.name
            );
            warn(warnings, line, &prop.raw, message);
        }
    }
    true
}

fn ignored(prop: &Prop, line: usize, warnings: &mut Vec<RouteWarning>, what: &str) {
    let message = format!("{what} prop `{}` ignored", prop.name);
    warn(warnings, line, &prop.raw, message);
}

fn non_empty(prop: &Prop) -> Option<String> {
    prop.value.clone().filter(|v| !v.is_empty())
}

/// A file named by a target prop (`client_cert`, `client_key`) is relative to the
/// routes file.
fn resolve_path(path: String, base_dir: Option<&Path>) -> String {
    match base_dir {
        Some(dir) if Path::new(&path).is_relative() => dir.join(path).display().to_string(),
        _ => path,
    }
}

/// Pushpin's `sig_key=file:…` in a routes file is relative to the file.
fn resolve_key_path(key: String, base_dir: Option<&Path>) -> String {
    match (key.strip_prefix("file:"), base_dir) {
        (Some(rel), Some(dir)) if Path::new(rel).is_relative() => {
            format!("file:{}", dir.join(rel).display())
        }
        _ => key,
    }
}

fn build_route(
    sections: Vec<Section>,
    line: usize,
    base_dir: Option<&Path>,
    warnings: &mut Vec<RouteWarning>,
) -> Result<(Route, String), LineError> {
    let mut sections = sections.into_iter();
    let Some(condition) = sections.next() else {
        return Err(line_error(line, 1, "", LineErrorKind::MissingTarget));
    };
    let targets: Vec<Section> = sections.collect();
    if targets.is_empty() {
        let kind = LineErrorKind::MissingTarget;
        return Err(line_error(line, condition.column, &condition.raw, kind));
    }

    let mut route = Route::new(RouteCondition::any(), RouteTarget::Test);
    let mut cond = RouteCondition::any();
    let mut explicit_id = None;
    let mut path_rem = None;
    let mut replace_beg = None;
    for prop in &condition.props {
        match prop.name.as_str() {
            "proto" => {
                cond.proto = Some(match prop.text() {
                    "http" => Protocol::Http,
                    "ws" => Protocol::Ws,
                    _ => return Err(prop_error(line, prop, LineErrorKind::BadProto)),
                })
            }
            "ssl" => {
                cond.ssl = Some(match prop.text() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(prop_error(line, prop, LineErrorKind::BadSsl)),
                })
            }
            "path_beg" => match non_empty(prop) {
                Some(p) => cond.path_beg = Some(p),
                None => return Err(prop_error(line, prop, LineErrorKind::EmptyPathBeg)),
            },
            "id" => explicit_id = non_empty(prop),
            "path_rem" => match prop.text().parse::<usize>() {
                Ok(n) if prop.text().bytes().all(|b| b.is_ascii_digit()) => path_rem = Some(n),
                _ => return Err(prop_error(line, prop, LineErrorKind::BadPathRem)),
            },
            "replace_beg" => replace_beg = Some(prop.text().to_string()),
            "prefix" => route.channel_prefix = prop.text().to_string(),
            "sig_iss" => route.sig_iss = non_empty(prop),
            "sig_key" => route.sig_key = non_empty(prop).map(|k| resolve_key_path(k, base_dir)),
            "as_host" => route.as_host = non_empty(prop),
            "header" => route.headers.push(parse_header(prop, line)?),
            "no_grip" => route.no_grip = flag(prop, line, warnings),
            "debug" => route.debug = flag(prop, line, warnings),
            "aco" => route.auto_cross_origin = flag(prop, line, warnings),
            "orig_headers" => route.orig_headers = flag(prop, line, warnings),
            "log_level" => route.log_level = Some(prop.text().to_string()),
            "session" | "sockjs" | "sockjs_as_path" | "jsonp_mode" | "jsonp_cb" | "jsonp_body"
            | "jsonp_defcb" | "jsonp_defmethod" => ignored(prop, line, warnings, "unsupported"),
            _ => ignored(prop, line, warnings, "unknown condition"),
        }
    }

    cond.host = match condition.value.as_str() {
        "*" => HostMatch::Any,
        "" if explicit_id.is_some() => HostMatch::IdOnly,
        "" => {
            let kind = LineErrorKind::NoDomainOrId;
            return Err(line_error(line, condition.column, &condition.raw, kind));
        }
        domain => {
            let (host, port) = split_host_port(domain);
            if port.is_some() {
                let message = "the domain includes a port, but requests are matched by host \
                               without the port, so this rule never matches"
                    .to_string();
                warn(warnings, line, domain, message);
                HostMatch::Exact(domain.to_ascii_lowercase())
            } else {
                HostMatch::Exact(host.to_ascii_lowercase())
            }
        }
    };

    // Pushpin: replace_beg swaps exactly the path_beg prefix, whatever path_rem says.
    route.rewrite = match (replace_beg, path_rem) {
        (Some(prepend), _) => PathRewrite {
            remove: cond.path_beg.as_deref().map_or(0, str::len),
            prepend,
        },
        (None, Some(remove)) => PathRewrite {
            remove,
            prepend: String::new(),
        },
        (None, None) => PathRewrite::default(),
    };

    route.target = build_target(&targets, line, base_dir, warnings)?;
    route.explicit_id = explicit_id.is_some();
    route.id = explicit_id.unwrap_or_else(|| cond.derived_id());
    route.condition = cond;
    Ok((route, condition.raw))
}

fn parse_header(prop: &Prop, line: usize) -> Result<RouteHeader, LineError> {
    let text = prop.text();
    let (name, value) = match text.split_once(':') {
        Some((n, v)) if !n.is_empty() => (n, v.trim_start_matches(' ')),
        _ => return Err(prop_error(line, prop, LineErrorKind::BadHeader)),
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| prop_error(line, prop, LineErrorKind::BadHeaderName))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| prop_error(line, prop, LineErrorKind::BadHeaderValue))?;
    Ok(RouteHeader { name, value })
}

fn build_target(
    targets: &[Section],
    line: usize,
    base_dir: Option<&Path>,
    warnings: &mut Vec<RouteWarning>,
) -> Result<RouteTarget, LineError> {
    let mut origins = Vec::with_capacity(targets.len());
    let mut test = None;
    for section in targets {
        if section.value == "test" {
            test = Some(section);
            for prop in &section.props {
                ignored(prop, line, warnings, "`test` target");
            }
            continue;
        }
        origins.push(parse_origin(section, line, base_dir, warnings)?);
    }
    match test {
        Some(t) if !origins.is_empty() => {
            let kind = LineErrorKind::TestMixed;
            Err(line_error(line, t.column, &t.raw, kind))
        }
        Some(_) => Ok(RouteTarget::Test),
        None => Ok(RouteTarget::Origin(origins)),
    }
}

fn parse_origin(
    section: &Section,
    line: usize,
    base_dir: Option<&Path>,
    warnings: &mut Vec<RouteWarning>,
) -> Result<OriginTarget, LineError> {
    let fail = |kind| Err(line_error(line, section.column, &section.raw, kind));
    let value = section.value.as_str();
    if value.starts_with("zhttp/") || value.starts_with("zhttpreq/") {
        return fail(LineErrorKind::ZhttpNotSupported);
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return fail(LineErrorKind::TargetFormat);
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return fail(LineErrorKind::BadIpv6);
        }
        match after.strip_prefix(':') {
            Some(port) => (addr, port),
            None => return fail(LineErrorKind::TargetFormat),
        }
    } else {
        match value.split_once(':') {
            Some((_, port)) if port.contains(':') => return fail(LineErrorKind::Ipv6Brackets),
            Some((host, port)) if !host.is_empty() => (host, port),
            _ => return fail(LineErrorKind::TargetFormat),
        }
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return fail(LineErrorKind::TargetPort),
    };

    let mut target = OriginTarget::new(host, port);
    for prop in &section.props {
        match prop.name.as_str() {
            "ssl" => target.ssl = flag(prop, line, warnings),
            "insecure" => target.insecure = flag(prop, line, warnings),
            "untrusted" => target.untrusted = flag(prop, line, warnings),
            "trust_connect_host" => target.trust_connect_host = flag(prop, line, warnings),
            "over_http" => target.over_http = flag(prop, line, warnings),
            "host" => target.host_header = non_empty(prop),
            "sub" => target.subscriptions.extend(non_empty(prop)),
            "client_cert" => {
                target.client_cert = non_empty(prop).map(|p| resolve_path(p, base_dir))
            }
            "client_key" => target.client_key = non_empty(prop).map(|p| resolve_path(p, base_dir)),
            "one_event" | "ipc_file_mode" => ignored(prop, line, warnings, "unsupported"),
            _ => ignored(prop, line, warnings, "unknown target"),
        }
    }
    if target.client_cert.is_some() != target.client_key.is_some() {
        let message = "`client_cert` and `client_key` go together; without both the origin \
                       is connected without a client certificate"
            .to_owned();
        warn(warnings, line, &section.raw, message);
    }
    Ok(target)
}

mod watcher;

pub use watcher::RoutesWatcher;

#[cfg(test)]
mod tests;
