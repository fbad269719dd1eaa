//! Conformance items of spec §12 about response holds (long-polling, §5) and GRIP
//! instruction errors (§2.4, §2.5): items 11–17.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{stream_item, HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};
use tokio::time::Instant;

async fn setup(reply: Reply) -> (Origin, Proxy) {
    let origin = Origin::start(move |_| reply.clone()).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    (origin, proxy)
}

/// Sends `GET target` and waits until its one-channel hold is subscribed.
async fn start_hold(proxy: &Proxy, target: &str) -> HttpConn {
    let before = proxy.metric("fjord_proxy_subscriptions").await as usize;
    let conn = proxy.get(target).await;
    proxy.wait_subscriptions(before + 1).await;
    conn
}

fn response_item(channel: &str, format: serde_json::Value) -> serde_json::Value {
    json!({"channel": channel, "formats": {"http-response": format}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c11_response_hold_times_out_with_the_origin_response() {
    let reply = Reply::response_hold("a", 6, "{}").header("X-Origin", "kept");
    let (_origin, proxy) = setup(reply).await;
    let start = Instant::now();
    let mut conn = proxy.get("/").await;
    let early = conn.raw_within(Duration::from_millis(5500)).await;
    assert!(
        early.is_empty(),
        "client got bytes before the timeout: {early:?}"
    );
    let left = Duration::from_secs(7).saturating_sub(start.elapsed());
    let response = conn
        .read_response(left)
        .await
        .expect("timeout response before 7 s");
    assert_eq!(response.head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.body, b"{}");
    assert_eq!(response.head.header("x-origin"), Some("kept"));
    assert_eq!(
        response.head.header("content-type"),
        Some("application/json")
    );
    assert!(
        response.head.grip_headers().is_empty(),
        "{:?}",
        response.head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c12_timeout_below_five_is_five_and_default_is_55() {
    let origin = Origin::start(|request| {
        if request.path() == "/short" {
            Reply::response_hold("a", 1, "{}")
        } else {
            Reply::ok()
                .header("Content-Type", "application/json")
                .header("Grip-Hold", "response")
                .header("Grip-Channel", "a")
                .body("{}")
        }
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let timed = |path: &'static str, limit: Duration| {
        let addr = proxy.listen;
        tokio::spawn(async move {
            let start = Instant::now();
            let mut conn = HttpConn::connect(addr).await;
            conn.get(path, &[]).await;
            let response = conn.read_response(limit).await.expect("timeout response");
            assert_eq!(response.body, b"{}");
            start.elapsed().as_secs_f64()
        })
    };
    let short = timed("/short", Duration::from_secs(10));
    let default = timed("/default", Duration::from_secs(60));
    let short = short.await.expect("short hold");
    assert!(
        (4.9..=6.0).contains(&short),
        "Grip-Timeout: 1 held {short:.3} s, expected 5 s"
    );
    let default = default.await.expect("default hold");
    assert!(
        (53.5..=56.5).contains(&default),
        "default hold lasted {default:.3} s, expected 55 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c13_published_http_response_completes_the_hold_once() {
    let (_origin, proxy) = setup(Reply::response_hold("a", 30, "{}")).await;
    let mut conn = start_hold(&proxy, "/").await;
    let start = Instant::now();
    proxy
        .publish_items(&[response_item(
            "a",
            json!({"code": 201, "headers": {"X-A": "1"}, "body": "done"}),
        )])
        .await;
    let left = Duration::from_millis(100).saturating_sub(start.elapsed());
    let response = conn
        .read_response(left)
        .await
        .expect("response within 100 ms");
    assert_eq!(response.head.status_line, "HTTP/1.1 201 Created");
    assert_eq!(response.head.header("x-a"), Some("1"));
    assert_eq!(
        response.head.header("content-type"),
        Some("application/json")
    );
    assert_eq!(response.body, b"done");
    proxy
        .publish_items(&[response_item("a", json!({"code": 200, "body": "again"}))])
        .await;
    let extra = conn.raw_within(Duration::from_millis(500)).await;
    assert!(
        extra.is_empty(),
        "second publish reached the client: {extra:?}"
    );
    // §5.3: the exchange is complete and the connection is reusable.
    conn.get("/", &[]).await;
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[response_item("a", json!({"body": "third"}))])
        .await;
    let response = conn
        .read_response(Duration::from_secs(1))
        .await
        .expect("second exchange on the same connection");
    assert_eq!(response.body, b"third");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c14_items_without_the_hold_format_are_skipped() {
    let origin = Origin::start(|request| match request.path() {
        "/response" => Reply::response_hold("a", 30, "{}"),
        _ => Reply::stream("a", "hello\n"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;

    let mut held = start_hold(&proxy, "/response").await;
    let mut stream = proxy.get("/stream").await;
    stream.read_head(SLOW).await.expect("stream head");
    assert_eq!(
        stream.read_stream(6, SLOW).await.expect("initial"),
        b"hello\n"
    );

    // Only http-stream: the stream gets it, the response hold does not.
    proxy.publish_items(&[stream_item("a", "s")]).await;
    assert_eq!(
        stream
            .read_stream(1, Duration::from_secs(1))
            .await
            .expect("s"),
        b"s"
    );
    let extra = held.raw_within(Duration::from_secs(1)).await;
    assert!(
        extra.is_empty(),
        "response hold got an http-stream item: {extra:?}"
    );

    // Only http-response: the response hold gets it, the stream does not.
    proxy
        .publish_items(&[response_item("a", json!({"body": "r"}))])
        .await;
    let response = held
        .read_response(Duration::from_secs(1))
        .await
        .expect("response");
    assert_eq!(response.body, b"r");
    let extra = stream.raw_within(Duration::from_secs(1)).await;
    assert!(
        extra.is_empty(),
        "stream got an http-response item: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c15_body_patch_applies_to_the_timeout_body() {
    let (_origin, proxy) = setup(Reply::response_hold("a", 30, "{\"n\":1}\n")).await;
    let mut conn = start_hold(&proxy, "/").await;
    proxy
        .publish_items(&[response_item(
            "a",
            json!({"body-patch": [{"op": "replace", "path": "/n", "value": 2}]}),
        )])
        .await;
    let response = conn
        .read_response(Duration::from_secs(1))
        .await
        .expect("response");
    assert_eq!(response.head.status, 200);
    assert_eq!(response.text(), "{\"n\":2}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16_json_instruction_times_out_with_its_response() {
    let instruct = r#"{"hold":{"mode":"response","channels":[{"name":"a"}],"timeout":5},"response":{"code":204,"headers":{"X":"y"}}}"#;
    let reply = Reply::ok()
        .header("Content-Type", "application/grip-instruct")
        .body(instruct);
    let (_origin, proxy) = setup(reply).await;
    let start = Instant::now();
    let mut conn = proxy.get("/").await;
    let response = conn
        .read_response(Duration::from_secs(8))
        .await
        .expect("timeout response");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        (4.9..=6.5).contains(&elapsed),
        "held {elapsed:.3} s, expected about 5 s"
    );
    assert_eq!(response.head.status_line, "HTTP/1.1 204 No Content");
    assert_eq!(response.head.header("x"), Some("y"));
    assert!(response.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_bad_instructions_give_502() {
    let origin = Origin::start(|request| match request.path() {
        "/instruct500" => Reply::new(500)
            .header("Content-Type", "application/grip-instruct")
            .body(r#"{"hold":{"mode":"response","channels":[{"name":"a"}]}}"#),
        "/instruct-array" => Reply::ok()
            .header("Content-Type", "application/grip-instruct")
            .body("[1]"),
        "/badtimeout" => Reply::ok()
            .header("Grip-Hold", "response")
            .header("Grip-Channel", "a")
            .header("Grip-Timeout", "-1"),
        "/badlink" => Reply::stream("a", "").header("Grip-Link", "/n; rel=next"),
        _ => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Hold", "foo")
            .header("Grip-Channel", "a")
            .body("x"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let paths = [
        "/instruct500",
        "/badhold",
        "/instruct-array",
        "/badtimeout",
        "/badlink",
    ];
    for path in paths {
        let response = support::client::request(proxy.listen, "GET", path, &[], b"", SLOW)
            .await
            .expect("response");
        assert_eq!(response.head.status, 502, "{path}");
        assert_eq!(
            response.text(),
            "Error while proxying to origin.\n",
            "{path}"
        );
        assert_eq!(
            response.head.header("content-type"),
            Some("text/plain"),
            "{path}"
        );
    }
}

/// Item 18 for the other response kinds: `Grip-Status` sets a no-hold response's
/// status line (standard phrase when the reason is missing) and a response hold's
/// timeout response (§2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_grip_status_applies_to_plain_and_timeout_responses() {
    let origin = Origin::start(|request| match request.path() {
        "/plain" => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Status", "201")
            .body("made\n"),
        _ => Reply::response_hold("a", 5, "{}").header("Grip-Status", "299 Still Nothing"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let plain = support::client::request(proxy.listen, "GET", "/plain", &[], b"", SLOW)
        .await
        .expect("plain response");
    assert_eq!(plain.head.status_line, "HTTP/1.1 201 Created");
    assert!(plain.head.grip_headers().is_empty(), "{:?}", plain.head);
    assert_eq!(plain.body, b"made\n");
    let held = support::client::request(proxy.listen, "GET", "/held", &[], b"", SLOW)
        .await
        .expect("timeout response");
    assert_eq!(held.head.status_line, "HTTP/1.1 299 Still Nothing");
    assert_eq!(held.body, b"{}");
}
