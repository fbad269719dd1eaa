//! Starting a real `fjord proxy` process for one test.
//!
//! The proxy binds `127.0.0.1:0` for its listener and control port; the addresses it
//! got are read from its JSON "fjord proxy ready" log line, so parallel tests never
//! race for ports. The process is killed when the [`Proxy`] is dropped; when the test
//! failed, the proxy's log is printed to help diagnose it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::client::{self, HttpConn, Response};

/// How to start a proxy. Defaults follow spec §12: `update_on_first_subscription =
/// false`, `id_cache_ttl = 0`, ZeroMQ inputs off, `sig_iss = "pushpin"`,
/// `sig_key = "changeme"`.
pub struct ProxyBuilder {
    keys: BTreeMap<String, String>,
    routes: Vec<(Option<String>, String)>,
    routes_file: Option<String>,
    zmq_pull: String,
    zmq_sub: String,
    extra: String,
    env: Vec<(String, String)>,
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyBuilder {
    pub fn new() -> ProxyBuilder {
        let mut keys = BTreeMap::new();
        keys.insert("listen".into(), "\"127.0.0.1:0\"".into());
        keys.insert("control".into(), "\"127.0.0.1:0\"".into());
        keys.insert("update_on_first_subscription".into(), "false".into());
        keys.insert("id_cache_ttl".into(), "0".into());
        keys.insert("sig_iss".into(), "\"pushpin\"".into());
        keys.insert("sig_key".into(), "\"changeme\"".into());
        ProxyBuilder {
            keys,
            routes: Vec::new(),
            routes_file: None,
            zmq_pull: String::new(),
            zmq_sub: String::new(),
            extra: String::new(),
            env: Vec::new(),
        }
    }

    /// Sets an environment variable of the proxy process.
    pub fn env(mut self, key: &str, value: &str) -> ProxyBuilder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets a `[proxy]` key to a TOML value (written as given: strings need quotes).
    pub fn set(mut self, key: &str, toml_value: &str) -> ProxyBuilder {
        self.keys.insert(key.to_owned(), toml_value.to_owned());
        self
    }

    /// Every request goes to `origin` (a `[[proxy.route]]` without `path`).
    pub fn origin(mut self, origin: SocketAddr) -> ProxyBuilder {
        self.routes.push((None, format!("http://{origin}")));
        self
    }

    /// A Pushpin routes file with this content, passed with `--routes`.
    pub fn routes_file(mut self, content: &str) -> ProxyBuilder {
        self.routes_file = Some(content.to_owned());
        self
    }

    /// TOML appended to the configuration as given (more sections, `[[proxy.route]]`s).
    pub fn config(mut self, toml: &str) -> ProxyBuilder {
        self.extra.push('\n');
        self.extra.push_str(toml);
        self
    }

    pub fn zmq_pull(mut self, endpoint: &str) -> ProxyBuilder {
        self.zmq_pull = endpoint.to_owned();
        self
    }

    pub fn zmq_sub(mut self, endpoint: &str) -> ProxyBuilder {
        self.zmq_sub = endpoint.to_owned();
        self
    }

    pub async fn start(self) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut toml = String::from("[proxy]\n");
        for (key, value) in &self.keys {
            toml.push_str(&format!("{key} = {value}\n"));
        }
        for (path, origin) in &self.routes {
            toml.push_str("\n[[proxy.route]]\n");
            if let Some(path) = path {
                toml.push_str(&format!("path = \"{path}\"\n"));
            }
            toml.push_str(&format!("origin = \"{origin}\"\n"));
        }
        toml.push_str(&self.extra);
        let config_path = dir.path().join("fjord.toml");
        std::fs::write(&config_path, &toml).expect("write config");
        let routes_path = dir.path().join("routes");
        let mut command = Command::new(env!("CARGO_BIN_EXE_fjord"));
        command
            .arg("--log-format")
            .arg("json")
            .arg("proxy")
            .arg("-c")
            .arg(&config_path)
            .arg("--zmq-pull")
            .arg(&self.zmq_pull)
            .arg("--zmq-sub")
            .arg(&self.zmq_sub);
        if let Some(content) = &self.routes_file {
            std::fs::write(&routes_path, content).expect("write routes");
            command.arg("--routes").arg(&routes_path);
        }
        let log_filter = std::env::var("FJORD_TEST_LOG").unwrap_or_else(|_| "info".into());
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn fjord proxy");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addrs) = ready_addresses(&line) {
                        let _ = ready_tx.send(addrs);
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let mut proxy = Proxy {
            child,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
            routes_path,
            _dir: dir,
        };
        let ready =
            tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .expect("join");
        let Ok((listen, control)) = ready else {
            let status = proxy.child.try_wait();
            panic!(
                "proxy did not report ready (exit: {status:?}); config:\n{toml}\nlog:\n{}",
                proxy.log_text()
            );
        };
        proxy.listen = listen;
        proxy.control = control;
        let healthy = super::wait_for_async(Duration::from_secs(10), || async move {
            client::request(control, "GET", "/healthz", &[], b"", Duration::from_secs(1))
                .await
                .ok()
                .filter(|r| r.head.status == 200)
        })
        .await;
        assert!(healthy.is_some(), "proxy /healthz did not answer 200");
        proxy
    }
}

