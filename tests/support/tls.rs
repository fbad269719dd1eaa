//! A self-signed certificate for `localhost` and a proxy builder that serves TLS with
//! it, for the tests of the TLS listener (HTTP/1.1 and HTTP/2).

use tokio_rustls::rustls::pki_types::CertificateDer;

use super::ProxyBuilder;

/// A self-signed certificate for `localhost`, written where the proxy reads it.
pub struct Certificate {
    dir: tempfile::TempDir,
    pub der: CertificateDer<'static>,
}

impl Certificate {
    pub fn generate() -> Certificate {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).expect("write");
        std::fs::write(
            dir.path().join("key.pem"),
            generated.key_pair.serialize_pem(),
        )
        .expect("write");
        Certificate {
            dir,
            der: generated.cert.der().clone(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A proxy builder whose public listener serves TLS with this certificate.
    pub fn proxy_builder(&self) -> ProxyBuilder {
        ProxyBuilder::new()
            .set("tls_cert", &format!("{:?}", self.path("cert.pem")))
            .set("tls_key", &format!("{:?}", self.path("key.pem")))
    }
}
