//! fjord.js, the browser client, in headless Chromium against `fjord run` and a real
//! Kafka-protocol broker: a direct route read with `?token=` over SSE, the same events
//! over the long-poll fallback when EventSource is missing, a resume across a page
//! reload from the id kept in localStorage, and a fresh token when the proxy closes a
//! stream because the old one expired.

mod support;

mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use fjord_testkit::{free_loopback_port, KafkaBroker, TestRecord};
use serde_json::Value;
use support::deployment::{spawn_fjord, wait_healthy};
use tokio::process::{Child, Command};
use tokio::time::sleep;

const WAIT: Duration = Duration::from_secs(30);

/// `fjord run` with a direct route for orders and the test page as static files.
struct Fjord {
    _child: Child,
    base: String,
    config: std::path::PathBuf,
    web: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Fjord {
    async fn start(broker: &KafkaBroker, group: &str) -> Fjord {
        let dir = tempfile::tempdir().expect("dir");
        let web = dir.path().join("web");
        std::fs::create_dir(&web).expect("web dir");
        let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fjord_js/index.html");
        std::fs::copy(page, web.join("index.html")).expect("copy test page");
        let port = || free_loopback_port().expect("port");
        let (http, control, relay) = (port(), port(), port());
        let config = dir.path().join("fjord.toml");
        std::fs::write(
            &config,
            format!(
                r#"[proxy]
listen = "127.0.0.1:{http}"
control = "127.0.0.1:{control}"
zmq_pull = ""
zmq_sub = ""
replay = "http://127.0.0.1:{relay}"

[[proxy.route]]
path = "/orders/{{id}}"
channel = "orders.{{id}}"
stream = "orders"
auth = "token"

[[proxy.route]]
path = "/"
files = "web"

[auth]
jwt_key = "fjord-js-test-secret-of-some-length-0123456789"
audience = "fjord"

[kafka]
"bootstrap.servers" = "{bootstrap}"
"group.id" = "{group}"
"auto.offset.reset" = "earliest"
"session.timeout.ms" = 6000

[relay]
control = "127.0.0.1:{relay}"

[[relay.stream]]
name = "orders"
topic = "orders"
channel = "orders.{{key}}"
event = "order"
"#,
                bootstrap = broker.bootstrap()
            ),
        )
        .expect("config");
        let child = spawn_fjord(&["run"], &config);
        wait_healthy(control).await;
        wait_healthy(relay).await;
        Fjord {
            _child: child,
            base: format!("http://127.0.0.1:{http}"),
            config,
            web,
            _dir: dir,
        }
    }

    /// A client token from `fjord token`, as an application backend would mint it.
    async fn token(&self, channel: &str, ttl: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
            .arg("token")
            .arg("-c")
            .arg(&self.config)
            .args(["--channel", channel, "--ttl", ttl])
            .output()
            .await
            .expect("fjord token");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .expect("token is text")
            .trim()
            .to_owned()
    }

    fn page(&self, query: &str) -> String {
        format!("{}/index.html?path=/orders/42&{query}", self.base)
    }
}

async fn produce(broker: &KafkaBroker, key: &str, value: &str) {
    broker
        .produce("orders", &[TestRecord::keyed(key, value.to_owned())])
        .await
        .expect("produce");
}

/// Until every page has received something, produce warm-up records for order 42: a
/// subscription is in place only once something came through it.
async fn warm_up(broker: &KafkaBroker, browser: &mut Browser, pages: &[&str]) {
    for round in 0..60 {
        produce(broker, "42", &format!("{{\"warmup\":{round}}}")).await;
        sleep(Duration::from_millis(500)).await;
        let mut all = true;
        for page in pages {
            all &= browser.eval(page, "received.length > 0").await == Value::Bool(true);
        }
        if all {
            return;
        }
    }
    panic!("pages {pages:?} received nothing in 30 s of warm-up records");
}

/// The `step`s a page received (warm-up records have none), and their event ids.
async fn steps(browser: &mut Browser, page: &str) -> (Vec<u64>, Vec<String>) {
    let value = browser
        .eval(
            page,
            "received.filter((e) => e.data && e.data.step !== undefined)
                     .map((e) => [e.data.step, e.id, e.event])",
        )
        .await;
    let rows: Vec<(u64, String, String)> = serde_json::from_value(value).expect("rows");
    for (_, _, event) in &rows {
        assert_eq!(event, "order");
    }
    rows.into_iter().map(|(step, id, _)| (step, id)).unzip()
}

async fn wait_for_step(browser: &mut Browser, page: &str, step: u64) {
    let expr = format!("received.some((e) => e.data && e.data.step === {step})");
    if let Err(e) = browser.wait(page, &expr, WAIT).await {
        let received = browser.eval(page, "received").await;
        let console = browser.console(page).await;
        panic!("{page}: step {step} never arrived: {e}\n{received}\n{console:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjord_js_streams_a_direct_route_with_a_query_token_and_long_poll_gets_the_same_events() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 1).await.expect("topic");
    let fjord = Fjord::start(&broker, "fjord-js-modes").await;
    let token = fjord.token("orders.42", "1h").await;
    let mut browser = Browser::start().await;
    let url = fjord.page(&format!("token={token}"));
    assert_eq!(browser.open("sse", &url, false).await, 200);
    assert_eq!(browser.open("poll", &url, true).await, 200);
    assert_eq!(browser.eval("sse", "sub.mode").await, "sse");
    assert_eq!(browser.eval("poll", "sub.mode").await, "poll");
    warm_up(&broker, &mut browser, &["sse", "poll"]).await;

    produce(&broker, "42", r#"{"step":1}"#).await;
    produce(&broker, "43", r#"{"step":99}"#).await;
    produce(&broker, "42", r#"{"step":2}"#).await;
    produce(&broker, "42", r#"{"step":3}"#).await;
    wait_for_step(&mut browser, "sse", 3).await;
    wait_for_step(&mut browser, "poll", 3).await;

    let (sse_steps, sse_ids) = steps(&mut browser, "sse").await;
    let (poll_steps, poll_ids) = steps(&mut browser, "poll").await;
    assert_eq!(
        sse_steps,
        [1, 2, 3],
        "SSE got another key's record or lost one"
    );
    assert_eq!(poll_steps, [1, 2, 3], "long-poll differs from SSE");
    assert!(sse_ids.iter().all(|id| !id.is_empty()), "{sse_ids:?}");
    assert_eq!(sse_ids, poll_ids, "both transports name the same positions");

    let polls: Vec<String> = browser
        .requests("poll")
        .await
        .into_iter()
        .filter(|url| names_stream(url))
        .collect();
    assert!(polls.len() >= 2, "{polls:?}");
    for url in &polls {
        assert!(url.contains("mode=poll"), "not a long-poll: {url}");
        assert!(url.contains(&format!("token={token}")), "no token: {url}");
    }
    let streams: Vec<String> = browser
        .requests("sse")
        .await
        .into_iter()
        .filter(|url| names_stream(url))
        .collect();
    assert!(
        streams.iter().all(|url| !url.contains("mode=poll")),
        "{streams:?}"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjord_js_resumes_after_a_page_reload_from_the_id_kept_in_local_storage() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 1).await.expect("topic");
    let fjord = Fjord::start(&broker, "fjord-js-reload").await;
    let token = fjord.token("orders.*", "1h").await;
    let mut browser = Browser::start().await;
    let url = fjord.page(&format!("token={token}&resumeKey=order-42"));
    assert_eq!(browser.open("page", &url, false).await, 200);
    warm_up(&broker, &mut browser, &["page"]).await;
    produce(&broker, "42", r#"{"step":1}"#).await;
    wait_for_step(&mut browser, "page", 1).await;
    let stored = browser
        .eval("page", "localStorage.getItem('fjord:order-42')")
        .await;
    let (_, ids) = steps(&mut browser, "page").await;
    assert_eq!(stored.as_str(), ids.last().map(String::as_str));

    // The tab leaves; two updates happen; the tab comes back with a fresh page.
    browser.goto("page", "about:blank").await;
    produce(&broker, "42", r#"{"step":2}"#).await;
    produce(&broker, "42", r#"{"step":3}"#).await;
    assert_eq!(browser.goto("page", &url).await, 200);
    wait_for_step(&mut browser, "page", 3).await;
    let (steps_after, _) = steps(&mut browser, "page").await;
    assert_eq!(
        steps_after,
        [2, 3],
        "the reloaded page lost or repeated updates"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjord_js_fetches_a_fresh_token_when_the_proxy_closes_an_expired_stream() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 1).await.expect("topic");
    let fjord = Fjord::start(&broker, "fjord-js-expiry").await;
    let short = fjord.token("orders.42", "4s").await;
    let fresh = fjord.token("orders.42", "1h").await;
    std::fs::write(fjord.web.join("token.txt"), &fresh).expect("token file");
    let mut browser = Browser::start().await;
    let url = fjord.page(&format!("token={short}&refresh=1"));
    assert_eq!(browser.open("page", &url, false).await, 200);
    warm_up(&broker, &mut browser, &["page"]).await;
    produce(&broker, "42", r#"{"step":1}"#).await;
    wait_for_step(&mut browser, "page", 1).await;
    // The short token runs out; the proxy closes the stream with `token-expired`.
    let closed = browser
        .wait("page", "closes.includes('token-expired')", WAIT)
        .await;
    assert!(closed.is_ok(), "no token-expired close: {closed:?}");
    produce(&broker, "42", r#"{"step":2}"#).await;
    produce(&broker, "42", r#"{"step":3}"#).await;
    wait_for_step(&mut browser, "page", 3).await;
    let (steps_seen, _) = steps(&mut browser, "page").await;
    assert_eq!(steps_seen, [1, 2, 3]);
    let streams: Vec<String> = browser
        .requests("page")
        .await
        .into_iter()
        .filter(|url| names_stream(url))
        .collect();
    let renewed = streams
        .iter()
        .find(|url| url.contains(&fresh))
        .unwrap_or_else(|| panic!("never reconnected with the fresh token: {streams:?}"));
    assert!(renewed.contains("lastEventId="), "{renewed}");
    browser.quit().await;
}

/// Whether a requested URL is one of the stream's (not the page, whose query names the
/// stream's path too).
fn names_stream(url: &str) -> bool {
    url.split('?')
        .next()
        .is_some_and(|path| path.ends_with("/orders/42"))
}
