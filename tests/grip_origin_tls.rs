//! Origins reached over TLS (§7.1 target props `ssl`, `insecure`, `trust_connect_host`),
//! through a real `fjord proxy` and an origin serving TLS with a certificate made for
//! the test (for `localhost`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{stream_item, HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `localhost`: its PEM file (for the proxy to trust or
/// not) and an acceptor for the origin.
struct OriginCertificate {
    dir: tempfile::TempDir,
    acceptor: TlsAcceptor,
}

impl OriginCertificate {
    fn generate() -> OriginCertificate {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), generated.cert.pem()).expect("write");
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
        let chain = vec![CertificateDer::from(generated.cert.der().to_vec())];
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("certificate");
        OriginCertificate {
            dir,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// The certificate as a CA file, for `SSL_CERT_FILE`.
    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
}

async fn tls_origin(cert: &OriginCertificate) -> Origin {
    Origin::start_tls(cert.acceptor.clone(), |_| Reply::stream("t", "opened\n")).await
}

/// A proxy whose only route is `routes`, trusting `ca_file` as the system's roots.
async fn proxy(routes: &str, ca_file: &str) -> Proxy {
    ProxyBuilder::new()
        .routes_file(routes)
        .env("SSL_CERT_FILE", ca_file)
        .start()
        .await
}

/// `GET /feed` with `Host: host`.
async fn open_as(proxy: &Proxy, host: &str) -> (u16, HttpConn) {
    let mut conn = proxy.connect().await;
    conn.get("/feed", &[("Host", host)]).await;
    let head = conn.read_head(SLOW).await.expect("head");
    (head.status, conn)
}

/// `GET /feed` with `Host: host` reaches the origin's stream hold: `200` and the
/// hold's initial content, `expected`.
async fn open_stream_as(proxy: &Proxy, host: &str, expected: &[u8]) -> HttpConn {
    let (status, mut conn) = open_as(proxy, host).await;
    assert_eq!(status, 200);
    let initial = conn
        .read_stream(expected.len(), Duration::from_secs(2))
        .await
        .expect("initial content");
    assert_eq!(initial, expected);
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssl_target_with_a_trusted_certificate_is_proxied_over_tls() {
    let cert = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    let proxy = proxy(
        &format!("* localhost:{},ssl\n", origin.addr.port()),
        &cert.ca_file(),
    )
    .await;
    let mut conn = open_stream_as(&proxy, "localhost", b"opened\n").await;
    assert_eq!(origin.requests()[0].target, "/feed");
    proxy.publish_items(&[stream_item("t", "pushed\n")]).await;
    assert_eq!(
        conn.read_stream(7, Duration::from_secs(2))
            .await
            .expect("published content"),
        b"pushed\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_origin_certificate_gets_502_and_the_origin_sees_no_request() {
    let cert = OriginCertificate::generate();
    let other = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    // The proxy trusts a different certificate than the one the origin presents.
    let proxy = proxy(
        &format!("* localhost:{},ssl\n", origin.addr.port()),
        &other.ca_file(),
    )
    .await;
    let (status, _conn) = open_as(&proxy, "localhost").await;
    assert_eq!(status, 502);
    assert!(origin.requests().is_empty(), "a request went through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_an_origin_certificate_nobody_trusts() {
    let cert = OriginCertificate::generate();
    let other = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    let proxy = proxy(
        &format!("* localhost:{},ssl,insecure\n", origin.addr.port()),
        &other.ca_file(),
    )
    .await;
    open_stream_as(&proxy, "localhost", b"opened\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tls_handshake_moves_on_to_the_next_target() {
    let cert = OriginCertificate::generate();
    let other = OriginCertificate::generate();
    let refused = tls_origin(&cert).await;
    let plain = Origin::start(|_| Reply::stream("t", "plain\n")).await;
    let proxy = proxy(
        &format!(
            "* localhost:{},ssl localhost:{}\n",
            refused.addr.port(),
            plain.addr.port()
        ),
        &other.ca_file(),
    )
    .await;
    open_stream_as(&proxy, "localhost", b"plain\n").await;
    assert!(refused.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_target_is_checked_for_the_requests_host_as_pushpin_does() {
    let cert = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    let proxy = proxy(
        &format!("* 127.0.0.1:{},ssl\n", origin.addr.port()),
        &cert.ca_file(),
    )
    .await;
    open_stream_as(&proxy, "localhost", b"opened\n").await;
    // A Host the certificate is not for fails the check.
    let (status, _conn) = open_as(&proxy, "elsewhere.test").await;
    assert_eq!(status, 502);
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_override_names_the_certificate() {
    let cert = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    let proxy = proxy(
        &format!("* 127.0.0.1:{},ssl,host=localhost\n", origin.addr.port()),
        &cert.ca_file(),
    )
    .await;
    let (status, _conn) = open_as(&proxy, "fjord.test").await;
    assert_eq!(status, 200);
    assert_eq!(origin.requests()[0].header("host"), Some("localhost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_connect_host_checks_the_targets_own_host() {
    let cert = OriginCertificate::generate();
    let origin = tls_origin(&cert).await;
    // The certificate is for `localhost`, not for the address the target names.
    let proxy = proxy(
        &format!(
            "* 127.0.0.1:{},ssl,trust_connect_host\n",
            origin.addr.port()
        ),
        &cert.ca_file(),
    )
    .await;
    let (status, _conn) = open_as(&proxy, "localhost").await;
    assert_eq!(status, 502);
    assert!(origin.requests().is_empty());
}

/// A CA, a client certificate it signed (written as `client.pem`/`client-key.pem`
/// beside `ca.pem`), and an origin acceptor that requires a client certificate from
/// that CA.
fn origin_requiring_client_certificates(cert: &OriginCertificate) -> TlsAcceptor {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["fjord-proxy".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client certificate");
    std::fs::write(cert.dir.path().join("client.pem"), client.pem()).expect("write");
    std::fs::write(
        cert.dir.path().join("client-key.pem"),
        client_key.serialize_pem(),
    )
    .expect("write");

    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("server");
    std::fs::write(cert.dir.path().join("ca.pem"), generated.cert.pem()).expect("write");
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("client CA");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(generated.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der())),
        )
        .expect("server certificate");
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_to_an_origin_that_requires_one() {
    let cert = OriginCertificate::generate();
    let acceptor = origin_requiring_client_certificates(&cert);
    let origin = Origin::start_tls(acceptor, |_| Reply::stream("t", "opened\n")).await;
    let port = origin.addr.port();
    let dir = cert.dir.path().display().to_string();
    // Paths relative to the routes file are not usable here (it lives in the proxy's
    // own temporary directory), so they are absolute.
    let with_identity = proxy(
        &format!(
            "* localhost:{port},ssl,client_cert={dir}/client.pem,client_key={dir}/client-key.pem\n"
        ),
        &cert.ca_file(),
    )
    .await;
    open_stream_as(&with_identity, "localhost", b"opened\n").await;

    let without = proxy(&format!("* localhost:{port},ssl\n"), &cert.ca_file()).await;
    let (status, _conn) = open_as(&without, "localhost").await;
    assert_eq!(
        status, 502,
        "the origin refuses a client without a certificate"
    );
    assert_eq!(origin.requests().len(), 1);
}
