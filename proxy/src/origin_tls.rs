//! TLS to origins: routes targets with `ssl` (§7.1), `insecure` to skip the
//! certificate check, `trust_connect_host` to check it for the target's host.
//!
//! Certificates are checked against the system's trusted roots (`/etc/ssl/certs` on
//! Debian; `SSL_CERT_FILE` or `SSL_CERT_DIR` point elsewhere). As in Pushpin, the name
//! checked (and sent as SNI) is the host of the request's `Host` header — the client's,
//! or the target's `host=` — so a target may be an IP address; `trust_connect_host`
//! checks the target's host instead. When the two names are the same, requests share
//! a pool of kept-alive connections; otherwise each request opens its own, since the
//! pool knows a connection only by the address it was made to. The roots are read on
//! the first `ssl` request, so a proxy without TLS origins never reads them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::origin::SendError;
use crate::route::OriginTarget;

/// As for plain origins (crate::origin).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The two TLS clients an origin may need, pooled by target address, and their
/// configurations for connections made per request to another server name.
pub(crate) struct TlsClients {
    verified: HttpsClient,
    insecure: HttpsClient,
    verified_config: Arc<ClientConfig>,
    insecure_config: Arc<ClientConfig>,
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    /// Configurations presenting a client certificate (`client_cert`/`client_key`),
    /// by certificate file, key file and `insecure`; made on first use.
    identities: Mutex<HashMap<(String, String, bool), Arc<ClientConfig>>>,
}

