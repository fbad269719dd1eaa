//! Conformance items of spec §12 about the ZeroMQ publish inputs (§4.2, §4.3): items
//! 40 and 41, with publishers made from the `zeromq` crate's PUSH and PUB sockets.

mod support;

use std::time::Duration;

use support::{HttpConn, Origin, Proxy, ProxyBuilder, Reply, SLOW};
use zeromq::{Socket, SocketSend, ZmqMessage};

/// A tnetstring byte string (§4.6).
fn tn_bytes(value: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", value.len()).into_bytes();
    out.extend_from_slice(value);
    out.push(b',');
    out
}

/// A tnetstring dict of already-encoded values.
fn tn_dict(pairs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (key, value) in pairs {
        payload.extend(tn_bytes(key.as_bytes()));
        payload.extend_from_slice(value);
    }
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend(payload);
    out.push(b'}');
    out
}

/// An `http-stream` item as a tnetstring, with a `channel` key when given.
fn tn_item(channel: Option<&str>, content: &str) -> Vec<u8> {
    let stream = tn_dict(&[("content", tn_bytes(content.as_bytes()))]);
    let formats = tn_dict(&[("http-stream", stream)]);
    let mut pairs = Vec::new();
    if let Some(channel) = channel {
        pairs.push(("channel", tn_bytes(channel.as_bytes())));
    }
    pairs.push(("formats", formats));
    tn_dict(&pairs)
}

fn free_endpoint() -> String {
    let port = fjord_testkit::free_loopback_port().expect("free port");
    format!("tcp://127.0.0.1:{port}")
}

async fn open_stream(proxy: &Proxy) -> HttpConn {
    let mut conn = proxy.get("/").await;
    let head = conn.read_head(SLOW).await.expect("head");
    assert_eq!(head.status, 200);
    conn
}

/// A proxy with a PULL input, an origin holding every request as a stream on channel
/// `a`, one client holding such a stream, and a `zeromq` PUSH socket connected to the
/// input.
struct PullSetup {
    _origin: Origin,
    proxy: Proxy,
    conn: HttpConn,
    push: zeromq::PushSocket,
}

async fn pull_setup() -> PullSetup {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let pull = free_endpoint();
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .zmq_pull(&pull)
        .start()
        .await;
    let conn = open_stream(&proxy).await;
    let mut push = zeromq::PushSocket::new();
    tokio::time::timeout(SLOW, push.connect(&pull))
        .await
        .expect("connect in time")
        .expect("PUSH connects to the PULL input");
    PullSetup {
        _origin: origin,
        proxy,
        conn,
        push,
    }
}

#[test]
fn tnetstring_helper_matches_the_spec_example() {
    let expected = b"66:7:channel,4:test,7:formats,35:11:http-stream,16:7:content,3:hi\n,}}}";
    assert_eq!(tn_item(Some("test"), "hi\n"), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c40_pull_input_accepts_tnetstring_json_and_t_prefixed_frames() {
    let PullSetup {
        _origin,
        mut proxy,
        mut conn,
        mut push,
    } = pull_setup().await;

    let plain = tn_item(Some("a"), "T1");
    let json = br#"J{"channel":"a","formats":{"http-stream":{"content":"J2"}}}"#.to_vec();
    let mut prefixed = b"T".to_vec();
    prefixed.extend(tn_item(Some("a"), "T3"));
    for frame in [plain, json, prefixed] {
        push.send(ZmqMessage::from(frame)).await.expect("send");
    }
    let data = conn
        .read_stream(6, Duration::from_secs(2))
        .await
        .expect("three items");
    assert_eq!(data, b"T1J2T3");

    // A two-frame message is dropped; the input keeps working.
    let mut two = ZmqMessage::from(b"a".to_vec());
    two.push_back(tn_item(Some("a"), "XX").into());
    push.send(two).await.expect("send two frames");
    push.send(ZmqMessage::from(tn_item(Some("a"), "T4")))
        .await
        .expect("send");
    let data = conn
        .read_stream(2, Duration::from_secs(2))
        .await
        .expect("item after the bad one");
    assert_eq!(data, b"T4", "two-frame message must be dropped");
    assert!(proxy.is_running(), "proxy must keep running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c41_sub_input_takes_the_channel_from_the_first_frame() {
    let origin = Origin::start(|_| Reply::stream("a", "")).await;
    let sub = free_endpoint();
    let proxy = ProxyBuilder::new()
        .origin(origin.addr)
        .zmq_sub(&sub)
        .start()
        .await;
    let mut conn = open_stream(&proxy).await;

    let mut publisher = zeromq::PubSocket::new();
    tokio::time::timeout(SLOW, publisher.connect(&sub))
        .await
        .expect("connect in time")
        .expect("PUB connects to the SUB input");

    // A PUB socket drops messages until it has seen the subscription: probe until one
    // arrives, then let the stragglers drain.
    let mut arrived = false;
    for _ in 0..50 {
        let mut probe = ZmqMessage::from(b"a".to_vec());
        probe.push_back(tn_item(None, ".").into());
        publisher.send(probe).await.expect("send probe");
        if conn
            .read_stream(1, Duration::from_millis(100))
            .await
            .is_ok()
        {
            arrived = true;
            break;
        }
    }
    assert!(arrived, "the SUB input never subscribed to a");
    let drained = conn.raw_within(Duration::from_millis(300)).await;
    assert!(
        drained.iter().all(|b| b".\r\n0123456789abcdef".contains(b)),
        "unexpected bytes while draining: {drained:?}"
    );

    let mut without = ZmqMessage::from(b"a".to_vec());
    without.push_back(tn_item(None, "S1").into());
    publisher.send(without).await.expect("send");
    let mut other = ZmqMessage::from(b"a".to_vec());
    other.push_back(tn_item(Some("b"), "S2").into());
    publisher.send(other).await.expect("send");
    let data = conn
        .read_stream(4, Duration::from_secs(2))
        .await
        .expect("both items on a");
    assert_eq!(data, b"S1S2");
}

/// A publisher's burst arrives in one read of the PULL connection; a client that
/// reads must get all of it, not be closed as if it were slow (§3.6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_push_peer_reaches_a_reading_client_in_full() {
    const ITEMS: usize = 300;
    // Every part is bound: one left to `..` would be dropped here.
    let PullSetup {
        _origin,
        proxy: _proxy,
        mut conn,
        mut push,
    } = pull_setup().await;
    for n in 0..ITEMS {
        push.send(ZmqMessage::from(tn_item(Some("a"), &support::numbered(n))))
            .await
            .expect("send");
    }
    support::expect_numbered(&mut conn, ITEMS).await;
}
