//! What every request handler of a running proxy shares.

use std::sync::Arc;

use fjord_protocol::sig::VerifyingKey;
use tokio::sync::{broadcast, watch};

use crate::direct::DirectSettings;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::origin::{OriginClient, SigSettings};
use crate::route::RouteTable;

/// Behaviour switches with Pushpin's names and defaults (§7.2).
#[derive(Debug, Clone)]
pub struct HoldSettings {
    /// `connection_subscription_max`: channels per connection beyond this are ignored.
    pub connection_subscription_max: usize,
    /// `update_on_first_subscription`: 1 s after a channel gains its first subscriber,
    /// its holds recover once (§3.7.5).
    pub update_on_first_subscription: bool,
    /// `debug`: 502 answers carry the reason instead of the generic text (§2.4).
    pub debug: bool,
}

impl Default for HoldSettings {
    fn default() -> Self {
        HoldSettings {
            connection_subscription_max: 20,
            update_on_first_subscription: true,
            debug: false,
        }
    }
}

/// Shared state of a running proxy.
pub struct ProxyContext {
    pub settings: HoldSettings,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub origin: OriginClient,
    pub sig: SigSettings,
    /// `upstream_key`: a request whose `Grip-Sig` verifies with it comes from another
    /// GRIP proxy and is passed through untouched (§1.4).
    pub upstream_key: Option<VerifyingKey>,
    pub routes: watch::Receiver<Arc<RouteTable>>,
    /// `POST /recover`: every hold recovers (§3.7.6).
    pub recover: broadcast::Sender<()>,
    /// Token verification and replay source of direct routes.
    pub direct: DirectSettings,
}
