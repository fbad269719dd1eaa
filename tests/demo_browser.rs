//! `fjord demo` end to end: the binary starts its embedded Kafka (or uses a real broker),
//! relay, proxy and generator; headless Chromium loads the page it serves, sees orders
//! and drivers move, presses "drop connection" and gets every missed update back.

mod browser;

use std::process::Stdio;
use std::time::Duration;

use browser::Browser;
use fjord_testkit::{free_loopback_port, KafkaBroker};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

const START: Duration = Duration::from_secs(60);
const LIVE: Duration = Duration::from_secs(20);

const STATES: [&str; 5] = [
    "placed",
    "cooking",
    "picked_up",
    "five_minutes_away",
    "delivered",
];

/// A running `fjord demo`, killed on drop.
struct Demo {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    base: String,
    printed: Vec<String>,
}

impl Demo {
    async fn start(kafka: Option<&str>) -> Demo {
        let port = || free_loopback_port().expect("port").to_string();
        let (http, control, relay) = (port(), port(), port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_fjord"));
        command
            .arg("demo")
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(["--control", &format!("127.0.0.1:{control}")])
            .args(["--relay-control", &format!("127.0.0.1:{relay}")])
            .args(["--tick-ms", "250", "--orders", "8"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(bootstrap) = kafka {
            command.args(["--kafka", bootstrap]);
        }
        let mut child = command.spawn().expect("start fjord demo");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        let base = timeout(START, async {
            loop {
                let line = stdout
                    .next_line()
                    .await
                    .expect("read demo output")
                    .unwrap_or_else(|| panic!("fjord demo exited early: {printed:?}"));
                printed.push(line.clone());
                if let Some(rest) = line.trim().strip_prefix("Open ") {
                    let url = rest.split_whitespace().next().expect("URL after Open");
                    return url.trim_end_matches('/').to_owned();
                }
            }
        })
        .await
        .expect("fjord demo printed no URL in time");
        assert_eq!(base, format!("http://127.0.0.1:{http}"));
        Demo {
            child,
            stdout,
            base,
            printed,
        }
    }

    /// Ctrl-C, then the exit status and the rest of what it printed.
    async fn interrupt(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("demo still running").to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .expect("kill -INT");
        assert!(sent.success());
        let status = timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("demo did not stop within 20 s of Ctrl-C")
            .expect("wait");
        while let Ok(Some(line)) = self.stdout.next_line().await {
            self.printed.push(line);
        }
        (status, self.printed)
    }
}

/// `GET path` over a plain socket: status line and body.
async fn get(base: &str, path: &str) -> (String, String) {
    let authority = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The page's own record of what it received: per order, the states in arrival order.
const SNAPSHOT: &str = "({
    orderEvents: demo.orderEvents, driverEvents: demo.driverEvents,
    resumes: demo.resumes, caughtUp: demo.caughtUp, gaps: demo.gaps,
    duplicates: demo.duplicates, seqBreaks: demo.seqBreaks,
    drivers: Object.keys(demo.drivers).length,
    orders: Object.fromEntries(Object.entries(demo.orders).map(([id, o]) => [id, o.steps])),
    shown: Array.from(document.querySelectorAll('#orders tbody tr'))
        .map((row) => [row.dataset.order, row.dataset.states]),
})";

/// Every order's history, as received and as shown, is one unbroken run of the life
/// cycle: no state skipped, none repeated.
fn assert_histories_complete(snapshot: &Value) {
    let orders = snapshot["orders"].as_object().expect("orders");
    assert!(!orders.is_empty(), "no orders: {snapshot}");
    for (id, steps) in orders {
        let steps: Vec<u64> = serde_json::from_value(steps.clone()).expect("steps");
        let first = steps[0];
        let expected: Vec<u64> = (first..first + steps.len() as u64).collect();
        assert_eq!(
            steps, expected,
            "order {id} has a hole or a repeat: {snapshot}"
        );
    }
    let shown = snapshot["shown"].as_array().expect("shown rows");
    assert!(!shown.is_empty(), "no order rows on the page: {snapshot}");
    for row in shown {
        let states: Vec<&str> = row[1].as_str().expect("states").split(' ').collect();
        let first = STATES
            .iter()
            .position(|s| *s == states[0])
            .expect("known state");
        assert_eq!(
            states,
            STATES[first..first + states.len()].to_vec(),
            "order {} shows a hole: {snapshot}",
            row[0]
        );
    }
}

/// Loads the page, sees both streams move, drops the connection and checks the resume.
async fn watch_and_drop(demo: &Demo) {
    let (status, page) = get(&demo.base, "/").await;
    assert!(status.contains(" 200"), "GET /: {status}");
    assert!(page.contains("SuperEats"), "not the demo page: {page}");
    let (status, script) = get(&demo.base, "/fjord.js").await;
    assert!(status.contains(" 200"), "GET /fjord.js: {status}");
    assert!(script.contains("subscribe"), "not fjord.js");

    let mut browser = Browser::start().await;
    // Offline for 2.5 s while an order moves every 250 ms: about ten missed updates.
    let status = browser
        .open("demo", &format!("{}/?offline=2500", demo.base), false)
        .await;
    assert_eq!(status, 200);
    let live = browser
        .wait(
            "demo",
            "demo.orderEvents >= 3 && demo.driverEvents >= 3",
            LIVE,
        )
        .await;
    if let Err(e) = live {
        let console = browser.console("demo").await;
        let snapshot = browser.eval("demo", SNAPSHOT).await;
        panic!("no live updates within {LIVE:?}: {e}\n{snapshot}\n{console:?}");
    }
    let before = browser.eval("demo", SNAPSHOT).await;
    assert_histories_complete(&before);

    browser.click("demo", "#drop").await;
    let seen_before = before["orderEvents"].as_u64().expect("count");
    let resumed = browser
        .wait(
            "demo",
            &format!(
                "demo.resumes === 1 && demo.caughtUp >= 3 && demo.orderEvents >= {} \
                 && demo.streams.orders.state === 'open'",
                seen_before + 12
            ),
            LIVE,
        )
        .await;
    let after = browser.eval("demo", SNAPSHOT).await;
    if let Err(e) = resumed {
        let console = browser.console("demo").await;
        panic!("no lossless resume within {LIVE:?}: {e}\n{after}\n{console:?}");
    }
    assert_eq!(after["gaps"], 0, "{after}");
    assert_eq!(after["duplicates"], 0, "{after}");
    assert_eq!(after["seqBreaks"], 0, "{after}");
    assert_histories_complete(&after);
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_shows_live_orders_and_drivers_and_drop_connection_resumes_without_loss() {
    let demo = Demo::start(None).await;
    watch_and_drop(&demo).await;
    let (status, printed) = demo.interrupt().await;
    assert!(status.success(), "Ctrl-C exit: {status:?} {printed:?}");
    assert!(
        printed.iter().any(|l| l.contains("stopped")),
        "no clean stop reported: {printed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_same_against_a_real_broker() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    let demo = Demo::start(Some(&broker.bootstrap())).await;
    watch_and_drop(&demo).await;
    let (status, printed) = demo.interrupt().await;
    assert!(status.success(), "Ctrl-C exit: {status:?} {printed:?}");
}
