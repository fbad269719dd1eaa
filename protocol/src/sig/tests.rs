use super::*;

const EC_PKCS8: &[u8] = include_bytes!("../../tests/keys/ec_p256_pkcs8.pem");
const EC_SEC1: &[u8] = include_bytes!("../../tests/keys/ec_p256_sec1.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ec_p256_public.pem");
const RSA_PKCS8: &[u8] = include_bytes!("../../tests/keys/rsa_pkcs8.pem");
const RSA_PKCS1: &[u8] = include_bytes!("../../tests/keys/rsa_pkcs1.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_public.pem");
const RSA_PKCS1_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_pkcs1_public.pem");
const EC_P384: &[u8] = include_bytes!("../../tests/keys/ec_p384_pkcs8.pem");
const ED25519: &[u8] = include_bytes!("../../tests/keys/ed25519_pkcs8.pem");

const NOW: u64 = 1_700_000_000;

fn hmac(secret: &str) -> SigningKey {
    SigningKey::from_secret(secret.as_bytes()).unwrap()
}

/// A compact JWS with the given header and claims JSON and a junk signature.
fn unsigned_token(header: &str, claims: &str) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// A correctly HS256-signed (key `k`) compact JWS over arbitrary header and claims text.
fn signed_raw(header: &str, claims: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(b"k"),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

#[test]
fn plain_key_spec_is_its_utf8_bytes() {
    assert_eq!(
        KeySpec::parse("changeme"),
        Ok(KeySpec::Secret(b"changeme".to_vec()))
    );
    assert_eq!(
        KeySpec::parse("clé"),
        Ok(KeySpec::Secret("clé".as_bytes().to_vec()))
    );
}

#[test]
fn base64_key_spec_is_decoded() {
    assert_eq!(
        KeySpec::parse("base64:aGVsbG8="),
        Ok(KeySpec::Secret(b"hello".to_vec()))
    );
    assert_eq!(
        KeySpec::parse("base64:aGVsbG8"),
        Ok(KeySpec::Secret(b"hello".to_vec()))
    );
    assert_eq!(
        KeySpec::parse("base64:-_8"),
        Ok(KeySpec::Secret(vec![0xfb, 0xff]))
    );
    assert_eq!(
        KeySpec::parse("base64:+/8="),
        Ok(KeySpec::Secret(vec![0xfb, 0xff]))
    );
}

#[test]
fn invalid_base64_key_spec_is_rejected() {
    assert_eq!(
        KeySpec::parse("base64:not base64!"),
        Err(SigError::InvalidBase64Key)
    );
}

#[test]
fn file_key_spec_keeps_the_path() {
    assert_eq!(
        KeySpec::parse("file:keys/grip.pem"),
        Ok(KeySpec::File(PathBuf::from("keys/grip.pem")))
    );
}

#[test]
fn empty_key_specs_are_rejected() {
    for spec in ["", "base64:", "file:"] {
        assert_eq!(KeySpec::parse(spec), Err(SigError::EmptyKey), "{spec:?}");
    }
}

#[test]
fn key_spec_debug_redacts_secrets() {
    let shown = format!("{:?}", KeySpec::parse("hunter2").unwrap());
    assert!(!shown.contains("hunter2"));
    assert!(!format!("{:?}", hmac("hunter2")).contains("hunter2"));
}

#[test]
fn file_contents_without_pem_are_a_hex_secret() {
    let key = SigningKey::from_file_contents(b"  68656c6c6f0A\n").unwrap();
    assert_eq!(key.algorithm(), SigAlgorithm::Hs256);
    let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
    let verifying = VerifyingKey::from_secret(b"hello\n").unwrap();
    assert!(verify_grip_sig(&token, &verifying, NOW).is_ok());
    let from_file = VerifyingKey::from_file_contents(b"68656c6c6f0a").unwrap();
    assert!(verify_grip_sig(&token, &from_file, NOW).is_ok());
}

#[test]
fn file_contents_that_are_not_hex_are_rejected() {
    assert_eq!(
        SigningKey::from_file_contents(b"xyz0").unwrap_err(),
        SigError::InvalidHexKey
    );
    assert_eq!(
        SigningKey::from_file_contents(b"abc").unwrap_err(),
        SigError::InvalidHexKey
    );
    assert_eq!(
        SigningKey::from_file_contents(b" \n").unwrap_err(),
        SigError::EmptyKey
    );
}

#[test]
fn empty_secret_is_rejected() {
    assert_eq!(
        SigningKey::from_secret(b"").unwrap_err(),
        SigError::EmptyKey
    );
    assert_eq!(
        VerifyingKey::from_secret(b"").unwrap_err(),
        SigError::EmptyKey
    );
}

#[test]
fn pkcs8_ec_key_signs_es256() {
    let key = SigningKey::from_file_contents(EC_PKCS8).unwrap();
    assert_eq!(key.algorithm(), SigAlgorithm::Es256);
    let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
    assert_eq!(header_of(&token)["alg"], "ES256");
    let public = VerifyingKey::from_pem(EC_PUBLIC).unwrap();
    assert!(verify_grip_sig(&token, &public, NOW).is_ok());
}

#[test]
fn sec1_ec_key_signs_es256_verifiable_with_the_public_key() {
    let key = SigningKey::from_pem(EC_SEC1).unwrap();
    assert_eq!(key.algorithm(), SigAlgorithm::Es256);
    let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
    let public = VerifyingKey::from_file_contents(EC_PUBLIC).unwrap();
    assert!(verify_grip_sig(&token, &public, NOW).is_ok());
}

#[test]
fn pkcs8_rsa_key_signs_rs256() {
    let key = SigningKey::from_file_contents(RSA_PKCS8).unwrap();
    assert_eq!(key.algorithm(), SigAlgorithm::Rs256);
    let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
    assert_eq!(header_of(&token)["alg"], "RS256");
    let public = VerifyingKey::from_pem(RSA_PUBLIC).unwrap();
    assert!(verify_grip_sig(&token, &public, NOW).is_ok());
}

#[test]
fn pkcs1_rsa_key_signs_rs256_verifiable_with_pkcs1_public_key() {
    let key = SigningKey::from_pem(RSA_PKCS1).unwrap();
    let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
    let public = VerifyingKey::from_pem(RSA_PKCS1_PUBLIC).unwrap();
    assert_eq!(public.algorithm(), SigAlgorithm::Rs256);
    assert!(verify_grip_sig(&token, &public, NOW).is_ok());
}

#[test]
fn verifying_key_from_private_pem_verifies_its_own_tokens() {
    for pem in [EC_PKCS8, EC_SEC1, RSA_PKCS8, RSA_PKCS1] {
        let token = sign_grip_sig("x", &SigningKey::from_pem(pem).unwrap(), NOW).unwrap();
        let verifying = VerifyingKey::from_pem(pem).unwrap();
        assert!(verify_grip_sig(&token, &verifying, NOW).is_ok());
    }
}

#[test]
fn signing_key_exposes_its_verifying_key() {
    for key in [
        hmac("s"),
        SigningKey::from_pem(EC_PKCS8).unwrap(),
        SigningKey::from_pem(RSA_PKCS8).unwrap(),
    ] {
        let token = sign_grip_sig("x", &key, NOW).unwrap();
        assert_eq!(key.verifying_key().algorithm(), key.algorithm());
        assert!(verify_grip_sig(&token, key.verifying_key(), NOW).is_ok());
    }
}

#[test]
fn pem_with_crlf_and_surrounding_whitespace_is_accepted() {
    let text = std::str::from_utf8(EC_PKCS8).unwrap().replace('\n', "\r\n");
    let padded = format!("\n  {text}\n\n");
    assert!(SigningKey::from_file_contents(padded.as_bytes()).is_ok());
}

#[test]
fn public_pem_cannot_sign() {
    assert!(matches!(
        SigningKey::from_pem(EC_PUBLIC),
        Err(SigError::UnsupportedKey(_))
    ));
}

#[test]
fn p384_and_ed25519_keys_are_unsupported() {
    for pem in [EC_P384, ED25519] {
        assert!(matches!(
            SigningKey::from_pem(pem),
            Err(SigError::UnsupportedKey(_))
        ));
        assert!(matches!(
            VerifyingKey::from_pem(pem),
            Err(SigError::UnsupportedKey(_))
        ));
    }
}

#[test]
fn encrypted_and_unknown_pem_blocks_are_unsupported() {
    for pem in [
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        assert!(matches!(
            SigningKey::from_pem(pem.as_bytes()),
            Err(SigError::UnsupportedKey(_))
        ));
    }
}

#[test]
fn corrupt_pem_is_rejected() {
    let truncated = &RSA_PKCS1[..RSA_PKCS1.len() / 2];
    assert!(SigningKey::from_pem(truncated).is_err());
    assert!(matches!(
        SigningKey::from_pem(b"-----BEGIN"),
        Err(SigError::InvalidPem(_))
    ));
    assert!(matches!(
        SigningKey::from_pem(b"-----BEGIN \xff-----"),
        Err(SigError::InvalidPem(_))
    ));
}

#[test]
fn grip_sig_claims_are_exactly_iss_and_exp() {
    let token = sign_grip_sig("pushpin", &hmac("changeme"), NOW).unwrap();
    assert_eq!(
        claims_of(&token),
        serde_json::json!({"iss": "pushpin", "exp": NOW + 3600})
    );
    assert_eq!(header_of(&token)["alg"], "HS256");
}

#[test]
fn grip_sig_verifies_with_the_same_secret() {
    let token = sign_grip_sig("pushpin", &hmac("changeme"), NOW).unwrap();
    let key = VerifyingKey::from_secret(b"changeme").unwrap();
    assert_eq!(
        verify_grip_sig(&token, &key, NOW + 10),
        Ok(GripSigClaims {
            iss: Some("pushpin".to_owned()),
            exp: NOW + 3600
        })
    );
}

#[test]
fn grip_sig_with_another_secret_has_bad_signature() {
    let token = sign_grip_sig("pushpin", &hmac("changeme"), NOW).unwrap();
    let key = VerifyingKey::from_secret(b"other").unwrap();
    assert_eq!(
        verify_grip_sig(&token, &key, NOW),
        Err(SigError::BadSignature)
    );
}

#[test]
fn tampered_grip_sig_has_bad_signature() {
    for pem in [EC_PKCS8, RSA_PKCS8] {
        let key = SigningKey::from_pem(pem).unwrap();
        let token = sign_grip_sig("pushpin", &key, NOW).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(r#"{"iss":"evil","exp":9999999999}"#);
        let forged = parts.join(".");
        assert_eq!(
            verify_grip_sig(&forged, key.verifying_key(), NOW),
            Err(SigError::BadSignature)
        );
    }
}

#[test]
fn grip_sig_expires_at_exp() {
    let token = sign_grip_sig("pushpin", &hmac("k"), NOW).unwrap();
    let key = VerifyingKey::from_secret(b"k").unwrap();
    assert!(verify_grip_sig(&token, &key, NOW + 3599).is_ok());
    assert_eq!(
        verify_grip_sig(&token, &key, NOW + 3600),
        Err(SigError::Expired)
    );
}

#[test]
fn grip_sig_without_exp_is_rejected_with_missing_exp() {
    let key = hmac("k");
    let token = key.sign(&serde_json::json!({"iss": "pushpin"})).unwrap();
    assert_eq!(
        verify_grip_sig(&token, key.verifying_key(), NOW),
        Err(SigError::MissingExp)
    );
}

#[test]
fn grip_sig_with_fractional_exp_is_accepted() {
    let key = hmac("k");
    let token = key
        .sign(&serde_json::json!({"exp": 1_700_000_100.5}))
        .unwrap();
    let claims = verify_grip_sig(&token, key.verifying_key(), NOW).unwrap();
    assert_eq!(claims.exp, 1_700_000_100);
    assert_eq!(claims.iss, None);
}

#[test]
fn grip_sig_with_non_numeric_exp_or_iss_is_malformed() {
    let key = hmac("k");
    for claims in [
        serde_json::json!({"exp": "soon"}),
        serde_json::json!({"exp": -5}),
        serde_json::json!({"exp": NOW + 100, "iss": 7}),
    ] {
        let token = key.sign(&claims).unwrap();
        assert_eq!(
            verify_grip_sig(&token, key.verifying_key(), NOW),
            Err(SigError::Malformed)
        );
    }
}

#[test]
fn hs256_token_is_refused_by_an_rsa_key() {
    let rsa = VerifyingKey::from_pem(RSA_PUBLIC).unwrap();
    let token = sign_grip_sig(
        "pushpin",
        &SigningKey::from_secret(RSA_PUBLIC).unwrap(),
        NOW,
    )
    .unwrap();
    assert_eq!(
        verify_grip_sig(&token, &rsa, NOW),
        Err(SigError::AlgorithmMismatch {
            expected: SigAlgorithm::Rs256,
            found: SigAlgorithm::Hs256
        })
    );
}

#[test]
fn alg_none_is_unsupported() {
    let token = unsigned_token(r#"{"alg":"none"}"#, r#"{"exp":9999999999}"#);
    let key = VerifyingKey::from_secret(b"k").unwrap();
    assert_eq!(
        verify_grip_sig(&token, &key, NOW),
        Err(SigError::UnsupportedAlgorithm("none".to_owned()))
    );
    let token = unsigned_token(r#"{"alg":"HS512"}"#, r#"{"exp":9999999999}"#);
    assert_eq!(
        verify_grip_sig(&token, &key, NOW),
        Err(SigError::UnsupportedAlgorithm("HS512".to_owned()))
    );
}

#[test]
fn malformed_tokens_are_rejected() {
    let key = VerifyingKey::from_secret(b"k").unwrap();
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.b.c",
        &unsigned_token("[]", "{}"),
        &signed_raw(r#"{"alg":"HS256"}"#, "not json"),
        &signed_raw(r#"{"alg":"HS256"}"#, "[1, 2]"),
        &long,
    ] {
        assert_eq!(
            verify_grip_sig(token, &key, NOW),
            Err(SigError::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn sig_algorithm_names_round_trip() {
    for alg in [
        SigAlgorithm::Hs256,
        SigAlgorithm::Rs256,
        SigAlgorithm::Es256,
    ] {
        assert_eq!(SigAlgorithm::from_jws_name(alg.as_str()), Some(alg));
        assert_eq!(alg.to_string(), alg.as_str());
    }
    assert_eq!(SigAlgorithm::from_jws_name("none"), None);
}

#[test]
fn numeric_date_accepts_integers_and_fractions_only() {
    assert_eq!(numeric_date(&serde_json::json!(5)), Some(5));
    assert_eq!(numeric_date(&serde_json::json!(5.9)), Some(5));
    assert_eq!(numeric_date(&serde_json::json!(-1)), None);
    assert_eq!(numeric_date(&serde_json::json!("5")), None);
    assert_eq!(numeric_date(&Value::Null), None);
}
