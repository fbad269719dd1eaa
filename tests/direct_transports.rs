//! Direct mode transports through a real `fjord proxy`: long-poll with its cursor, raw
//! streaming, and what a reader too slow for its queue gets under each overflow policy.

mod support;

use std::time::Duration;

use support::direct::{kafka_item, order_data, parse_sse};
use support::{HttpConn, Proxy, ProxyBuilder, SLOW};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn route(extra: &str) -> String {
    format!(
        "[[proxy.route]]\npath = \"/orders/{{id}}\"\nchannel = \"orders.{{id}}\"\nauth = \"public\"\n{extra}\n"
    )
}

async fn proxy(extra: &str) -> Proxy {
    ProxyBuilder::new().config(&route(extra)).start().await
}

async fn poll(proxy: &Proxy, target: &str) -> serde_json::Value {
    let mut conn = proxy.connect().await;
    conn.get(target, &[]).await;
    let response = conn
        .read_response(Duration::from_secs(20))
        .await
        .expect("answer");
    assert_eq!(response.head.status, 200, "{}", response.text());
    assert_eq!(
        response.head.header("content-type"),
        Some("application/json")
    );
    serde_json::from_slice(&response.body).expect("JSON")
}

fn data_of(answer: &serde_json::Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"].as_str().expect("data").to_owned())
        .collect()
}

#[tokio::test]
async fn long_poll_walks_the_stream_with_its_cursor_and_sees_what_sse_sees() {
    let proxy = proxy("poll_timeout = 2").await;
    let mut sse = proxy.get("/orders/1").await;
    sse.read_head(SLOW).await.expect("head");
    proxy.wait_subscriptions(1).await;

    // Nothing yet: the poll holds, then answers empty with a cursor to continue from.
    let empty = poll(&proxy, "/orders/1?mode=poll").await;
    assert_eq!(data_of(&empty), Vec::<String>::new());
    let mut cursor = empty["cursor"].as_str().expect("cursor").to_owned();

    let mut seen = Vec::new();
    let mut offset = 0;
    for round in 0..3 {
        // Published between polls: the next poll answers at once with all of it.
        let batch: Vec<_> = (0..3)
            .map(|n| {
                offset += 1;
                kafka_item("orders.1", n % 2, offset, "1", &format!("r{round}n{n}"))
            })
            .collect();
        proxy.publish_items(&batch).await;
        let answer = poll(&proxy, &format!("/orders/1?mode=poll&since={cursor}")).await;
        let got = data_of(&answer);
        assert!(!got.is_empty(), "round {round}");
        seen.extend(got);
        cursor = answer["cursor"].as_str().expect("cursor").to_owned();
        // Whatever the first answer did not include comes with an immediate next one.
        while seen.len() < 3 * (round + 1) {
            let answer = poll(&proxy, &format!("/orders/1?mode=poll&since={cursor}")).await;
            seen.extend(data_of(&answer));
            cursor = answer["cursor"].as_str().expect("cursor").to_owned();
        }
    }
    let expected: Vec<String> = (0..3)
        .flat_map(|r| (0..3).map(move |n| format!("r{r}n{n}")))
        .collect();
    assert_eq!(seen, expected);

    let streamed = sse
        .read_chunks_until(SLOW, |d| order_data(&String::from_utf8_lossy(d)).len() >= 9)
        .await
        .expect("SSE");
    assert_eq!(order_data(&String::from_utf8_lossy(&streamed)), expected);

    // A poll while nothing is new waits for the next event and returns just that.
    let waiting = {
        let proxy_listen = proxy.listen;
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let mut conn = HttpConn::connect(proxy_listen).await;
            conn.get(&format!("/orders/1?mode=poll&since={cursor}"), &[])
                .await;
            conn.read_response(SLOW).await.expect("answer")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy
        .publish_items(&[kafka_item("orders.1", 0, 100, "1", "late")])
        .await;
    let answer: serde_json::Value =
        serde_json::from_slice(&waiting.await.expect("task").body).expect("JSON");
    assert_eq!(data_of(&answer), vec!["late"]);
}

#[tokio::test]
async fn raw_mode_streams_the_values_one_per_line() {
    let proxy = proxy("").await;
    let mut conn = proxy.get("/orders/3?mode=stream").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[
            kafka_item("orders.3", 0, 1, "3", "{\"a\":1}"),
            kafka_item("orders.3", 0, 2, "3", "{\"a\":2}"),
        ])
        .await;
    let data = conn.read_stream(16, SLOW).await.expect("data");
    assert_eq!(String::from_utf8_lossy(&data), "{\"a\":1}\n{\"a\":2}\n");
}

#[tokio::test]
async fn a_resume_id_that_is_not_ours_is_a_400_and_a_bad_mode_too() {
    let proxy = proxy("").await;
    for target in [
        "/orders/1?lastEventId=not-a-resume-id",
        "/orders/1?mode=websocket",
        "/orders/1?channel=orders.2",
    ] {
        let mut conn = proxy.get(target).await;
        let response = conn.read_response(SLOW).await.expect("answer");
        assert_eq!(response.head.status, 400, "{target}");
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["error"], "bad_request", "{target}");
    }
}

