//! Conformance items of spec §12 about the routes file (§7.1): item 49 (item 35,
//! rewrites and links, lives with the link tests).

mod support;

use std::time::Duration;

use support::{client, Origin, ProxyBuilder, Reply, SLOW};
use tokio::time::Instant;

/// Which origin answered `target` ("o0" or "o1").
async fn who(listen: std::net::SocketAddr, target: &str) -> String {
    client::request(listen, "GET", target, &[], b"", SLOW)
        .await
        .expect("response")
        .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c49_routes_select_by_path_and_reload_without_restart() {
    let o0 = Origin::start(|_| Reply::ok().header("Content-Type", "text/plain").body("o0")).await;
    let o1 = Origin::start(|_| Reply::ok().header("Content-Type", "text/plain").body("o1")).await;
    let routes = format!("*,path_beg=/api {}\n* {}\n", o1.addr, o0.addr);
    let mut proxy = ProxyBuilder::new().routes_file(&routes).start().await;
    assert_eq!(who(proxy.listen, "/api/x").await, "o1");
    assert_eq!(who(proxy.listen, "/x").await, "o0");
    assert_eq!(o1.requests()[0].target, "/api/x");

    let swapped = format!("*,path_beg=/api {}\n* {}\n", o0.addr, o1.addr);
    assert_eq!(
        swapped.len(),
        routes.len(),
        "same size: the reload must not rely on it"
    );
    let start = Instant::now();
    proxy.write_routes(&swapped);
    let reloaded = support::wait_for_async(Duration::from_millis(2500), || async {
        let api = who(proxy.listen, "/api/x").await;
        let other = who(proxy.listen, "/x").await;
        (api == "o0" && other == "o1").then(|| start.elapsed())
    })
    .await
    .expect("swapped routes in force");
    assert!(
        reloaded <= Duration::from_secs(2),
        "reload took {reloaded:?}"
    );
    assert!(proxy.is_running(), "the proxy kept running");
}
