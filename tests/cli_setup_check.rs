//! `fjord setup` and `fjord check` as an operator uses them: real processes of the built
//! binary, files in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

use fjord_testkit::free_loopback_port;

fn fjord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .output()
        .expect("run fjord")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn setup_writes_a_config_that_check_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("conf");
    let setup = fjord(&["setup", path_arg(&target)]);
    assert!(setup.status.success(), "{}", text(&setup.stderr));
    let config = target.join("fjord.toml");
    assert!(config.is_file());
    assert!(target.join("fjord.key").is_file());

    let check = fjord(&["check", "-c", path_arg(&config)]);
    let stdout = text(&check.stdout);
    assert!(
        check.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&check.stderr)
    );
    // Only the broker probe may speak up: nothing listens on the template's broker.
    let last = stdout.lines().last().expect("a summary line");
    assert!(
        last.ends_with(")") && last.contains(": OK (proxy and relay;"),
        "{stdout}"
    );
    for line in stdout.lines().filter(|l| !l.contains(": OK (")) {
        assert!(line.contains(": warning: no broker"), "{stdout}");
    }
}

#[cfg(unix)]
#[test]
fn the_generated_key_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(fjord(&["setup", path_arg(dir.path())]).status.success());
    let mode = std::fs::metadata(dir.path().join("fjord.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn setup_twice_without_force_fails_and_leaves_the_files_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_arg = path_arg(dir.path());
    assert!(fjord(&["setup", dir_arg]).status.success());
    let config = dir.path().join("fjord.toml");
    let key = dir.path().join("fjord.key");
    std::fs::write(&config, "# edited by the operator\n").expect("edit");
    let key_before = std::fs::read(&key).expect("key");

    let again = fjord(&["setup", dir_arg]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = text(&again.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("fjord.toml already exists; pass --force to overwrite it"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "# edited by the operator\n"
    );
    assert_eq!(std::fs::read(&key).expect("key"), key_before);

    let forced = fjord(&["setup", "--force", dir_arg]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_ne!(std::fs::read(&key).expect("key"), key_before, "a fresh key");
    assert!(std::fs::read_to_string(&config)
        .expect("config")
        .contains("[[relay.stream]]"));
}

/// Three different kinds of problem in one file, each on a known line.
const BROKEN: &str = r#"[proxy]
listen = "127.0.0.1:7999"
zmq_pul = "tcp://127.0.0.1:5560"

[auth]
jwt_key = "file:missing.key"

[kafka]
"bootstrap.servers" = "127.0.0.1:9092"

[[relay.stream]]
topic = "orders"
channel = "orders.{kee}"
"#;

#[test]
fn a_broken_config_fails_check_with_every_problem_located() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("fjord.toml");
    std::fs::write(&config, BROKEN).expect("write");
    let file = config.display().to_string();

    let check = fjord(&["check", "--offline", "-c", &file]);
    assert_eq!(check.status.code(), Some(1));
    let stdout = text(&check.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:3:1: proxy.zmq_pul: unknown field `zmq_pul`"
        )),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("{file}:6:1: auth.jwt_key: cannot read key file")),
        "{stdout}"
    );
    assert!(lines[1].contains("missing.key"), "{stdout}");
    assert!(
        lines[2].starts_with(&format!(
            "{file}:13:1: relay.stream[0].channel: template \"orders.{{kee}}\": unknown field {{kee}}"
        )),
        "{stdout}"
    );
    let stderr = text(&check.stderr);
    assert!(stderr.contains("3 errors, 0 warnings"), "{stderr}");
}

/// `run`, `proxy` and `relay` refuse to start on what `check` reports, each problem on
/// its own line — and only on the sections they use.
#[test]
fn start_up_runs_the_same_validation_as_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("fjord.toml");
    std::fs::write(&config, BROKEN).expect("write");
    let file = config.display().to_string();

    for command in ["run", "relay"] {
        let output = fjord(&[command, "-c", &file]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let stderr = text(&output.stderr);
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("fjord: {file}:")))
            .collect();
        assert_eq!(problems.len(), 3, "{command}: {stderr}");
    }
    let proxy = fjord(&["proxy", "-c", &file]);
    assert_eq!(proxy.status.code(), Some(1));
    let stderr = text(&proxy.stderr);
    assert!(stderr.contains("proxy.zmq_pul"), "{stderr}");
    assert!(stderr.contains("auth.jwt_key"), "{stderr}");
    assert!(
        !stderr.contains("relay.stream"),
        "the proxy does not use the relay's rules: {stderr}"
    );
}

#[test]
fn an_unreachable_broker_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("fjord.toml");
    let port = free_loopback_port().expect("port");
    std::fs::write(
        &config,
        format!(
            "[kafka]\n\"bootstrap.servers\" = \"127.0.0.1:{port}\"\n\n[[relay.stream]]\ntopic = \"orders\"\n"
        ),
    )
    .expect("write");
    let file = config.display().to_string();

    let check = fjord(&["check", "-c", &file]);
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", text(&check.stderr));
    assert!(
        stdout.contains(&format!(
            "{file}:2:1: kafka.\"bootstrap.servers\": warning: no broker of 127.0.0.1:{port}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(": OK (proxy and relay; 1 warning)"),
        "{stdout}"
    );
}

#[test]
fn the_generated_key_signs_tokens_that_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(fjord(&["setup", path_arg(dir.path())]).status.success());
    let config = dir.path().join("fjord.toml");
    let token = fjord(&[
        "token",
        "-c",
        path_arg(&config),
        "--channel",
        "orders.*",
        "--ttl",
        "1h",
        "--sub",
        "user42",
    ]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token = text(&token.stdout).trim().to_owned();

    let hex = std::fs::read_to_string(dir.path().join("fjord.key")).expect("key");
    let secret = decode_hex(hex.trim());
    assert_eq!(secret.len(), 32);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["fjord"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(&secret),
        &validation,
    )
    .expect("the token verifies with the generated key")
    .claims;
    assert_eq!(claims["channels"], serde_json::json!(["orders.*"]));
    assert_eq!(claims["sub"], "user42");

    let mut wrong = secret.clone();
    wrong[0] ^= 1;
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(&wrong),
        &validation,
    )
    .is_err());
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
