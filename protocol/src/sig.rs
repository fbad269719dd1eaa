//! `Grip-Sig` (§1.3–1.4) and the signing keys it shares with client tokens (design
//! "Security").
//!
//! The proxy signs every origin request with a short JWT so origins can tell it came through
//! a GRIP proxy, and verifies an incoming `Grip-Sig` against `upstream_key` to recognise a
//! trusted upstream proxy. Key syntax (§1.3): a plain string, `base64:<b64>`, or
//! `file:<path>` whose contents are a PEM private key (ES256 for P-256 EC keys, RS256 for RSA
//! keys) or else a hex-encoded secret (HS256).
//!
//! Nothing here reads a clock: callers pass `now` in Unix seconds, and jsonwebtoken's own
//! time checks are switched off so the same inputs always give the same answer.

use std::fmt;
use std::path::PathBuf;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifetime of a `Grip-Sig` token (§1.3: `exp` = now + 3600).
pub const GRIP_SIG_LIFETIME_SECS: u64 = 3600;

/// Longest token looked at. Tokens arrive in headers, cookies and query strings; anything
/// this long is not one of ours and is refused before base64 or JSON decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a key could not be loaded or a `Grip-Sig` not made or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// An empty secret, `base64:` payload or `file:` path; an empty HMAC key would make
    /// signatures forgeable.
    #[error("key is empty")]
    EmptyKey,
    /// The `base64:` payload is not base64.
    #[error("key is not valid base64")]
    InvalidBase64Key,
    /// Key file contents that are neither PEM nor hex.
    #[error("key file is neither PEM nor a hex-encoded secret")]
    InvalidHexKey,
    /// A PEM block that does not parse.
    #[error("invalid PEM key: {0}")]
    InvalidPem(String),
    /// A well-formed key of a kind Fjord does not sign or verify with.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// Not a compact JWS with a JSON header and claims.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not verify with the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// The header names an algorithm other than HS256, RS256 or ES256 (`none` included).
    #[error("unsupported token algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header's algorithm is not the key's; accepting it would allow key confusion.
    #[error("token algorithm {found} does not match key algorithm {expected}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        expected: SigAlgorithm,
        /// The token's algorithm.
        found: SigAlgorithm,
    },
    /// No `exp` claim; GRIP requires one.
    #[error("token has no exp claim")]
    MissingExp,
    /// `exp` is not after now.
    #[error("token has expired")]
    Expired,
    /// The signing library failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The JWS algorithms GRIP uses (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl SigAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlgorithm::Hs256 => "HS256",
            SigAlgorithm::Rs256 => "RS256",
            SigAlgorithm::Es256 => "ES256",
        }
    }

    /// The algorithm a JWS `alg` name stands for, if it is one of the three.
    pub fn from_jws_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(SigAlgorithm::Hs256),
            "RS256" => Some(SigAlgorithm::Rs256),
            "ES256" => Some(SigAlgorithm::Es256),
            _ => None,
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigAlgorithm::Hs256 => Algorithm::HS256,
            SigAlgorithm::Rs256 => Algorithm::RS256,
            SigAlgorithm::Es256 => Algorithm::ES256,
        }
    }
}

impl fmt::Display for SigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured key (`sig_key`, `upstream_key`, `[auth] jwt_key`) before any file is read.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// HMAC secret bytes: the plain string's UTF-8 bytes, or the decoded `base64:` payload.
    Secret(Vec<u8>),
    /// `file:<path>`, as written. The caller resolves a relative path against the config
    /// directory (§1.3), reads the file and passes the contents to
    /// [`SigningKey::from_file_contents`] or [`VerifyingKey::from_file_contents`].
    File(PathBuf),
}

