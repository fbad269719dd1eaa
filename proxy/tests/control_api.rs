//! The control HTTP server over real sockets: Pushpin's publish API answers (§4.1,
//! conformance items 2, 7, 37–39, 45) and Fjord's metrics and health endpoints.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fjord_proxy::control::{ControlDeps, ControlLimits, ControlServer};
use fjord_proxy::hub::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{counter, next_delivery, stream_content, subscribe};

const QUIET: Duration = Duration::from_millis(200);
const PATIENCE: Duration = Duration::from_secs(2);

struct Control {
    addr: SocketAddr,
    hub: Arc<Hub>,
    ready: Arc<AtomicBool>,
    recovers: Arc<AtomicUsize>,
}

async fn start() -> Control {
    let (hub, _events) = support::hub();
    let ready = Arc::new(AtomicBool::new(false));
    let recovers = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&recovers);
    let deps = ControlDeps {
        hub: Arc::clone(&hub),
        ready: Arc::clone(&ready),
        recover: Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
        limits: ControlLimits::default(),
    };
    let (addr, _task) = ControlServer::bind("127.0.0.1:0".parse().unwrap(), deps)
        .await
        .expect("control port binds");
    Control {
        addr,
        hub,
        ready,
        recovers,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// Sends raw request bytes and reads the whole answer (requests say `Connection:
/// close`, and every answer here carries `Content-Length`).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete head");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    if method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn post(control: &Control, path: &str, headers: &[&str], body: &str) -> Reply {
    exchange(
        control.addr,
        &request("POST", path, headers, body.as_bytes()),
    )
    .await
}

async fn get(control: &Control, path: &str, headers: &[&str]) -> Reply {
    exchange(control.addr, &request("GET", path, headers, b"")).await
}

fn stream_item(channel: &str, content: &str) -> String {
    format!(r#"{{"channel":"{channel}","formats":{{"http-stream":{{"content":"{content}"}}}}}}"#)
}

fn items(items: &[String]) -> String {
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

#[tokio::test]
async fn publish_with_and_without_trailing_slash_delivers() {
    let control = start().await;
    let subscriber = subscribe(&control.hub, "a");
    for path in ["/publish/", "/publish"] {
        let reply = post(&control, path, &[], &items(&[stream_item("a", "x")])).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("Content-Type"), Some("text/plain"));
        assert_eq!(reply.text(), "Published\n");
        let delivery = next_delivery(&subscriber, PATIENCE)
            .await
            .expect("delivered");
        assert_eq!(stream_content(&delivery), b"x");
    }
}

#[tokio::test]
async fn items_without_the_formats_wrapper_are_delivered() {
    let control = start().await;
    let subscriber = subscribe(&control.hub, "a");
    let body = r#"{"items":[{"channel":"a","http-stream":{"content":"y"}}]}"#;
    assert_eq!(post(&control, "/publish/", &[], body).await.status, 200);
    let delivery = next_delivery(&subscriber, PATIENCE)
        .await
        .expect("delivered");
    assert_eq!(stream_content(&delivery), b"y");
}

#[tokio::test]
async fn malformed_publishes_get_pushpins_messages_and_are_counted() {
    let control = start().await;
    let not_json = post(&control, "/publish/", &[], "not json").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.text(), "Body is not valid JSON.\n");
    let no_items = post(&control, "/publish/", &[], "{}").await;
    assert_eq!(no_items.status, 400);
    assert_eq!(
        no_items.text(),
        "Invalid format: object does not contain 'items'\n"
    );
    let not_object = post(&control, "/publish/", &[], "[1]").await;
    assert_eq!(not_object.text(), "Invalid format.\n");
    let wrong_type = post(&control, "/publish/", &[], r#"{"items":{}}"#).await;
    assert_eq!(
        wrong_type.text(),
        "Invalid format: object contains 'items' with wrong type\n"
    );
    let metrics = control.hub.metrics();
    assert_eq!(
        counter(metrics, "fjord_proxy_publish_errors_total", "http"),
        4
    );
}

#[tokio::test]
async fn one_invalid_item_rejects_the_whole_request() {
    let control = start().await;
    let subscriber = subscribe(&control.hub, "a");
    let invalid = r#"{"channel":"a","formats":{}}"#.to_owned();
    let reply = post(
        &control,
        "/publish/",
        &[],
        &items(&[stream_item("a", "x"), invalid]),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().starts_with("Invalid format: items[1]"),
        "{}",
        reply.text()
    );
    assert!(
        next_delivery(&subscriber, QUIET).await.is_none(),
        "nothing published"
    );
}

#[tokio::test]
async fn authorization_is_ignored() {
    let control = start().await;
    let headers = ["Authorization: Bearer anything"];
    let reply = post(
        &control,
        "/publish/",
        &headers,
        &items(&[stream_item("a", "x")]),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn accept_chooses_between_text_and_json() {
    let control = start().await;
    let body = items(&[stream_item("a", "x")]);
    for accept in ["Accept: application/json", "Accept: application/*"] {
        let reply = post(&control, "/publish/", &[accept], &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("Content-Type"), Some("application/json"));
        assert_eq!(reply.text(), "{\"message\":\"Published\"}\n");
    }
    for accept in [
        "Accept: */*",
        "Accept: text/plain",
        "Accept: application/json, text/*",
    ] {
        let reply = post(&control, "/publish/", &[accept], &body).await;
        assert_eq!(reply.text(), "Published\n", "{accept}");
    }
    let refused = post(&control, "/publish/", &["Accept: text/html"], &body).await;
    assert_eq!(refused.status, 406);
    let recover = post(&control, "/recover", &["Accept: application/json"], "").await;
    assert_eq!(recover.text(), "{\"message\":\"Updated\"}\n");
}

#[tokio::test]
async fn other_paths_and_methods_answer_like_pushpin() {
    let control = start().await;
    let get_publish = get(&control, "/publish/", &[]).await;
    assert_eq!(get_publish.status, 405);
    assert_eq!(get_publish.header("Allow"), Some("POST"));
    assert_eq!(get_publish.text(), "Method not allowed: GET.\n");
    let root = get(&control, "/", &[]).await;
    assert_eq!((root.status, root.text()), (200, "Pushpin API\n"));
    let missing = get(&control, "/nope", &[]).await;
    assert_eq!((missing.status, missing.text()), (404, "Not Found\n"));
    let recover = post(&control, "/recover", &[], "").await;
    assert_eq!((recover.status, recover.text()), (200, "Updated\n"));
    assert_eq!(control.recovers.load(Ordering::SeqCst), 1);
    let unlengthed = exchange(
        control.addr,
        b"POST /publish/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(unlengthed.status, 411);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let control = start().await;
    let subscriber = subscribe(&control.hub, "a");
    let mut big = items(&[stream_item("a", "x")]).into_bytes();
    big.resize(1_000_001, b' ');
    let reply = exchange(control.addr, &request("POST", "/publish/", &[], &big)).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text(), "Request body too large.\n");

    let mut chunked =
        b"POST /publish/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", 400_000).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 400_000));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = exchange(control.addr, &chunked).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text(), "Request body too large.\n");
    assert!(next_delivery(&subscriber, QUIET).await.is_none());

    let mut exact = items(&[stream_item("a", "x")]).into_bytes();
    exact.resize(1_000_000, b' ');
    let reply = exchange(control.addr, &request("POST", "/publish/", &[], &exact)).await;
    assert_eq!(reply.status, 200, "exactly the limit is fine");
    assert!(next_delivery(&subscriber, PATIENCE).await.is_some());
}

