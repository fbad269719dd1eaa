//! `fjord token` and `fjord publish` as a script uses them, against a real `fjord proxy`:
//! the token verifies with the configured key and grants exactly the channels asked for,
//! and a publish reaches a subscribed client over the HTTP control API and over ZeroMQ.

mod support;

use std::process::Command;

use fjord_protocol::sig::VerifyingKey;
use fjord_protocol::token::{verify_client_token, TokenValidation};
use support::direct::{now, order_data, SECRET};
use support::{ProxyBuilder, SLOW};

fn fjord(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(args)
        .output()
        .expect("run fjord");
    assert!(
        output.status.success(),
        "fjord {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test]
async fn a_minted_token_verifies_and_grants_exactly_its_channels() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!("[auth]\njwt_key = \"{SECRET}\"\naudience = \"fjord\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("path");
    let token = fjord(&[
        "token",
        "-c",
        config,
        "--channel",
        "orders.*",
        "--channel",
        "drivers.7",
        "--ttl",
        "2h",
        "--sub",
        "user42",
    ]);
    let token = token.trim();
    let key = VerifyingKey::from_secret(SECRET.as_bytes()).expect("key");
    let validation = TokenValidation {
        audience: Some("fjord".into()),
        ..TokenValidation::default()
    };
    let claims = verify_client_token(token, &key, &validation, now()).expect("verifies");
    assert_eq!(claims.sub.as_deref(), Some("user42"));
    assert!(
        claims.exp >= now() + 7000 && claims.exp <= now() + 7300,
        "{}",
        claims.exp
    );
    assert!(claims.allows("orders.1") && claims.allows("orders.2235407"));
    assert!(claims.allows("drivers.7"));
    assert!(!claims.allows("drivers.8") && !claims.allows("prices.x"));
    let other = VerifyingKey::from_secret(b"some-other-secret-0123456789abcdef").expect("key");
    assert!(verify_client_token(token, &other, &validation, now()).is_err());

    // The proxy agrees: granted channels stream, others are refused.
    let proxy = ProxyBuilder::new()
        .config("[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\n")
        .config("[[proxy.route]]\npath = \"/drivers/{id}\"\nchannel = \"drivers.{id}\"\n")
        .config(&format!(
            "[auth]\njwt_key = \"{SECRET}\"\naudience = \"fjord\"\n"
        ))
        .start()
        .await;
    for (path, status) in [("/orders/5", 200), ("/drivers/7", 200), ("/drivers/8", 403)] {
        let mut conn = proxy.get(&format!("{path}?token={token}")).await;
        let head = conn.read_head(SLOW).await.expect("head");
        assert_eq!(head.status, status, "{path}");
    }
}

#[tokio::test]
async fn fjord_publish_reaches_a_subscriber_over_http_and_over_zeromq() {
    let pull_port = fjord_testkit::free_loopback_port().expect("port");
    let pull = format!("tcp://127.0.0.1:{pull_port}");
    let proxy = ProxyBuilder::new()
        .zmq_pull(&pull)
        .config("[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n")
        .start()
        .await;
    let mut stream = proxy.get("/orders/9").await;
    stream.read_head(SLOW).await.expect("head");
    proxy.wait_subscriptions(1).await;
    let control = format!("http://{}", proxy.control);
    fjord(&[
        "publish",
        "--control",
        &control,
        "--channel",
        "orders.9",
        "--event",
        "order",
        "{\"via\":\"http\"}",
    ]);
    fjord(&[
        "publish",
        "--zmq",
        &pull,
        "--channel",
        "orders.9",
        "--event",
        "order",
        "{\"via\":\"zmq\"}",
    ]);
    let data = stream
        .read_chunks_until(SLOW, |d| order_data(&String::from_utf8_lossy(d)).len() >= 2)
        .await
        .map_err(|(e, d)| format!("{e:?}: {}", String::from_utf8_lossy(&d)))
        .expect("both publishes");
    assert_eq!(
        order_data(&String::from_utf8_lossy(&data)),
        vec!["{\"via\":\"http\"}", "{\"via\":\"zmq\"}"]
    );
}
