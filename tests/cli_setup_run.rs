//! The operator's path, end to end: `fjord setup`, edit the one file, `fjord check`,
//! `fjord run`, mint a token with `fjord token`, and a client reads Kafka records of its
//! order over the direct route the generated file defines. A real Kafka-protocol broker
//! (tansu) and real processes of the built binary.

mod support;

use std::process::Output;
use std::time::Duration;

use fjord_testkit::{free_loopback_port, KafkaBroker, TestRecord};
use support::deployment::{spawn_fjord, wait_healthy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

async fn fjord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .output()
        .await
        .expect("run fjord")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` with `from` replaced; the generated file must contain it exactly once.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the template should hold {from:?}"
    );
    text.replace(from, to)
}

/// Sends a direct-route SSE request and returns the connection and what it read up to
/// the end of the response head.
async fn open_stream(port: u16, path: &str, token: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let head = read_until(&mut stream, b"\r\n\r\n").await;
    (stream, head)
}

async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let done = timeout(WAIT, async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        done.is_ok() && seen.contains(&*String::from_utf8_lossy(needle)),
        "did not see {:?} in {seen:?}",
        String::from_utf8_lossy(needle)
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_config_edited_for_a_broker_streams_an_order_to_its_token_holder() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("{e}"));
    broker.create_topic("orders", 1).await.expect("topic");
    let dir = tempfile::tempdir().expect("dir");
    let dir_arg = dir.path().to_str().expect("UTF-8");
    let setup = fjord(&["setup", dir_arg]).await;
    assert!(setup.status.success(), "{}", text(&setup.stderr));

    // The edit an operator makes: where Kafka is, and (for a test) free ports.
    let config = dir.path().join("fjord.toml");
    let (http, control, relay_control) = (
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
    );
    let mut toml = std::fs::read_to_string(&config).expect("read");
    toml = edit(
        &toml,
        "listen  = \"0.0.0.0:7999\"",
        &format!("listen  = \"127.0.0.1:{http}\""),
    );
    toml = edit(
        &toml,
        "control = \"127.0.0.1:5561\"",
        &format!("control = \"127.0.0.1:{control}\""),
    );
    toml = edit(
        &toml,
        "control = \"127.0.0.1:5571\"",
        &format!("control = \"127.0.0.1:{relay_control}\""),
    );
    toml = edit(
        &toml,
        "zmq_pull = \"tcp://127.0.0.1:5560\"",
        "zmq_pull = \"\"",
    );
    toml = edit(
        &toml,
        "zmq_sub  = \"tcp://127.0.0.1:5562\"",
        "zmq_sub  = \"\"",
    );
    toml = edit(
        &toml,
        "\"bootstrap.servers\" = \"127.0.0.1:9092\"",
        &format!(
            "\"bootstrap.servers\" = \"{}\"\n\"session.timeout.ms\" = 6000",
            broker.bootstrap()
        ),
    );
    std::fs::write(&config, toml).expect("write");
    let config_arg = config.to_str().expect("UTF-8");

    // With the broker up, check finds nothing, not even a warning.
    let check = fjord(&["check", "-c", config_arg]).await;
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", text(&check.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains(": OK (proxy and relay; 0 warnings)"),
        "{stdout}"
    );

    let _run = spawn_fjord(&["run"], &config);
    wait_healthy(control).await;
    wait_healthy(relay_control).await;

    let token = fjord(&["token", "-c", config_arg, "--channel", "orders.*"]).await;
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token = text(&token.stdout).trim().to_owned();

    let (_refused, head) = open_stream(http, "/orders/42", "not-a-token").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    let (mut client, head) = open_stream(http, "/orders/42", &token).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    broker
        .produce(
            "orders",
            &[
                TestRecord::keyed("41", r#"{"state":"placed"}"#),
                TestRecord::keyed("42", r#"{"state":"cooking"}"#),
            ],
        )
        .await
        .expect("produce");
    let seen = read_until(&mut client, b"data: {\"state\":\"cooking\"}\n\n").await;
    assert!(seen.contains("event: order\n"), "{seen}");
    assert!(!seen.contains("placed"), "another order leaked: {seen}");
}