impl KeySpec {
    /// Parses the key syntax of §1.3. The `base64:` payload may use the standard or the
    /// URL-safe alphabet, padded or not, since configs are written by hand.
    pub fn parse(spec: &str) -> Result<KeySpec, SigError> {
        if let Some(encoded) = spec.strip_prefix("base64:") {
            let secret = decode_lenient_base64(encoded.trim())?;
            if secret.is_empty() {
                return Err(SigError::EmptyKey);
            }
            return Ok(KeySpec::Secret(secret));
        }
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SigError::EmptyKey);
            }
            return Ok(KeySpec::File(PathBuf::from(path)));
        }
        if spec.is_empty() {
            return Err(SigError::EmptyKey);
        }
        Ok(KeySpec::Secret(spec.as_bytes().to_vec()))
    }
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Secret(_) => f.write_str("KeySpec::Secret(<redacted>)"),
            KeySpec::File(path) => f.debug_tuple("KeySpec::File").field(path).finish(),
        }
    }
}

fn decode_lenient_base64(encoded: &str) -> Result<Vec<u8>, SigError> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url_safe = encoded.contains(['-', '_']);
    let engine = if url_safe {
        GeneralPurpose::new(&alphabet::URL_SAFE, config)
    } else {
        GeneralPurpose::new(&alphabet::STANDARD, config)
    };
    engine
        .decode(encoded)
        .map_err(|_| SigError::InvalidBase64Key)
}

/// A key that signs `Grip-Sig` and client tokens.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// An HS256 key from secret bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, SigError> {
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            verifying: VerifyingKey::from_secret(secret)?,
        })
    }

    /// A key from PEM text: a P-256 EC private key (PKCS#8 `PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY`) gives ES256, an RSA private key (PKCS#8 or PKCS#1
    /// `RSA PRIVATE KEY`) gives RS256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SigError> {
        match parse_pem(pem)? {
            PemKey::EcPrivate(secret) => {
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| SigError::InvalidPem(e.to_string()))?;
                Ok(Self {
                    encoding: EncodingKey::from_ec_der(der.as_bytes()),
                    verifying: VerifyingKey::from_ec_public(&secret.public_key()),
                })
            }
            PemKey::RsaPrivate(private) => {
                let der = private
                    .to_pkcs1_der()
                    .map_err(|e| SigError::InvalidPem(e.to_string()))?;
                Ok(Self {
                    encoding: EncodingKey::from_rsa_der(der.as_bytes()),
                    verifying: VerifyingKey::from_rsa_public(&private.to_public_key())?,
                })
            }
            PemKey::EcPublic(_) | PemKey::RsaPublic(_) => Err(SigError::UnsupportedKey(
                "a public key cannot sign".to_owned(),
            )),
        }
    }

    /// A key from the contents of a `file:` key (§1.3): PEM when it starts with
    /// `-----BEGIN`, otherwise a hex-encoded HMAC secret (surrounding whitespace ignored).
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, SigError> {
        if is_pem(contents) {
            Self::from_pem(contents)
        } else {
            Self::from_secret(&decode_hex_secret(contents)?)
        }
    }

    /// The algorithm tokens signed with this key use.
    pub fn algorithm(&self) -> SigAlgorithm {
        self.verifying.algorithm
    }

    /// The key that verifies this key's tokens (the public half for EC and RSA).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SigError> {
        let header = Header::new(self.algorithm().jwt());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| SigError::Signing(e.to_string()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A key that verifies `Grip-Sig` and client tokens of one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: SigAlgorithm,
    decoding: DecodingKey,
    /// Built once: signature and algorithm checks only, claims are checked by the caller.
    validation: Validation,
}

