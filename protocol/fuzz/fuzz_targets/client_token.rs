//! Client tokens under fuzzing, with a fixed HS256 key. The first byte picks the mode:
//!
//! - even: the rest is a token as a client would send it (`?token=`, cookie or bearer);
//!   verification must never panic, whatever the header, claims or signature hold.
//! - odd: the rest builds arbitrary claims, which are issued and verified again; since random
//!   bytes almost never carry a valid signature, this is what drives the claim checks behind
//!   it, and the result must be exactly the claims issued or the one error they call for.
#![no_main]

use std::sync::OnceLock;

use fjord_protocol::sig::{SigningKey, MAX_TOKEN_LEN};
use fjord_protocol::token::{
    issue_client_token, verify_client_token, Audience, ChannelPattern, ClientClaims, TokenError,
    TokenValidation,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

fn key() -> Option<&'static SigningKey> {
    static KEY: OnceLock<Option<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_secret(b"fjord-fuzz-secret").ok())
        .as_ref()
}

fn verify_raw(key: &SigningKey, data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let validation = TokenValidation {
        audience: Some("fjord".to_owned()),
        issuer: None,
        leeway_secs: 30,
    };
    if let Ok(claims) = verify_client_token(&token, key.verifying_key(), &validation, NOW) {
        let _ = claims.allows("orders.1");
        let _ = claims.expires_in(NOW);
    }
}

fn arbitrary_claims(u: &mut Unstructured<'_>) -> Result<ClientClaims> {
    let channels: Vec<String> = u.arbitrary()?;
    let aud = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(Audience::One(u.arbitrary()?)),
        _ => Some(Audience::Many(u.arbitrary()?)),
    };
    Ok(ClientClaims {
        sub: u.arbitrary()?,
        channels: channels.into_iter().map(ChannelPattern::new).collect(),
        exp: u.arbitrary()?,
        nbf: u.arbitrary()?,
        aud,
        iss: u.arbitrary()?,
        iat: u.arbitrary()?,
    })
}

fn issue_and_verify(key: &SigningKey, data: &[u8]) {
    let Ok(claims) = arbitrary_claims(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(token) = issue_client_token(&claims, key) else {
        return;
    };
    let now = claims.nbf.unwrap_or(0);
    let audience = match &claims.aud {
        None => None,
        Some(Audience::One(one)) => Some(one.clone()),
        Some(Audience::Many(many)) => many.first().cloned(),
    };
    let validation = TokenValidation {
        audience,
        issuer: claims.iss.clone(),
        leeway_secs: 0,
    };
    let expected = if token.len() > MAX_TOKEN_LEN {
        Err(TokenError::Malformed)
    } else if claims.exp <= now {
        Err(TokenError::Expired)
    } else if matches!(&claims.aud, Some(Audience::Many(many)) if many.is_empty()) {
        Err(TokenError::WrongAudience)
    } else {
        Ok(claims.clone())
    };
    let verified = verify_client_token(&token, key.verifying_key(), &validation, now);
    assert_eq!(verified, expected, "token {token}");
    for pattern in &claims.channels {
        assert!(
            pattern.matches(pattern.as_str()),
            "{pattern:?} matches itself"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(key) = key() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        verify_raw(key, rest);
    } else {
        issue_and_verify(key, rest);
    }
});
