//! Direct mode auth and CORS, end to end through a real `fjord proxy` (design
//! "Security"): where tokens may come from, what each bad token gets, and a token that
//! expires while its stream is open.

mod support;

use std::time::Duration;

use support::direct::{auth_section, kafka_item, order_data, parse_sse, token, token_with, SECRET};
use support::{HttpConn, Proxy, ProxyBuilder, SLOW};

const ROUTE: &str = r#"
[[proxy.route]]
path = "/orders/{id}"
channel = "orders.{id}"
max_channels = 3
cors_origins = ["https://app.example"]
"#;

async fn proxy() -> Proxy {
    ProxyBuilder::new()
        .config(ROUTE)
        .config(&auth_section())
        .start()
        .await
}

/// Status and parsed JSON body of a refused request.
async fn refused(
    proxy: &Proxy,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut conn = proxy.connect().await;
    conn.get(target, headers).await;
    let response = conn.read_response(SLOW).await.expect("response");
    let body: serde_json::Value =
        serde_json::from_slice(&response.body).expect("a JSON error body");
    (response.head.status, body)
}

/// Opens an SSE stream and returns it once its head arrived with status 200.
async fn open(proxy: &Proxy, target: &str, headers: &[(&str, &str)]) -> HttpConn {
    let mut conn = proxy.connect().await;
    conn.get(target, headers).await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200, "{target}: {head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    assert_eq!(head.header("x-accel-buffering"), Some("no"));
    conn
}

async fn read_orders(conn: &mut HttpConn, count: usize) -> Vec<String> {
    let data = conn
        .read_chunks_until(SLOW, |d| {
            order_data(&String::from_utf8_lossy(d)).len() >= count
        })
        .await
        .unwrap_or_else(|(e, d)| panic!("{e:?} after {:?}", String::from_utf8_lossy(&d)));
    order_data(&String::from_utf8_lossy(&data))
}

