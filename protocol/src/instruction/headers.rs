//! The `Grip-*` headers of §2.2, read into a [`Draft`] before any JSON body is applied.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{
    validate_link, Channel, Draft, Filter, HoldMode, InstructionError, KeepAliveDraft, NextLink,
    ResponseBody, StatusLine, StatusLineError, DEFAULT_NEXT_LINK_TIMEOUT, MAX_FILTERS_PER_CHANNEL,
};
use crate::header::{self, names, HeaderSyntaxError};
use crate::keepalive::{
    decode_keepalive_data, KeepAliveFormat, KeepAliveMode, DEFAULT_KEEP_ALIVE_TIMEOUT,
};

const GRIP_HOLD: &str = "Grip-Hold";
const GRIP_CHANNEL: &str = "Grip-Channel";
const GRIP_TIMEOUT: &str = "Grip-Timeout";
const GRIP_KEEP_ALIVE: &str = "Grip-Keep-Alive";
const GRIP_SET_META: &str = "Grip-Set-Meta";
const GRIP_LINK: &str = "Grip-Link";
const GRIP_STATUS: &str = "Grip-Status";
const GRIP_EXPOSE_HEADERS: &str = "Grip-Expose-Headers";

impl Draft {
    pub(super) fn from_headers(
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Draft, InstructionError> {
        let expose_headers = parse_expose_headers(headers)?;
        let mut draft = Draft {
            hold: parse_hold(headers)?,
            timeout_secs: None,
            keep_alive: parse_keep_alive(headers)?,
            channels: Vec::new(),
            channel_index: HashMap::new(),
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
            StatusLineError::CodeOutOfRange(_) => {
                InstructionError::InvalidStatusCode(value.to_owned())
            }
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
pub(super) fn new_channel(
    name: String,
    prev_id: Option<String>,
    filter_names: Vec<String>,
) -> Result<Channel, InstructionError> {
    if filter_names.len() > MAX_FILTERS_PER_CHANNEL {
        return Err(InstructionError::TooManyFilters {
            channel: name,
            count: filter_names.len(),
        });
    }
    let mut filters = Vec::new();
    let mut unknown_filters = Vec::new();
    for filter_name in filter_names {
        match Filter::from_name(&filter_name) {
            Some(filter) => filters.push(filter),
            None => unknown_filters.push(filter_name),
        }
    }
    Ok(Channel {
        name,
        prev_id,
        filters,
        unknown_filters,
    })
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
    Ok(Some(KeepAliveDraft {
        data,
        timeout_secs,
        mode,
    }))
}

pub(super) fn keep_alive_default_secs() -> u32 {
    u32::try_from(DEFAULT_KEEP_ALIVE_TIMEOUT.as_secs()).unwrap_or(u32::MAX)
}

/// `Grip-Set-Meta: k1="v1", k2=v2`: each element's leading `name=value` pair; a bare name
/// sets an empty value.
fn parse_meta(headers: &HeaderMap) -> Result<BTreeMap<String, String>, InstructionError> {
    let values = headers
        .get_all(names::GRIP_SET_META)
        .iter()
        .map(HeaderValue::as_bytes);
    let elements = header::parse_param_list(values).map_err(|e| syntax_error(GRIP_SET_META, e))?;
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
