//! The `application/grip-instruct` body (§2.5), applied on top of the header instructions.
//!
//! Merging follows Pushpin: `hold` replaces the hold mode (default `response`), appends its
//! channels (a name already present is updated in place), overrides the timeout and the
//! keep-alive fields it gives and adds its meta keys; the origin's headers and body are
//! always discarded in favour of `response`, whose `code` also resets the reason phrase.

use std::time::Duration;

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use super::headers::{keep_alive_default_secs, new_channel};
use super::{
    Draft, HoldMode, InstructionError, KeepAliveDraft, ResponseBody, StatusLine, StatusLineError,
    MAX_FILTERS_PER_CHANNEL,
};
use crate::header::is_grip_header;
use crate::keepalive::KeepAliveMode;

/// Standard alphabet, padding optional: Pushpin's decoder is lenient about padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// What is wrong with one field of a JSON instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    #[error("is required")]
    Missing,
    #[error("must be {0}")]
    WrongType(&'static str),
    #[error("must be a non-negative integer")]
    NotNonNegativeInteger,
    #[error("must be \"response\" or \"stream\", not {0:?}")]
    UnknownHoldMode(String),
    #[error("must be \"idle\" or \"interval\", not {0:?}")]
    UnknownKeepAliveMode(String),
    #[error("must not be empty")]
    Empty,
    #[error("has {0} filters, at most {MAX_FILTERS_PER_CHANNEL} are allowed")]
    TooManyFilters(usize),
    #[error("is not valid base64: {0}")]
    Base64(base64::DecodeError),
    #[error("{0}")]
    Status(StatusLineError),
    #[error("{0:?} is not a valid header name")]
    InvalidHeaderName(String),
    #[error("is not a valid header value")]
    InvalidHeaderValue,
}

fn field_error(path: impl Into<String>, problem: JsonProblem) -> InstructionError {
    InstructionError::InstructField {
        path: path.into(),
        problem,
    }
}

