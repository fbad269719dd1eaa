//! Loading configured keys (§1.3): the protocol crate parses the syntax, this module
//! reads `file:` keys from disk.

use std::path::{Path, PathBuf};

use fjord_protocol::sig::{KeySpec, SigError, SigningKey, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key: {0}")]
    Syntax(#[from] SigError),
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads a key's bytes: the secret itself, or the contents of its file. Relative
/// `file:` paths resolve against `base_dir` (the configuration's directory).
fn material(spec: &str, base_dir: Option<&Path>) -> Result<(KeySpec, Option<Vec<u8>>), KeyError> {
    let parsed = KeySpec::parse(spec)?;
    let contents = match &parsed {
        KeySpec::Secret(_) => None,
        KeySpec::File(path) => {
            let path = match base_dir {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.clone(),
            };
            Some(std::fs::read(&path).map_err(|source| KeyError::Read { path, source })?)
        }
    };
    Ok((parsed, contents))
}

/// A signing key from its configured form.
pub fn signing_key_from_spec(spec: &str, base_dir: Option<&Path>) -> Result<SigningKey, KeyError> {
    match material(spec, base_dir)? {
        (KeySpec::Secret(secret), _) => Ok(SigningKey::from_secret(&secret)?),
        (KeySpec::File(_), Some(contents)) => Ok(SigningKey::from_file_contents(&contents)?),
        (KeySpec::File(_), None) => unreachable_file(),
    }
}

/// A verification key from its configured form.
pub fn verifying_key_from_spec(
    spec: &str,
    base_dir: Option<&Path>,
) -> Result<VerifyingKey, KeyError> {
    match material(spec, base_dir)? {
        (KeySpec::Secret(secret), _) => Ok(VerifyingKey::from_secret(&secret)?),
        (KeySpec::File(_), Some(contents)) => Ok(VerifyingKey::from_file_contents(&contents)?),
        (KeySpec::File(_), None) => unreachable_file(),
    }
}

fn unreachable_file<T>() -> Result<T, KeyError> {
    Err(KeyError::Read {
        path: PathBuf::new(),
        source: std::io::Error::other("key file was not read"),
    })
}
