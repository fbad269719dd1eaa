//! A real browser on a direct route (design "Resume"): headless Chromium opens a plain
//! `EventSource` with `?token=`, receives Kafka records, the proxy process is killed and
//! started again, and the browser's own reconnect (with the `Last-Event-ID` it kept)
//! resumes without losing or repeating a record.

mod browser;
mod support;

use std::time::Duration;

use browser::Browser;
use fjord_testkit::{KafkaBroker, TestRecord};
use support::deployment::{wait_metric, wait_ready, Deployment};
use support::direct::{auth_section, token};

const PAGE: &str = r#"<!doctype html>
<title>orders</title>
<script>
  window.received = [];
  window.errors = 0;
  const params = new URLSearchParams(location.search);
  const source = new EventSource("/orders/7?token=" + params.get("token"));
  source.addEventListener("order", (e) => window.received.push({ id: e.lastEventId, data: e.data }));
  source.onerror = () => { window.errors += 1; };
</script>
"#;

async fn produce(broker: &KafkaBroker, prefix: &str, count: usize) -> Vec<String> {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let records: Vec<TestRecord> = values
        .iter()
        .map(|v| TestRecord::keyed("7", v.clone()))
        .collect();
    broker.produce("orders", &records).await.expect("produce");
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_reconnects_across_a_proxy_restart_without_losing_records() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 1).await.expect("topic");
    let web = tempfile::tempdir().expect("web dir");
    std::fs::write(web.path().join("index.html"), PAGE).expect("page");
    let extra = format!(
        "{}\n[[proxy.route]]\npath = \"/\"\nfiles = \"{}\"\n",
        auth_section(),
        web.path().display()
    );
    let deployment = Deployment::with(&broker, "browser", 1000, true, "retry_ms = 500\n", &extra);
    let _relay = deployment.spawn("relay");
    wait_ready(deployment.relay_control).await;
    let mut proxy = deployment.spawn("proxy");
    wait_ready(deployment.control).await;

    let mut browser = Browser::start().await;
    let url = format!(
        "http://127.0.0.1:{}/?token={}",
        deployment.http,
        token(&["orders.7"])
    );
    browser.open("page", &url, false).await;
    wait_metric(
        deployment.relay_control,
        "fjord_relay_xpub_subscriptions",
        1.0,
    )
    .await;
    let mut expected = produce(&broker, "before", 5).await;
    let limit = Duration::from_secs(30);
    let count = |n: usize| format!("window.received.length >= {n}");
    browser
        .wait("page", &count(expected.len()), limit)
        .await
        .expect("the first records");

    proxy.start_kill().expect("SIGKILL the proxy");
    proxy.wait().await.expect("proxy gone");
    browser
        .wait("page", "window.errors >= 1", limit)
        .await
        .expect("the browser noticed");
    expected.extend(produce(&broker, "during", 5).await);
    wait_metric(
        deployment.relay_control,
        "fjord_relay_records_consumed_total",
        10.0,
    )
    .await;

    let _proxy = deployment.spawn("proxy");
    wait_ready(deployment.control).await;
    browser
        .wait("page", &count(expected.len()), limit)
        .await
        .unwrap_or_else(|e| panic!("the browser did not catch up after the restart: {e}"));
    wait_metric(
        deployment.relay_control,
        "fjord_relay_xpub_subscriptions",
        1.0,
    )
    .await;
    expected.extend(produce(&broker, "after", 3).await);
    browser
        .wait("page", &count(expected.len()), limit)
        .await
        .expect("live again");

    let received = browser
        .eval("page", "window.received.map((e) => e.data)")
        .await;
    let received: Vec<String> = serde_json::from_value(received).expect("strings");
    assert_eq!(received, expected, "every record once, in order");
    let ids = browser
        .eval("page", "window.received.map((e) => e.id)")
        .await;
    let ids: Vec<String> = serde_json::from_value(ids).expect("strings");
    assert!(
        ids.iter().all(|id| !id.is_empty()),
        "every event has a resume id"
    );
    browser.quit().await;
}
