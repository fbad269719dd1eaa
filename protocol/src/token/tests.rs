use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;

const EC_PKCS8: &[u8] = include_bytes!("../../tests/keys/ec_p256_pkcs8.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ec_p256_public.pem");
const RSA_PKCS8: &[u8] = include_bytes!("../../tests/keys/rsa_pkcs8.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_public.pem");

const NOW: u64 = 1_700_000_000;

fn secret_key() -> SigningKey {
    SigningKey::from_secret(b"fjord-test-secret").unwrap()
}

fn claims() -> ClientClaims {
    ClientClaims {
        sub: Some("customer-17".to_owned()),
        aud: Some(Audience::One("fjord".to_owned())),
        iss: Some("supereats".to_owned()),
        iat: Some(NOW),
        ..ClientClaims::new(vec!["orders.2235407".into(), "offers.*".into()], NOW + 600)
    }
}

fn validation() -> TokenValidation {
    TokenValidation {
        audience: Some("fjord".to_owned()),
        issuer: Some("supereats".to_owned()),
        leeway_secs: 0,
    }
}

fn verify(token: &str, now: u64) -> Result<ClientClaims, TokenError> {
    verify_client_token(token, secret_key().verifying_key(), &validation(), now)
}

fn token_with(claims: serde_json::Value) -> String {
    secret_key().sign(&claims).unwrap()
}

#[test]
fn issued_token_verifies_to_the_same_claims() {
    let token = issue_client_token(&claims(), &secret_key()).unwrap();
    assert_eq!(verify(&token, NOW), Ok(claims()));
}

#[test]
fn es256_and_rs256_tokens_verify_with_public_keys() {
    for (private, public) in [(EC_PKCS8, EC_PUBLIC), (RSA_PKCS8, RSA_PUBLIC)] {
        let signing = SigningKey::from_pem(private).unwrap();
        let token = issue_client_token(&claims(), &signing).unwrap();
        let verifying = VerifyingKey::from_pem(public).unwrap();
        assert_eq!(
            verify_client_token(&token, &verifying, &validation(), NOW),
            Ok(claims())
        );
    }
}

#[test]
fn issued_token_omits_unset_claims() {
    let token = issue_client_token(&ClientClaims::new(vec!["a".into()], 5), &secret_key()).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(json, serde_json::json!({"channels": ["a"], "exp": 5}));
}

#[test]
fn expired_token_is_rejected_with_reason_expired() {
    let token = issue_client_token(&claims(), &secret_key()).unwrap();
    let err = verify(&token, NOW + 600).unwrap_err();
    assert_eq!(err, TokenError::Expired);
    assert_eq!(err.reason(), "expired");
    assert!(verify(&token, NOW + 599).is_ok());
}

#[test]
fn leeway_extends_exp_and_advances_nbf() {
    let mut lenient = validation();
    lenient.leeway_secs = 30;
    let key = secret_key();
    let token = issue_client_token(
        &ClientClaims {
            nbf: Some(NOW + 20),
            ..claims()
        },
        &key,
    )
    .unwrap();
    assert!(verify_client_token(&token, key.verifying_key(), &lenient, NOW).is_ok());
    assert!(verify_client_token(&token, key.verifying_key(), &lenient, NOW + 629).is_ok());
    assert_eq!(
        verify_client_token(&token, key.verifying_key(), &lenient, NOW + 630),
        Err(TokenError::Expired)
    );
}

#[test]
fn future_nbf_is_rejected_with_reason_not_yet_valid() {
    let token = issue_client_token(
        &ClientClaims {
            nbf: Some(NOW + 1),
            ..claims()
        },
        &secret_key(),
    )
    .unwrap();
    let err = verify(&token, NOW).unwrap_err();
    assert_eq!(err.reason(), "not_yet_valid");
    assert!(verify(&token, NOW + 1).is_ok());
}

#[test]
fn missing_exp_is_rejected_with_reason_missing_exp() {
    for token in [
        token_with(serde_json::json!({"channels": ["a"]})),
        token_with(serde_json::json!({"channels": ["a"], "exp": null})),
    ] {
        let err = verify(&token, NOW).unwrap_err();
        assert_eq!(err, TokenError::MissingExp);
        assert_eq!(err.reason(), "missing_exp");
    }
}

#[test]
fn wrong_audience_is_rejected() {
    let token = issue_client_token(
        &ClientClaims {
            aud: Some(Audience::Many(vec!["billing".to_owned()])),
            ..claims()
        },
        &secret_key(),
    )
    .unwrap();
    assert_eq!(verify(&token, NOW).unwrap_err().reason(), "wrong_audience");
}

