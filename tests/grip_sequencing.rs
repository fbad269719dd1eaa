//! Conformance items of spec §12 about sequencing, de-duplication and recovery
//! (§3.7): items 23–30 and 51.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};
use tokio::time::Instant;

/// An item with both HTTP formats carrying `content`, and optional ids.
fn item(channel: &str, id: Option<&str>, prev: Option<&str>, content: &str) -> serde_json::Value {
    let mut item = json!({
        "channel": channel,
        "formats": {
            "http-stream": {"content": content},
            "http-response": {"body": content},
        }
    });
    if let Some(id) = id {
        item["id"] = json!(id);
    }
    if let Some(prev) = prev {
        item["prev-id"] = json!(prev);
    }
    item
}

/// Opens a stream at `target` and reads its head and `initial` body.
async fn open_stream(proxy: &Proxy, target: &str, initial: &[u8]) -> HttpConn {
    let mut conn = proxy.get(target).await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200, "{head:?}");
    let body = conn
        .read_stream(initial.len(), SLOW)
        .await
        .expect("initial body");
    assert_eq!(body, initial);
    conn
}

/// Sends a request and waits until its one-channel response hold is subscribed.
async fn start_hold(proxy: &Proxy, method: &str, target: &str, body: &[u8]) -> HttpConn {
    let before = proxy.metric("fjord_proxy_subscriptions").await as usize;
    let mut conn = proxy.connect().await;
    conn.send(method, target, &[], body).await;
    proxy.wait_subscriptions(before + 1).await;
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c23_response_hold_prev_id_mismatch_retries_with_grip_last() {
    let origin = Origin::start(|request| {
        if request.header("grip-last").is_some() {
            Reply::ok()
                .header("Content-Type", "text/plain")
                .body("recovered")
        } else {
            Reply::response_hold("a; prev-id=1", 30, "{}")
        }
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = start_hold(&proxy, "POST", "/poll?x=1", b"req-body").await;
    let start = Instant::now();
    proxy
        .publish_items(&[item("a", Some("3"), Some("2"), "item")])
        .await;
    let retry = origin
        .wait(Duration::from_millis(500), |r| {
            r.header("grip-last").is_some()
        })
        .await
        .expect("retry within 500 ms");
    assert!(retry.at.duration_since(start) <= Duration::from_millis(500));
    assert_eq!(retry.method, "POST");
    assert_eq!(retry.target, "/poll?x=1");
    assert_eq!(retry.body, b"req-body");
    assert_eq!(retry.header_all("grip-last"), ["a; last-id=1"]);
    let response = conn.read_response(SLOW).await.expect("response");
    assert_eq!(
        response.body, b"recovered",
        "client must not get the mismatched item"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c24_response_hold_prev_id_match_is_delivered() {
    let origin = Origin::start(|_| Reply::response_hold("a; prev-id=1", 30, "{}")).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = start_hold(&proxy, "GET", "/", b"").await;
    proxy
        .publish_items(&[item("a", Some("2"), Some("1"), "two")])
        .await;
    let response = conn
        .read_response(Duration::from_secs(1))
        .await
        .expect("delivered");
    assert_eq!(response.body, b"two");
    assert_eq!(origin.requests().len(), 1, "no retry expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c25_new_hold_behind_known_last_id_retries_at_once() {
    let origin = Origin::start(
        |request| match (request.path(), request.header("grip-last")) {
            ("/stream", _) => Reply::stream("a", "s\n"),
            (_, Some(_)) => Reply::ok().body("caught up"),
            _ => Reply::response_hold("a; prev-id=4", 30, "{}"),
        },
    )
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut stream = open_stream(&proxy, "/stream", b"s\n").await;
    proxy
        .publish_items(&[item("a", Some("5"), None, "5")])
        .await;
    assert_eq!(
        stream
            .read_stream(1, Duration::from_secs(1))
            .await
            .expect("5"),
        b"5"
    );
    let start = Instant::now();
    let mut conn = proxy.get("/poll").await;
    let retry = origin
        .wait(Duration::from_secs(1), |r| {
            r.path() == "/poll" && r.header("grip-last").is_some()
        })
        .await
        .expect("immediate retry");
    let first = origin.requests_to("/poll")[0].at;
    assert!(
        retry.at.duration_since(first) < Duration::from_millis(300),
        "retry {:?} after the first request",
        retry.at.duration_since(first)
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(retry.header_all("grip-last"), ["a; last-id=4"]);
    let response = conn.read_response(SLOW).await.expect("response");
    assert_eq!(response.body, b"caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c26_stream_prev_id_without_next_link_ends() {
    let origin = Origin::start(|_| Reply::stream("a; prev-id=1", "x\n")).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let start = Instant::now();
    let mut conn = proxy.get("/").await;
    conn.read_head(SLOW).await.expect("head");
    let left = Duration::from_secs(1).saturating_sub(start.elapsed());
    conn.read_to_last_chunk(left)
        .await
        .expect("stream ends within 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c27_stream_prev_id_mismatch_fetches_the_next_link() {
    let origin = Origin::start(|request| match request.path() {
        "/r" => Reply::ok()
            .header("Content-Type", "text/plain")
            .body("from-link\n"),
        _ => Reply::stream("a; prev-id=1", "start\n").header("Grip-Link", "</r?after=1>; rel=next"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = open_stream(&proxy, "/", b"start\n").await;
    proxy
        .publish_items(&[item("a", Some("3"), Some("2"), "ITEM")])
        .await;
    let fetch = origin
        .wait_path("/r", 1, Duration::from_secs(1))
        .await
        .expect("link fetch")[0]
        .clone();
    assert_eq!(fetch.method, "GET");
    assert_eq!(fetch.target, "/r?after=1");
    assert_eq!(fetch.header_all("grip-last"), ["a; last-id=1"]);
    let rest = conn
        .read_to_last_chunk(SLOW)
        .await
        .expect("rest of the stream");
    assert_eq!(rest, b"from-link\n", "item content must not be written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c28_out_of_order_items_are_reordered() {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = open_stream(&proxy, "/", b"").await;
    proxy
        .publish_items(&[item("a", Some("1"), None, "1")])
        .await;
    assert_eq!(
        conn.read_stream(1, Duration::from_secs(1))
            .await
            .expect("1"),
        b"1"
    );
    proxy
        .publish_items(&[item("a", Some("3"), Some("2"), "3")])
        .await;
    let early = conn.raw_within(Duration::from_millis(300)).await;
    assert!(early.is_empty(), "3 delivered before 2: {early:?}");
    proxy
        .publish_items(&[item("a", Some("2"), Some("1"), "2")])
        .await;
    assert_eq!(
        conn.read_stream(2, Duration::from_secs(1))
            .await
            .expect("2 and 3"),
        b"23"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c29_gap_released_after_message_wait_and_no_seq_bypasses() {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let mut conn = open_stream(&proxy, "/", b"").await;
    proxy
        .publish_items(&[item("a", Some("1"), None, "1")])
        .await;
    assert_eq!(
        conn.read_stream(1, Duration::from_secs(1))
            .await
            .expect("1"),
        b"1"
    );

    let start = Instant::now();
    proxy
        .publish_items(&[item("a", Some("9"), Some("8"), "9")])
        .await;
    let data = conn
        .read_stream(1, Duration::from_millis(7000))
        .await
        .expect("9 released");
    let waited = start.elapsed().as_secs_f64();
    assert_eq!(data, b"9");
    assert!(
        (5.0..=6.5).contains(&waited),
        "released after {waited:.3} s"
    );

    let mut no_seq = item("a", Some("11"), Some("10"), "N");
    no_seq["no-seq"] = json!(true);
    let start = Instant::now();
    proxy.publish_items(&[no_seq]).await;
    let left = Duration::from_millis(100).saturating_sub(start.elapsed());
    assert_eq!(
        conn.read_stream(1, left)
            .await
            .expect("no-seq within 100 ms"),
        b"N"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c30_duplicate_ids_are_dropped_within_the_ttl() {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .set("id_cache_ttl", "60")
        .start()
        .await;
    let mut conn = open_stream(&proxy, "/", b"").await;
    proxy
        .publish_items(&[item("a", Some("d1"), None, "D")])
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy
        .publish_items(&[item("a", Some("d1"), None, "D")])
        .await;
    let data = conn.raw_within(Duration::from_secs(1)).await;
    // One chunk: "1\r\nD\r\n".
    assert_eq!(data, b"1\r\nD\r\n", "expected exactly one delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c51_first_subscription_refresh_retries_once_after_one_second() {
    let hold = |_: &support::Recorded| Reply::response_hold("a", 30, "{}");
    // Enabled: the identical request comes again 1.0–1.5 s after the first, once.
    let origin = Origin::start(hold).await;
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .set("update_on_first_subscription", "true")
        .start()
        .await;
    let _conn = proxy.get("/poll?v=1").await;
    let both = origin
        .wait_n(2, Duration::from_secs(3), |_| true)
        .await
        .expect("refresh request");
    let gap = both[1].at.duration_since(both[0].at).as_secs_f64();
    assert!((1.0..=1.5).contains(&gap), "refresh after {gap:.3} s");
    assert_eq!(both[1].method, both[0].method);
    assert_eq!(both[1].target, both[0].target);
    assert_eq!(both[1].body, both[0].body);
    let same_headers = |r: &support::Recorded| {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("grip-sig"))
            .cloned()
            .collect();
        h.sort();
        h
    };
    assert_eq!(same_headers(&both[1]), same_headers(&both[0]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let count = origin.requests().len();
    assert_eq!(
        count, 2,
        "the refresh must happen once, not on every re-hold"
    );
    drop(proxy);

    // Disabled: no second request.
    let origin = Origin::start(hold).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let _conn = proxy.get("/poll?v=1").await;
    origin
        .wait_n(1, SLOW, |_| true)
        .await
        .expect("first request");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(origin.requests().len(), 1, "no refresh when disabled");
}

/// The stream side of item 51: a stream hold with a next link fetches it once, 1 s
/// after the first subscription, and not again when the link's answer re-subscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c51_first_subscription_refresh_fetches_a_stream_next_link_once() {
    let origin = Origin::start(|request| {
        let body = if request.path() == "/next" {
            "n\n"
        } else {
            "s\n"
        };
        Reply::stream("a", body).header("Grip-Link", "</next>; rel=next")
    })
    .await;
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .set("update_on_first_subscription", "true")
        .start()
        .await;
    let mut conn = open_stream(&proxy, "/s", b"s\n").await;
    let start = origin.requests_to("/s")[0].at;
    let fetch = origin
        .wait_path("/next", 1, Duration::from_secs(3))
        .await
        .expect("refresh fetch")[0]
        .clone();
    let after = fetch.at.duration_since(start).as_secs_f64();
    assert!(
        (1.0..=1.5).contains(&after),
        "next link fetched {after:.3} s after the hold"
    );
    assert_eq!(conn.read_stream(2, SLOW).await.expect("link body"), b"n\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        origin.requests_to("/next").len(),
        1,
        "the refresh must happen once"
    );
}
