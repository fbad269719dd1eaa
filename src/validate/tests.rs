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
