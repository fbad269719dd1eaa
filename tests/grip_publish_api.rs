//! Conformance items of spec §12 about the HTTP publish API (§4.1) and size limits:
//! items 37–39 and 45.

mod support;

use std::time::Duration;

use support::{client, stream_item, HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};

async fn setup() -> (Origin, Proxy) {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    (origin, proxy)
}

async fn open_stream(proxy: &Proxy) -> HttpConn {
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200);
    conn
}

const ONE_ITEM: &str = r#"{"items":[{"channel":"a","formats":{"http-stream":{"content":"z"}}}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c37_publish_endpoint_paths_methods_errors_and_json_answer() {
    let (_origin, proxy) = setup().await;
    let mut conn = open_stream(&proxy).await;

    let no_slash = proxy
        .control_request("POST", "/publish", &[], ONE_ITEM.as_bytes())
        .await;
    assert_eq!(no_slash.head.status, 200);
    assert_eq!(no_slash.text(), "Published\n");
    assert_eq!(
        conn.read_stream(1, Duration::from_secs(1))
            .await
            .expect("item"),
        b"z"
    );

    let get = proxy.control_request("GET", "/publish", &[], b"").await;
    assert_eq!(get.head.status, 405);
    assert_eq!(get.head.header("allow"), Some("POST"));

    let not_json = proxy
        .control_request("POST", "/publish/", &[], b"not json")
        .await;
    assert_eq!(not_json.head.status, 400);
    assert_eq!(not_json.text(), "Body is not valid JSON.\n");

    let empty = proxy.control_request("POST", "/publish/", &[], b"{}").await;
    assert_eq!(empty.head.status, 400);
    assert!(empty.text().contains("items"), "{:?}", empty.text());

    let json = proxy
        .control_request(
            "POST",
            "/publish/",
            &[("Accept", "application/json")],
            ONE_ITEM.as_bytes(),
        )
        .await;
    assert_eq!(json.head.status, 200);
    assert_eq!(json.head.header("content-type"), Some("application/json"));
    assert_eq!(json.text(), "{\"message\":\"Published\"}\n");
    assert_eq!(
        conn.read_stream(1, Duration::from_secs(1))
            .await
            .expect("item"),
        b"z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c38_one_invalid_item_rejects_the_whole_publish() {
    let (_origin, proxy) = setup().await;
    let mut conn = open_stream(&proxy).await;
    let body = r#"{"items":[{"channel":"a","formats":{"http-stream":{"content":"valid"}}},{"channel":"a"}]}"#;
    let response = proxy.publish(body).await;
    assert_eq!(response.head.status, 400, "{}", response.text());
    let extra = conn.raw_within(Duration::from_secs(1)).await;
    assert!(
        extra.is_empty(),
        "valid item of a rejected publish delivered: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c39_authorization_header_is_ignored() {
    let (_origin, proxy) = setup().await;
    let mut conn = open_stream(&proxy).await;
    let response = proxy
        .control_request(
            "POST",
            "/publish/",
            &[("Authorization", "Bearer anything")],
            ONE_ITEM.as_bytes(),
        )
        .await;
    assert_eq!(response.head.status, 200);
    assert_eq!(response.text(), "Published\n");
    assert_eq!(
        conn.read_stream(1, Duration::from_secs(1))
            .await
            .expect("item"),
        b"z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c45_oversized_publish_and_response_hold_bodies_are_refused() {
    let origin = Origin::start(|request| match request.path() {
        "/big" => Reply::response_hold("a", 30, &"x".repeat(100_001)),
        "/limit" => Reply::response_hold("a", 5, &"y".repeat(100_000)),
        _ => Reply::stream("a", ""),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = open_stream(&proxy).await;

    // Control API: a body over 1,000,000 bytes.
    let content = "q".repeat(1_000_000);
    let body = support::items(&[stream_item("a", &content)]);
    assert!(body.len() > 1_000_000);
    let response = proxy.publish(&body).await;
    assert_eq!(response.head.status, 400);
    assert_eq!(response.text(), "Request body too large.\n");
    let extra = conn.raw_within(Duration::from_millis(500)).await;
    assert!(extra.is_empty(), "oversized publish delivered");

    // Response hold whose instruction body exceeds 100,000 bytes: 502.
    let response = client::request(proxy.listen, "GET", "/big", &[], b"", SLOW)
        .await
        .expect("502");
    assert_eq!(response.head.status, 502);
    assert_eq!(response.text(), "Error while proxying to origin.\n");

    // Exactly 100,000 bytes is still a hold (answered on timeout).
    let response = client::request(proxy.listen, "GET", "/limit", &[], b"", SLOW)
        .await
        .expect("timeout response");
    assert_eq!(response.head.status, 200);
    assert_eq!(response.body.len(), 100_000);
}

/// §3.6 bounds what a *slow* client may have queued; a client that reads must get
/// every item of a large publish even though the items arrive faster than its
/// connection task is scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_of_many_items_for_one_channel_reaches_a_reading_client_in_full() {
    const ITEMS: usize = 300;
    let (_origin, proxy) = setup().await;
    let mut conn = open_stream(&proxy).await;
    let batch: Vec<_> = (0..ITEMS)
        .map(|n| stream_item("a", &support::numbered(n)))
        .collect();
    let response = proxy.publish(&support::items(&batch)).await;
    assert_eq!(response.head.status, 200);
    support::expect_numbered(&mut conn, ITEMS).await;
}
