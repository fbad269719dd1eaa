//! Stream holds: HTTP streaming and SSE (§6), and paged streaming by next links (§6.4).
//!
//! A [`HeldStream`] is the response body itself. hyper polls it from the connection's
//! own task, so a held stream costs no task or channel of its own: the body pops the
//! connection's hub queue, fires keep-alives and link refreshes from its timers, and
//! drives next-link fetches as a boxed future while one is in flight.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::instruction::{resolve_link, Hold, Instruction, NextLink};
use fjord_protocol::keepalive::{KeepAlive, KeepAliveMode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{HeldChannels, HoldLimits, StreamContent, Verdict};
use crate::body::BodyError;
use crate::context::ProxyContext;
use crate::hub::Subscriber;
use crate::metrics::ConnectionGauge;
use crate::origin::OriginRequest;
use crate::queue::QueueEvent;
use crate::route::Route;

use super::response::HELD_QUEUE_CAPACITY;

/// A failed link fetch is retried after 1, 2, 4, 8 and 16 s, then the stream ends
/// (§6.4).
const MAX_LINK_RETRIES: u32 = 5;

/// Largest next-link response body read into memory.
const MAX_LINK_BODY: usize = 16 * 1024 * 1024;

type LinkFetch = Pin<Box<dyn Future<Output = Result<LinkReply, String>> + Send>>;

/// A next-link response: body to append and, if it was a GRIP response, its
/// instructions.
struct LinkReply {
    body: Bytes,
    instruction: Option<Instruction>,
}

struct KeepAliveTimer {
    data: Bytes,
    period: Duration,
    mode: KeepAliveMode,
    sleep: Pin<Box<Sleep>>,
}

struct LinkState {
    link: NextLink,
    refresh: Pin<Box<Sleep>>,
    /// Channels that carried traffic since the last fetch; the periodic refresh is
    /// skipped when every channel did (§6.4).
    traffic: BTreeSet<Arc<str>>,
}

/// Everything a held stream needs to talk to the origin again.
pub struct StreamOrigin {
    pub ctx: Arc<ProxyContext>,
    pub route: Arc<Route>,
    pub implicit_channels: Vec<String>,
    pub request: Arc<OriginRequest>,
}

/// The body of a held HTTP stream.
pub struct HeldStream {
    ctx: Arc<ProxyContext>,
    route: Arc<Route>,
    out: VecDeque<Bytes>,
    held: Option<HeldChannels>,
    keep_alive: Option<KeepAliveTimer>,
    /// Boxed and absent unless the origin gave a next or gone link: a held connection
    /// is the unit of cost, and most streams never talk to the origin again, so they
    /// should not keep its request either.
    paging: Option<Box<Paging>>,
    done: bool,
    _gauge: ConnectionGauge,
}

impl Paging {
    fn has_link(paging: &Option<Box<Paging>>) -> bool {
        paging.as_ref().is_some_and(|p| p.link.is_some())
    }

    /// Whether a link fetch is in flight.
    fn fetching(paging: &Option<Box<Paging>>) -> bool {
        paging.as_ref().is_some_and(|p| p.fetch.is_some())
    }
}

/// What a stream with a next link (§6.4) or a gone link (§6.5) keeps to reach the
/// origin again.
struct Paging {
    request: Arc<OriginRequest>,
    /// Channels the route adds to every hold; a link's instructions re-subscribe them.
    implicit_channels: Vec<String>,
    link: Option<LinkState>,
    /// Path and query links resolve against: the last link fetched, else the client's
    /// request.
    link_base: Option<String>,
    fetch: Option<LinkFetch>,
    failures: u32,
    retry: Option<Pin<Box<Sleep>>>,
    first_refresh: Option<Pin<Box<Sleep>>>,
    gone_link: Option<String>,
}

impl HeldStream {
    /// A stream that starts with `initial` and then follows `instruction`.
    pub fn start(origin: StreamOrigin, instruction: &Instruction, initial: Bytes) -> HeldStream {
        let StreamOrigin {
            ctx,
            route,
            implicit_channels,
            request,
        } = origin;
        let paging =
            (instruction.next_link.is_some() || instruction.gone_link.is_some()).then(|| {
                Box::new(Paging {
                    request,
                    implicit_channels: Vec::new(),
                    link: None,
                    link_base: None,
                    fetch: None,
                    failures: 0,
                    retry: None,
                    first_refresh: None,
                    gone_link: instruction.gone_link.clone(),
                })
            });
        let mut stream = HeldStream {
            _gauge: ConnectionGauge::new(&ctx.metrics, "stream"),
            ctx,
            route,
            out: VecDeque::new(),
            held: None,
            keep_alive: None,
            paging,
            done: false,
        };
        if !initial.is_empty() {
            stream.out.push_back(initial);
        }
        stream.follow(instruction, true, &implicit_channels);
        if let Some(paging) = stream.paging.as_mut() {
            paging.implicit_channels = implicit_channels;
        }
        stream
    }

    fn has_link(&self) -> bool {
        Paging::has_link(&self.paging)
    }

    /// Applies a (new) instruction: subscriptions, keep-alive and next link.
    fn follow(&mut self, instruction: &Instruction, initial: bool, implicit: &[String]) {
        let ctx = Arc::clone(&self.ctx);
        if let Some(paging) = self.paging.as_mut() {
            paging.link = instruction.next_link.clone().map(|link| LinkState {
                refresh: Box::pin(tokio::time::sleep(link.timeout)),
                link,
                traffic: BTreeSet::new(),
            });
        }
        match &instruction.hold {
            Some(Hold::Stream(stream_hold)) => {
                self.keep_alive = stream_hold.keep_alive.as_ref().map(keep_alive_timer);
                let limits = HoldLimits {
                    max_channels: ctx.settings.connection_subscription_max,
                };
                let first = match self.held.as_mut() {
                    Some(held) => {
                        held.set_meta(&instruction.meta);
                        held.resubscribe(
                            &instruction.channels,
                            implicit,
                            &self.route.channel_prefix,
                            &limits,
                        )
                    }
                    None => {
                        let subscriber =
                            Subscriber::new(Arc::from(self.route.id.as_str()), HELD_QUEUE_CAPACITY);
                        let (held, first) = HeldChannels::subscribe(
                            Arc::clone(&ctx.hub),
                            subscriber,
                            instruction,
                            implicit,
                            &self.route.channel_prefix,
                            &limits,
                        );
                        self.held = Some(held);
                        first
                    }
                };
                let Some(held) = self.held.as_ref() else {
                    return;
                };
                let has_link = self.has_link();
                if held.has_prev_ids() && !has_link {
                    // §3.7.3: prev-id without a next link cannot recover; end the stream.
                    self.done = true;
                } else if held.behind_at_hold_time() {
                    let last = held.grip_last();
                    self.start_fetch(last);
                } else if initial && first && ctx.settings.update_on_first_subscription {
                    // §3.7.5: once, for the hold's first instructions. A next link's
                    // instructions re-subscribe the same channels, which would look like
                    // a first subscription again and refresh every second forever.
                    if let Some(paging) = self.paging.as_mut().filter(|p| p.link.is_some()) {
                        paging.first_refresh =
                            Some(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
                    }
                }
            }
            Some(Hold::Response(_)) => {
                // §6.4: a response hold is not allowed in a next-link response.
                if !initial {
                    tracing::warn!(route = %self.route.id, "next link answered with a response hold; ending stream");
                }
                self.done = true;
            }
            None => {
                self.keep_alive = None;
                if let Some(held) = self.held.as_mut() {
                    held.resubscribe(&[], &[], "", &HoldLimits { max_channels: 0 });
                }
                if self.has_link() {
                    self.start_fetch(Vec::new());
                } else {
                    self.done = true;
                }
            }
        }
    }

    fn start_fetch(&mut self, grip_last: Vec<(String, String)>) {
        let Some(paging) = self.paging.as_mut() else {
            return;
        };
        let Some(state) = paging.link.as_mut() else {
            return;
        };
        let base = paging
            .link_base
            .as_deref()
            .unwrap_or(&paging.request.path_and_query);
        let target = match resolve_link(base, &state.link.uri) {
            Ok(target) => target,
            Err(e) => {
                tracing::warn!(link = %state.link.uri, error = %e, "unusable next link; ending stream");
                self.done = true;
                return;
            }
        };
        let path_and_query = path_of(&target);
        state.traffic.clear();
        state
            .refresh
            .as_mut()
            .reset(Instant::now() + state.link.timeout);
        let ctx = Arc::clone(&self.ctx);
        let request = paging
            .request
            .link_fetch(&path_and_query, &self.route, &ctx.sig)
            .with_grip_last(&grip_last);
        paging.link_base = Some(path_and_query);
        let route = Arc::clone(&self.route);
        paging.fetch = Some(Box::pin(
            async move { fetch_link(&ctx, &route, request).await },
        ));
    }

    fn on_link_reply(&mut self, reply: LinkReply) {
        let Some(paging) = self.paging.as_mut() else {
            return;
        };
        paging.failures = 0;
        if !reply.body.is_empty() {
            self.out.push_back(reply.body);
        }
        match reply.instruction {
            Some(instruction) => {
                let implicit = std::mem::take(&mut paging.implicit_channels);
                self.follow(&instruction, false, &implicit);
                if let Some(paging) = self.paging.as_mut() {
                    paging.implicit_channels = implicit;
                }
            }
            None => {
                paging.link = None;
                self.done = true;
            }
        }
    }

    fn on_link_failure(&mut self, error: String) {
        let Some(paging) = self.paging.as_mut() else {
            return;
        };
        paging.failures += 1;
        if paging.failures > MAX_LINK_RETRIES {
            tracing::warn!(route = %self.route.id, %error, "next link failed repeatedly; ending stream");
            self.done = true;
            return;
        }
        let delay = Duration::from_secs(1 << (paging.failures - 1));
        paging.retry = Some(Box::pin(tokio::time::sleep(delay)));
    }

    fn on_item(&mut self, delivery: Arc<crate::hub::Delivery>) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        match held.judge_stream(&delivery) {
            Verdict::Accept(StreamContent::Data(bytes)) => {
                self.ctx
                    .metrics
                    .publish_to_write
                    .observe(delivery.received_at);
                if let Some(link) = self.paging.as_mut().and_then(|p| p.link.as_mut()) {
                    link.traffic.insert(Arc::clone(&delivery.channel));
                }
                self.out.push_back(bytes);
            }
            Verdict::Accept(StreamContent::Close) => self.done = true,
            Verdict::Accept(StreamContent::Hint) => {
                if Paging::has_link(&self.paging) && !Paging::fetching(&self.paging) {
                    while held.subscriber().queue().try_pop().is_some() {}
                    self.start_fetch(Vec::new());
                }
            }
            Verdict::Recover => {
                if Paging::has_link(&self.paging) {
                    let last = held.grip_last();
                    if !Paging::fetching(&self.paging) {
                        self.start_fetch(last);
                    }
                } else {
                    self.done = true;
                }
            }
            Verdict::Skip(reason) => {
                self.ctx
                    .metrics
                    .dropped
                    .with_label_values(&[reason.label()])
                    .inc();
            }
        }
    }

    /// Any write re-arms an idle-mode keep-alive (§6.2).
    fn wrote(&mut self) {
        if let Some(ka) = self.keep_alive.as_mut() {
            if ka.mode == KeepAliveMode::Idle {
                ka.sleep.as_mut().reset(Instant::now() + ka.period);
            }
        }
    }

    /// Polls the timers; returns true when one fired and changed state.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(ka) = self.keep_alive.as_mut() {
            if ka.sleep.as_mut().poll(cx).is_ready() {
                ka.sleep.as_mut().reset(Instant::now() + ka.period);
                self.out.push_back(ka.data.clone());
                return true;
            }
        }
        let channel_count = self.held.as_ref().map_or(0, |h| h.channels.len());
        let Some(paging) = self.paging.as_mut().filter(|p| p.fetch.is_none()) else {
            return false;
        };
        let mut fetch_now = false;
        if paging
            .retry
            .as_mut()
            .is_some_and(|r| r.as_mut().poll(cx).is_ready())
        {
            paging.retry = None;
            fetch_now = true;
        } else if paging
            .first_refresh
            .as_mut()
            .is_some_and(|f| f.as_mut().poll(cx).is_ready())
        {
            paging.first_refresh = None;
            fetch_now = true;
        } else if let Some(link) = paging.link.as_mut() {
            if link.refresh.as_mut().poll(cx).is_ready() {
                let all_busy = channel_count > 0 && link.traffic.len() >= channel_count;
                link.traffic.clear();
                link.refresh
                    .as_mut()
                    .reset(Instant::now() + link.link.timeout);
                if all_busy {
                    return true;
                }
                fetch_now = true;
            }
        }
        if fetch_now {
            let last = self
                .held
                .as_ref()
                .map(HeldChannels::grip_last)
                .unwrap_or_default();
            self.start_fetch(last);
        }
        fetch_now
    }
}

