//! The README's quick start, executed as written, so the documentation cannot drift
//! from the program.
//!
//! The commands are the fenced ` ```sh ` blocks of README.md's "Quick start" section, run
//! by `sh` exactly as a newcomer pastes them: the first block in its own "terminal" (it
//! starts the proxy and keeps running), each later block to completion in a second one.
//! A block preceded by the line `<!-- readme-test: skip -->` is not run; the README uses
//! that for commands that do not belong in a test (running the whole test suite from
//! inside the test suite, or a long demo).
//!
//! One substitution, and only one: the build. The first command of the first block must
//! be `cargo build --release`, and it is checked but not executed. `cargo test` has just
//! built the `fjord` binary from these same sources, and a nested cargo would wait on the
//! target directory lock the outer `cargo test` holds (or, in another target directory,
//! rebuild the workspace for many minutes). Instead the blocks run in a scratch directory
//! in which `target/release/fjord` is a link to the binary under test, so every path the
//! README uses resolves as it would in a fresh checkout after the build.
//!
//! The documented outcome checked: the `hello` published in the second terminal reaches
//! the `curl -N` stream. The README's ports are fixed (Pushpin's 7999, 5560–5562), so
//! this test needs them free.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SKIP_MARKER: &str = "<!-- readme-test: skip -->";
const BUILD_COMMAND: &str = "cargo build --release";
const WAIT: Duration = Duration::from_secs(30);

/// The runnable ` ```sh ` blocks of the README section titled `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let mut lines = readme
        .lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "));
    let mut blocks = Vec::new();
    let mut previous_text_line = "";
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if previous_text_line.trim() != SKIP_MARKER {
                blocks.push(block.join("\n"));
            }
            previous_text_line = "";
        } else if !line.trim().is_empty() {
            previous_text_line = line;
        }
    }
    blocks
}

/// A shell running a README block in its own process group, so that everything it
/// started (the proxy, a background `curl`) is stopped with it.
struct Terminal(Child);

impl Terminal {
    fn open(dir: &Path, script: &str, stdout: Stdio) -> Terminal {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start sh");
        Terminal(child)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The whole group the shell leads: the shell and whatever it started.
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn readme_quick_start_streams_the_published_hello() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = sh_blocks(&readme, "## Quick start");
    assert_eq!(
        blocks.len(),
        2,
        "the quick start should have a server block and a client block to run: {blocks:#?}"
    );
    for port in [7999, 5560, 5561, 5562] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is already in use; the README quick start needs it"
        );
    }

    let server = blocks[0]
        .strip_prefix(BUILD_COMMAND)
        .unwrap_or_else(|| panic!("the quick start should begin with `{BUILD_COMMAND}`"));
    let scratch = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(scratch.path().join("target/release")).expect("mkdir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_fjord"),
        scratch.path().join("target/release/fjord"),
    )
    .expect("link the binary under test");

    let _server = Terminal::open(scratch.path(), server, Stdio::null());
    assert!(wait_for_port(7999), "the proxy never listened on 7999");
    assert!(
        wait_for_port(5561),
        "the control API never listened on 5561"
    );

    let mut client = Terminal::open(scratch.path(), &blocks[1], Stdio::piped());
    let mut stdout = client.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            if seen.windows(6).any(|w| w == b"hello\n") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(WAIT).unwrap_or_default();
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.contains("hello\n"),
        "the stream did not receive the published hello; output: {seen:?}"
    );
}

#[test]
fn blocks_marked_skip_are_left_out() {
    let text = "## Quick start\n\n```sh\na\n```\n\n<!-- readme-test: skip -->\n```sh\nb\n```\n\ntext\n\n```sh\nc\nd\n```\n\n## Next\n\n```sh\ne\n```\n";
    assert_eq!(sh_blocks(text, "## Quick start"), ["a", "c\nd"]);
}
