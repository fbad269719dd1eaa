//! Interoperability with GRIP software nobody here wrote: the Python `gripcontrol`
//! library publishing over HTTP, libzmq (pyzmq) PUSH and XPUB peers, and an Express
//! origin using `@fanoutio/serve-grip` read by the `eventsource` package — all against
//! the `fjord proxy` binary. The peers are installed by `scripts/test.sh` into `.venv`
//! and `tests/peers/node_modules`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fjord_testkit::free_loopback_port;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let path = std::env::var_os("FJORD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        path.is_file(),
        "Python test peers missing at {}: run scripts/test.sh, which installs tests/peers/requirements.txt into .venv",
        path.display()
    );
    path
}

fn node_peers() -> PathBuf {
    let dir = repo().join("tests/peers");
    assert!(
        dir.join("node_modules/@fanoutio/serve-grip").is_dir(),
        "Node test peers missing: run scripts/test.sh, which runs npm install in tests/peers"
    );
    dir
}

/// A `fjord proxy` process on free ports, killed on drop.
struct Proxy {
    child: Child,
    http: u16,
    control: u16,
    pull: u16,
    sub: u16,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(routes: &str) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let routes_path = dir.path().join("routes");
        std::fs::write(&routes_path, routes).expect("write routes");
        let config = dir.path().join("fjord.toml");
        std::fs::write(
            &config,
            "[proxy]\nupdate_on_first_subscription = false\nsubscription_linger = 1\n",
        )
        .expect("write config");
        let (http, control, pull, sub) = (
            free_loopback_port().expect("port"),
            free_loopback_port().expect("port"),
            free_loopback_port().expect("port"),
            free_loopback_port().expect("port"),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_fjord"))
            .arg("proxy")
            .arg("-c")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(["--control", &format!("127.0.0.1:{control}")])
            .arg("--routes")
            .arg(&routes_path)
            .args(["--zmq-pull", &format!("tcp://127.0.0.1:{pull}")])
            .args(["--zmq-sub", &format!("tcp://127.0.0.1:{sub}")])
            .kill_on_drop(true)
            .spawn()
            .expect("start fjord proxy");
        let proxy = Proxy {
            child,
            http,
            control,
            pull,
            sub,
            _dir: dir,
        };
        wait_for_http(control, "/healthz").await;
        proxy
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_for_http(port: u16, path: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_ok() {
                let mut response = Vec::new();
                let _ = stream.read_to_end(&mut response).await;
                if response.starts_with(b"HTTP/1.1 200") {
                    return;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing answered 200 on 127.0.0.1:{port}{path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a held GET and returns the connection once the response head arrived.
async fn hold(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to proxy");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    stream
}

/// Reads from `stream` until `needle` appeared; returns everything read.
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let found = timeout(WAIT, async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "connection closed early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(needle.len()).any(|w| w == needle) {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "did not see {:?}; got {:?}",
        String::from_utf8_lossy(needle),
        String::from_utf8_lossy(&seen)
    );
    seen
}

async fn run_python(args: &[&str]) -> String {
    let output = timeout(
        WAIT,
        Command::new(python())
            .arg(repo().join("tests/peers/publish.py"))
            .args(args)
            .output(),
    )
    .await
    .expect("python peer finished in time")
    .expect("python peer ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python peer failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn gripcontrol_http_stream_publish_reaches_a_held_stream() {
    let proxy = Proxy::start("* test\n").await;
    let mut client = hold(proxy.http, "/stream?channel=py").await;
    read_until(&mut client, b"\r\n\r\n").await;
    let control = format!("http://127.0.0.1:{}", proxy.control);
    run_python(&["http", &control, "py", "from gripcontrol\n"]).await;
    read_until(&mut client, b"from gripcontrol\n").await;
}

#[tokio::test]
async fn gripcontrol_http_response_publish_completes_a_long_poll() {
    let proxy = Proxy::start("* test\n").await;
    let mut client = hold(proxy.http, "/response?channel=lp").await;
    // The response hold subscribes as soon as the request is handled; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let control = format!("http://127.0.0.1:{}", proxy.control);
    run_python(&["http-response", &control, "lp", "long-poll body"]).await;
    let response = read_until(&mut client, b"long-poll body").await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

#[tokio::test]
async fn pyzmq_push_publishes_in_tnetstring_and_json_frames() {
    let proxy = Proxy::start("* test\n").await;
    let mut client = hold(proxy.http, "/stream?channel=zp").await;
    read_until(&mut client, b"\r\n\r\n").await;
    let endpoint = format!("tcp://127.0.0.1:{}", proxy.pull);
    run_python(&["push", &endpoint, "zp", "tnet frame\n", "tnetstring"]).await;
    read_until(&mut client, b"tnet frame\n").await;
    run_python(&["push", &endpoint, "zp", "json frame\n", "json"]).await;
    read_until(&mut client, b"json frame\n").await;
}

#[tokio::test]
async fn pyzmq_push_peers_that_close_right_after_sending_lose_nothing() {
    const PEERS: usize = 200;
    let proxy = Proxy::start("* test\n").await;
    let mut client = hold(proxy.http, "/stream?channel=zm").await;
    let mut seen = read_until(&mut client, b"\r\n\r\n").await;
    let endpoint = format!("tcp://127.0.0.1:{}", proxy.pull);
    run_python(&["push-many", &endpoint, "zm", &PEERS.to_string()]).await;
    let missing = |seen: &[u8]| -> Vec<usize> {
        let body = String::from_utf8_lossy(seen);
        let lines: std::collections::HashSet<&str> = body.lines().collect();
        (0..PEERS)
            .filter(|n| !lines.contains(n.to_string().as_str()))
            .collect()
    };
    let mut buf = [0u8; 4096];
    let complete = timeout(WAIT, async {
        while !missing(&seen).is_empty() {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        complete.is_ok(),
        "messages of these peers never arrived: {:?}",
        missing(&seen)
    );
}

#[tokio::test]
async fn pyzmq_xpub_sees_subscriptions_and_its_publish_is_delivered() {
    let proxy = Proxy::start("* test\n").await;
    let endpoint = format!("tcp://127.0.0.1:{}", proxy.sub);
    let mut publisher = Command::new(python())
        .arg(repo().join("tests/peers/publish.py"))
        .args(["xpub", &endpoint, "zs", "via xpub\n"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python peer");
    let mut lines = BufReader::new(publisher.stdout.take().expect("stdout")).lines();
    // Let the XPUB peer connect before the first subscriber arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut client = hold(proxy.http, "/stream?channel=zs").await;
    let line = timeout(WAIT, lines.next_line()).await.expect("in time");
    assert_eq!(line.expect("read").as_deref(), Some("subscribed"));
    read_until(&mut client, b"via xpub\n").await;
    drop(client);
    let line = timeout(WAIT, lines.next_line()).await.expect("in time");
    assert_eq!(line.expect("read").as_deref(), Some("unsubscribed"));
}

async fn start_node(dir: &Path, script: &str, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut command = Command::new("node");
    command
        .current_dir(dir)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("node runs")
}

#[tokio::test]
async fn serve_grip_origin_behind_the_proxy_streams_to_an_eventsource_client() {
    let peers = node_peers();
    let origin_port = free_loopback_port().expect("port");
    let proxy = Proxy::start(&format!("* 127.0.0.1:{origin_port}\n")).await;
    let mut origin = start_node(
        &peers,
        "grip_origin.mjs",
        &[],
        &[
            ("PORT", origin_port.to_string()),
            (
                "CONTROL_URI",
                format!("http://127.0.0.1:{}/", proxy.control),
            ),
            ("SIG_KEY", "changeme".to_owned()),
        ],
    )
    .await;
    let mut origin_out = BufReader::new(origin.stdout.take().expect("stdout")).lines();
    let line = timeout(WAIT, origin_out.next_line())
        .await
        .expect("origin started");
    assert_eq!(line.expect("read").as_deref(), Some("listening"));

    let url = format!("http://127.0.0.1:{}/events/orders", proxy.http);
    let mut client = start_node(&peers, "sse_client.mjs", &[&url, "2"], &[]).await;
    let mut events = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let line = timeout(WAIT, events.next_line())
        .await
        .expect("client connected");
    assert_eq!(line.expect("read").as_deref(), Some("ready"));

    for data in ["placed", "cooking"] {
        let mut trigger = hold(proxy.http, &format!("/publish/orders?data={data}")).await;
        read_until(&mut trigger, b"published").await;
        let line = timeout(WAIT, events.next_line())
            .await
            .expect("event in time");
        assert_eq!(line.expect("read"), Some(format!("m {data}")));
    }
}