impl TlsClients {
    /// `connector` makes the TCP connector (timeouts, `TCP_NODELAY`) shared with plain
    /// origins; `client` the pool settings.
    pub fn new(
        connector: impl Fn() -> HttpConnector,
        client: impl Fn() -> hyper_util::client::legacy::Builder,
    ) -> Result<TlsClients, rustls::Error> {
        // ring, as on the public listener (crate::tls says why the deprecation is fine).
        #[allow(deprecated)]
        let provider = Arc::new(crypto::ring::default_provider());
        let roots = Arc::new(system_roots());
        let verified = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(Arc::clone(&roots))
            .with_no_client_auth();
        let insecure = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(Arc::clone(&provider))))
            .with_no_client_auth();
        let with_http11 = |config: &ClientConfig| {
            let mut config = config.clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        };
        let verified_config = with_http11(&verified);
        let insecure_config = with_http11(&insecure);
        let https = |config: ClientConfig| {
            let mut tcp = connector();
            // The TCP connector must accept `https://` URIs to hand them to TLS.
            tcp.enforce_http(false);
            let connector = HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only()
                .enable_http1()
                .wrap_connector(tcp);
            client().build(connector)
        };
        Ok(TlsClients {
            verified: https(verified),
            insecure: https(insecure),
            verified_config,
            insecure_config,
            provider,
            roots,
            identities: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration for a connection made per request.
    fn config(&self, insecure: bool) -> Arc<ClientConfig> {
        Arc::clone(if insecure {
            &self.insecure_config
        } else {
            &self.verified_config
        })
    }

    /// The configuration presenting the client certificate in `cert` (PEM chain) with
    /// the private key in `key`. A pair that loads is kept for the life of the process
    /// (a renewed certificate takes a restart); one that does not fails the request
    /// and is read again by the next, so fixing the files needs no restart. The files
    /// are small and read once, so reading them on a worker thread is acceptable.
    fn identity_config(
        &self,
        cert: &str,
        key: &str,
        insecure: bool,
    ) -> Result<Arc<ClientConfig>, String> {
        let mut identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        let id = (cert.to_owned(), key.to_owned(), insecure);
        if let Some(config) = identities.get(&id) {
            return Ok(Arc::clone(config));
        }
        let chain = crate::tls::read_certs(Path::new(cert)).map_err(|e| e.to_string())?;
        let private = crate::tls::read_key(Path::new(key)).map_err(|e| e.to_string())?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(Arc::clone(
                    &self.provider,
                ))))
        } else {
            builder.with_root_certificates(Arc::clone(&self.roots))
        };
        let mut config = builder
            .with_client_auth_cert(chain, private)
            .map_err(|e| format!("{key} cannot be used with {cert}: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        identities.insert(id, Arc::clone(&config));
        Ok(config)
    }

    /// Sends `request` (absolute `https` URI) to `target`: on a pooled connection when
    /// the certificate is checked for the target's own host and no client certificate
    /// is presented, else on a connection of its own (module documentation).
    pub async fn send(
        &self,
        target: &OriginTarget,
        mut request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        let name = other_server_name(target, request.headers());
        let identity = match (&target.client_cert, &target.client_key) {
            (Some(cert), Some(key)) => Some(
                self.identity_config(cert, key, target.insecure)
                    .map_err(|e| SendError::Unreachable(format!("client certificate: {e}")))?,
            ),
            _ => None,
        };
        if name.is_none() && identity.is_none() {
            let client = if target.insecure {
                &self.insecure
            } else {
                &self.verified
            };
            return client
                .request(request)
                .await
                .map_err(SendError::from_pooled);
        }
        let name = match name {
            Some(name) => name,
            None => ServerName::try_from(target.host.clone())
                .map_err(|e| SendError::Unreachable(e.to_string()))?,
        };
        let config = identity.unwrap_or_else(|| self.config(target.insecure));
        // A connection of its own takes the request in origin form.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *request.uri_mut() =
            http::Uri::try_from(path).map_err(|e| SendError::Failed(e.to_string()))?;
        self.send_named(&target.host, target.port, name, config, request)
            .await
    }

    /// Sends `request` (origin-form URI) over a new TLS connection to `host:port`
    /// whose certificate is checked for `server_name`.
    async fn send_named(
        &self,
        host: &str,
        port: u16,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        let connect = |e: &dyn std::fmt::Display| SendError::Unreachable(e.to_string());
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| connect(&"connect timed out"))?
            .map_err(|e| connect(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(config).connect(server_name, tcp),
        )
        .await
        .map_err(|_| connect(&"TLS handshake timed out"))?
        .map_err(|e| connect(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect(&e))?;
        // Ends once the response is read: the sender is dropped below.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "origin connection ended with an error");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Failed(e.to_string()))
    }
}

/// The name a TLS target's certificate is checked for when it is not the target's own
/// host: the host of the `Host` header being sent, unless the target has
/// `trust_connect_host`.
fn other_server_name(target: &OriginTarget, headers: &HeaderMap) -> Option<ServerName<'static>> {
    if target.trust_connect_host {
        return None;
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let authority = host.parse::<http::uri::Authority>().ok()?;
    let name = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if name.eq_ignore_ascii_case(&target.host) {
        return None;
    }
    ServerName::try_from(name.to_owned()).ok()
}

/// The system's trusted roots. Unreadable or unparsable entries are logged and
/// skipped; with none at all every verified TLS origin fails its handshake, which is
/// reported per request.
fn system_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "skipping a system CA certificate");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "system CA certificates rustls cannot use were skipped"
        );
    }
    if added == 0 {
        tracing::warn!(
            "no trusted CA certificates found; TLS origins without `insecure` will fail"
        );
    }
    roots
}

/// The `insecure` target property: any certificate is accepted, but the handshake's
/// signatures are still checked, so the connection is encrypted to whoever holds the
/// presented certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    fn name(target: &OriginTarget, value: &str) -> Option<String> {
        other_server_name(target, &host(value)).map(|n| n.to_str().into_owned())
    }

    #[test]
    fn the_request_host_without_its_port_names_the_certificate() {
        let target = OriginTarget::new("10.0.0.5", 443);
        assert_eq!(
            name(&target, "api.example.com:8443").as_deref(),
            Some("api.example.com")
        );
    }

    #[test]
    fn a_host_that_is_the_target_itself_uses_the_pool() {
        let target = OriginTarget::new("API.example.com", 443);
        assert_eq!(name(&target, "api.example.com"), None);
    }

    #[test]
    fn trust_connect_host_ignores_the_request_host() {
        let mut target = OriginTarget::new("10.0.0.5", 443);
        target.trust_connect_host = true;
        assert_eq!(name(&target, "api.example.com"), None);
    }

    #[test]
    fn an_ipv6_host_header_names_an_address() {
        let target = OriginTarget::new("backend", 443);
        assert_eq!(name(&target, "[::1]:443").as_deref(), Some("::1"));
        let v6_target = OriginTarget::new("::1", 443);
        assert_eq!(name(&v6_target, "[::1]:443"), None);
    }
}
