//! TLS on the public listener through a real `fjord proxy`: an SSE stream over TLS
//! receives what the control API publishes, a client that does not speak TLS fails
//! alone, and a bad certificate stops the start with one line.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use support::direct::{kafka_item, order_data};
use support::{Proxy, ProxyBuilder, SLOW};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const ROUTE: &str =
    "[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n";

/// A self-signed certificate for `localhost`, written where the proxy reads it.
struct Certificate {
    dir: tempfile::TempDir,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn generate() -> Certificate {
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

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    async fn proxy(&self) -> Proxy {
        ProxyBuilder::new()
            .set("tls_cert", &format!("{:?}", self.path("cert.pem")))
            .set("tls_key", &format!("{:?}", self.path("key.pem")))
            .config(ROUTE)
            .start()
            .await
    }

    /// A TLS client that trusts only this certificate and offers only HTTP/1.1.
    async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test CA");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        tokio::time::timeout(
            SLOW,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("handshake in time")
        .expect("handshake")
    }
}

/// Reads until `needle` has arrived; everything read so far.
async fn read_until<S: AsyncRead + Unpin>(stream: &mut S, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(SLOW, async {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{needle:?} did not arrive: {:?}",
        String::from_utf8_lossy(seen)
    );
}

async fn open_stream(cert: &Certificate, proxy: &Proxy) -> (TlsStream<TcpStream>, Vec<u8>) {
    let mut tls = cert.connect(proxy.listen).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send request");
    let mut seen = Vec::new();
    read_until(&mut tls, &mut seen, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    (tls, seen)
}

#[tokio::test]
async fn sse_over_tls_receives_publishes_while_a_plain_client_fails_alone() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let (mut first, mut first_seen) = open_stream(&cert, &proxy).await;
    let (mut second, mut second_seen) = open_stream(&cert, &proxy).await;
    proxy.wait_subscriptions(2).await;

    proxy
        .publish_items(&[kafka_item("orders.1", 0, 1, "1", "before")])
        .await;
    read_until(&mut first, &mut first_seen, "data: before\n\n").await;

    // Plain HTTP on the TLS port: no HTTP answer, the connection ends.
    let mut plain = TcpStream::connect(proxy.listen).await.expect("connect");
    plain
        .write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(SLOW, plain.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the plain connection was not closed");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // Garbage that looks like a TLS record header, then a hang-up.
    let mut garbage = TcpStream::connect(proxy.listen).await.expect("connect");
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("send");
    drop(garbage);
    let failures = support::wait_for_async(SLOW, || async {
        let count = proxy
            .metric("fjord_proxy_tls_handshake_failures_total")
            .await;
        (count >= 2.0).then_some(count)
    })
    .await;
    assert!(failures.is_some(), "handshake failures were not counted");

    proxy
        .publish_items(&[kafka_item("orders.1", 0, 2, "1", "after")])
        .await;
    read_until(&mut first, &mut first_seen, "data: after\n\n").await;
    read_until(&mut second, &mut second_seen, "data: after\n\n").await;
    let body = |seen: &[u8]| {
        let text = String::from_utf8_lossy(seen).into_owned();
        let start = text.find("\r\n\r\n").map_or(0, |i| i + 4);
        order_data(&text[start..])
    };
    assert_eq!(body(&first_seen), ["before", "after"]);
    assert_eq!(body(&second_seen), ["before", "after"]);
}

#[tokio::test]
async fn a_long_poll_over_tls_is_answered_with_the_published_item() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut tls = cert.connect(proxy.listen).await;
    tls.write_all(b"GET /orders/7?mode=poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send request");
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[kafka_item("orders.7", 0, 1, "7", "\"held\"")])
        .await;
    let mut seen = Vec::new();
    read_until(&mut tls, &mut seen, "held").await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
}

#[test]
fn a_missing_certificate_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--zmq-pull", "", "--zmq-sub", ""])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .stdin(Stdio::null())
        .output()
        .expect("run fjord proxy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("fjord:")).collect();
    let expected = format!("fjord: TLS: cannot read {}: ", missing.display());
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with(&expected), "{stderr}");
}

#[test]
fn only_one_tls_flag_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--zmq-pull", "", "--zmq-sub", "", "--tls-cert", "cert.pem"])
        .stdin(Stdio::null())
        .output()
        .expect("run fjord proxy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fjord: TLS needs both a certificate and a key"),
        "{stderr}"
    );
}
