mod support;
use std::sync::Arc;
use std::time::Duration;
use fjord_proxy::zmq_input::{bind_pull, start_sub, SubInputConfig};
use support::{next_delivery, subscribe, counter};

fn run(mode: &str, endpoint: &str) -> tokio::process::Child {
    tokio::process::Command::new("python3")
        .args(["/tmp/interop/peer.py", mode, endpoint])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzmq_push() {
    let (hub, _e) = support::hub();
    let sub = subscribe(&hub, "test");
    let input = bind_pull("tcp://127.0.0.1:0", Arc::clone(&hub)).await.unwrap();
    let out = run("push", &input.endpoints()[0]).wait_with_output().await.unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    for _ in 0..3 { assert!(next_delivery(&sub, Duration::from_secs(3)).await.is_some()); }
    assert_eq!(counter(hub.metrics(), "fjord_proxy_publish_errors_total", "zmq_pull"), 1);
}

async fn xpub(mode: &str, relay: bool) {
    let (hub, events) = support::hub();
    let endpoint = "tcp://127.0.0.1:47123".to_string();
    let config = if relay {
        SubInputConfig { bind: vec![], relays: vec![endpoint.clone()] }
    } else {
        SubInputConfig { bind: vec![endpoint.clone()], relays: vec![] }
    };
    let _input = start_sub(&config, Arc::clone(&hub), events).await.unwrap();
    let child = run(mode, &endpoint);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sub = subscribe(&hub, "a");
    let d = next_delivery(&sub, Duration::from_secs(5)).await.expect("delivered");
    assert_eq!(&*d.channel, "a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.unsubscribe("a", sub.id());
    let out = child.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert!(text.contains("got 0161") && text.contains("got 0061"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzmq_xpub_connecting_and_bound() {
    xpub("xpub_connect", false).await;
    xpub("xpub_bind", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzmq_pub() {
    let (hub, events) = support::hub();
    let config = SubInputConfig { bind: vec!["tcp://127.0.0.1:47124".into()], relays: vec![] };
    let _input = start_sub(&config, Arc::clone(&hub), events).await.unwrap();
    let sub = subscribe(&hub, "a");
    let _child = run("pub_connect", "tcp://127.0.0.1:47124");
    assert!(next_delivery(&sub, Duration::from_secs(5)).await.is_some());
}
