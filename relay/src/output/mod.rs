//! Where items go (§9, design "Data flow" 2): any combination of the XPUB endpoint
//! proxies subscribe to, PUSH connections to Pushpin-style PULL sockets, `POST /publish/`
//! to control APIs, and an in-process sink for `fjord run`.
//!
//! [`Outputs::publish`] is the hand-off point of at-least-once delivery: it returns only
//! when every output has taken the batch, and only then does the consumer store the
//! records' offsets.

pub mod http;
pub mod push;
pub mod xpub;
pub mod zmtp;

use fjord_protocol::item::PublishItem;

use crate::config::ItemSink;
use crate::metrics::RelayMetrics;

pub use self::http::HttpOutput;
pub use self::push::PushOutput;
pub use self::xpub::XpubOutput;

/// Every configured output.
pub struct Outputs {
    pub xpub: Option<XpubOutput>,
    pub push: Vec<PushOutput>,
    pub http: Vec<HttpOutput>,
    pub sink: Option<ItemSink>,
    pub metrics: RelayMetrics,
}

impl Outputs {
    /// Hands `items` to every output concurrently; returns when all took them.
    pub async fn publish(&self, items: &[PublishItem]) {
        if items.is_empty() {
            return;
        }
        if let Some(sink) = &self.sink {
            for item in items {
                (sink.0)(item.clone());
            }
            self.metrics
                .items_published
                .with_label_values(&["sink"])
                .inc_by(items.len() as u64);
        }
        let xpub = async {
            if let Some(xpub) = &self.xpub {
                xpub.publish(items).await;
            }
        };
        let push = futures_util::future::join_all(self.push.iter().map(|p| p.publish(items)));
        let http = futures_util::future::join_all(self.http.iter().map(|h| h.publish(items)));
        tokio::join!(xpub, push, http);
    }
}
