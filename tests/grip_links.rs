//! Conformance items of spec §12 about next and gone links (§6.4, §6.5): items 31–36.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Origin, ProxyBuilder, Reply, SLOW};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c31_next_link_without_hold_appends_and_ends() {
    let origin = Origin::start(|request| match request.path() {
        "/second" => Reply::ok()
            .header("Content-Type", "application/octet-stream")
            .header("X-Second", "2")
            .body("world\n"),
        _ => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("X-First", "1")
            .header("Grip-Link", "</second>; rel=next")
            .body("hello\n"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = proxy.get("/first").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(head.header("x-first"), Some("1"));
    assert!(!head.has("x-second"), "{head:?}");
    assert!(head.grip_headers().is_empty(), "{head:?}");
    assert!(head.is_chunked(), "{head:?}");
    let body = conn
        .read_to_last_chunk(SLOW)
        .await
        .expect("body ends with the zero-length chunk");
    assert_eq!(body, b"hello\nworld\n");
    // One response only: nothing else arrives.
    let extra = conn.raw_within(Duration::from_millis(300)).await;
    assert!(extra.is_empty(), "{extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c32_next_link_is_refetched_after_its_timeout() {
    let origin =
        Origin::start(|_| Reply::stream("a", "").header("Grip-Link", "</n>; rel=next; timeout=3"))
            .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = proxy.get("/start").await;
    conn.read_head(SLOW).await.expect("head");
    let start = origin.requests_to("/start")[0].at;
    let fetch = origin
        .wait_path("/n", 1, Duration::from_secs(6))
        .await
        .expect("link fetch")[0]
        .clone();
    let after = fetch.at.duration_since(start).as_secs_f64();
    assert!(
        (3.0..=4.0).contains(&after),
        "link fetched {after:.3} s after the hold"
    );
    assert_eq!(fetch.method, "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c33_hint_fetches_the_link_or_retries_the_request() {
    let origin = Origin::start(|request| match request.path() {
        "/poll" => Reply::response_hold("b", 30, "{}"),
        "/link" => Reply::stream("a", "linked\n").header("Grip-Link", "</link>; rel=next"),
        _ => Reply::stream("a", "").header("Grip-Link", "</link>; rel=next"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;

    // Stream hold with a next link: http-stream hint → link GET within 200 ms.
    let mut conn = proxy.get("/stream").await;
    conn.read_head(SLOW).await.expect("head");
    let start = Instant::now();
    proxy
        .publish_items(&[json!({"channel": "a", "formats": {"http-stream": {"action": "hint"}}})])
        .await;
    let fetch = origin
        .wait_path("/link", 1, Duration::from_millis(200))
        .await
        .expect("link within 200 ms");
    assert!(fetch[0].at.duration_since(start) <= Duration::from_millis(200));
    assert_eq!(
        conn.read_stream(7, SLOW).await.expect("link body"),
        b"linked\n"
    );

    // Response hold: http-response hint → the original request again within 200 ms.
    let mut poll = proxy.get("/poll").await;
    proxy.wait_subscriptions(2).await;
    let start = Instant::now();
    proxy
        .publish_items(&[json!({"channel": "b", "formats": {"http-response": {"action": "hint"}}})])
        .await;
    let retries = origin
        .wait_path("/poll", 2, Duration::from_millis(200))
        .await
        .expect("retry within 200 ms");
    assert!(retries[1].at.duration_since(start) <= Duration::from_millis(200));
    let early = poll.raw_within(Duration::from_millis(200)).await;
    assert!(
        early.is_empty(),
        "hint must not answer the client: {early:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c34_relative_link_resolves_against_the_request_url() {
    let origin = Origin::start(|request| match request.path() {
        "/a/b" => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Link", "<next?x=1>; rel=next")
            .body("1\n"),
        "/a/next" => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Link", "<../c/last>; rel=next")
            .body("2\n"),
        _ => Reply::ok().header("Content-Type", "text/plain").body("3\n"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = proxy.get("/a/b").await;
    conn.read_head(SLOW).await.expect("head");
    let body = conn.read_to_last_chunk(SLOW).await.expect("whole body");
    assert_eq!(body, b"1\n2\n3\n");
    let targets: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/a/b", "/a/next?x=1", "/c/last"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c35_route_rewrite_is_not_applied_to_links() {
    let origin = Origin::start(|request| match request.path() {
        "/t" => Reply::ok().header("Content-Type", "text/plain").body("t\n"),
        _ => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Link", "</t>; rel=next")
            .body("s\n"),
    })
    .await;
    let routes = format!("*,path_beg=/s,replace_beg=/x/y {}\n", origin.addr);
    let proxy = ProxyBuilder::new().routes_file(&routes).start().await;
    let mut conn = proxy.get("/s/z").await;
    conn.read_head(SLOW).await.expect("head");
    let body = conn.read_to_last_chunk(SLOW).await.expect("body");
    assert_eq!(body, b"s\nt\n");
    let targets: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/x/y/z", "/t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c36_gone_link_is_posted_when_the_client_disconnects() {
    let origin = Origin::start(|request| match request.path() {
        "/gone/7" => Reply::new(204),
        _ => Reply::stream("a", "hi\n").header("Grip-Link", "</gone/7>; rel=gone"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = proxy.get("/").await;
    conn.read_head(SLOW).await.expect("head");
    assert_eq!(conn.read_stream(3, SLOW).await.expect("initial"), b"hi\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        origin.requests_to("/gone/7").is_empty(),
        "gone link posted too early"
    );
    let start = Instant::now();
    conn.close().await;
    let gone = origin
        .wait_path("/gone/7", 1, Duration::from_secs(1))
        .await
        .expect("gone link within 1 s")[0]
        .clone();
    assert!(gone.at.duration_since(start) <= Duration::from_secs(1));
    assert_eq!(gone.method, "POST");
    assert!(gone.body.is_empty(), "{:?}", gone.body);
    assert!(
        gone.header("grip-sig").is_some(),
        "gone link requests are signed like others"
    );
}

/// Gone links also apply to response holds: the client connection ending for any
/// reason (§6.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c36_gone_link_is_posted_when_a_long_poll_client_disconnects() {
    let origin = Origin::start(|request| match request.path() {
        "/gone/8" => Reply::new(204),
        _ => Reply::response_hold("a", 30, "{}").header("Grip-Link", "</gone/8>; rel=gone"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let conn = proxy.get("/").await;
    proxy.wait_subscriptions(1).await;
    conn.close().await;
    let gone = origin
        .wait_path("/gone/8", 1, Duration::from_secs(1))
        .await
        .expect("gone link within 1 s");
    assert_eq!(gone[0].method, "POST");
    assert!(gone[0].body.is_empty());
}
