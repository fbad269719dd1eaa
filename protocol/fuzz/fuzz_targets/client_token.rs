//! Arbitrary bytes as a client token (`?token=`, cookie or bearer): verification with a fixed
//! HS256 key must never panic, whatever the header, claims or signature hold.
#![no_main]

use std::sync::OnceLock;

use fjord_protocol::sig::VerifyingKey;
use fjord_protocol::token::{verify_client_token, TokenValidation};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

fn key() -> Option<&'static VerifyingKey> {
    static KEY: OnceLock<Option<VerifyingKey>> = OnceLock::new();
    KEY.get_or_init(|| VerifyingKey::from_secret(b"fjord-fuzz-secret").ok())
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let Some(key) = key() else {
        return;
    };
    let validation = TokenValidation {
        audience: Some("fjord".to_owned()),
        issuer: None,
        leeway_secs: 30,
    };
    if let Ok(claims) = verify_client_token(&token, key, &validation, NOW) {
        let _ = claims.allows("orders.1");
        let _ = claims.expires_in(NOW);
    }
});
