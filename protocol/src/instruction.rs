//! GRIP instructions in an origin response (§2): detection, the `Grip-*` headers of §2.2 and
//! the `application/grip-instruct` JSON body of §2.5, parsed into one typed [`Instruction`].
//!
//! Parsing follows Pushpin's `Instruct::fromResponse`, the behaviour of record: single-valued
//! headers (`Grip-Hold`, `Grip-Timeout`, `Grip-Keep-Alive`, `Grip-Status`) use their first
//! occurrence, list-valued ones (`Grip-Channel`, `Grip-Set-Meta`, `Grip-Link`,
//! `Grip-Expose-Headers`) use every occurrence. Any parse failure is an
//! [`InstructionError`]; the proxy answers it with the 502 of §2.4.

mod headers;
mod json;
mod link;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

use crate::header::{self, HeaderSyntaxError};
use crate::keepalive::{KeepAlive, KeepAliveError, KeepAliveMode};

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
    media_type
        .trim_ascii()
        .eq_ignore_ascii_case(GRIP_INSTRUCT_MEDIA_TYPE.as_bytes())
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
        ResponseHold {
            timeout: timeout.max(MIN_RESPONSE_TIMEOUT),
        }
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
    Syntax {
        header: &'static str,
        source: HeaderSyntaxError,
    },
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

/// Instruction state while headers and then the JSON body are applied; settings stay
/// independent of the hold mode until [`Draft::finish`] because the JSON body may change
/// the mode after the headers set them.
struct Draft {
    hold: Option<HoldMode>,
    timeout_secs: Option<u32>,
    keep_alive: Option<KeepAliveDraft>,
    channels: Vec<Channel>,
    channel_index: HashMap<String, usize>,
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
    /// Indexed by name so that a header listing thousands of channels stays linear.
    fn add_channel(&mut self, channel: Channel) {
        let next = self.channels.len();
        let index = *self
            .channel_index
            .entry(channel.name.clone())
            .or_insert(next);
        match self.channels.get_mut(index) {
            Some(existing) => {
                existing.prev_id = channel.prev_id;
                existing.filters = channel.filters;
                existing.unknown_filters = channel.unknown_filters;
            }
            None => self.channels.push(channel),
        }
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
            .unwrap_or_else(|_| StatusLine {
                code: 200,
                reason: "OK".to_owned(),
            });
        Instruction {
            hold,
            channels: self.channels,
            meta: self.meta,
            response: InstructedResponse {
                status,
                headers: self.headers,
                body: self.body,
            },
            next_link: self.next_link,
            gone_link: self.gone_link,
            expose_headers: self.expose_headers,
        }
    }
}

#[cfg(test)]
mod tests;