pub(super) fn apply(
    draft: &mut Draft,
    status: StatusCode,
    body: &[u8],
) -> Result<(), InstructionError> {
    if status != StatusCode::OK {
        return Err(InstructionError::InstructStatus(status.as_u16()));
    }
    let root: Value =
        serde_json::from_slice(body).map_err(|e| InstructionError::InstructJson(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(InstructionError::InstructNotObject);
    };
    if let Some(hold) = root.get("hold") {
        apply_hold(draft, object(hold, "hold")?)?;
    }
    draft.headers = HeaderMap::new();
    draft.body = ResponseBody::Replaced(Bytes::new());
    if let Some(response) = root.get("response") {
        apply_response(draft, object(response, "response")?)?;
    }
    Ok(())
}

fn apply_hold(draft: &mut Draft, hold: &Map<String, Value>) -> Result<(), InstructionError> {
    draft.hold = Some(match optional_str(hold, "mode", "hold.mode")? {
        None | Some("response") => HoldMode::Response,
        Some("stream") => HoldMode::Stream,
        Some(other) => {
            return Err(field_error(
                "hold.mode",
                JsonProblem::UnknownHoldMode(other.to_owned()),
            ))
        }
    });

    let channels = match hold.get("channels") {
        None => return Err(field_error("hold.channels", JsonProblem::Missing)),
        Some(Value::Array(channels)) => channels,
        Some(_) => {
            return Err(field_error(
                "hold.channels",
                JsonProblem::WrongType("a list"),
            ))
        }
    };
    for (i, channel) in channels.iter().enumerate() {
        let path = format!("hold.channels[{i}]");
        let channel = object(channel, &path)?;
        let name = match optional_str(channel, "name", &format!("{path}.name"))? {
            None => return Err(field_error(format!("{path}.name"), JsonProblem::Missing)),
            Some("") => return Err(field_error(format!("{path}.name"), JsonProblem::Empty)),
            Some(name) => name.to_owned(),
        };
        let prev_id = optional_str(channel, "prev-id", &format!("{path}.prev-id"))?;
        let filters = string_list(channel.get("filters"), &format!("{path}.filters"))?;
        if filters.len() > MAX_FILTERS_PER_CHANNEL {
            let problem = JsonProblem::TooManyFilters(filters.len());
            return Err(field_error(format!("{path}.filters"), problem));
        }
        draft.add_channel(new_channel(name, prev_id.map(str::to_owned), filters)?);
    }

    if let Some(timeout) = non_null(hold.get("timeout")) {
        draft.timeout_secs = Some(whole_number(timeout, "hold.timeout")?);
    }
    if let Some(keep_alive) = non_null(hold.get("keep-alive")) {
        apply_keep_alive(draft, object(keep_alive, "hold.keep-alive")?)?;
    }
    if let Some(meta) = non_null(hold.get("meta")) {
        for (key, value) in object(meta, "hold.meta")? {
            let Value::String(value) = value else {
                let problem = JsonProblem::WrongType("a string");
                return Err(field_error(format!("hold.meta.{key}"), problem));
            };
            draft.meta.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

/// `content-bin` wins over `content`; without either the header's data stays. The mode
/// defaults to the header's, else to interval: Pushpin never resets a JSON keep-alive on
/// traffic, and `mode` is an extension (§2.5). A keep-alive that ends up without data is
/// dropped rather than rejected, since Pushpin accepts it (and then writes nothing).
fn apply_keep_alive(draft: &mut Draft, ka: &Map<String, Value>) -> Result<(), InstructionError> {
    let data = if let Some(bin) = optional_str(ka, "content-bin", "hold.keep-alive.content-bin")? {
        Some(base64(bin, "hold.keep-alive.content-bin")?)
    } else {
        optional_str(ka, "content", "hold.keep-alive.content")?
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
    };
    let timeout_secs = match non_null(ka.get("timeout")) {
        Some(timeout) => whole_number(timeout, "hold.keep-alive.timeout")?,
        None => keep_alive_default_secs(),
    };
    let mode = match optional_str(ka, "mode", "hold.keep-alive.mode")? {
        Some("idle") => Some(KeepAliveMode::Idle),
        Some("interval") => Some(KeepAliveMode::Interval),
        Some(other) => {
            let problem = JsonProblem::UnknownKeepAliveMode(other.to_owned());
            return Err(field_error("hold.keep-alive.mode", problem));
        }
        None => None,
    };
    let previous = draft.keep_alive.take();
    let mode = mode
        .or(previous.as_ref().map(|k| k.mode))
        .unwrap_or(KeepAliveMode::Interval);
    let data = data.or(previous.map(|k| k.data)).unwrap_or_default();
    draft.keep_alive = Some(KeepAliveDraft {
        data,
        timeout_secs,
        mode,
    });
    Ok(())
}

fn apply_response(
    draft: &mut Draft,
    response: &Map<String, Value>,
) -> Result<(), InstructionError> {
    if let Some(code) = non_null(response.get("code")) {
        let code = whole_number(code, "response.code")?;
        if let Err(e) = StatusLine::new(code, None) {
            return Err(field_error("response.code", JsonProblem::Status(e)));
        }
        draft.code = code;
        draft.reason.clear();
    }
    if let Some(reason) = optional_str(response, "reason", "response.reason")? {
        if let Err(e) = StatusLine::new(draft.code, Some(reason)) {
            return Err(field_error("response.reason", JsonProblem::Status(e)));
        }
        if !reason.is_empty() {
            draft.reason = reason.to_owned();
        }
    }
    if let Some(headers) = non_null(response.get("headers")) {
        draft.headers = json_headers(headers)?;
    }
    if let Some(bin) = optional_str(response, "body-bin", "response.body-bin")? {
        draft.body = ResponseBody::Replaced(base64(bin, "response.body-bin")?);
    } else if let Some(body) = optional_str(response, "body", "response.body")? {
        draft.body = ResponseBody::Replaced(Bytes::copy_from_slice(body.as_bytes()));
    }
    Ok(())
}

/// `{"Name": "value", ...}` or `[["Name", "value"], ...]`; `Grip-*` entries are dropped
/// because no `Grip-*` header reaches the client (§2.3).
fn json_headers(headers: &Value) -> Result<HeaderMap, InstructionError> {
    let mut pairs: Vec<(&str, &str, String)> = Vec::new();
    match headers {
        Value::Object(map) => {
            for (name, value) in map {
                let path = format!("response.headers.{name}");
                let Value::String(value) = value else {
                    return Err(field_error(path, JsonProblem::WrongType("a string")));
                };
                pairs.push((name, value, path));
            }
        }
        Value::Array(list) => {
            for (i, pair) in list.iter().enumerate() {
                let path = format!("response.headers[{i}]");
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), Value::String(value)]) => {
                        pairs.push((name, value, path))
                    }
                    _ => {
                        let problem = JsonProblem::WrongType("a list of a name and a value");
                        return Err(field_error(path, problem));
                    }
                }
            }
        }
        _ => {
            let problem = JsonProblem::WrongType("an object or a list of pairs");
            return Err(field_error("response.headers", problem));
        }
    }
    let mut out = HeaderMap::new();
    for (name, value, path) in pairs {
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(field_error(
                path,
                JsonProblem::InvalidHeaderName(name.to_owned()),
            ));
        };
        let Ok(header_value) = HeaderValue::from_bytes(value.as_bytes()) else {
            return Err(field_error(path, JsonProblem::InvalidHeaderValue));
        };
        if !is_grip_header(&header_name) {
            out.append(header_name, header_value);
        }
    }
    Ok(out)
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, InstructionError> {
    value
        .as_object()
        .ok_or_else(|| field_error(path, JsonProblem::WrongType("an object")))
}

/// JSON `null` counts as absent, so libraries that serialise unset fields as null work.
fn non_null(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, InstructionError> {
    match non_null(map.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_error(path, JsonProblem::WrongType("a string"))),
    }
}

fn string_list(value: Option<&Value>, path: &str) -> Result<Vec<String>, InstructionError> {
    let Some(value) = non_null(value) else {
        return Ok(Vec::new());
    };
    let wrong = || field_error(path, JsonProblem::WrongType("a list of strings"));
    value
        .as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong))
        .collect()
}

/// A non-negative whole number; fractional numbers are truncated, as Qt's conversion does.
fn whole_number(value: &Value, path: &str) -> Result<u32, InstructionError> {
    let bad = || field_error(path, JsonProblem::NotNonNegativeInteger);
    let Value::Number(n) = value else {
        return Err(field_error(path, JsonProblem::WrongType("a number")));
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map_err(|_| bad());
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f < f64::from(u32::MAX) => {
            let whole = Duration::try_from_secs_f64(f).map_err(|_| bad())?.as_secs();
            u32::try_from(whole).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

fn base64(text: &str, path: &str) -> Result<Bytes, InstructionError> {
    BASE64
        .decode(text.trim())
        .map(Bytes::from)
        .map_err(|e| field_error(path, JsonProblem::Base64(e)))
}