/// A client with a tiny receive buffer that sends its request and then reads nothing.
async fn stalled_client(proxy: &Proxy, target: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(proxy.listen).await.expect("connect");
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    stream
}

/// Everything the stalled client finally reads, until the proxy ends the stream or
/// `quiet` passes without data.
async fn drain(stream: &mut tokio::net::TcpStream, quiet: Duration) -> String {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    // Chunked framing leaves size lines between events; the SSE parser skips them.
    String::from_utf8_lossy(&all).replace("\r\n", "\n")
}

/// Whether the event carrying value `n` (see [`big`]) is among the last bytes read:
/// checking only the tail keeps waiting for megabytes of events linear.
fn has_value_in_tail(data: &[u8], n: i64) -> bool {
    let tail = &data[data.len().saturating_sub(40 * 1024)..];
    let needle = format!("data: {n}:");
    tail.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn big(n: i64) -> String {
    format!("{n}:{}", "x".repeat(16 * 1024))
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_its_resume_id_and_misses_nothing_on_reconnect() {
    // The same channel on two routes: a tiny queue for the stalled reader, a large one
    // for the reader that keeps up (whose queue must not overflow while a batch lands).
    let proxy = ProxyBuilder::new()
        .config(&route("queue = 4\nhistory = 1000"))
        .config("[[proxy.route]]\npath = \"/all/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\nqueue = 100000\n")
        .start()
        .await;
    let mut slow = stalled_client(&proxy, "/orders/9").await;
    let mut fast = proxy.get("/all/9").await;
    fast.read_head(SLOW).await.expect("head");
    proxy.wait_subscriptions(2).await;
    let total = 400;
    for chunk in (1..=total).collect::<Vec<i64>>().chunks(20) {
        let items: Vec<_> = chunk
            .iter()
            .map(|&n| kafka_item("orders.9", 0, n, "9", &big(n)))
            .collect();
        proxy.publish_items(&items).await;
    }
    // The reader that keeps up gets everything.
    let fast_data = fast
        .read_chunks_until(Duration::from_secs(30), |d| has_value_in_tail(d, total))
        .await
        .map_err(|(e, d)| format!("{e:?} after {} bytes", d.len()))
        .expect("fast reader");
    assert_eq!(
        order_data(&String::from_utf8_lossy(&fast_data)).len(),
        total as usize
    );
    assert!(proxy.metric("fjord_proxy_queue_overflows_total").await >= 1.0);

    let text = drain(&mut slow, Duration::from_secs(2)).await;
    let events = parse_sse(&text);
    let close = events.last().expect("events");
    assert_eq!(close.event.as_deref(), Some("close"), "ends with close");
    assert!(close.data.contains("overflow"));
    let received: Vec<i64> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("order"))
        .map(|e| e.data.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        (received.len() as i64) < total,
        "the slow reader was cut off"
    );
    assert_eq!(received, (1..=received.len() as i64).collect::<Vec<_>>());

    let resume = close.id.clone().expect("resume id");
    let mut again = proxy.get(&format!("/orders/9?lastEventId={resume}")).await;
    again.read_head(SLOW).await.expect("head");
    let rest = again
        .read_chunks_until(Duration::from_secs(30), |d| has_value_in_tail(d, total))
        .await
        .map_err(|(e, d)| format!("{e:?} after {} bytes", d.len()))
        .expect("the rest");
    let rest: Vec<i64> = order_data(&String::from_utf8_lossy(&rest))
        .iter()
        .map(|d| d.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        rest,
        ((received.len() as i64 + 1)..=total).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_slow_reader_on_a_conflating_route_gets_the_newest_value_per_key() {
    let proxy = proxy("queue = 4\non_overflow = \"conflate\"\nmax_channels = 1").await;
    let mut slow = stalled_client(&proxy, "/orders/all").await;
    proxy.wait_subscriptions(1).await;
    // Two keys, alternating, many times over: far more than the queue and buffers hold.
    let total = 400;
    for chunk in (1..=total).collect::<Vec<i64>>().chunks(20) {
        let items: Vec<_> = chunk
            .iter()
            .map(|&n| {
                let key = if n % 2 == 0 { "even" } else { "odd" };
                kafka_item("orders.all", 0, n, key, &format!("{key}-{}", big(n)))
            })
            .collect();
        proxy.publish_items(&items).await;
    }
    let text = drain(&mut slow, Duration::from_secs(2)).await;
    let events = parse_sse(&text);
    assert!(
        events.iter().all(|e| e.event.as_deref() != Some("close")),
        "a conflating stream is not closed"
    );
    let values: Vec<String> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("order"))
        .map(|e| e.data.split(':').next().unwrap().to_owned())
        .collect();
    assert!(values.len() < total as usize, "some values were conflated");
    // The newest value of each key arrives, last.
    let tail: Vec<&str> = values.iter().rev().take(2).map(String::as_str).collect();
    assert!(
        tail.contains(&"even-400") && tail.contains(&"odd-399"),
        "{tail:?}"
    );
    assert!(proxy.metric("fjord_proxy_conflations_total").await >= 1.0);
}