#[test]
fn audience_list_containing_ours_is_accepted() {
    let token = token_with(serde_json::json!({
        "channels": ["a"], "exp": NOW + 60, "iss": "supereats", "aud": ["billing", "fjord"]
    }));
    assert!(verify(&token, NOW).is_ok());
}

#[test]
fn missing_audience_is_rejected_when_one_is_required() {
    let token = issue_client_token(
        &ClientClaims {
            aud: None,
            ..claims()
        },
        &secret_key(),
    )
    .unwrap();
    assert_eq!(verify(&token, NOW), Err(TokenError::WrongAudience));
}

#[test]
fn token_with_audience_is_rejected_when_none_is_configured() {
    let token = issue_client_token(&claims(), &secret_key()).unwrap();
    let open = TokenValidation::default();
    assert_eq!(
        verify_client_token(&token, secret_key().verifying_key(), &open, NOW),
        Err(TokenError::WrongAudience)
    );
    let no_aud = issue_client_token(&ClientClaims::new(vec![], NOW + 1), &secret_key()).unwrap();
    assert!(verify_client_token(&no_aud, secret_key().verifying_key(), &open, NOW).is_ok());
}

#[test]
fn wrong_or_missing_issuer_is_rejected() {
    for iss in [Some("mallory".to_owned()), None] {
        let token = issue_client_token(&ClientClaims { iss, ..claims() }, &secret_key()).unwrap();
        let err = verify(&token, NOW).unwrap_err();
        assert_eq!(err.reason(), "wrong_issuer");
    }
}

#[test]
fn token_signed_with_another_key_has_reason_bad_signature() {
    let other = SigningKey::from_secret(b"other").unwrap();
    let token = issue_client_token(&claims(), &other).unwrap();
    assert_eq!(verify(&token, NOW).unwrap_err().reason(), "bad_signature");
}

#[test]
fn token_of_another_algorithm_has_reason_algorithm_mismatch() {
    let token = issue_client_token(&claims(), &SigningKey::from_pem(EC_PKCS8).unwrap()).unwrap();
    let err = verify(&token, NOW).unwrap_err();
    assert_eq!(
        err,
        TokenError::AlgorithmMismatch {
            expected: SigAlgorithm::Hs256,
            found: SigAlgorithm::Es256
        }
    );
    assert_eq!(err.reason(), "algorithm_mismatch");
}

#[test]
fn alg_none_token_has_reason_unsupported_algorithm() {
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"channels":["*"],"exp":9999999999}"#)
    );
    assert_eq!(
        verify(&token, NOW).unwrap_err().reason(),
        "unsupported_algorithm"
    );
}

#[test]
fn garbage_token_has_reason_malformed() {
    for token in ["", "Bearer x", "a.b.c", "e30.e30.e30"] {
        assert_eq!(verify(token, NOW).unwrap_err().reason(), "malformed");
    }
}

#[test]
fn claims_of_the_wrong_shape_are_malformed() {
    for claims in [
        serde_json::json!({"exp": NOW + 60, "channels": "orders.1"}),
        serde_json::json!({"exp": "tomorrow", "channels": []}),
        serde_json::json!({"exp": NOW + 60, "aud": 5}),
        serde_json::json!({"exp": NOW + 60, "nbf": "now"}),
    ] {
        assert_eq!(verify(&token_with(claims), NOW), Err(TokenError::Malformed));
    }
}

#[test]
fn every_reason_is_distinct() {
    let errors = [
        TokenError::Malformed,
        TokenError::BadSignature,
        TokenError::UnsupportedAlgorithm("none".to_owned()),
        TokenError::AlgorithmMismatch {
            expected: SigAlgorithm::Hs256,
            found: SigAlgorithm::Rs256,
        },
        TokenError::MissingExp,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::WrongAudience,
        TokenError::WrongIssuer,
        TokenError::Signing(String::new()),
    ];
    let mut reasons: Vec<_> = errors.iter().map(TokenError::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), errors.len());
}

#[test]
fn sig_errors_map_to_token_errors() {
    assert_eq!(
        TokenError::from(SigError::BadSignature),
        TokenError::BadSignature
    );
    assert_eq!(TokenError::from(SigError::Expired), TokenError::Expired);
    assert_eq!(TokenError::from(SigError::EmptyKey), TokenError::Malformed);
}

