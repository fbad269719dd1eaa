//! GRIP instructions in an origin response (§2): detection, the `Grip-*` headers of §2.2 and
//! the `application/grip-instruct` JSON body of §2.5, parsed into one typed [`Instruction`].
//!
//! Parsing follows Pushpin's `Instruct::fromResponse`, the behaviour of record: single-valued
//! headers (`Grip-Hold`, `Grip-Timeout`, `Grip-Keep-Alive`, `Grip-Status`) use their first
//! occurrence, list-valued ones (`Grip-Channel`, `Grip-Set-Meta`, `Grip-Link`,
//! `Grip-Expose-Headers`) use every occurrence. Any parse failure is an
//! [`InstructionError`]; the proxy answers it with the 502 of §2.4.

mod json;
mod link;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::header::{self, names, HeaderSyntaxError};
use crate::keepalive::{
    decode_keepalive_data, KeepAlive, KeepAliveError, KeepAliveFormat, KeepAliveMode,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
};

pub use json::JsonProblem;
pub use link::{resolve_link, validate_link, LinkError};

/// Media type that marks a JSON instruction body (§2.1, §2.5).
pub const GRIP_INSTRUCT_MEDIA_TYPE: &str = "application/grip-instruct";
/// Largest origin body a response hold may keep as its timeout response (§2.4); the caller
/// enforces it because it owns the body stream.
pub const MAX_RESPONSE_HOLD_BODY: usize = 100_000;
/// More filters than this on one channel make the instruction invalid (§2.2).
pub const MAX_FILTERS_PER_CHANNEL: usize = 5;
/// Response-hold duration without `Grip-Timeout` (§2.2).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(55);
/// Shorter response-hold durations are raised to this (§2.2).
pub const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Next-link refresh period without a `timeout` parameter (§2.2, §6.4).
pub const DEFAULT_NEXT_LINK_TIMEOUT: Duration = Duration::from_secs(120);
/// Pushpin's phrase for codes without a standard one.
const UNDEFINED_REASON: &str = "Undefined Reason";

/// Whether an origin response carries GRIP instructions (§2.1): any `Grip-*` header, or a
/// `Content-Type` whose media type is `application/grip-instruct` (case-insensitive,
/// parameters ignored). Anything else is relayed unchanged.
pub fn is_grip_response(headers: &HeaderMap) -> bool {
    headers.keys().any(header::is_grip_header) || has_grip_instruct_body(headers)
}

fn has_grip_instruct_body(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let media_type = bytes.split(|&b| b == b';').next().unwrap_or(bytes);
    media_type.trim_ascii().eq_ignore_ascii_case(GRIP_INSTRUCT_MEDIA_TYPE.as_bytes())
}

/// Everything an origin response instructs the proxy to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// `None`: send [`Instruction::response`] now (then follow `next_link`, if any).
    pub hold: Option<Hold>,
    /// In instruction order, one entry per name: a repeated name updates the earlier entry's
    /// `prev-id` and filters, as Pushpin's session does.
    pub channels: Vec<Channel>,
    /// Subscription metadata read by filters (§2.6); later keys override earlier ones.
    pub meta: BTreeMap<String, String>,
    /// The response the client sees: immediately (no hold, stream hold) or on timeout
    /// (response hold).
    pub response: InstructedResponse,
    pub next_link: Option<NextLink>,
    /// Unresolved URI to POST when the client goes away (§6.5).
    pub gone_link: Option<String>,
    /// Header names from `Grip-Expose-Headers`, already applied to `response.headers`; kept
    /// because the same list governs published `http-response` headers.
    pub expose_headers: Option<Vec<HeaderName>>,
}

