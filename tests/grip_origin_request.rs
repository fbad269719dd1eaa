//! Conformance items of spec §12 about what the origin receives and pass-through
//! responses (§1, §2.1): items 19–22 and 50.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use support::{client, Origin, ProxyBuilder, Recorded, Reply, SLOW};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An origin with a plain page, a paged response whose next link is `/second`, and
/// a stream hold.
async fn paged_origin() -> Origin {
    Origin::start(|request| match request.path() {
        "/paged" => Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Link", "</second>; rel=next")
            .body("hello\n"),
        "/second" => Reply::ok()
            .header("Content-Type", "text/plain")
            .body("world\n"),
        _ => Reply::ok()
            .header("Content-Type", "text/plain")
            .body("plain\n"),
    })
    .await
}

/// Exercises a plain GET, a POST with a body and a paged response (whose next-link
/// fetch is a proxy-made request), each with the given extra client headers.
async fn exercise(listen: std::net::SocketAddr, headers: &[(&str, &str)]) {
    let plain = client::request(listen, "GET", "/plain", headers, b"", SLOW)
        .await
        .expect("plain");
    assert_eq!(plain.body, b"plain\n");
    let post = client::request(listen, "POST", "/post?q=1", headers, b"payload", SLOW)
        .await
        .expect("post");
    assert_eq!(post.head.status, 200);
    let paged = client::request(listen, "GET", "/paged", headers, b"", SLOW)
        .await
        .expect("paged");
    assert_eq!(paged.body, b"hello\nworld\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c19_every_origin_request_carries_a_valid_grip_sig() {
    let origin = paged_origin().await;
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .set("sig_iss", "\"fjord-test-iss\"")
        .set("sig_key", "\"s3cret-key\"")
        .start()
        .await;
    exercise(proxy.listen, &[]).await;
    let requests = origin
        .wait_n(4, SLOW, |_| true)
        .await
        .expect("4 origin requests");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["fjord-test-iss"]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    let key = DecodingKey::from_secret(b"s3cret-key");
    for request in &requests {
        let token = request
            .header("grip-sig")
            .unwrap_or_else(|| panic!("no Grip-Sig on {} {}", request.method, request.target));
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("Grip-Sig of {} does not verify: {e}", request.target));
        assert_eq!(data.header.alg, Algorithm::HS256);
        let claims = data.claims.as_object().expect("claims object");
        let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["exp", "iss"], "claims must be exactly iss and exp");
        let exp = claims["exp"].as_u64().expect("numeric exp");
        let now = now();
        assert!(
            (now + 3590..=now + 3610).contains(&exp),
            "exp {exp} not within [now+3590, now+3610] (now {now})"
        );
    }
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    assert!(
        targets.contains(&"/second"),
        "next link fetch missing: {targets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c20_client_grip_headers_and_accept_encoding_never_reach_the_origin() {
    let origin = paged_origin().await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let forged = [
        ("Grip-Sig", "forged"),
        ("Grip-Last", "a; last-id=1"),
        ("Accept-Encoding", "gzip, br"),
    ];
    exercise(proxy.listen, &forged).await;
    let requests = origin
        .wait_n(4, SLOW, |_| true)
        .await
        .expect("4 origin requests");
    for request in &requests {
        assert_ne!(
            request.header("grip-sig"),
            Some("forged"),
            "{}",
            request.target
        );
        assert!(
            request.header_all("grip-sig").len() <= 1,
            "{:?}",
            request.headers
        );
        assert!(
            request.header("grip-last").is_none(),
            "Grip-Last reached {}",
            request.target
        );
        assert!(
            request.header("accept-encoding").is_none(),
            "Accept-Encoding reached {}",
            request.target
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c21_origin_requests_announce_grip_features() {
    let origin = paged_origin().await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    exercise(proxy.listen, &[("Grip-Feature", "client-made")]).await;
    let requests = origin
        .wait_n(4, SLOW, |_| true)
        .await
        .expect("4 origin requests");
    for request in &requests {
        let features: Vec<String> = request
            .header_all("grip-feature")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|f| f.trim().to_owned())
            .collect();
        for wanted in [
            "status",
            "link:next",
            "link:gone",
            "filter:skip-self",
            "filter:build-id",
        ] {
            assert!(
                features.iter().any(|f| f == wanted),
                "{wanted} missing from {features:?} on {}",
                request.target
            );
        }
        assert!(
            !features.iter().any(|f| f == "client-made"),
            "client value kept: {features:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c22_trusted_upstream_gets_grip_headers_verbatim() {
    let origin = Origin::start(|_| {
        Reply::ok()
            .header("Content-Type", "application/json")
            .header("Grip-Hold", "response")
            .header("Grip-Channel", "a")
            .header("Grip-Timeout", "30")
            .body("{}")
    })
    .await;
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .set("upstream_key", "\"k\"")
        .start()
        .await;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"iss": "upstream", "exp": now() + 3600}),
        &EncodingKey::from_secret(b"k"),
    )
    .expect("sign");
    let response = client::request(
        proxy.listen,
        "GET",
        "/",
        &[("Grip-Sig", &token), ("Grip-Last", "a; last-id=1")],
        b"",
        Duration::from_secs(3),
    )
    .await
    .expect("passed-through response without a hold");
    assert_eq!(response.head.status, 200);
    assert_eq!(response.head.header("grip-hold"), Some("response"));
    assert_eq!(response.head.header("grip-channel"), Some("a"));
    assert_eq!(response.head.header("grip-timeout"), Some("30"));
    assert_eq!(response.body, b"{}");
    let seen: Recorded = origin.wait(SLOW, |_| true).await.expect("origin request");
    assert_eq!(
        seen.header("grip-sig"),
        Some(token.as_str()),
        "upstream signature replaced"
    );
    assert_eq!(
        seen.header("grip-last"),
        Some("a; last-id=1"),
        "trusted Grip-* stripped"
    );

    // Without a valid signature the same response is a hold (sanity check).
    let mut conn = proxy.connect().await;
    conn.get("/", &[("Grip-Sig", "forged")]).await;
    let early = conn.raw_within(Duration::from_millis(700)).await;
    assert!(
        early.is_empty(),
        "untrusted request was not held: {early:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c50_non_grip_response_is_relayed_byte_identical() {
    let origin = Origin::start(|_| {
        Reply::ok()
            .header("Content-Type", "text/plain")
            .header("X-Custom", "v1")
            .header("Content-Length", "3")
            .body("abc")
    })
    .await;
    let proxy = ProxyBuilder::new().origin(origin.addr).start().await;
    let response = client::request(proxy.listen, "GET", "/", &[], b"", SLOW)
        .await
        .expect("response");
    assert_eq!(response.head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(response.head.header("content-length"), Some("3"));
    assert!(!response.head.is_chunked(), "{:?}", response.head);
    assert_eq!(response.head.header("content-type"), Some("text/plain"));
    assert_eq!(response.head.header("x-custom"), Some("v1"));
    assert_eq!(response.body, b"abc");
}