#[tokio::test]
async fn a_request_without_a_token_is_401_with_the_reason() {
    let proxy = proxy().await;
    let (status, body) = refused(&proxy, "/orders/1", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert!(
        body["reason"].as_str().unwrap().contains("no token"),
        "{body}"
    );
    assert_eq!(
        proxy
            .metric("fjord_proxy_auth_failures_total{reason=\"missing\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_token_with_a_bad_signature_is_401() {
    let proxy = proxy().await;
    let forged = token_with(
        "another-secret-entirely-0123456789",
        &["orders.*"],
        3600,
        "fjord",
    );
    let (status, body) = refused(&proxy, &format!("/orders/1?token={forged}"), &[]).await;
    assert_eq!(status, 401);
    assert!(
        body["reason"].as_str().unwrap().contains("signature"),
        "{body}"
    );
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let proxy = proxy().await;
    let expired = token_with(SECRET, &["orders.*"], -60, "fjord");
    let (status, body) = refused(&proxy, &format!("/orders/1?token={expired}"), &[]).await;
    assert_eq!(status, 401);
    assert!(
        body["reason"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_401() {
    let proxy = proxy().await;
    let other = token_with(SECRET, &["orders.*"], 3600, "billing");
    let (status, body) = refused(&proxy, &format!("/orders/1?token={other}"), &[]).await;
    assert_eq!(status, 401);
    assert!(
        body["reason"].as_str().unwrap().contains("audience"),
        "{body}"
    );
}

#[tokio::test]
async fn a_channel_outside_the_claim_is_403() {
    let proxy = proxy().await;
    let narrow = token(&["orders.1"]);
    let (status, body) = refused(&proxy, &format!("/orders/2?token={narrow}"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["reason"].as_str().unwrap().contains("orders.2"),
        "{body}"
    );
    // An extra ?channel= is checked as well.
    let (status, body) = refused(
        &proxy,
        &format!("/orders/1?channel=orders.9&token={narrow}"),
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_token_in_the_header_a_cookie_or_the_query_opens_the_stream() {
    let proxy = proxy().await;
    let t = token(&["orders.*"]);
    let bearer = format!("Bearer {t}");
    let cookie = format!("theme=dark; fjord_token={t}");
    let mut by_header = open(&proxy, "/orders/1", &[("Authorization", &bearer)]).await;
    let mut by_cookie = open(&proxy, "/orders/1", &[("Cookie", &cookie)]).await;
    let mut by_query = open(&proxy, &format!("/orders/1?token={t}"), &[]).await;
    proxy.wait_subscriptions(3).await;
    proxy
        .publish_items(&[kafka_item("orders.1", 0, 7, "1", "{\"state\":\"cooking\"}")])
        .await;
    for conn in [&mut by_header, &mut by_cookie, &mut by_query] {
        assert_eq!(read_orders(conn, 1).await, vec!["{\"state\":\"cooking\"}"]);
    }
}

#[tokio::test]
async fn a_token_expiring_mid_stream_ends_it_with_a_resume_id_a_fresh_token_continues_from() {
    let proxy = proxy().await;
    let short = token_with(SECRET, &["orders.*"], 3, "fjord");
    let mut conn = open(&proxy, &format!("/orders/5?token={short}"), &[]).await;
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[kafka_item("orders.5", 0, 1, "5", "one")])
        .await;
    assert_eq!(read_orders(&mut conn, 1).await, vec!["one"]);
    let rest = conn
        .read_to_last_chunk(Duration::from_secs(15))
        .await
        .unwrap_or_else(|(e, d)| panic!("{e:?}: {:?}", String::from_utf8_lossy(&d)));
    let events = parse_sse(&String::from_utf8_lossy(&rest));
    let close = events.last().expect("a final event");
    assert_eq!(close.event.as_deref(), Some("close"));
    assert!(close.data.contains("token-expired"), "{close:?}");
    let resume_id = close
        .id
        .clone()
        .expect("the close event carries the resume id");

    // Published while the client fetches a new token: it must not be lost.
    proxy
        .publish_items(&[kafka_item("orders.5", 0, 2, "5", "two")])
        .await;
    let fresh = token(&["orders.5"]);
    let mut again = open(
        &proxy,
        &format!("/orders/5?token={fresh}&lastEventId={resume_id}"),
        &[],
    )
    .await;
    assert_eq!(read_orders(&mut again, 1).await, vec!["two"]);
}

#[tokio::test]
async fn cors_preflight_answers_listed_origins_only() {
    let proxy = proxy().await;
    let mut conn = proxy.connect().await;
    conn.send(
        "OPTIONS",
        "/orders/1",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        b"",
    )
    .await;
    let response = conn.read_response(SLOW).await.expect("preflight");
    assert_eq!(response.head.status, 204);
    assert_eq!(
        response.head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(response
        .head
        .header("access-control-allow-headers")
        .unwrap_or("")
        .contains("Last-Event-ID"));

    let mut conn = proxy.connect().await;
    conn.send(
        "OPTIONS",
        "/orders/1",
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    let response = conn.read_response(SLOW).await.expect("preflight");
    assert!(response
        .head
        .header("access-control-allow-origin")
        .is_none());

    // The actual response carries the header too (refusals included).
    let (_, _) = refused(&proxy, "/orders/1", &[("Origin", "https://app.example")]).await;
    let mut conn = proxy.connect().await;
    conn.get("/orders/1", &[("Origin", "https://app.example")])
        .await;
    let response = conn.read_response(SLOW).await.expect("response");
    assert_eq!(response.head.status, 401);
    assert_eq!(
        response.head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[tokio::test]
async fn a_public_route_needs_no_token() {
    let proxy = ProxyBuilder::new()
        .config("[[proxy.route]]\npath = \"/prices/{symbol}\"\nchannel = \"prices.{symbol}\"\nauth = \"public\"\n")
        .start()
        .await;
    let mut conn = open(&proxy, "/prices/ACME", &[]).await;
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[kafka_item("prices.ACME", 0, 1, "ACME", "42")])
        .await;
    assert_eq!(read_orders(&mut conn, 1).await, vec!["42"]);
}