impl Instruction {
    /// Parses the instructions of one origin response. `body` is only read for
    /// `application/grip-instruct` responses; a header-only instruction may pass an empty
    /// slice and stream the origin body itself (see [`ResponseBody::Origin`]).
    pub fn parse(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Instruction, InstructionError> {
        let mut draft = Draft::from_headers(status, headers)?;
        if has_grip_instruct_body(headers) {
            json::apply(&mut draft, status, body)?;
        }
        Ok(draft.finish())
    }

    pub fn hold_mode(&self) -> Option<HoldMode> {
        self.hold.as_ref().map(Hold::mode)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMode {
    Response,
    Stream,
}

/// A hold together with the settings that only make sense for its mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Long-poll (§5).
    Response(ResponseHold),
    /// HTTP streaming (§6).
    Stream(StreamHold),
}

impl Hold {
    pub fn mode(&self) -> HoldMode {
        match self {
            Hold::Response(_) => HoldMode::Response,
            Hold::Stream(_) => HoldMode::Stream,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHold {
    timeout: Duration,
}

impl ResponseHold {
    /// Raises a timeout below [`MIN_RESPONSE_TIMEOUT`] to it (§2.2).
    pub fn new(timeout: Duration) -> Self {
        ResponseHold { timeout: timeout.max(MIN_RESPONSE_TIMEOUT) }
    }

    /// How long to wait for a publish before sending the timeout response.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHold {
    pub keep_alive: Option<KeepAlive>,
}

/// One subscription of the instruction (§2.2 `Grip-Channel`, §2.5 `hold.channels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// As the origin wrote it, before any route prefix.
    pub name: String,
    /// The ID the origin expects the next item's `prev-id` to match (§3.7).
    pub prev_id: Option<String>,
    /// Known filters in the order given, duplicates kept.
    pub filters: Vec<Filter>,
    /// Filter names Pushpin does not know either; they count toward the limit of five and
    /// are otherwise ignored, as Pushpin ignores them. Kept for diagnostics.
    pub unknown_filters: Vec<String>,
}

/// Subscription filters (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    SkipSelf,
    SkipUsers,
    RequireSub,
    BuildId,
    VarSubst,
}

impl Filter {
    pub fn from_name(name: &str) -> Option<Filter> {
        match name {
            "skip-self" => Some(Filter::SkipSelf),
            "skip-users" => Some(Filter::SkipUsers),
            "require-sub" => Some(Filter::RequireSub),
            "build-id" => Some(Filter::BuildId),
            "var-subst" => Some(Filter::VarSubst),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Filter::SkipSelf => "skip-self",
            Filter::SkipUsers => "skip-users",
            Filter::RequireSub => "require-sub",
            Filter::BuildId => "build-id",
            Filter::VarSubst => "var-subst",
        }
    }

    /// Content-changing filters decide which `content-filters` variant of a publish a
    /// subscription receives (§2.6); the others only decide delivery.
    pub fn changes_content(self) -> bool {
        matches!(self, Filter::BuildId | Filter::VarSubst)
    }
}

/// `Grip-Link: <URI>; rel=next` (§6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextLink {
    /// Unresolved; see [`resolve_link`].
    pub uri: String,
    /// Refresh period while streaming.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstructedResponse {
    pub status: StatusLine,
    /// Header form: the origin's headers minus `Grip-*`, narrowed by `Grip-Expose-Headers`.
    /// JSON form: the `response.headers` of the body (minus `Grip-*`). Hop-by-hop headers and
    /// `Content-Length` are left for the proxy to handle (§2.3).
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseBody {
    /// The origin's body, as received (header-form instructions); not copied here because a
    /// stream hold's initial body may be arbitrarily large (§2.3).
    Origin,
    /// The JSON instruction's `response.body`/`body-bin`, empty if it gave none (§2.5).
    Replaced(Bytes),
}

/// A status code from 0 to 999 with its reason phrase (§2.2 `Grip-Status`). Codes below 100
/// are legal in GRIP although `http::StatusCode` cannot hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    code: u16,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusLineError {
    #[error("status code {0} is not between 0 and 999")]
    CodeOutOfRange(u32),
    /// A reason phrase goes into the status line verbatim; CR/LF would split the response.
    #[error("reason phrase {0:?} contains control characters")]
    InvalidReason(String),
}

impl StatusLine {
    /// An empty or absent reason becomes the standard phrase, or Pushpin's
    /// "Undefined Reason" for codes that have none.
    pub fn new(code: u32, reason: Option<&str>) -> Result<Self, StatusLineError> {
        let code = u16::try_from(code)
            .ok()
            .filter(|c| *c <= 999)
            .ok_or(StatusLineError::CodeOutOfRange(code))?;
        let reason = match reason.filter(|r| !r.is_empty()) {
            Some(r) if r.chars().any(|c| c.is_ascii_control() && c != '\t') => {
                return Err(StatusLineError::InvalidReason(r.to_owned()))
            }
            Some(r) => r.to_owned(),
            None => standard_reason(code).to_owned(),
        };
        Ok(StatusLine { code, reason })
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// `None` for codes below 100, which `http` cannot represent.
    pub fn to_status_code(&self) -> Option<StatusCode> {
        StatusCode::from_u16(self.code).ok()
    }
}

fn standard_reason(code: u16) -> &'static str {
    StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or(UNDEFINED_REASON)
}

/// Why an origin response's instructions are unusable; the message names the header (or
/// JSON field) and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    #[error("{header}: {source}")]
    Syntax { header: &'static str, source: HeaderSyntaxError },
    #[error("{header}: value is not valid UTF-8")]
    NotUtf8 { header: &'static str },
    #[error("Grip-Hold: {0:?} is neither \"response\" nor \"stream\"")]
    UnknownHoldMode(String),
    #[error("{what}: {value:?} is not a non-negative integer")]
    NotNonNegativeInteger { what: &'static str, value: String },
    #[error("Grip-Channel: element {0:?} has an empty channel name")]
    EmptyChannelName(String),
    #[error("Grip-Channel: channel {channel:?} has {count} filters, at most 5 are allowed")]
    TooManyFilters { channel: String, count: usize },
    #[error("Grip-Keep-Alive: data is empty")]
    EmptyKeepAlive,
    #[error("Grip-Keep-Alive: format {0:?} is not raw, cstring or base64")]
    UnknownKeepAliveFormat(String),
    #[error("Grip-Keep-Alive: mode {0:?} is neither idle nor interval")]
    UnknownKeepAliveMode(String),
    #[error("Grip-Keep-Alive: {0}")]
    KeepAliveData(KeepAliveError),
    #[error("Grip-Link: {0:?} is not a <URI> reference")]
    LinkNotBracketed(String),
    #[error("Grip-Link: {uri:?} is not a valid link: {source}")]
    InvalidLink { uri: String, source: LinkError },
    #[error("Grip-Status: {0:?} does not start with a status code from 0 to 999")]
    InvalidStatusCode(String),
    #[error("Grip-Status: {0}")]
    InvalidStatusLine(StatusLineError),
    #[error("application/grip-instruct: response status must be 200, not {0}")]
    InstructStatus(u16),
    #[error("application/grip-instruct: body is not valid JSON: {0}")]
    InstructJson(String),
    #[error("application/grip-instruct: body is not a JSON object")]
    InstructNotObject,
    #[error("application/grip-instruct: {path}: {problem}")]
    InstructField { path: String, problem: JsonProblem },
}

const GRIP_HOLD: &str = "Grip-Hold";
const GRIP_CHANNEL: &str = "Grip-Channel";
const GRIP_TIMEOUT: &str = "Grip-Timeout";
const GRIP_KEEP_ALIVE: &str = "Grip-Keep-Alive";
const GRIP_SET_META: &str = "Grip-Set-Meta";
const GRIP_LINK: &str = "Grip-Link";
const GRIP_STATUS: &str = "Grip-Status";
const GRIP_EXPOSE_HEADERS: &str = "Grip-Expose-Headers";

/// Instruction state while headers and then the JSON body are applied; settings stay
/// independent of the hold mode until [`Draft::finish`] because the JSON body may change
/// the mode after the headers set them.
struct Draft {
    hold: Option<HoldMode>,
    timeout_secs: Option<u32>,
    keep_alive: Option<KeepAliveDraft>,
    channels: Vec<Channel>,
    meta: BTreeMap<String, String>,
    code: u32,
    reason: String,
    headers: HeaderMap,
    body: ResponseBody,
    next_link: Option<NextLink>,
    gone_link: Option<String>,
    expose_headers: Option<Vec<HeaderName>>,
}

struct KeepAliveDraft {
    data: Bytes,
    timeout_secs: u32,
    mode: KeepAliveMode,
}

impl Draft {
    fn from_headers(status: StatusCode, headers: &HeaderMap) -> Result<Draft, InstructionError> {
        let expose_headers = parse_expose_headers(headers)?;
        let mut draft = Draft {
            hold: parse_hold(headers)?,
            timeout_secs: None,
            keep_alive: parse_keep_alive(headers)?,
            channels: Vec::new(),
            meta: parse_meta(headers)?,
            code: u32::from(status.as_u16()),
            reason: String::new(),
            headers: client_headers(headers, expose_headers.as_deref()),
            body: ResponseBody::Origin,
            next_link: None,
            gone_link: None,
            expose_headers,
        };
        if let Some(value) = headers.get(names::GRIP_TIMEOUT) {
            draft.timeout_secs = Some(parse_seconds(GRIP_TIMEOUT, text(GRIP_TIMEOUT, value)?)?);
        }
        for channel in parse_channels(headers)? {
            draft.add_channel(channel);
        }
        draft.apply_status(headers)?;
        draft.apply_links(headers)?;
        Ok(draft)
    }

    fn add_channel(&mut self, channel: Channel) {
        match self.channels.iter_mut().find(|c| c.name == channel.name) {
            Some(existing) => {
                existing.prev_id = channel.prev_id;
                existing.filters = channel.filters;
                existing.unknown_filters = channel.unknown_filters;
            }
            None => self.channels.push(channel),
        }
    }

    /// `Grip-Status: <code>[ <reason>]`, split at the first space; an empty header is
    /// ignored, as in Pushpin.
    fn apply_status(&mut self, headers: &HeaderMap) -> Result<(), InstructionError> {
        let Some(value) = headers.get(names::GRIP_STATUS) else {
            return Ok(());
        };
        let value = text(GRIP_STATUS, value)?.trim();
        if value.is_empty() {
            return Ok(());
        }
        let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
        let code = parse_unsigned(code)
            .ok_or_else(|| InstructionError::InvalidStatusCode(value.to_owned()))?;
        let line = StatusLine::new(code, Some(reason)).map_err(|e| match e {
            StatusLineError::CodeOutOfRange(_) => InstructionError::InvalidStatusCode(value.to_owned()),
            other => InstructionError::InvalidStatusLine(other),
        })?;
        self.code = u32::from(line.code);
        self.reason = reason.to_owned();
        Ok(())
    }

    /// `Grip-Link` elements; like Pushpin, an element without parameters is skipped, other
    /// relations are validated but ignored, and a later link of a relation wins.
    fn apply_links(&mut self, headers: &HeaderMap) -> Result<(), InstructionError> {
        for element in list(GRIP_LINK, headers, &names::GRIP_LINK)? {
            if element.params.is_empty() {
                continue;
            }
            let uri = match element.uri_reference() {
                Some(uri) if !uri.is_empty() => uri.to_owned(),
                _ => return Err(InstructionError::LinkNotBracketed(element.value.clone())),
            };
            if let Err(source) = validate_link(&uri) {
                return Err(InstructionError::InvalidLink { uri, source });
            }
            let rel = element.param_value("rel").unwrap_or("");
            if rel.eq_ignore_ascii_case("next") {
                let timeout = match element.param("timeout") {
                    Some(p) => {
                        let value = p.value.as_deref().unwrap_or("");
                        Duration::from_secs(parse_seconds("Grip-Link timeout", value)?.into())
                    }
                    None => DEFAULT_NEXT_LINK_TIMEOUT,
                };
                self.next_link = Some(NextLink { uri, timeout });
            } else if rel.eq_ignore_ascii_case("gone") {
                self.gone_link = Some(uri);
            }
        }
        Ok(())
    }

    fn finish(self) -> Instruction {
        let hold = self.hold.map(|mode| match mode {
            HoldMode::Response => {
                let timeout = self
                    .timeout_secs
                    .map_or(DEFAULT_RESPONSE_TIMEOUT, |s| Duration::from_secs(s.into()));
                Hold::Response(ResponseHold::new(timeout))
            }
            HoldMode::Stream => Hold::Stream(StreamHold {
                keep_alive: self.keep_alive.and_then(|k| {
                    let timeout = Duration::from_secs(k.timeout_secs.into());
                    KeepAlive::new(k.data, timeout, k.mode).ok()
                }),
            }),
        });
        let status = StatusLine::new(self.code, Some(&self.reason))
            .or_else(|_| StatusLine::new(self.code, None))
            .unwrap_or_else(|_| StatusLine { code: 200, reason: "OK".to_owned() });
        Instruction {
            hold,
            channels: self.channels,
            meta: self.meta,
            response: InstructedResponse { status, headers: self.headers, body: self.body },
            next_link: self.next_link,
            gone_link: self.gone_link,
            expose_headers: self.expose_headers,
        }
    }
}

fn text<'a>(header: &'static str, value: &'a HeaderValue) -> Result<&'a str, InstructionError> {
    std::str::from_utf8(value.as_bytes()).map_err(|_| InstructionError::NotUtf8 { header })
}

fn list(
    header: &'static str,
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<Vec<header::HeaderElement>, InstructionError> {
    let values = headers.get_all(name).iter().map(HeaderValue::as_bytes);
    header::parse_list(values).map_err(|source| syntax_error(header, source))
}

fn syntax_error(header: &'static str, source: HeaderSyntaxError) -> InstructionError {
    match source {
        HeaderSyntaxError::NotUtf8 => InstructionError::NotUtf8 { header },
        source => InstructionError::Syntax { header, source },
    }
}

/// Digits with an optional `+`, as Qt's integer conversion accepts; `None` otherwise.
fn parse_unsigned(value: &str) -> Option<u32> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_seconds(what: &'static str, value: &str) -> Result<u32, InstructionError> {
    parse_unsigned(value.trim()).ok_or_else(|| InstructionError::NotNonNegativeInteger {
        what,
        value: value.to_owned(),
    })
}

/// `Grip-Hold` must be exactly `response` or `stream` (Pushpin compares case-sensitively).
fn parse_hold(headers: &HeaderMap) -> Result<Option<HoldMode>, InstructionError> {
    let Some(value) = headers.get(names::GRIP_HOLD) else {
        return Ok(None);
    };
    match text(GRIP_HOLD, value)?.trim() {
        "response" => Ok(Some(HoldMode::Response)),
        "stream" => Ok(Some(HoldMode::Stream)),
        other => Err(InstructionError::UnknownHoldMode(other.to_owned())),
    }
}

fn parse_channels(headers: &HeaderMap) -> Result<Vec<Channel>, InstructionError> {
    list(GRIP_CHANNEL, headers, &names::GRIP_CHANNEL)?
        .into_iter()
        .map(|element| {
            if element.value.is_empty() {
                let shown = element
                    .params
                    .iter()
                    .map(|p| format!("; {}={}", p.name, p.value.as_deref().unwrap_or("")))
                    .collect::<String>();
                return Err(InstructionError::EmptyChannelName(shown));
            }
            let filter_names = element
                .params_named("filter")
                .map(|p| p.value.clone().unwrap_or_default())
                .collect();
            let prev_id = element.param_value("prev-id").map(str::to_owned);
            new_channel(element.value, prev_id, filter_names)
        })
        .collect()
}

/// Builds a channel, enforcing the filter limit over known and unknown names alike.
fn new_channel(
    name: String,
    prev_id: Option<String>,
    filter_names: Vec<String>,
) -> Result<Channel, InstructionError> {
    if filter_names.len() > MAX_FILTERS_PER_CHANNEL {
        return Err(InstructionError::TooManyFilters { channel: name, count: filter_names.len() });
    }
    let mut filters = Vec::new();
    let mut unknown_filters = Vec::new();
    for filter_name in filter_names {
        match Filter::from_name(&filter_name) {
            Some(filter) => filters.push(filter),
            None => unknown_filters.push(filter_name),
        }
    }
    Ok(Channel { name, prev_id, filters, unknown_filters })
}

/// `Grip-Keep-Alive: <data>[; format=..][; timeout=..][; mode=..]`, first header only and
/// not split at commas (data may contain them). An entirely empty header is ignored, as in
/// Pushpin; empty data with parameters is an error.
fn parse_keep_alive(headers: &HeaderMap) -> Result<Option<KeepAliveDraft>, InstructionError> {
    let Some(value) = headers.get(names::GRIP_KEEP_ALIVE) else {
        return Ok(None);
    };
    let Some(element) =
        header::parse_element(value.as_bytes()).map_err(|e| syntax_error(GRIP_KEEP_ALIVE, e))?
    else {
        return Ok(None);
    };
    if element.value.is_empty() {
        return Err(InstructionError::EmptyKeepAlive);
    }
    let mode_name = element.param_value("mode").unwrap_or("");
    let mode = KeepAliveMode::from_param(mode_name)
        .ok_or_else(|| InstructionError::UnknownKeepAliveMode(mode_name.to_owned()))?;
    let timeout_secs = match element.param("timeout") {
        Some(p) => parse_seconds("Grip-Keep-Alive timeout", p.value.as_deref().unwrap_or(""))?,
        None => keep_alive_default_secs(),
    };
    let format_name = element.param_value("format").unwrap_or("");
    let format = KeepAliveFormat::from_param(format_name)
        .ok_or_else(|| InstructionError::UnknownKeepAliveFormat(format_name.to_owned()))?;
    let data = decode_keepalive_data(element.value.as_bytes(), format)
        .map_err(InstructionError::KeepAliveData)?;
    if data.is_empty() {
        return Err(InstructionError::EmptyKeepAlive);
    }
    Ok(Some(KeepAliveDraft { data, timeout_secs, mode }))
}

fn keep_alive_default_secs() -> u32 {
    u32::try_from(DEFAULT_KEEP_ALIVE_TIMEOUT.as_secs()).unwrap_or(u32::MAX)
}

/// `Grip-Set-Meta: k1="v1", k2=v2`: each element's leading `name=value` pair; a bare name
/// sets an empty value.
fn parse_meta(headers: &HeaderMap) -> Result<BTreeMap<String, String>, InstructionError> {
    let values = headers.get_all(names::GRIP_SET_META).iter().map(HeaderValue::as_bytes);
    let elements =
        header::parse_param_list(values).map_err(|e| syntax_error(GRIP_SET_META, e))?;
    Ok(elements
        .into_iter()
        .filter_map(|params| params.into_iter().next())
        .map(|p| (p.name, p.value.unwrap_or_default()))
        .collect())
}

/// Present (even with only unusable names) as soon as the header lists anything, because
/// Pushpin then keeps only matching headers.
fn parse_expose_headers(headers: &HeaderMap) -> Result<Option<Vec<HeaderName>>, InstructionError> {
    let elements = list(GRIP_EXPOSE_HEADERS, headers, &names::GRIP_EXPOSE_HEADERS)?;
    if elements.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        elements
            .iter()
            .filter_map(|e| HeaderName::from_bytes(e.value.as_bytes()).ok())
            .collect(),
    ))
}

fn client_headers(headers: &HeaderMap, expose: Option<&[HeaderName]>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let exposed = expose.is_none_or(|list| list.contains(name));
        if exposed && !header::is_grip_header(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
