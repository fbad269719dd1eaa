//! Headless Chromium for the browser tests: `tests/peers/browser.mjs` (playwright-core
//! pointed at Debian's `/usr/bin/chromium`) run as a child process and driven one JSON
//! command per line. `scripts/test.sh` installs playwright-core into tests/peers.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

/// Answer time for commands that do not wait on the page themselves.
const COMMAND_TIME: Duration = Duration::from_secs(30);

pub struct Browser {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

fn peers() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run scripts/test.sh, which runs npm install in tests/peers"
    );
    dir
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("FJORD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium missing at {}: install the Debian package `chromium` (.ci/run does)",
        path.display()
    );
    path
}

impl Browser {
    pub async fn start() -> Browser {
        let dir = peers();
        let mut child = Command::new("node")
            .arg(dir.join("browser.mjs"))
            .current_dir(&dir)
            .env("FJORD_CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/peers/browser.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut browser = Browser {
            _child: child,
            stdin,
            stdout,
        };
        let hello = browser.answer(COMMAND_TIME).await;
        assert_eq!(hello, Ok(json!("ready")), "Chromium did not start");
        browser
    }

    async fn answer(&mut self, limit: Duration) -> Result<Value, String> {
        let line = timeout(limit, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("browser driver silent for {limit:?}"))
            .expect("read browser driver")
            .expect("browser driver exited");
        let message: Value = serde_json::from_str(&line).expect("driver answers JSON");
        if message["ok"] == json!(true) {
            Ok(message["value"].clone())
        } else {
            Err(message["error"].as_str().unwrap_or("?").to_owned())
        }
    }

    /// Sends one command; `Err` carries the driver's error (a wait that timed out, say).
    pub async fn command(&mut self, command: Value) -> Result<Value, String> {
        let limit =
            COMMAND_TIME + Duration::from_millis(command["timeoutMs"].as_u64().unwrap_or(20_000));
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to browser driver");
        self.answer(limit).await
    }

    /// Opens `url` in a new tab named `page`; returns the HTTP status.
    pub async fn open(&mut self, page: &str, url: &str, without_event_source: bool) -> Value {
        self.command(json!({"cmd": "open", "page": page, "url": url,
                            "noEventSource": without_event_source}))
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }

    pub async fn goto(&mut self, page: &str, url: &str) -> Value {
        self.command(json!({"cmd": "goto", "page": page, "url": url}))
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"))
    }

    pub async fn eval(&mut self, page: &str, expr: &str) -> Value {
        self.command(json!({"cmd": "eval", "page": page, "expr": expr}))
            .await
            .unwrap_or_else(|e| panic!("eval {expr}: {e}"))
    }

    /// Waits in real time, at most `limit`, until `expr` is truthy on the page.
    pub async fn wait(&mut self, page: &str, expr: &str, limit: Duration) -> Result<Value, String> {
        self.command(json!({"cmd": "wait", "page": page, "expr": expr,
                            "timeoutMs": limit.as_millis() as u64}))
            .await
    }

    pub async fn click(&mut self, page: &str, selector: &str) {
        self.command(json!({"cmd": "click", "page": page, "selector": selector}))
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    pub async fn requests(&mut self, page: &str) -> Vec<String> {
        let value = self
            .command(json!({"cmd": "requests", "page": page}))
            .await
            .unwrap_or_else(|e| panic!("requests: {e}"));
        serde_json::from_value(value).expect("URL list")
    }

    /// Console messages and uncaught errors of the tab, for failure messages.
    pub async fn console(&mut self, page: &str) -> Vec<String> {
        let value = self
            .command(json!({"cmd": "console", "page": page}))
            .await
            .unwrap_or_else(|e| panic!("console: {e}"));
        serde_json::from_value(value).expect("message list")
    }

    pub async fn quit(mut self) {
        let _ = self.command(json!({"cmd": "quit"})).await;
    }
}