#[tokio::test]
async fn chunked_publishes_are_accepted() {
    let control = start().await;
    let subscriber = subscribe(&control.hub, "a");
    let body = items(&[stream_item("a", "z")]);
    let (first, second) = body.split_at(10);
    let raw = format!(
        "POST /publish/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let reply = exchange(control.addr, raw.as_bytes()).await;
    assert_eq!(reply.status, 200);
    let delivery = next_delivery(&subscriber, PATIENCE)
        .await
        .expect("delivered");
    assert_eq!(stream_content(&delivery), b"z");
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let control = start().await;
    post(&control, "/publish/", &[], &items(&[stream_item("a", "x")])).await;
    post(&control, "/publish/", &[], "nope").await;
    let metrics = get(&control, "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .text()
        .contains("fjord_proxy_items_received_total{input=\"http\"} 1"));
    assert!(metrics
        .text()
        .contains("fjord_proxy_publish_errors_total{input=\"http\"} 1"));
    let health = get(&control, "/healthz", &[]).await;
    assert_eq!((health.status, health.text()), (200, "ok\n"));
    assert_eq!(get(&control, "/readyz", &[]).await.status, 503);
    control.ready.store(true, Ordering::SeqCst);
    assert_eq!(get(&control, "/readyz", &[]).await.status, 200);
}

#[tokio::test]
async fn a_port_in_use_is_an_error_not_a_panic() {
    let control = start().await;
    let deps = ControlDeps {
        hub: Arc::clone(&control.hub),
        ready: Arc::clone(&control.ready),
        recover: Arc::new(|| {}),
        limits: ControlLimits::default(),
    };
    let error = ControlServer::bind(control.addr, deps)
        .await
        .expect_err("second bind fails");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn a_bad_request_does_not_disturb_other_connections() {
    let control = start().await;
    let mut idle = TcpStream::connect(control.addr).await.unwrap();
    idle.write_all(b"POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let garbage = exchange(control.addr, b"\x00\x01 not http\r\n\r\n").await;
    assert_eq!(garbage.status, 400);
    let reply = post(&control, "/publish/", &[], &items(&[stream_item("a", "x")])).await;
    assert_eq!(reply.status, 200);
}
