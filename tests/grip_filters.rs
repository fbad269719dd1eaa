//! Conformance items of spec §12 about subscriptions and filters (§2.6, §3.6): items
//! 44 and 46–48.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{stream_item, HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};

async fn setup(reply: Reply) -> (Origin, Proxy) {
    let origin = Origin::start(move |_| reply.clone()).await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    (origin, proxy)
}

async fn open_stream(proxy: &Proxy) -> HttpConn {
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200);
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c44_only_the_first_20_channels_are_subscribed() {
    let channels: Vec<String> = (1..=25).map(|n| format!("c{n}")).collect();
    let (_origin, proxy) = setup(Reply::stream(&channels.join(", "), "")).await;
    let mut conn = open_stream(&proxy).await;
    proxy
        .publish_items(&[stream_item("c21", "21"), stream_item("c25", "25")])
        .await;
    let extra = conn.raw_within(Duration::from_secs(1)).await;
    assert!(
        extra.is_empty(),
        "channel beyond the 20th delivered: {extra:?}"
    );
    proxy.publish_items(&[stream_item("c20", "20")]).await;
    assert_eq!(
        conn.read_stream(2, Duration::from_secs(1))
            .await
            .expect("c20"),
        b"20"
    );
    proxy.publish_items(&[stream_item("c1", "01")]).await;
    assert_eq!(
        conn.read_stream(2, Duration::from_secs(1))
            .await
            .expect("c1"),
        b"01"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c46_skip_self_drops_the_subscribers_own_items() {
    let reply = Reply::stream("a; filter=skip-self", "").header("Grip-Set-Meta", "user=\"u1\"");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = open_stream(&proxy).await;
    let mut own = stream_item("a", "own");
    own["meta"] = json!({"sender": "u1"});
    proxy.publish_items(&[own]).await;
    let extra = conn.raw_within(Duration::from_secs(1)).await;
    assert!(extra.is_empty(), "own item delivered: {extra:?}");
    let mut other = stream_item("a", "other");
    other["meta"] = json!({"sender": "u2"});
    proxy.publish_items(&[other]).await;
    assert_eq!(
        conn.read_stream(5, Duration::from_secs(1))
            .await
            .expect("other"),
        b"other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_var_subst_fills_in_subscription_meta() {
    let reply = Reply::stream("a; filter=var-subst", "").header("Grip-Set-Meta", "user=\"u1\"");
    let (_origin, proxy) = setup(reply).await;
    let mut conn = open_stream(&proxy).await;
    proxy
        .publish_items(&[stream_item("a", "hi %(user)s")])
        .await;
    assert_eq!(
        conn.read_stream(5, Duration::from_secs(1))
            .await
            .expect("content"),
        b"hi u1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c48_build_id_renders_the_id_after_the_item() {
    let reply = Reply::stream("a; prev-id=1; filter=build-id", "")
        .header("Grip-Set-Meta", "id_format=\"a:%(a)s\"")
        .header("Grip-Link", "</next>; rel=next; timeout=120");
    let (origin, proxy) = setup(reply).await;
    let mut conn = open_stream(&proxy).await;
    let item = json!({
        "channel": "a",
        "id": "2",
        "prev-id": "1",
        "formats": {"http-stream": {"content": "id: %I\n", "content-filters": ["build-id"]}}
    });
    proxy.publish_items(&[item]).await;
    let data = conn
        .read_stream(8, Duration::from_secs(1))
        .await
        .expect("content");
    assert_eq!(data, b"id: a:2\n");
    assert!(
        origin.requests_to("/next").is_empty(),
        "no recovery expected"
    );
}
