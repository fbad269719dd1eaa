//! The ZeroMQ publish inputs over real sockets (§4.2, §4.3; conformance items 40–42).
//! Publishers are the `zeromq` crate's PUSH and PUB sockets; XPUB peers and relays,
//! which that crate lacks, are played with the proxy's own ZMTP module.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::item::PublishItem;
use fjord_protocol::zmq::{encode_pull_frame, encode_sub_message, PullEncoding};
use fjord_proxy::hub::{Delivery, Hub, Subscriber};
use fjord_proxy::zmq_input::{bind_pull, start_sub, SubInputConfig, ZmqInput};
use fjord_proxy::zmtp::{self, Incoming, SocketType};
use tokio::net::{TcpListener, TcpStream};
use zeromq::{PubSocket, PushSocket, Socket, SocketSend, ZmqMessage};

use support::{counter, next_delivery, stream_content, subscribe};

const PATIENCE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// The §4.6 example: `{"channel":"test","formats":{"http-stream":{"content":"hi\n"}}}`.
const PULL_TNETSTRING: &[u8] =
    b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
/// The §4.6 SUB example item, without `channel`.
const SUB_TNETSTRING: &[u8] = b"49:7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";

fn frame(bytes: &[u8]) -> ZmqMessage {
    ZmqMessage::from(bytes.to_vec())
}

fn frames(parts: &[&[u8]]) -> ZmqMessage {
    let parts: Vec<Bytes> = parts.iter().map(|p| Bytes::copy_from_slice(p)).collect();
    ZmqMessage::try_from(parts).expect("at least one frame")
}

fn stream_item(channel: &str, content: &'static str) -> PublishItem {
    let body = format!(
        r#"{{"items":[{{"channel":"{channel}","http-stream":{{"content":"{content}"}}}}]}}"#
    );
    fjord_protocol::item::parse_publish_request(body.as_bytes())
        .expect("valid item")
        .remove(0)
}

async fn delivered(subscriber: &Subscriber) -> Arc<Delivery> {
    next_delivery(subscriber, PATIENCE)
        .await
        .expect("item delivered in time")
}

async fn delivered_content(subscriber: &Subscriber) -> Vec<u8> {
    let delivery = delivered(subscriber).await;
    stream_content(&delivery)
}

