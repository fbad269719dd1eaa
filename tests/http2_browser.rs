//! Headless Chromium over HTTPS: the proxy offers HTTP/2 by ALPN, so one page can hold
//! more EventSource streams to the proxy than the six connections per host a browser
//! opens over HTTP/1.1, and every one of them receives its published events.

mod browser;
mod support;

use std::time::Duration;

use browser::Browser;
use support::direct::kafka_item;
use support::tls::Certificate;

/// More than Chromium's six HTTP/1.1 connections per host.
const STREAMS: usize = 8;

const PAGE: &str = r#"<!doctype html>
<title>many streams</title>
<script>
  window.received = {};
  window.opened = 0;
  for (let order = 1; order <= 8; order++) {
    const source = new EventSource("/orders/" + order);
    source.onopen = () => { window.opened += 1; };
    source.addEventListener("order", (e) => { window.received[order] = e.data; });
  }
</script>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_more_event_sources_than_http1_allows_over_http2() {
    let cert = Certificate::generate();
    let web = tempfile::tempdir().expect("web dir");
    std::fs::write(web.path().join("index.html"), PAGE).expect("page");
    let proxy = cert
        .proxy_builder()
        .config(
            "[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n",
        )
        .config(&format!(
            "[[proxy.route]]\npath = \"/\"\nfiles = \"{}\"\n",
            web.path().display()
        ))
        .start()
        .await;

    let mut browser = Browser::start().await;
    let url = format!("https://localhost:{}/", proxy.listen.port());
    assert_eq!(browser.open("page", &url, false).await, 200);
    let protocol = browser
        .eval(
            "page",
            "performance.getEntriesByType('navigation')[0].nextHopProtocol",
        )
        .await;
    assert_eq!(protocol, "h2", "the page was not loaded over HTTP/2");
    browser
        .wait(
            "page",
            &format!("window.opened >= {STREAMS}"),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|e| panic!("not every EventSource opened: {e}"));
    proxy.wait_subscriptions(STREAMS).await;

    let items: Vec<_> = (1..=STREAMS)
        .map(|order| {
            let key = order.to_string();
            kafka_item(
                &format!("orders.{order}"),
                0,
                1,
                &key,
                &format!("\"o{order}\""),
            )
        })
        .collect();
    proxy.publish_items(&items).await;
    let all = browser
        .wait(
            "page",
            &format!("Object.keys(window.received).length >= {STREAMS}"),
            Duration::from_secs(20),
        )
        .await;
    let received = browser
        .eval("page", "JSON.stringify(window.received)")
        .await;
    assert!(all.is_ok(), "not every stream got its event: {received}");
    for order in 1..=STREAMS {
        let text = received.as_str().unwrap_or_default();
        assert!(text.contains(&format!("o{order}")), "{text}");
    }
    browser.quit().await;
}