impl VerifyingKey {
    /// An HS256 key from secret bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, SigError> {
        if secret.is_empty() {
            return Err(SigError::EmptyKey);
        }
        Ok(Self::new(
            SigAlgorithm::Hs256,
            DecodingKey::from_secret(secret),
        ))
    }

    /// A key from PEM text: a public key (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`) or
    /// any private key [`SigningKey::from_pem`] accepts, whose public half is used.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SigError> {
        match parse_pem(pem)? {
            PemKey::EcPrivate(secret) => Ok(Self::from_ec_public(&secret.public_key())),
            PemKey::EcPublic(public) => Ok(Self::from_ec_public(&public)),
            PemKey::RsaPrivate(private) => Self::from_rsa_public(&private.to_public_key()),
            PemKey::RsaPublic(public) => Self::from_rsa_public(&public),
        }
    }

    /// A key from the contents of a `file:` key: PEM when it starts with `-----BEGIN`,
    /// otherwise a hex-encoded HMAC secret.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, SigError> {
        if is_pem(contents) {
            Self::from_pem(contents)
        } else {
            Self::from_secret(&decode_hex_secret(contents)?)
        }
    }

    /// The only algorithm this key accepts.
    pub fn algorithm(&self) -> SigAlgorithm {
        self.algorithm
    }

    fn new(algorithm: SigAlgorithm, decoding: DecodingKey) -> Self {
        let mut validation = Validation::new(algorithm.jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            algorithm,
            decoding,
            validation,
        }
    }

    fn from_ec_public(public: &p256::PublicKey) -> Self {
        let point = public.to_encoded_point(false);
        Self::new(
            SigAlgorithm::Es256,
            DecodingKey::from_ec_der(point.as_bytes()),
        )
    }

    fn from_rsa_public(public: &rsa::RsaPublicKey) -> Result<Self, SigError> {
        let der = public
            .to_pkcs1_der()
            .map_err(|e| SigError::InvalidPem(e.to_string()))?;
        Ok(Self::new(
            SigAlgorithm::Rs256,
            DecodingKey::from_rsa_der(der.as_bytes()),
        ))
    }

    /// Checks shape, algorithm and signature and returns the claims object unchecked.
    pub(crate) fn verify_signature(&self, token: &str) -> Result<Map<String, Value>, SigError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SigError::Malformed);
        }
        let found = header_algorithm(token)?;
        if found != self.algorithm {
            return Err(SigError::AlgorithmMismatch {
                expected: self.algorithm,
                found,
            });
        }
        match jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => SigError::BadSignature,
                ErrorKind::InvalidAlgorithm => SigError::AlgorithmMismatch {
                    expected: self.algorithm,
                    found,
                },
                _ => SigError::Malformed,
            }),
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The `alg` of a compact JWS, read before verification so `none` and unknown algorithms
/// get their own error instead of a JSON one.
fn header_algorithm(token: &str) -> Result<SigAlgorithm, SigError> {
    #[derive(Deserialize)]
    struct JoseHeader {
        alg: String,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SigError::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| SigError::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&json).map_err(|_| SigError::Malformed)?;
    SigAlgorithm::from_jws_name(&header.alg).ok_or_else(|| {
        let shown: String = header.alg.chars().take(32).collect();
        SigError::UnsupportedAlgorithm(shown)
    })
}

enum PemKey {
    EcPrivate(p256::SecretKey),
    EcPublic(p256::PublicKey),
    RsaPrivate(Box<rsa::RsaPrivateKey>),
    RsaPublic(Box<rsa::RsaPublicKey>),
}