#[test]
fn exact_pattern_matches_only_its_channel() {
    let pattern = ChannelPattern::new("orders.1");
    assert!(pattern.is_exact());
    assert!(pattern.matches("orders.1"));
    assert!(!pattern.matches("orders.10"));
    assert!(!pattern.matches("orders"));
}

#[test]
fn star_crosses_dots() {
    let pattern = ChannelPattern::new("orders.*");
    assert!(!pattern.is_exact());
    assert!(pattern.matches("orders.1"));
    assert!(pattern.matches("orders.eu.1"));
    assert!(pattern.matches("orders."));
    assert!(!pattern.matches("orders"));
    assert!(!pattern.matches("drivers.1"));
}

#[test]
fn lone_star_matches_everything() {
    let pattern: ChannelPattern = "*".parse().unwrap();
    assert!(pattern.matches(""));
    assert!(pattern.matches("anything.at.all"));
}

#[test]
fn inner_stars_match_in_order_without_overlap() {
    let pattern = ChannelPattern::new("t*.*.x");
    assert!(pattern.matches("tenant.orders.x"));
    assert!(pattern.matches("t..x"));
    assert!(!pattern.matches("t.x"));
    assert!(!ChannelPattern::new("ab*ba").matches("aba"));
    assert!(ChannelPattern::new("a*a*a").matches("aaa"));
}

#[test]
fn pathological_pattern_is_fast() {
    let pattern = ChannelPattern::new(format!("{}b", "a*".repeat(50)));
    let channel = "a".repeat(10_000);
    assert!(!pattern.matches(&channel));
}

#[test]
fn pattern_serializes_as_a_string() {
    let pattern = ChannelPattern::new("orders.*");
    assert_eq!(serde_json::to_string(&pattern).unwrap(), r#""orders.*""#);
    assert_eq!(pattern.to_string(), "orders.*");
    assert_eq!(pattern.as_str(), "orders.*");
}

#[test]
fn allows_checks_every_pattern() {
    let claims = claims();
    assert!(claims.allows("orders.2235407"));
    assert!(claims.allows("offers.berlin"));
    assert!(!claims.allows("orders.1"));
    assert!(!ClientClaims::new(vec![], NOW).allows("orders.1"));
}

#[test]
fn audience_contains_one_or_many() {
    assert!(Audience::One("a".to_owned()).contains("a"));
    assert!(!Audience::One("a".to_owned()).contains("b"));
    assert!(Audience::Many(vec!["a".to_owned(), "b".to_owned()]).contains("b"));
    assert!(!Audience::Many(vec![]).contains("a"));
}

#[test]
fn expires_in_counts_down_to_zero() {
    let claims = ClientClaims::new(vec![], NOW + 90);
    assert_eq!(claims.expires_in(NOW), Duration::from_secs(90));
    assert_eq!(claims.expires_in(NOW + 90), Duration::ZERO);
    assert_eq!(claims.expires_in(NOW + 1000), Duration::ZERO);
}

/// Reference glob matcher by dynamic programming, to check the greedy one against.
fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut seen = false;
            for j in 0..=text.len() {
                seen |= row[j];
                next[j] = seen;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = row[j - 1] && text[j - 1] == p;
            }
        }
        row = next;
    }
    row[text.len()]
}

proptest! {
    #[test]
    fn matches_agrees_with_reference_glob(
        pattern in "[ab.*]{0,8}",
        channel in "[ab.]{0,12}",
    ) {
        let expected = glob_reference(pattern.as_bytes(), channel.as_bytes());
        prop_assert_eq!(ChannelPattern::new(pattern).matches(&channel), expected);
    }

    #[test]
    fn issued_claims_round_trip(
        channels in proptest::collection::vec("[a-z.*]{1,10}", 0..5),
        exp in (NOW + 1)..u64::MAX / 2,
        sub in proptest::option::of("[a-z0-9-]{1,12}"),
    ) {
        let claims = ClientClaims {
            sub,
            iss: Some("supereats".to_owned()),
            aud: Some(Audience::One("fjord".to_owned())),
            ..ClientClaims::new(channels.into_iter().map(ChannelPattern::new).collect(), exp)
        };
        let token = issue_client_token(&claims, &secret_key()).unwrap();
        prop_assert_eq!(verify(&token, NOW), Ok(claims));
    }

    #[test]
    fn verify_never_panics_on_arbitrary_tokens(token in ".{0,200}") {
        let _ = verify(&token, NOW);
    }
}
