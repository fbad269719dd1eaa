//! Client tokens for direct mode (design "Security").
//!
//! A client token is a JWT (HS256, RS256 or ES256, keyed like `Grip-Sig`, see [`crate::sig`])
//! naming the channels its bearer may read. It arrives as `Authorization: Bearer`, a cookie
//! or `?token=` (EventSource cannot set headers); the proxy verifies it with
//! [`verify_client_token`], answers 401 with [`TokenError::reason`] when it fails, and ends a
//! stream when the token expires ([`ClientClaims::expires_in`]).
//!
//! ```json
//! {"sub": "customer-17", "channels": ["orders.2235407", "offers.*"], "exp": 1767225600,
//!  "aud": "fjord"}
//! ```
//!
//! Time checks use the caller's `now` and [`TokenValidation::leeway_secs`]; there is no clock
//! in this crate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::sig::{numeric_date, SigAlgorithm, SigError, SigningKey, VerifyingKey};

/// Why a client token was refused; [`TokenError::reason`] is the stable name a 401 body
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or claims of the wrong shape.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not verify with the configured key.
    #[error("token signature is invalid")]
    BadSignature,
    /// An algorithm other than HS256, RS256 or ES256 (`none` included).
    #[error("unsupported token algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A supported algorithm that is not the configured key's.
    #[error("token algorithm {found} does not match key algorithm {expected}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        expected: SigAlgorithm,
        /// The token's algorithm.
        found: SigAlgorithm,
    },
    /// No `exp` claim: tokens without an end are refused.
    #[error("token has no exp claim")]
    MissingExp,
    /// `exp` (plus leeway) is not after now.
    #[error("token has expired")]
    Expired,
    /// `nbf` (minus leeway) is after now.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `aud` does not name the configured audience.
    #[error("token audience does not match")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// The signing library failed while issuing.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl TokenError {
    /// Machine-readable reason, stable across releases.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            TokenError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            TokenError::MissingExp => "missing_exp",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::Signing(_) => "signing_failed",
        }
    }
}

impl From<SigError> for TokenError {
    fn from(error: SigError) -> Self {
        match error {
            SigError::BadSignature => TokenError::BadSignature,
            SigError::UnsupportedAlgorithm(alg) => TokenError::UnsupportedAlgorithm(alg),
            SigError::AlgorithmMismatch { expected, found } => {
                TokenError::AlgorithmMismatch { expected, found }
            }
            SigError::MissingExp => TokenError::MissingExp,
            SigError::Expired => TokenError::Expired,
            SigError::Signing(message) => TokenError::Signing(message),
            _ => TokenError::Malformed,
        }
    }
}

/// A channel name, or a pattern where each `*` matches any run of characters, dots
/// included (as in Mercure and Centrifugo): `orders.*` covers `orders.1` and `orders.eu.1`,
/// `*` covers every channel. `*` is always a wildcard; there is no escape for a literal `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelPattern(String);

impl ChannelPattern {
    /// A pattern from its text.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern is a plain channel name.
    pub fn is_exact(&self) -> bool {
        !self.0.contains('*')
    }

    /// Whether `channel` matches. The literal pieces between stars are found left to right,
    /// each at its earliest position, which is enough when `*` is the only wildcard: time is
    /// O(pattern × channel) at worst, never exponential.
    pub fn matches(&self, channel: &str) -> bool {
        let pattern = self.0.as_str();
        let mut pieces = pattern.split('*');
        let Some(first) = pieces.next() else {
            return false;
        };
        let Some(last) = pieces.next_back() else {
            return pattern == channel;
        };
        let Some(mut rest) = channel.strip_prefix(first) else {
            return false;
        };
        for piece in pieces {
            let Some(after) = rest.find(piece).and_then(|at| rest.get(at + piece.len()..)) else {
                return false;
            };
            rest = after;
        }
        rest.ends_with(last)
    }
}

impl fmt::Display for ChannelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ChannelPattern {
    type Err = std::convert::Infallible;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(pattern))
    }
}

impl From<&str> for ChannelPattern {
    fn from(pattern: &str) -> Self {
        Self::new(pattern)
    }
}

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "fjord"`.
    One(String),
    /// `"aud": ["fjord", "other"]`.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is one of the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// Claims of a client token. Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    /// Who the client is (logged, and usable by filters such as `skip-self`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Channels the bearer may read; none when absent.
    #[serde(default)]
    pub channels: Vec<ChannelPattern>,
    /// Expiry, Unix seconds; required.
    #[serde(deserialize_with = "de_numeric_date")]
    pub exp: u64,
    /// Not valid before, Unix seconds.
    #[serde(
        default,
        deserialize_with = "de_optional_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<u64>,
    /// Intended audience(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Issued at, Unix seconds.
    #[serde(
        default,
        deserialize_with = "de_optional_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<u64>,
}

impl ClientClaims {
    /// Claims granting `channels` until `exp`, with no other claim set.
    pub fn new(channels: Vec<ChannelPattern>, exp: u64) -> Self {
        Self {
            sub: None,
            channels,
            exp,
            nbf: None,
            aud: None,
            iss: None,
            iat: None,
        }
    }

    /// Whether the token grants reading `channel`.
    pub fn allows(&self, channel: &str) -> bool {
        self.channels.iter().any(|pattern| pattern.matches(channel))
    }

    /// Time left until `exp`, zero once passed: a stream opened with this token is ended
    /// then, so a revoked client cannot keep listening on an old token.
    pub fn expires_in(&self, now_unix: u64) -> Duration {
        Duration::from_secs(self.exp.saturating_sub(now_unix))
    }
}

fn de_numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    numeric_date(&value).ok_or_else(|| D::Error::custom("expected a NumericDate"))
}

fn de_optional_numeric_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => numeric_date(&value)
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected a NumericDate")),
    }
}

/// What a route requires of a client token beyond a valid signature and `exp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenValidation {
    /// Required audience. When `None`, a token that carries an `aud` claim is refused: RFC
    /// 7519 §4.1.3 says a recipient not named in `aud` must reject it, and accepting it
    /// would let a token minted for another service with the same key in.
    pub audience: Option<String>,
    /// Required issuer; any or none when `None`.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// Signs `claims` with `key` (the `fjord token` command and tests).
pub fn issue_client_token(claims: &ClientClaims, key: &SigningKey) -> Result<String, TokenError> {
    key.sign(claims).map_err(TokenError::from)
}

/// Verifies a client token: shape, algorithm (must be the key's), signature, then `exp`,
/// `nbf`, `aud` and `iss` against `validation` at `now_unix`, in that order.
pub fn verify_client_token(
    token: &str,
    key: &VerifyingKey,
    validation: &TokenValidation,
    now_unix: u64,
) -> Result<ClientClaims, TokenError> {
    let claims = key.verify_signature(token)?;
    if claims.get("exp").is_none_or(Value::is_null) {
        return Err(TokenError::MissingExp);
    }
    let claims: ClientClaims =
        serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::Malformed)?;

    let leeway = validation.leeway_secs;
    if now_unix >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_unix.saturating_add(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    match (&validation.audience, &claims.aud) {
        (Some(required), Some(aud)) if aud.contains(required) => {}
        (None, None) => {}
        _ => return Err(TokenError::WrongAudience),
    }
    if let Some(required) = &validation.issuer {
        if claims.iss.as_deref() != Some(required.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
