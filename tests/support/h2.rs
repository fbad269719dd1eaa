//! An HTTP/2 client's side of the tests of the proxy's HTTP/2 (over TLS and h2c):
//! `GET` on an established connection, and reading a streamed body.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;

use super::SLOW;

/// `GET uri` on `sender`'s connection; the response, checked to be HTTP/2.
pub async fn get(sender: &mut SendRequest<Empty<Bytes>>, uri: &str) -> http::Response<Incoming> {
    let request = http::Request::get(uri).body(Empty::new()).expect("request");
    let response = tokio::time::timeout(SLOW, sender.send_request(request))
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    response
}

/// Reads DATA frames of one response into `seen` until `needle` has arrived.
pub async fn read_body_until(body: &mut Incoming, seen: &mut String, needle: &str) {
    let found = tokio::time::timeout(SLOW, async {
        while !seen.contains(needle) {
            let frame = body
                .frame()
                .await
                .unwrap_or_else(|| panic!("stream ended before {needle:?}: {seen:?}"))
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
    assert!(found.is_ok(), "{needle:?} did not arrive: {seen:?}");
}