/// `(listen, control)` from the proxy's JSON ready line.
fn ready_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "fjord proxy ready" {
        return None;
    }
    let listen = fields.get("listen")?.as_str()?.parse().ok()?;
    let control = fields.get("control")?.as_str()?.parse().ok()?;
    Some((listen, control))
}

/// `POST /publish/` with `body` to the control port at `control`.
pub async fn publish_to(control: SocketAddr, body: &str) -> Response {
    client::request(
        control,
        "POST",
        "/publish/",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        super::SLOW,
    )
    .await
    .expect("control API answered")
}

/// A running proxy process.
pub struct Proxy {
    child: Child,
    pub listen: SocketAddr,
    pub control: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    routes_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A new client connection to the public listener.
    pub async fn connect(&self) -> HttpConn {
        HttpConn::connect(self.listen).await
    }

    /// A client connection that has sent `GET target`.
    pub async fn get(&self, target: &str) -> HttpConn {
        let mut conn = self.connect().await;
        conn.get(target, &[]).await;
        conn
    }

    /// `POST /publish/` with `body`.
    pub async fn publish(&self, body: &str) -> Response {
        publish_to(self.control, body).await
    }

    /// Publishes and asserts `200 Published`.
    pub async fn publish_ok(&self, body: &str) {
        let response = self.publish(body).await;
        assert_eq!(
            (response.head.status, response.text().as_str()),
            (200, "Published\n"),
            "publish of {body} failed"
        );
    }

    /// Publishes these items and asserts success.
    pub async fn publish_items(&self, items: &[serde_json::Value]) {
        self.publish_ok(&super::items(items)).await;
    }

    pub async fn control_request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        client::request(self.control, method, target, headers, body, super::SLOW)
            .await
            .expect("control API answered")
    }

    /// A gauge or counter from the control port's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let response = self.control_request("GET", "/metrics", &[], b"").await;
        response
            .text()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .next()
            .unwrap_or(0.0)
    }

    /// Waits until the hub counts at least `count` subscriptions (channel per held
    /// connection): a response hold sends nothing, so this is how a test knows it is
    /// in place before publishing.
    pub async fn wait_subscriptions(&self, count: usize) {
        let reached = super::wait_for_async(super::SLOW, || async move {
            (self.metric("fjord_proxy_subscriptions").await >= count as f64).then_some(())
        })
        .await;
        assert!(reached.is_some(), "{count} subscriptions never appeared");
    }

    /// Rewrites the routes file the proxy watches.
    pub fn write_routes(&self, content: &str) {
        std::fs::write(&self.routes_path, content).expect("rewrite routes file");
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- proxy log ----\n{}\n-------------------",
                self.log_text()
            );
        }
    }
}