async fn push_to(input: &ZmqInput) -> PushSocket {
    let mut push = PushSocket::new();
    push.connect(&input.endpoints()[0])
        .await
        .expect("PUSH connects");
    push
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_accepts_all_three_frame_encodings() {
    let (hub, _events) = support::hub();
    let subscriber = subscribe(&hub, "test");
    let input = bind_pull("tcp://127.0.0.1:0", Arc::clone(&hub))
        .await
        .unwrap();
    let mut push = push_to(&input).await;

    push.send(frame(PULL_TNETSTRING)).await.unwrap();
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");

    let json = br#"J{"channel":"test","formats":{"http-stream":{"content":"json"}}}"#;
    push.send(frame(json)).await.unwrap();
    assert_eq!(delivered_content(&subscriber).await, b"json");

    let mut prefixed = b"T".to_vec();
    prefixed.extend_from_slice(PULL_TNETSTRING);
    push.send(frame(&prefixed)).await.unwrap();
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");

    let item = stream_item("test", "encoded");
    for encoding in [
        PullEncoding::Tnetstring,
        PullEncoding::TPrefixed,
        PullEncoding::Json,
    ] {
        push.send(frame(&encode_pull_frame(&item, encoding)))
            .await
            .unwrap();
        assert_eq!(delivered_content(&subscriber).await, b"encoded");
    }
    assert_eq!(
        counter(
            hub.metrics(),
            "fjord_proxy_items_received_total",
            "zmq_pull"
        ),
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_skips_bad_messages_and_keeps_serving() {
    let (hub, _events) = support::hub();
    let subscriber = subscribe(&hub, "test");
    let input = bind_pull("tcp://127.0.0.1:0", Arc::clone(&hub))
        .await
        .unwrap();
    let mut push = push_to(&input).await;

    push.send(frames(&[PULL_TNETSTRING, PULL_TNETSTRING]))
        .await
        .unwrap();
    push.send(frame(b"\x00\xffgarbage")).await.unwrap();
    push.send(frame(b"J{not json")).await.unwrap();
    push.send(frame(br#"J{"channel":"test"}"#)).await.unwrap();
    push.send(frame(PULL_TNETSTRING)).await.unwrap();

    assert_eq!(delivered_content(&subscriber).await, b"hi\n");
    assert!(
        next_delivery(&subscriber, QUIET).await.is_none(),
        "only the good message"
    );
    assert_eq!(
        counter(
            hub.metrics(),
            "fjord_proxy_publish_errors_total",
            "zmq_pull"
        ),
        4
    );

    let mut second = push_to(&input).await;
    second.send(frame(PULL_TNETSTRING)).await.unwrap();
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_survives_a_peer_that_is_not_zeromq() {
    let (hub, _events) = support::hub();
    let subscriber = subscribe(&hub, "test");
    let input = bind_pull("tcp://127.0.0.1:0", Arc::clone(&hub))
        .await
        .unwrap();
    let address = input.endpoints()[0].trim_start_matches("tcp://").to_owned();
    let mut stranger = TcpStream::connect(&address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stranger, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut push = push_to(&input).await;
    push.send(frame(PULL_TNETSTRING)).await.unwrap();
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");
}

#[tokio::test]
async fn a_pull_endpoint_in_use_is_an_error() {
    let (hub, _events) = support::hub();
    let first = bind_pull("tcp://127.0.0.1:0", Arc::clone(&hub))
        .await
        .unwrap();
    let error = bind_pull(&first.endpoints()[0], hub)
        .await
        .expect_err("in use");
    assert!(error.to_string().contains("cannot bind"), "{error}");
}

async fn sub_input(hub: &Arc<Hub>, events: support::Events, relays: Vec<String>) -> ZmqInput {
    let config = SubInputConfig {
        bind: vec!["tcp://127.0.0.1:0".to_owned()],
        relays,
    };
    start_sub(&config, Arc::clone(hub), events).await.unwrap()
}

/// Sends `message` until one copy gets through, since a PUB socket drops messages
/// until the subscription has reached it.
async fn publish_until_delivered(
    publisher: &mut PubSocket,
    message: ZmqMessage,
    subscriber: &Subscriber,
) -> Arc<Delivery> {
    for _ in 0..50 {
        publisher.send(message.clone()).await.unwrap();
        if let Some(delivery) = next_delivery(subscriber, Duration::from_millis(100)).await {
            return delivery;
        }
    }
    panic!("the subscription never reached the publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_channel_frame_wins_over_the_items_channel() {
    let (hub, events) = support::hub();
    let input = sub_input(&hub, events, Vec::new()).await;
    let subscriber = subscribe(&hub, "a");
    let mut publisher = PubSocket::new();
    publisher.connect(&input.endpoints()[0]).await.unwrap();

    let plain = frames(&[b"a", SUB_TNETSTRING]);
    let delivery = publish_until_delivered(&mut publisher, plain, &subscriber).await;
    assert_eq!(&*delivery.channel, "a");
    assert_eq!(stream_content(&delivery), b"hi\n");
    while next_delivery(&subscriber, QUIET).await.is_some() {}

    let [_, says_b] = encode_sub_message(&stream_item("b", "from b"));
    publisher.send(frames(&[b"a", &says_b])).await.unwrap();
    let delivery = delivered(&subscriber).await;
    assert_eq!(&*delivery.channel, "a");
    assert_eq!(delivery.item.channel, "a");
    assert_eq!(stream_content(&delivery), b"from b");

    publisher.send(frames(&[b"a"])).await.unwrap();
    publisher
        .send(frames(&[b"a", SUB_TNETSTRING]))
        .await
        .unwrap();
    assert!(delivered(&subscriber).await.channel.as_ref() == "a");
    assert_eq!(
        counter(hub.metrics(), "fjord_proxy_publish_errors_total", "zmq_sub"),
        1
    );
}

/// An XPUB peer (a publisher, or a relay) as seen from the wire.
struct XPubPeer {
    connection: zmtp::Connection,
}

impl XPubPeer {
    async fn handshake(stream: TcpStream) -> XPubPeer {
        let (read, write) = stream.into_split();
        let connection =
            zmtp::handshake(Box::new(read), Box::new(write), SocketType::XPub, 1 << 20)
                .await
                .expect("handshake with the SUB input");
        assert_eq!(connection.peer_type, SocketType::Sub);
        XPubPeer { connection }
    }

    async fn connect(endpoint: &str) -> XPubPeer {
        let stream = TcpStream::connect(endpoint.trim_start_matches("tcp://"))
            .await
            .expect("connect to the SUB input");
        XPubPeer::handshake(stream).await
    }

    /// The next subscription frame, or `None` if none arrives within `wait`.
    async fn subscription(&mut self, wait: Duration) -> Option<Vec<u8>> {
        match tokio::time::timeout(wait, self.connection.reader.next()).await {
            Ok(Ok(Some(Incoming::Message(frames)))) => {
                assert_eq!(frames.len(), 1, "subscriptions are one frame");
                Some(frames[0].to_vec())
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => None,
        }
    }

    async fn publish(&mut self, channel: &[u8], item: &[u8]) {
        self.connection
            .writer
            .send_message(&[channel, item])
            .await
            .expect("publish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xpub_peers_see_subscribe_and_unsubscribe() {
    let (hub, events) = support::hub();
    let input = sub_input(&hub, events, Vec::new()).await;
    let mut early = XPubPeer::connect(&input.endpoints()[0]).await;
    assert_eq!(early.subscription(QUIET).await, None, "no channel yet");

    let subscriber = subscribe(&hub, "a");
    assert_eq!(
        early.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01a"[..])
    );

    let mut late = XPubPeer::connect(&input.endpoints()[0]).await;
    assert_eq!(
        late.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01a"[..])
    );

    let second = subscribe(&hub, "a");
    assert_eq!(
        early.subscription(QUIET).await,
        None,
        "not the first subscriber"
    );

    hub.unsubscribe("a", subscriber.id());
    hub.unsubscribe("a", second.id());
    assert_eq!(
        early.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x00a"[..])
    );
    assert_eq!(
        late.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x00a"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xpub_peers_see_the_unsubscribe_only_after_the_linger() {
    let linger = Duration::from_millis(1500);
    let (hub, events) = support::hub_lingering(linger);
    let maintenance = tokio::spawn(Arc::clone(&hub).run_maintenance(Duration::from_millis(100)));
    let input = sub_input(&hub, events, Vec::new()).await;
    let mut peer = XPubPeer::connect(&input.endpoints()[0]).await;
    let first = subscribe(&hub, "a");
    assert_eq!(
        peer.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01a"[..])
    );
    // A long-poll client between two polls: gone, then back within the linger.
    hub.unsubscribe("a", first.id());
    let again = subscribe(&hub, "a");
    assert_eq!(peer.subscription(QUIET).await, None, "no flapping");
    let left_at = std::time::Instant::now();
    hub.unsubscribe("a", again.id());
    assert_eq!(
        peer.subscription(PATIENCE + linger).await.as_deref(),
        Some(&b"\x00a"[..])
    );
    assert!(
        left_at.elapsed() >= linger,
        "unsubscribed before the linger passed"
    );
    maintenance.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_publisher_does_not_block_subscriptions_for_the_others() {
    let (hub, events) = support::hub();
    let input = sub_input(&hub, events, Vec::new()).await;
    let gone = XPubPeer::connect(&input.endpoints()[0]).await;
    let mut staying = XPubPeer::connect(&input.endpoints()[0]).await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _one = subscribe(&hub, "one");
    let _two = subscribe(&hub, "two");
    assert_eq!(
        staying.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01one"[..])
    );
    assert_eq!(
        staying.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01two"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_are_subscribed_and_reconnected() {
    let (hub, events) = support::hub();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("tcp://{}", relay.local_addr().unwrap());
    let _input = sub_input(&hub, events, vec![endpoint]).await;
    let subscriber = subscribe(&hub, "a");

    let (stream, _) = tokio::time::timeout(PATIENCE, relay.accept())
        .await
        .unwrap()
        .unwrap();
    let mut connection = XPubPeer::handshake(stream).await;
    assert_eq!(
        connection.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01a"[..])
    );
    connection.publish(b"a", SUB_TNETSTRING).await;
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");
    assert_eq!(
        counter(hub.metrics(), "fjord_proxy_items_received_total", "relay"),
        1
    );

    drop(connection);
    let (stream, _) = tokio::time::timeout(PATIENCE, relay.accept())
        .await
        .unwrap()
        .unwrap();
    let mut again = XPubPeer::handshake(stream).await;
    assert_eq!(
        again.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01a"[..]),
        "the subscription set is replayed after reconnecting"
    );
    again.publish(b"a", SUB_TNETSTRING).await;
    assert_eq!(delivered_content(&subscriber).await, b"hi\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_starts_late_still_gets_earlier_subscriptions() {
    let (hub, events) = support::hub();
    let placeholder = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = placeholder.local_addr().unwrap();
    drop(placeholder);
    let _input = sub_input(&hub, events, vec![format!("tcp://{address}")]).await;
    let _subscriber = subscribe(&hub, "early");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let relay = TcpListener::bind(address).await.unwrap();
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), relay.accept())
        .await
        .unwrap()
        .unwrap();
    let mut connection = XPubPeer::handshake(stream).await;
    assert_eq!(
        connection.subscription(PATIENCE).await.as_deref(),
        Some(&b"\x01early"[..])
    );
}
