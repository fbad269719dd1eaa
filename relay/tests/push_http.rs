//! The Pushpin-facing outputs: PUSH into a PULL socket of the `zeromq` crate, and batched
//! `POST /publish/` into a small HTTP server that records the bodies.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fjord_protocol::item::parse_publish_request;
use fjord_protocol::zmq::decode_pull_message;
use fjord_relay::{HttpTarget, Relay, StreamConfig};
use fjord_testkit::TestRecord;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use zeromq::{PullSocket, Socket, SocketRecv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_output_feeds_a_pull_socket() {
    let broker = start_broker().await;
    broker.create_topic("drivers", 2).await.unwrap();
    let mut pull = PullSocket::new();
    let endpoint = pull.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut config = relay_config(
        &broker,
        "push",
        vec![StreamConfig::new("drivers", "drivers.{key}")],
    );
    config.publish = None;
    config.push = vec![endpoint.to_string()];
    let relay = Relay::start(config).await.unwrap();
    let records: Vec<_> = (0..20)
        .map(|i| TestRecord::keyed(format!("d{}", i % 4), format!("{{\"lat\":{i}}}")))
        .collect();
    let positions = broker.produce("drivers", &records).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < records.len() {
        let message = tokio::time::timeout(Duration::from_secs(20), pull.recv())
            .await
            .expect("PUSH items did not arrive")
            .unwrap();
        let item = decode_pull_message(&message.into_vec()).unwrap();
        let (_, partition, offset) = position(&item);
        let index = positions
            .iter()
            .position(|&p| p == (partition, offset))
            .unwrap();
        assert_eq!(item.channel, format!("drivers.d{}", index % 4));
        seen.push(index);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    relay.shutdown().await;
}

/// A control API stand-in: answers 500 to the first POST (the relay must retry), then
/// 200 `Published`, and closes every connection as Pushpin does.
async fn publish_server(bodies: Arc<Mutex<Vec<Bytes>>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let bodies = bodies.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let bodies = bodies.clone();
                    let calls = calls.clone();
                    async move {
                        assert_eq!(request.method(), hyper::Method::POST);
                        assert_eq!(request.uri().path(), "/publish/");
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let status = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            500
                        } else {
                            bodies.lock().unwrap().push(body);
                            200
                        };
                        let response = hyper::Response::builder()
                            .status(status)
                            .header("Connection", "close")
                            .body(Full::new(Bytes::from_static(b"Published\n")))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_output_posts_batches_and_retries_server_errors() {
    let broker = start_broker().await;
    broker.create_topic("orders", 3).await.unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let address = publish_server(bodies.clone()).await;
    let mut config = relay_config(
        &broker,
        "http",
        vec![StreamConfig::new("orders", "orders.{key}")],
    );
    config.publish = None;
    config.http = vec![HttpTarget {
        url: format!("http://{address}"),
        authorization: Some("Bearer t".into()),
    }];
    config.http_batch.max_items = 7;
    let relay = Relay::start(config).await.unwrap();
    let records: Vec<_> = (0..50)
        .map(|i| TestRecord::keyed(format!("o{i}"), vec![i as u8, 0xff]))
        .collect();
    let positions = broker.produce("orders", &records).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let items = loop {
        let items: Vec<_> = bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| {
                let items = parse_publish_request(body).unwrap();
                assert!(items.len() <= 7, "batch over the item limit");
                items
            })
            .collect();
        if items.len() >= records.len() {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "only {} items posted",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        items.len(),
        records.len(),
        "the refused first batch was re-sent once"
    );
    for item in &items {
        let (_, partition, offset) = position(item);
        let index = positions
            .iter()
            .position(|&p| p == (partition, offset))
            .unwrap();
        assert_eq!(item.channel, format!("orders.o{index}"));
        // Binary values travel as base64 in JSON and decode back to the same bytes.
        let fjord_protocol::item::ResponseAction::Send(response) =
            &item.formats.http_response.as_ref().unwrap().action
        else {
            panic!("not a send");
        };
        assert_eq!(
            response.body,
            fjord_protocol::item::ResponseBody::Bytes(Bytes::from(vec![index as u8, 0xff]))
        );
    }
    relay.shutdown().await;
}
