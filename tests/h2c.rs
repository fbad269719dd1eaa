//! HTTP/2 with prior knowledge on the plain listener (h2c, RFC 9113 §3.3), as a load
//! balancer that speaks HTTP/2 to its backends uses it: streams multiplexed on one
//! connection receive what is published, and HTTP/1 clients on the same port are
//! unaffected.

mod support;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::direct::{kafka_item, order_data};
use support::h2::read_body_until;
use support::{Proxy, ProxyBuilder, SLOW};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTE: &str =
    "[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n";

async fn stream(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    path: &str,
) -> Incoming {
    let response = support::h2::get(sender, &format!("http://localhost{path}")).await;
    assert_eq!(response.status(), 200);
    response.into_body()
}

/// Reads one stream until `needle` has arrived; everything read.
async fn read_until(body: &mut Incoming, needle: &str) -> String {
    let mut seen = String::new();
    read_body_until(body, &mut seen, needle).await;
    seen
}

async fn proxy() -> Proxy {
    ProxyBuilder::new().config(ROUTE).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_prior_knowledge_multiplexes_streams_on_the_plain_port() {
    let proxy = proxy().await;
    let tcp = TcpStream::connect(proxy.listen).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut first = stream(&mut sender, "/orders/1").await;
    let mut second = stream(&mut sender, "/orders/2").await;
    proxy.wait_subscriptions(2).await;
    proxy
        .publish_items(&[
            kafka_item("orders.1", 0, 1, "1", "one"),
            kafka_item("orders.2", 0, 1, "2", "two"),
        ])
        .await;
    assert_eq!(
        order_data(&read_until(&mut first, "data: one\n\n").await),
        ["one"]
    );
    assert_eq!(
        order_data(&read_until(&mut second, "data: two\n\n").await),
        ["two"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_only_starts_like_the_preface_is_an_http1_error() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy.listen).await.expect("connect");
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(SLOW, client.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
}
