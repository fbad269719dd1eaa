//! Client auth of direct routes (design "Security"): a JWT from the `Authorization`
//! header, a cookie, or `?token=` (EventSource cannot set headers), checked for its
//! signature, `exp`, `nbf`, `aud` and `iss`; its `channels` claim decides what the client
//! may read.

use fjord_protocol::sig::VerifyingKey;
use fjord_protocol::token::{verify_client_token, ClientClaims, TokenError, TokenValidation};
use http::HeaderMap;

/// How a proxy verifies client tokens (`[auth]`).
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub key: VerifyingKey,
    pub validation: TokenValidation,
    /// Name of the cookie a token may come in.
    pub cookie: String,
}

/// Why a request was refused: a 401 or a 403, with the reason in the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token anywhere.
    Missing,
    /// The token did not verify; the protocol crate says why.
    Invalid(String),
    /// The route requires tokens but the proxy has no `[auth] jwt_key`.
    NotConfigured,
    /// A valid token that does not grant this channel.
    Forbidden { channel: String },
}

impl AuthFailure {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid(_) => "invalid",
            AuthFailure::NotConfigured => "not_configured",
            AuthFailure::Forbidden { .. } => "forbidden",
        }
    }

    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthFailure::Forbidden { .. } => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "no token: send it as 'Authorization: Bearer', a cookie, or ?token=".to_owned()
            }
            AuthFailure::Invalid(reason) => reason.clone(),
            AuthFailure::NotConfigured => "this proxy has no key to verify tokens with".to_owned(),
            AuthFailure::Forbidden { channel } => {
                format!("the token does not grant channel {channel}")
            }
        }
    }
}

/// Where a token was found, in the order they are looked at.
pub fn find_token<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
    cookie_name: &str,
) -> Option<&'a str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    bearer
        .or(query_token.filter(|t| !t.is_empty()))
        .or_else(|| {
            headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, value)| *name == cookie_name && !value.is_empty())
                .map(|(_, value)| value)
        })
}

/// Verifies the request's token.
pub fn authenticate(
    auth: Option<&ClientAuth>,
    headers: &HeaderMap,
    query_token: Option<&str>,
    now_unix: u64,
) -> Result<ClientClaims, AuthFailure> {
    let auth = auth.ok_or(AuthFailure::NotConfigured)?;
    let token = find_token(headers, query_token, &auth.cookie).ok_or(AuthFailure::Missing)?;
    verify_client_token(token, &auth.key, &auth.validation, now_unix)
        .map_err(|e: TokenError| AuthFailure::Invalid(e.to_string()))
}

/// Checks every requested channel against the token's claim.
pub fn authorize(claims: &ClientClaims, channels: &[String]) -> Result<(), AuthFailure> {
    match channels.iter().find(|c| !claims.allows(c)) {
        Some(channel) => Err(AuthFailure::Forbidden {
            channel: channel.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_beats_query_beats_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; fjord_token=fromcookie".parse().unwrap());
        assert_eq!(
            find_token(&headers, None, "fjord_token"),
            Some("fromcookie")
        );
        assert_eq!(
            find_token(&headers, Some("fromquery"), "fjord_token"),
            Some("fromquery")
        );
        headers.insert("authorization", "Bearer fromheader".parse().unwrap());
        assert_eq!(
            find_token(&headers, Some("fromquery"), "fjord_token"),
            Some("fromheader")
        );
    }

    #[test]
    fn other_schemes_and_empty_values_are_no_token() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic abc".parse().unwrap());
        headers.insert("cookie", "fjord_token=".parse().unwrap());
        assert_eq!(find_token(&headers, Some(""), "fjord_token"), None);
    }
}
