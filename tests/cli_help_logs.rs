//! The command line's manners: every subcommand explains itself with an example, errors
//! are one line and a non-zero exit, logs are readable text by default and JSON with
//! `--log-format json`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SUBCOMMANDS: [&str; 7] = [
    "run", "proxy", "relay", "token", "publish", "setup", "check",
];

fn fjord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .output()
        .expect("run fjord")
}

#[test]
fn every_subcommand_help_shows_an_example_invocation() {
    for command in SUBCOMMANDS {
        let help = fjord(&[command, "--help"]);
        assert!(help.status.success(), "{command} --help");
        let text = String::from_utf8_lossy(&help.stdout);
        let example = text
            .split_once("Example")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{command} --help has no example:\n{text}"));
        assert!(
            example.contains(&format!("fjord {command}")),
            "{command}'s example does not run it:\n{text}"
        );
    }
    let top = fjord(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    for command in SUBCOMMANDS {
        assert!(
            text.contains(command),
            "{command} missing from fjord --help"
        );
    }
}

#[test]
fn log_format_is_accepted_after_every_subcommand() {
    for command in SUBCOMMANDS {
        for format in ["text", "json"] {
            let output = fjord(&[command, "--log-format", format, "--help"]);
            assert!(
                output.status.success(),
                "{command} --log-format {format}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn a_config_that_cannot_be_read_is_one_line_and_exit_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.toml");
    let missing = missing.to_str().expect("UTF-8");
    for command in ["run", "relay", "proxy", "token", "check"] {
        let mut args = vec![command, "-c", missing];
        if command == "token" {
            args.extend(["--channel", "x"]);
        }
        let output = fjord(&args);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(stderr.starts_with("fjord: "), "{command}: {stderr}");
        assert!(stderr.contains("nope.toml"), "{command}: {stderr}");
    }
}

/// Starts `fjord proxy` on kernel-chosen ports and returns its "ready" log line.
fn ready_log_line(extra: &[&str]) -> String {
    let mut args = vec![
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--zmq-pull",
        "",
        "--zmq-sub",
        "",
    ];
    args.extend_from_slice(extra);
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fjord proxy");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().take(100) {
            let Ok(line) = line else { break };
            if line.contains("fjord proxy ready") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    line.expect("the proxy logs within 30 s")
}

#[test]
fn logs_are_text_by_default_and_json_on_request() {
    let text = ready_log_line(&[]);
    assert!(text.contains("INFO"), "{text}");
    assert!(text.contains("fjord proxy ready"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());

    let json = ready_log_line(&["--log-format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("a JSON log line");
    assert_eq!(value["level"], "INFO");
    assert_eq!(value["fields"]["message"], "fjord proxy ready");
}
