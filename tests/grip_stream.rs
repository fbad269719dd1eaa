//! Conformance items of spec §12 about stream holds (§2.3, §3.3, §6): items 1–10, 18
//! and 52.

mod support;

use std::time::Duration;

use support::{items, publish_to, stream_item, HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};
use tokio::time::Instant;

/// An origin answering every request with `reply`, and a proxy in front of it.
async fn setup(reply: Reply) -> (Origin, Proxy) {
    let origin = Origin::start(move |_| reply.clone()).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    (origin, proxy)
}

/// Opens a stream hold at `/` and reads the head and the `initial` body.
async fn open_stream(proxy: &Proxy, initial: &[u8]) -> (HttpConn, support::Head) {
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("response head");
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.is_chunked(), "stream hold must be chunked: {head:?}");
    let body = conn
        .read_stream(initial.len(), SLOW)
        .await
        .expect("initial body");
    assert_eq!(body, initial);
    (conn, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c01_stream_hold_sends_initial_body_chunked_and_stays_open() {
    let reply = Reply::ok()
        .header("Content-Type", "text/plain")
        .header("Content-Length", "6")
        .header("Grip-Hold", "stream")
        .header("Grip-Channel", "a")
        .body("hello\n");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert!(!head.has("content-length"), "{head:?}");
    assert!(head.grip_headers().is_empty(), "{head:?}");
    assert!(head.is_chunked(), "{head:?}");
    let first = conn.read_chunk(SLOW).await.expect("first chunk");
    assert_eq!(first, b"hello\n");
    // Still open and quiet after 5 s.
    let extra = conn.raw_within(Duration::from_secs(5)).await;
    assert!(extra.is_empty(), "unexpected bytes {extra:?}");
    proxy.publish_items(&[stream_item("a", "still-open")]).await;
    let data = conn
        .read_stream(10, Duration::from_secs(1))
        .await
        .expect("publish after 5 s");
    assert_eq!(data, b"still-open");
}

/// The `http1.0` side of §2.3: an HTTP/1.0 client gets a close-delimited body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c01_http10_client_gets_close_delimited_stream() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let mut conn = proxy.connect().await;
    conn.send_version("GET", "/", "HTTP/1.0", &[], b"").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200);
    assert!(
        !head.is_chunked(),
        "HTTP/1.0 must not get chunked: {head:?}"
    );
    assert!(!head.has("content-length"), "{head:?}");
    let initial = conn.raw_within(Duration::from_millis(500)).await;
    assert_eq!(initial, b"hello\n");
    proxy.publish_items(&[stream_item("a", "x")]).await;
    let data = conn.raw_within(Duration::from_millis(300)).await;
    assert_eq!(data, b"x");
    proxy
        .publish_items(&[
            serde_json::json!({"channel": "a", "formats": {"http-stream": {"action": "close"}}}),
        ])
        .await;
    assert!(
        conn.closed_within(Duration::from_secs(1)).await,
        "close must end the body by closing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c02_publish_http_stream_content_reaches_client_within_100ms() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let (mut conn, _) = open_stream(&proxy, b"hello\n").await;
    let start = Instant::now();
    let response = proxy
        .publish(r#"{"items":[{"channel":"a","formats":{"http-stream":{"content":"x"}}}]}"#)
        .await;
    assert_eq!(response.head.status, 200);
    assert_eq!(response.text(), "Published\n");
    let left = Duration::from_millis(100).saturating_sub(start.elapsed());
    let data = conn.read_stream(1, left).await.expect("x within 100 ms");
    assert_eq!(data, b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c03_content_bin_is_base64_decoded() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let (mut conn, _) = open_stream(&proxy, b"hello\n").await;
    proxy
        .publish_ok(
            r#"{"items":[{"channel":"a","formats":{"http-stream":{"content-bin":"AAEC"}}}]}"#,
        )
        .await;
    let data = conn
        .read_stream(3, Duration::from_secs(1))
        .await
        .expect("3 bytes");
    assert_eq!(data, [0u8, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c04_publish_to_other_channel_is_not_delivered() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let (mut conn, _) = open_stream(&proxy, b"hello\n").await;
    proxy.publish_items(&[stream_item("b", "nope")]).await;
    let extra = conn.raw_within(Duration::from_secs(1)).await;
    assert!(extra.is_empty(), "client on a got {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c05_channel_list_and_repeated_headers_both_subscribe() {
    let origin = Origin::start(|request| match request.path() {
        "/list" => Reply::stream("a, b", ""),
        _ => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Hold", "stream")
            .header("Grip-Channel", "a")
            .header("Grip-Channel", "b"),
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    for path in ["/list", "/repeated"] {
        let mut conn = proxy.get(path).await;
        let head = conn.read_head(SLOW).await.expect("head");
        assert_eq!(head.status, 200);
        proxy.publish_items(&[stream_item("a", "A")]).await;
        let data = conn
            .read_stream(1, Duration::from_secs(1))
            .await
            .expect("item on a");
        assert_eq!(data, b"A", "{path}");
        proxy.publish_items(&[stream_item("b", "B")]).await;
        let data = conn
            .read_stream(1, Duration::from_secs(1))
            .await
            .expect("item on b");
        assert_eq!(data, b"B", "{path}");
        conn.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c06_close_action_ends_the_response_within_100ms() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let (mut conn, _) = open_stream(&proxy, b"hello\n").await;
    let start = Instant::now();
    proxy
        .publish_items(&[
            serde_json::json!({"channel": "a", "formats": {"http-stream": {"action": "close"}}}),
        ])
        .await;
    let left = Duration::from_millis(100).saturating_sub(start.elapsed());
    let last = conn
        .read_chunk(left)
        .await
        .expect("terminating chunk within 100 ms");
    assert!(
        last.is_empty(),
        "expected the zero-length chunk, got {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_item_without_formats_wrapper_is_delivered() {
    let (_origin, proxy) = setup(Reply::stream("a", "hello\n")).await;
    let (mut conn, _) = open_stream(&proxy, b"hello\n").await;
    proxy
        .publish_ok(r#"{"items":[{"channel":"a","http-stream":{"content":"y"}}]}"#)
        .await;
    let data = conn
        .read_stream(1, Duration::from_secs(1))
        .await
        .expect("y");
    assert_eq!(data, b"y");
}

/// Reads chunks for `window`, returning each with its arrival time since `start`.
async fn chunks_for(
    conn: &mut HttpConn,
    start: Instant,
    window: Duration,
) -> Vec<(Duration, Vec<u8>)> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        match conn.read_chunk(left).await {
            Ok(chunk) if chunk.is_empty() => panic!("stream ended early: {out:?}"),
            Ok(chunk) => out.push((start.elapsed(), chunk)),
            Err(support::ReadError::Timeout) => return out,
            Err(e) => panic!("stream broke: {e:?} after {out:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c08_cstring_keep_alive_fires_every_two_seconds() {
    let reply = Reply::stream("a", "").header("Grip-Keep-Alive", "\\n; format=cstring; timeout=2");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = proxy.get("/").await;
    conn.read_head(SLOW).await.expect("head");
    let start = Instant::now();
    let chunks = chunks_for(&mut conn, start, Duration::from_millis(6500)).await;
    let times: Vec<f64> = chunks
        .iter()
        .map(|(at, data)| {
            assert_eq!(data, b"\n", "keep-alive bytes");
            at.as_secs_f64()
        })
        .collect();
    assert!(
        times.len() >= 3,
        "expected 3 keep-alives in 6.5 s, got {times:?}"
    );
    for (k, at) in times.iter().take(3).enumerate() {
        let window = (2.0 * (k as f64 + 1.0)) - 1.0..=(2.0 * (k as f64 + 1.0)) + 0.2;
        assert!(
            window.contains(at),
            "keep-alive #{} at {at:.3} s, outside {window:?}",
            k + 1
        );
    }
}

/// Publishes `p` on `a` every 500 ms for 6 s from a separate task.
fn publish_every_half_second(control: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..12 {
            let response = publish_to(control, &items(&[stream_item("a", "p")])).await;
            assert_eq!(response.head.status, 200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c09_idle_keep_alive_is_reset_by_traffic_interval_is_not() {
    let origin = Origin::start(|request| {
        let value = if request.path() == "/interval" {
            "\\n; format=cstring; timeout=2; mode=interval"
        } else {
            "\\n; format=cstring; timeout=2"
        };
        Reply::stream("a", "").header("Grip-Keep-Alive", value)
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;

    // Idle mode: no keep-alive while publishes arrive every 0.5 s.
    let mut conn = proxy.get("/idle").await;
    conn.read_head(SLOW).await.expect("head");
    let start = Instant::now();
    let publisher = publish_every_half_second(proxy.control);
    let chunks = chunks_for(&mut conn, start, Duration::from_secs(6)).await;
    publisher.await.expect("publisher");
    let keep_alives: Vec<_> = chunks.iter().filter(|(_, d)| d.contains(&b'\n')).collect();
    assert!(
        keep_alives.is_empty(),
        "idle keep-alive fired during traffic: {chunks:?}"
    );
    assert!(chunks.len() >= 10, "publishes missing: {chunks:?}");
    conn.close().await;

    // Interval mode: keep-alives keep coming about every 2 s.
    let mut conn = proxy.get("/interval").await;
    conn.read_head(SLOW).await.expect("head");
    let start = Instant::now();
    let publisher = publish_every_half_second(proxy.control);
    let chunks = chunks_for(&mut conn, start, Duration::from_secs(6)).await;
    publisher.await.expect("publisher");
    let times: Vec<f64> = chunks
        .iter()
        .filter(|(_, d)| d == b"\n")
        .map(|(at, _)| at.as_secs_f64())
        .collect();
    assert!(times.len() >= 2, "interval keep-alives missing: {chunks:?}");
    let mut previous = 0.0;
    for at in &times {
        let gap = at - previous;
        assert!(
            (1.0..=2.3).contains(&gap),
            "keep-alive gap {gap:.3} s in {times:?}"
        );
        previous = *at;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c10_base64_keep_alive_sends_decoded_bytes() {
    let reply = Reply::stream("a", "").header("Grip-Keep-Alive", "Og0K; format=base64; timeout=2");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = proxy.get("/").await;
    conn.read_head(SLOW).await.expect("head");
    let data = conn
        .read_stream(3, Duration::from_millis(2500))
        .await
        .expect("keep-alive");
    assert_eq!(data, b":\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_grip_status_sets_code_and_reason_of_a_stream() {
    let reply = Reply::stream("a", "hello\n").header("Grip-Status", "404 Nope");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status_line, "HTTP/1.1 404 Nope");
    let body = conn.read_stream(6, SLOW).await.expect("body");
    assert_eq!(body, b"hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c52_sse_events_arrive_byte_exact_and_last_event_id_is_forwarded() {
    let reply = Reply::ok()
        .header("Content-Type", "text/event-stream")
        .header("Grip-Hold", "stream")
        .header("Grip-Channel", "a")
        .body(":ok\n\n");
    let (origin, proxy) = setup(reply).await;
    let (mut conn, head) = open_stream(&proxy, b":ok\n\n").await;
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let event = "event: m\ndata: 1\n\n";
    for n in 0..2 {
        if n == 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = Instant::now();
        proxy.publish_items(&[stream_item("a", event)]).await;
        let left = Duration::from_millis(50).saturating_sub(start.elapsed());
        let data = conn
            .read_stream(event.len(), left)
            .await
            .unwrap_or_else(|e| panic!("event {} not within 50 ms: {e:?}", n + 1));
        assert_eq!(data, event.as_bytes());
    }
    // Reconnect with Last-Event-ID: the origin sees it unchanged.
    conn.close().await;
    let mut conn = proxy.connect().await;
    conn.get("/", &[("Last-Event-ID", "a:1 x")]).await;
    conn.read_head(SLOW).await.expect("head");
    let seen = origin
        .wait(SLOW, |r| r.header("last-event-id").is_some())
        .await
        .expect("origin got Last-Event-ID");
    assert_eq!(seen.header("last-event-id"), Some("a:1 x"));
}