fn is_pem(contents: &[u8]) -> bool {
    contents.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// Parses by the PEM label so each form gets a precise error; jsonwebtoken alone takes
/// neither SEC1 EC keys nor checks the curve before the first signature.
fn parse_pem(pem: &[u8]) -> Result<PemKey, SigError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| SigError::InvalidPem("not UTF-8".to_owned()))?
        .trim();
    let label = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or_else(|| SigError::InvalidPem("no BEGIN line".to_owned()))?;
    let invalid = |e: &dyn fmt::Display| SigError::InvalidPem(e.to_string());
    match label {
        "PRIVATE KEY" => {
            if let Ok(secret) = p256::SecretKey::from_pkcs8_pem(text) {
                return Ok(PemKey::EcPrivate(secret));
            }
            rsa::RsaPrivateKey::from_pkcs8_pem(text)
                .map(|key| PemKey::RsaPrivate(Box::new(key)))
                .map_err(|_| {
                    SigError::UnsupportedKey(
                        "PKCS#8 key is neither a P-256 EC key nor an RSA key".to_owned(),
                    )
                })
        }
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_pem(text)
            .map(PemKey::EcPrivate)
            .map_err(|_| SigError::UnsupportedKey("EC key is not a P-256 key".to_owned())),
        "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_pem(text)
            .map(|key| PemKey::RsaPrivate(Box::new(key)))
            .map_err(|e| invalid(&e)),
        "PUBLIC KEY" => {
            if let Ok(public) = p256::PublicKey::from_public_key_pem(text) {
                return Ok(PemKey::EcPublic(public));
            }
            rsa::RsaPublicKey::from_public_key_pem(text)
                .map(|key| PemKey::RsaPublic(Box::new(key)))
                .map_err(|_| {
                    SigError::UnsupportedKey(
                        "public key is neither a P-256 EC key nor an RSA key".to_owned(),
                    )
                })
        }
        "RSA PUBLIC KEY" => rsa::RsaPublicKey::from_pkcs1_pem(text)
            .map(|key| PemKey::RsaPublic(Box::new(key)))
            .map_err(|e| invalid(&e)),
        "ENCRYPTED PRIVATE KEY" => Err(SigError::UnsupportedKey(
            "encrypted private keys are not supported".to_owned(),
        )),
        other => {
            let shown: String = other.chars().take(40).collect();
            Err(SigError::UnsupportedKey(format!("PEM block {shown:?}")))
        }
    }
}

fn decode_hex_secret(contents: &[u8]) -> Result<Vec<u8>, SigError> {
    let hex = contents.trim_ascii();
    if hex.is_empty() {
        return Err(SigError::EmptyKey);
    }
    if !hex.len().is_multiple_of(2) {
        return Err(SigError::InvalidHexKey);
    }
    hex.chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some((hex_digit(*high)? << 4) | hex_digit(*low)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(SigError::InvalidHexKey)
}

fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// A JWT NumericDate (RFC 7519 §2): seconds, possibly fractional; fractions are dropped.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    if let Some(seconds) = value.as_u64() {
        return Some(seconds);
    }
    let seconds = value.as_f64()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds as u64)
}

/// Claims of a verified `Grip-Sig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GripSigClaims {
    /// Issuer; §1.3 always sets it, and origins may compare it.
    pub iss: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Signs a `Grip-Sig` for an origin request: claims exactly `{"iss", "exp": now + 3600}`
/// (§1.3). The token depends only on `iss` and `now`, so callers may reuse it for many
/// requests as long as they renew it well before it expires.
pub fn sign_grip_sig(iss: &str, key: &SigningKey, now_unix: u64) -> Result<String, SigError> {
    #[derive(Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        exp: u64,
    }
    key.sign(&Claims {
        iss,
        exp: now_unix.saturating_add(GRIP_SIG_LIFETIME_SECS),
    })
}

/// Verifies an incoming `Grip-Sig` (§1.4 trusted upstream): the signature with `key`, the
/// algorithm equal to the key's, and `exp` present and later than `now_unix`. Comparing
/// `iss` is left to the caller.
pub fn verify_grip_sig(
    token: &str,
    key: &VerifyingKey,
    now_unix: u64,
) -> Result<GripSigClaims, SigError> {
    let claims = key.verify_signature(token)?;
    let exp = claims.get("exp").ok_or(SigError::MissingExp)?;
    let exp = numeric_date(exp).ok_or(SigError::Malformed)?;
    let iss = match claims.get("iss") {
        None | Some(Value::Null) => None,
        Some(Value::String(iss)) => Some(iss.clone()),
        Some(_) => return Err(SigError::Malformed),
    };
    if exp <= now_unix {
        return Err(SigError::Expired);
    }
    Ok(GripSigClaims { iss, exp })
}

#[cfg(test)]
mod tests;
