//! A client that never reads must not slow or starve anyone else: its queue overflows,
//! the hub drops it (counted in `/metrics`), and a reading client on the same channel
//! receives every item.

use std::time::Duration;

use fjord_testkit::free_loopback_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

const ITEMS: usize = 3000;
const BATCH: usize = 50;
const WAIT: Duration = Duration::from_secs(60);

async fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_receive_everything() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("routes"), "* test\n").expect("routes");
    let (listen, control) = (
        free_loopback_port().expect("port"),
        free_loopback_port().expect("port"),
    );
    let _proxy = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["proxy", "--zmq-pull", "", "--zmq-sub", ""])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--control", &format!("127.0.0.1:{control}")])
        .arg("--routes")
        .arg(dir.path().join("routes"))
        .kill_on_drop(true)
        .spawn()
        .expect("start proxy");
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", control)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "proxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let request = "GET /stream?channel=flood HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut stalled = TcpStream::connect(("127.0.0.1", listen))
        .await
        .expect("connect");
    stalled.write_all(request.as_bytes()).await.expect("send");
    let mut reader = TcpStream::connect(("127.0.0.1", listen))
        .await
        .expect("connect");
    reader.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let payload = "x".repeat(8000);
    let (progress, mut seen_count) = tokio::sync::watch::channel(0usize);
    let receive = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // Only the last bytes are kept, so a marker split across reads is still seen.
        let mut tail: Vec<u8> = Vec::new();
        let mut count = 0;
        while count < ITEMS {
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "reading client was closed after {count} items");
            tail.extend_from_slice(&buf[..n]);
            count += tail.windows(5).filter(|w| w == b"<end>").count();
            let keep = tail.len().min(4);
            tail.drain(..tail.len() - keep);
            let _ = progress.send(count);
        }
        count
    });
    for batch in 0..ITEMS / BATCH {
        let items: Vec<String> = (0..BATCH)
            .map(|i| {
                format!(
                    r#"{{"channel":"flood","formats":{{"http-stream":{{"content":"{}:{payload}<end>"}}}}}}"#,
                    batch * BATCH + i
                )
            })
            .collect();
        let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
        let response = http(
            control,
            &format!(
                "POST /publish/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        // The reading client keeps up (it is never more than one batch behind), so
        // only the stalled one can overflow; this test is about isolation, not speed.
        let published = (batch + 1) * BATCH;
        timeout(WAIT, seen_count.wait_for(|&n| n >= published))
            .await
            .expect("reader kept receiving")
            .expect("reader alive");
    }
    let received = timeout(WAIT, receive)
        .await
        .expect("in time")
        .expect("reader task");
    assert_eq!(received, ITEMS);
    let metrics = http(
        control,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let overflows = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fjord_proxy_queue_overflows_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("overflow counter present");
    assert_eq!(overflows, 1, "exactly the stalled client overflowed");
    drop(stalled);
}
