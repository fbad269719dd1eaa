//! Proves the Pushpin fixture against Debian's pushpin: two instances run side by side,
//! each holds a stream through its own origin route, and a publish to one instance's
//! control API reaches only that instance's client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fjord_testkit::Pushpin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

/// A GRIP origin: every request is held as a stream on the channel named by its path.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let address = listener.local_addr().expect("origin address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_until(&mut stream, b"\r\n\r\n", WAIT).await;
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nGrip-Hold: stream\r\n\
                     Grip-Channel: {}\r\nContent-Length: 0\r\n\r\n",
                    path.trim_start_matches('/')
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// Reads until `needle` was seen or `wait` passed; returns what was read.
async fn read_until(stream: &mut TcpStream, needle: &[u8], wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn hold(pushpin: &Pushpin, channel: &str) -> TcpStream {
    let mut stream = TcpStream::connect(pushpin.http_addr())
        .await
        .expect("connect to pushpin");
    let request = format!("GET /{channel} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let head = read_until(&mut stream, b"\r\n\r\n", WAIT).await;
    assert!(head.starts_with("HTTP/1.1 200"), "hold answered {head:?}");
    stream
}

async fn publish(pushpin: &Pushpin, channel: &str, content: &str) {
    let body = format!(
        "{{\"items\":[{{\"channel\":\"{channel}\",\"formats\":{{\"http-stream\":{{\"content\":\"{content}\"}}}}}}]}}"
    );
    let mut stream = TcpStream::connect(pushpin.control_addr())
        .await
        .expect("connect to the control API");
    let request = format!(
        "POST /publish/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let response = read_until(&mut stream, b"Published", WAIT).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "publish got {response:?}"
    );
}

async fn start(origin: SocketAddr) -> Pushpin {
    tokio::task::spawn_blocking(move || Pushpin::start(origin).unwrap_or_else(|e| panic!("{e}")))
        .await
        .expect("start-up task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pushpins_each_deliver_their_own_publishes() {
    let origin = origin().await;
    let (first, second) = (start(origin).await, start(origin).await);
    assert_ne!(first.http_addr(), second.http_addr());
    let mut first_client = hold(&first, "news").await;
    let mut second_client = hold(&second, "news").await;
    // Subscriptions become live shortly after the hold; publish until one arrives.
    let mut got = String::new();
    for attempt in 0..40 {
        publish(&first, "news", &format!("one-{attempt}\\n")).await;
        got = read_until(&mut first_client, b"\n", Duration::from_millis(500)).await;
        if got.contains("one-") {
            break;
        }
    }
    assert!(
        got.contains("one-"),
        "first pushpin never delivered: {got:?}\n{}",
        first.log_tail()
    );
    let other = read_until(&mut second_client, b"one-", Duration::from_secs(1)).await;
    assert!(!other.contains("one-"), "a publish crossed instances");
}
