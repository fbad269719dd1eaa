//! Validation rules on text, without files or processes (the end-to-end tests in
//! `tests/cli_setup_check.rs` run the binary).

use super::*;

fn problems(text: &str, scope: Scope) -> Vec<String> {
    let source = ConfigSource::new("f.toml", text);
    let report = check_source(&source, None, scope);
    report.problems.iter().map(ToString::to_string).collect()
}

const RELAY: &str = "[kafka]\n\"bootstrap.servers\" = \"127.0.0.1:9092\"\n\n[[relay.stream]]\nname = \"orders\"\ntopic = \"orders\"\n";

#[test]
fn a_direct_route_channel_must_use_the_path_names() {
    let text = "[auth]\njwt_key = \"secret\"\n\n[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{order}\"\n";
    let found = problems(text, Scope::Proxy);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:6:1: proxy.route[0].channel: `channel`: "),
        "{found:#?}"
    );
}

#[test]
fn a_token_route_needs_a_jwt_key() {
    let found = problems(
        "[[proxy.route]]\npath = \"/o/{id}\"\nchannel = \"o.{id}\"\n",
        Scope::Proxy,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:3:1: proxy.route[0].channel: this route checks client tokens"),
        "{found:#?}"
    );
    let public = "[[proxy.route]]\npath = \"/o/{id}\"\nchannel = \"o.{id}\"\nauth = \"public\"\n";
    assert!(problems(public, Scope::Proxy).is_empty());
}

#[test]
fn a_route_names_only_streams_the_relay_has() {
    let text = format!(
        "[auth]\njwt_key = \"secret\"\n\n[[proxy.route]]\npath = \"/o/{{id}}\"\nchannel = \"o.{{id}}\"\nstream = \"order\"\n\n{RELAY}"
    );
    let found = problems(&text, Scope::Run);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "f.toml:7:1: proxy.route[0].stream: no [[relay.stream]] is named \"order\" (named streams: orders)"
        ),
        "{found:#?}"
    );
    // `fjord proxy` alone cannot know the relay's rules.
    assert!(problems(&text, Scope::Proxy).is_empty());
}

#[test]
fn a_route_with_two_targets_is_reported_at_the_route() {
    let text =
        "[[proxy.route]]\npath = \"/a/\"\norigin = \"http://127.0.0.1:1\"\nfiles = \"web\"\n";
    let found = problems(text, Scope::Proxy);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "f.toml:1:1: proxy.route[0]: `origin`, `channel` and `files` exclude each other"
        ),
        "{found:#?}"
    );
}

#[test]
fn an_origin_error_names_the_origin_key() {
    let text = "[[proxy.route]]\npath = \"/a/\"\norigin = \"ftp://h\"\n";
    let found = problems(text, Scope::Check);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:3:1: proxy.route[0].origin: "),
        "{found:#?}"
    );
}

#[test]
fn the_relay_is_checked_only_where_it_is_used() {
    let text = "[proxy]\nzmq_pull = \"udp://x\"\n\n[kafka]\n\"group.id\" = \"g\"\n";
    let relay = problems(text, Scope::Relay);
    assert_eq!(relay.len(), 2, "{relay:#?}");
    // A missing section has no line; such problems come first.
    assert!(
        relay[0].starts_with("f.toml: relay.stream: at least one"),
        "{relay:#?}"
    );
    assert!(
        relay[1].starts_with("f.toml:4:1: kafka: \"bootstrap.servers\" is required"),
        "{relay:#?}"
    );
    let proxy = problems(text, Scope::Proxy);
    assert_eq!(proxy.len(), 1, "{proxy:#?}");
    assert!(
        proxy[0].starts_with("f.toml:2:1: proxy.zmq_pull: "),
        "{proxy:#?}"
    );
    assert_eq!(problems(text, Scope::Check).len(), 3);
}

#[test]
fn a_standalone_relay_needs_an_output() {
    let text = format!("{RELAY}\n[relay]\npublish = \"\"\n");
    let found = problems(&text, Scope::Relay);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("relay: no output"), "{found:#?}");
    // Under `fjord run` the relay feeds the proxy in-process.
    assert!(problems(&text, Scope::Run).is_empty());
}

#[test]
fn a_problem_inside_a_refused_entry_is_not_repeated() {
    // `topic = 5` is refused by the parser; the stream then lacks a topic, which is the
    // same problem again in other words.
    let text = "[kafka]\n\"bootstrap.servers\" = \"h:1\"\n\n[[relay.stream]]\ntopic = 5\n";
    let found = problems(text, Scope::Check);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:5:9: relay.stream[0].topic: "),
        "{found:#?}"
    );
}

/// A self-signed pair written as `cert.pem` and `key.pem` into a fresh directory.
fn tls_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
    std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("key.pem"),
        generated.key_pair.serialize_pem(),
    )
    .expect("write");
    dir
}

fn problems_in(dir: &Path, text: &str) -> Vec<String> {
    let source = ConfigSource::new("f.toml", text);
    let report = check_source(&source, Some(dir), Scope::Check);
    report.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn tls_files_are_read_relative_to_the_config() {
    let dir = tls_dir();
    let text = "[proxy]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n";
    let found = problems_in(dir.path(), text);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn tls_cert_without_tls_key_is_reported_at_the_cert() {
    let dir = tls_dir();
    let found = problems_in(dir.path(), "[proxy]\ntls_cert = \"cert.pem\"\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:2:1: proxy.tls_cert: tls_key is not set"),
        "{found:#?}"
    );
    let found = problems_in(dir.path(), "[proxy]\n\ntls_key = \"key.pem\"\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:3:1: proxy.tls_key: tls_cert is not set"),
        "{found:#?}"
    );
}

#[test]
fn a_missing_tls_cert_is_reported_with_its_resolved_path() {
    let dir = tls_dir();
    let text = "[proxy]\ntls_cert = \"nope.pem\"\ntls_key = \"key.pem\"\n";
    let found = problems_in(dir.path(), text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let expected = format!(
        "f.toml:2:1: proxy.tls_cert: cannot read {}: ",
        dir.path().join("nope.pem").display()
    );
    assert!(found[0].starts_with(&expected), "{found:#?}");
}

#[test]
fn a_tls_key_that_is_not_a_key_is_reported_at_the_key() {
    let dir = tls_dir();
    let text = "[proxy]\ntls_cert = \"cert.pem\"\ntls_key = \"cert.pem\"\n";
    let found = problems_in(dir.path(), text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:3:1: proxy.tls_key: ")
            && found[0].ends_with("holds no PEM private key"),
        "{found:#?}"
    );
}

#[test]
fn a_tls_key_of_another_certificate_is_reported_at_the_key() {
    let dir = tls_dir();
    let other = tls_dir();
    let text = format!(
        "[proxy]\ntls_cert = \"cert.pem\"\ntls_key = {:?}\n",
        other.path().join("key.pem").display().to_string()
    );
    let found = problems_in(dir.path(), &text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("f.toml:3:1: proxy.tls_key: ")
            && found[0].contains("cannot be used with"),
        "{found:#?}"
    );
}
