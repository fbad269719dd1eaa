//! TLS on the public listener: the server configuration from a PEM certificate chain
//! and private key.
//!
//! ALPN offers HTTP/2 first, then HTTP/1.1: the listener serves each connection with
//! [`crate::http2`] or [`crate::http1`] by what was negotiated. A client that offers
//! no ALPN gets HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

pub use tokio_rustls::TlsAcceptor;

/// Where the listener's certificate chain and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Which of the two files a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

/// Why the certificate and key cannot serve TLS; each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        file: TlsFile,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key", path.display())]
    NoKey { path: PathBuf },
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        file: TlsFile,
        path: PathBuf,
        reason: String,
    },
    /// The key does not match the certificate, or is of a kind rustls cannot use.
    #[error("{} cannot be used with {}: {source}", key.display(), cert.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl TlsError {
    /// The file the problem is in (a key that does not fit counts as the key's).
    pub fn file(&self) -> TlsFile {
        match self {
            TlsError::Read { file, .. } | TlsError::Pem { file, .. } => *file,
            TlsError::NoCertificate { .. } => TlsFile::Cert,
            TlsError::NoKey { .. } | TlsError::Unusable { .. } => TlsFile::Key,
        }
    }
}

/// Reads both files and builds the listener's acceptor. `fjord check` calls this too,
/// so a configuration that checks clean also starts.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(files)?)))
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    // ring builds with a C compiler alone (aws-lc-rs needs cmake); rustls deprecates
    // its provider only because it lacks post-quantum key exchange, and X25519 and
    // the NIST curves it offers are what browsers and phones negotiate today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |source| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(unusable)?;
    config.alpn_protocols = vec![crate::http2::ALPN.to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read(path: &Path, file: TlsFile) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        file,
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, TlsFile::Cert)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            file: TlsFile::Cert,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, TlsFile::Key)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::Pem {
            file: TlsFile::Key,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        _dir: tempfile::TempDir,
        files: TlsFiles,
    }

    fn write_pair(cert_pem: &str, key_pem: &str) -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert_pem).expect("write cert");
        std::fs::write(&files.key, key_pem).expect("write key");
        Pair { _dir: dir, files }
    }

    fn self_signed() -> rcgen::CertifiedKey {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate")
    }

    #[test]
    fn a_self_signed_pair_builds_an_acceptor_offering_http2_then_http1() {
        let generated = self_signed();
        let pair = write_pair(&generated.cert.pem(), &generated.key_pair.serialize_pem());
        let config = server_config(&pair.files).expect("valid pair");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_missing_cert_names_the_cert_file() {
        let generated = self_signed();
        let pair = write_pair("", &generated.key_pair.serialize_pem());
        std::fs::remove_file(&pair.files.cert).expect("remove");
        let error = server_config(&pair.files).expect_err("missing cert");
        assert_eq!(error.file(), TlsFile::Cert);
        assert!(error.to_string().starts_with("cannot read "), "{error}");
    }

    #[test]
    fn a_key_in_the_cert_file_is_no_certificate() {
        let generated = self_signed();
        let key = generated.key_pair.serialize_pem();
        let pair = write_pair(&key, &key);
        let error = server_config(&pair.files).expect_err("no cert");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    }

    #[test]
    fn a_cert_in_the_key_file_is_no_key() {
        let generated = self_signed();
        let cert = generated.cert.pem();
        let pair = write_pair(&cert, &cert);
        let error = server_config(&pair.files).expect_err("no key");
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
        assert_eq!(error.file(), TlsFile::Key);
    }

    #[test]
    fn a_key_of_another_certificate_is_unusable() {
        let one = self_signed();
        let other = self_signed();
        let pair = write_pair(&one.cert.pem(), &other.key_pair.serialize_pem());
        let error = server_config(&pair.files).expect_err("mismatch");
        assert!(matches!(error, TlsError::Unusable { .. }), "{error}");
    }

    #[test]
    fn a_broken_pem_section_is_reported_as_pem() {
        let generated = self_signed();
        let pem = generated.cert.pem();
        let truncated = &pem[..pem.len() / 2];
        let pair = write_pair(truncated, &generated.key_pair.serialize_pem());
        let error = server_config(&pair.files).expect_err("truncated");
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    }
}