impl Body for HeldStream {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                this.wrote();
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let fetch = this.paging.as_mut().and_then(|p| p.fetch.as_mut());
            if let Some(fetch) = fetch {
                if let Poll::Ready(result) = fetch.as_mut().poll(cx) {
                    if let Some(paging) = this.paging.as_mut() {
                        paging.fetch = None;
                    }
                    match result {
                        Ok(reply) => this.on_link_reply(reply),
                        Err(error) => this.on_link_failure(error),
                    }
                    continue;
                }
            } else if let Some(held) = this.held.as_ref() {
                // The popped value owns no borrow, so no per-poll `Arc` clone is needed.
                let event = held.subscriber().queue().poll_pop(cx);
                match event {
                    Poll::Ready(QueueEvent::Item(delivery)) => {
                        this.on_item(delivery);
                        continue;
                    }
                    Poll::Ready(QueueEvent::Overflowed) => {
                        this.done = true;
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if this.poll_timers(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for HeldStream {
    fn drop(&mut self) {
        // §6.5: tell the origin the client is gone; best effort, no retry.
        let Some(paging) = self.paging.as_mut() else {
            return;
        };
        if let Some(gone) = paging.gone_link.take() {
            post_gone_link(&self.ctx, &self.route, &paging.request, &gone);
        }
    }
}

/// POSTs a gone link (§6.5), resolved against the client request's URL: empty body,
/// signed like every origin request, best effort and never retried. Used by held
/// streams and by response holds alike.
pub(crate) fn post_gone_link(
    ctx: &ProxyContext,
    route: &Route,
    request: &OriginRequest,
    gone: &str,
) {
    let Ok(target) = resolve_link(&request.path_and_query, gone) else {
        return;
    };
    let crate::route::RouteTarget::Origin(targets) = &route.target else {
        return;
    };
    let mut post = request.link_fetch(&path_of(&target), route, &ctx.sig);
    post.method = http::Method::POST;
    // Dropped outside a runtime only at process exit, where §6.5 promises nothing.
    if tokio::runtime::Handle::try_current().is_ok() {
        ctx.origin.post_and_forget(targets.clone(), post);
    }
}

fn keep_alive_timer(keep_alive: &KeepAlive) -> KeepAliveTimer {
    KeepAliveTimer {
        data: keep_alive.data().clone(),
        period: keep_alive.timeout(),
        mode: keep_alive.mode(),
        sleep: Box::pin(tokio::time::sleep(keep_alive.timeout())),
    }
}

/// The path and query of a resolved link (absolute URLs are sent to the route's
/// targets with their path).
fn path_of(target: &str) -> String {
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .or_else(|| target.strip_prefix("//"))
    {
        match rest.find('/') {
            Some(slash) => rest[slash..].to_owned(),
            None => "/".to_owned(),
        }
    } else {
        target.to_owned()
    }
}

/// GETs a next link (§6.4): 2xx required; a GRIP response's instructions come back
/// with its body.
async fn fetch_link(
    ctx: &ProxyContext,
    route: &Route,
    request: OriginRequest,
) -> Result<LinkReply, String> {
    let crate::route::RouteTarget::Origin(targets) = &route.target else {
        return Err("route has no origin".into());
    };
    let response = ctx
        .origin
        .send(targets, &request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("next link answered {}", response.status()));
    }
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, MAX_LINK_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading next link body: {e}"))?
        .to_bytes();
    if !fjord_protocol::instruction::is_grip_response(&parts.headers) {
        return Ok(LinkReply {
            body,
            instruction: None,
        });
    }
    let instruction = Instruction::parse(parts.status, &parts.headers, &body)
        .map_err(|e| format!("next link instructions: {e}"))?;
    let body = match &instruction.response.body {
        fjord_protocol::instruction::ResponseBody::Origin => body,
        fjord_protocol::instruction::ResponseBody::Replaced(replaced) => replaced.clone(),
    };
    Ok(LinkReply {
        body,
        instruction: Some(instruction),
    })
}

/// Boxes a held stream as a response body.
pub fn into_body(stream: HeldStream) -> crate::body::ProxyBody {
    stream.boxed_unsync()
}
