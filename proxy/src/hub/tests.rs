use super::*;
use crate::queue::{QueueEvent, BURST_GRACE};
use bytes::Bytes;

/// A hub whose channels go with their last subscriber.
fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    hub_lingering(Duration::ZERO)
}

fn hub_lingering(linger: Duration) -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    hub_with(linger, Duration::ZERO)
}

fn hub_with(
    linger: Duration,
    id_cache_ttl: Duration,
) -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    let config = HubConfig {
        sequencer: SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl,
        },
        subscription_linger: linger,
    };
    Hub::new(config, Arc::new(Metrics::new()))
}

fn sequenced(channel: &str, id: &str, prev_id: Option<&str>) -> PublishItem {
    let mut item = item(channel, b"x");
    item.id = Some(id.to_owned());
    item.prev_id = prev_id.map(str::to_owned);
    item
}

fn ids_of(sub: &Subscriber) -> Vec<String> {
    std::iter::from_fn(|| sub.queue().try_pop())
        .filter_map(|d| d.item.id.clone())
        .collect()
}

fn item(channel: &str, content: &'static [u8]) -> PublishItem {
    crate::hub::stream_item(channel, Bytes::from_static(content))
}

#[test]
fn every_subscriber_receives_the_same_shared_delivery() {
    let (hub, _events) = hub();
    let a = Subscriber::new(Arc::from("r"), 10);
    let b = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &a);
    hub.subscribe("c", &b);
    let outcome = hub.publish(item("c", b"x"), PublishInput::Http);
    assert_eq!(outcome.deliveries, 2);
    let got_a = a.queue().try_pop().expect("a got the item");
    let got_b = b.queue().try_pop().expect("b got the item");
    assert!(
        Arc::ptr_eq(&got_a, &got_b),
        "one allocation shared by all subscribers"
    );
}

#[test]
fn publish_to_other_channel_reaches_nobody() {
    let (hub, _events) = hub();
    let a = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("a", &a);
    assert_eq!(
        hub.publish(item("b", b"x"), PublishInput::Http).deliveries,
        0
    );
    assert!(a.queue().try_pop().is_none());
}

#[test]
fn full_queue_drops_only_the_slow_subscriber() {
    let (hub, _events) = hub();
    let slow = Subscriber::new(Arc::from("r"), 2);
    let fast = Subscriber::new(Arc::from("r"), 100);
    hub.subscribe("c", &slow);
    hub.subscribe("c", &fast);
    // One publish per grace period: the slow queue fills and stays full.
    let start = Instant::now();
    for n in 0..5u32 {
        hub.publish_at(item("c", b"x"), PublishInput::Http, start + BURST_GRACE * n);
        while fast.queue().try_pop().is_some() {}
    }
    assert!(slow.is_overflowed());
    assert!(!fast.is_overflowed());
    assert_eq!(hub.subscriber_count("c"), 1);
    assert_eq!(hub.metrics().overflows.get(), 1);
}

#[test]
fn subscription_set_unsubscribes_everything_when_dropped() {
    let (hub, mut events) = hub();
    let sub = Subscriber::new(Arc::from("r"), 10);
    let mut set = SubscriptionSet::new(Arc::clone(&hub), sub);
    assert!(set.add("a"));
    assert!(set.add("b"));
    assert!(!set.add("a"), "a repeated channel is one subscription");
    assert_eq!(hub.metrics().subscriptions.get(), 2);
    drop(set);
    assert_eq!(hub.subscriber_count("a"), 0);
    assert_eq!(hub.metrics().subscriptions.get(), 0);
    assert_eq!(hub.metrics().channels.get(), 0);
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(
        seen,
        vec![
            ChannelEvent::Subscribed(Arc::from("a")),
            ChannelEvent::Subscribed(Arc::from("b")),
            ChannelEvent::Unsubscribed(Arc::from("a")),
            ChannelEvent::Unsubscribed(Arc::from("b")),
        ]
    );
}

#[test]
fn second_subscriber_is_not_reported_as_first() {
    let (hub, _events) = hub();
    let a = Subscriber::new(Arc::from("r"), 10);
    let b = Subscriber::new(Arc::from("r"), 10);
    assert!(hub.subscribe("c", &a));
    assert!(!hub.subscribe("c", &b));
}

#[tokio::test]
async fn overflow_is_reported_to_the_connection_after_its_queued_items() {
    let (hub, _events) = hub();
    let slow = Subscriber::new(Arc::from("r"), 1);
    hub.subscribe("c", &slow);
    let start = Instant::now();
    hub.publish_at(item("c", b"1"), PublishInput::Http, start);
    hub.publish_at(item("c", b"2"), PublishInput::Http, start + BURST_GRACE);
    assert!(matches!(slow.queue().pop().await, QueueEvent::Item(_)));
    assert!(matches!(slow.queue().pop().await, QueueEvent::Overflowed));
}

fn kafka_item(channel: &str, key: &str, partition: i32, offset: i64) -> PublishItem {
    let mut item = item(channel, b"data: x\n\n");
    item.meta = [
        ("topic", "orders".to_owned()),
        ("partition", partition.to_string()),
        ("offset", offset.to_string()),
        ("key", key.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    item
}

fn offsets_of(sub: &Subscriber) -> Vec<i64> {
    std::iter::from_fn(|| sub.queue().try_pop())
        .map(|d| d.kafka.as_ref().expect("kafka").record.position.offset)
        .collect()
}

#[test]
fn a_history_channel_drops_records_it_delivered_already() {
    let (hub, _events) = hub();
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe_direct("orders.1", &sub, 100, None);
    hub.publish(kafka_item("orders.1", "1", 0, 5), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "1", 0, 6), PublishInput::Relay);
    // A restarted relay re-sends its uncommitted tail.
    hub.publish(kafka_item("orders.1", "1", 0, 5), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "1", 0, 6), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "1", 0, 7), PublishInput::Relay);
    assert_eq!(offsets_of(&sub), vec![5, 6, 7]);
    assert_eq!(hub.metrics().duplicates.get(), 2);
}

#[test]
fn a_history_channel_lingers_after_its_last_subscriber_and_keeps_recording() {
    let (hub, mut events) = hub_lingering(Duration::from_secs(60));
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe_direct("orders.1", &sub, 100, None);
    hub.publish(kafka_item("orders.1", "1", 0, 5), PublishInput::Relay);
    hub.unsubscribe("orders.1", sub.id());
    hub.publish(kafka_item("orders.1", "1", 0, 8), PublishInput::Relay);
    hub.release_expired(Instant::now());
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Subscribed(Arc::from("orders.1")))
    );
    assert!(events.try_recv().is_err(), "still subscribed upstream");

    let mut after = ResumePosition::new();
    after.advance("orders", 0, 5);
    let back = Subscriber::new(Arc::from("r"), 10);
    let start = hub.subscribe_direct("orders.1", &back, 100, Some(&after));
    match start.catchup {
        Some(Catchup::Items(items)) => {
            let offsets: Vec<_> = items.iter().map(|r| r.record.position.offset).collect();
            assert_eq!(offsets, vec![8]);
        }
        other => panic!("expected items from history, got {other:?}"),
    }
    hub.unsubscribe("orders.1", back.id());
    hub.release_expired(Instant::now() + Duration::from_secs(61));
    hub.release_expired(Instant::now() + Duration::from_secs(122));
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Unsubscribed(Arc::from("orders.1")))
    );
}

#[test]
fn a_conflating_subscriber_keeps_the_newest_value_per_key() {
    let (hub, _events) = hub();
    let sub = Subscriber::with_policy(Arc::from("r"), 2, OverflowPolicy::Conflate);
    hub.subscribe_direct("orders.1", &sub, 100, None);
    hub.publish(kafka_item("orders.1", "a", 0, 1), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "b", 0, 2), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "a", 0, 3), PublishInput::Relay);
    hub.publish(kafka_item("orders.1", "b", 0, 4), PublishInput::Relay);
    assert!(!sub.is_overflowed());
    assert_eq!(offsets_of(&sub), vec![3, 4]);
    assert_eq!(hub.metrics().conflations.get(), 2);
}

#[test]
fn a_lingering_channel_stays_subscribed_but_forgets_its_sequencing_state() {
    let (hub, mut events) = hub_lingering(Duration::from_secs(60));
    let first = Subscriber::new(Arc::from("r"), 10);
    assert!(hub.subscribe("a", &first));
    let mut item = item("a", b"x");
    item.id = Some("1".into());
    hub.publish(item, PublishInput::Http);
    assert_eq!(hub.last_id("a").as_deref(), Some("1"));
    hub.unsubscribe("a", first.id());
    hub.release_expired(Instant::now());

    let second = Subscriber::new(Arc::from("r"), 10);
    assert!(
        !hub.subscribe("a", &second),
        "still subscribed: not a first subscription"
    );
    assert_eq!(
        hub.last_id("a"),
        None,
        "sequencing state went with the last subscriber"
    );
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Subscribed(Arc::from("a")))
    );
    assert!(events.try_recv().is_err(), "no unsubscribe while lingering");

    hub.unsubscribe("a", second.id());
    hub.release_expired(Instant::now() + Duration::from_secs(61));
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Unsubscribed(Arc::from("a")))
    );
    assert_eq!(hub.metrics().channels.get(), 0);
}

#[test]
fn a_held_out_of_order_item_is_released_once_message_wait_passes() {
    let (hub, _events) = hub();
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &sub);
    let before = Instant::now();
    hub.publish(sequenced("c", "1", None), PublishInput::Http);
    let held = hub.publish(sequenced("c", "3", Some("2")), PublishInput::Http);
    assert!(held.held_or_dropped);
    let after = Instant::now();
    assert_eq!(ids_of(&sub), vec!["1"]);

    let early = hub.release_expired(before + Duration::from_secs(4));
    assert_eq!(early.deliveries, 0);
    assert_eq!(early.channels_visited, 0, "nothing due yet");
    assert!(sub.queue().try_pop().is_none());

    let due = hub.release_expired(after + Duration::from_secs(5));
    assert_eq!(due.deliveries, 1);
    assert_eq!(due.channels_visited, 1);
    assert_eq!(ids_of(&sub), vec!["3"]);
    assert_eq!(hub.last_id("c").as_deref(), Some("3"));
    assert_eq!(
        hub.release_expired(after + Duration::from_secs(6))
            .channels_visited,
        0,
        "released: nothing left to wait for"
    );
}

#[test]
fn a_lingering_channel_is_dropped_and_announced_once_its_linger_passes() {
    let (hub, mut events) = hub_lingering(Duration::from_secs(60));
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &sub);
    let before = Instant::now();
    hub.unsubscribe("c", sub.id());
    let after = Instant::now();
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Subscribed(Arc::from("c")))
    );

    let lingering = hub.release_expired(before + Duration::from_secs(59));
    assert_eq!(lingering.channels_visited, 0);
    assert!(events.try_recv().is_err(), "still lingering");
    assert_eq!(hub.metrics().channels.get(), 1);

    let over = hub.release_expired(after + Duration::from_secs(60));
    assert_eq!(over.channels_visited, 1);
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Unsubscribed(Arc::from("c")))
    );
    assert_eq!(hub.metrics().channels.get(), 0);
    assert!(hub.channels().is_empty());
}

#[test]
fn a_channel_subscribed_again_while_lingering_outlives_its_old_linger() {
    let (hub, mut events) = hub_lingering(Duration::from_secs(60));
    let first = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &first);
    hub.unsubscribe("c", first.id());
    let back = Subscriber::new(Arc::from("r"), 10);
    assert!(!hub.subscribe("c", &back));

    let tick = hub.release_expired(Instant::now() + Duration::from_secs(120));
    assert_eq!(tick.channels_visited, 0, "no longer lingering");
    assert_eq!(hub.subscriber_count("c"), 1);
    assert_eq!(
        events.try_recv().ok(),
        Some(ChannelEvent::Subscribed(Arc::from("c")))
    );
    assert!(events.try_recv().is_err(), "never unsubscribed upstream");
}

#[test]
fn a_channel_whose_reader_left_before_a_release_is_dropped_by_that_release() {
    let (hub, mut events) = hub();
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &sub);
    hub.publish(sequenced("c", "1", None), PublishInput::Http);
    hub.publish(sequenced("c", "3", Some("2")), PublishInput::Http);
    sub.queue().close();

    let due = hub.release_expired(Instant::now() + Duration::from_secs(5));
    assert_eq!(due.deliveries, 0, "the closed queue takes nothing");
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert_eq!(
        seen,
        vec![
            ChannelEvent::Subscribed(Arc::from("c")),
            ChannelEvent::Unsubscribed(Arc::from("c")),
        ]
    );
    assert_eq!(hub.metrics().channels.get(), 0);
    assert_eq!(hub.metrics().subscriptions.get(), 0);
}

#[test]
fn remembered_ids_are_forgotten_on_time_and_then_cost_no_visits() {
    let ttl = Duration::from_secs(60);
    let (hub, _events) = hub_with(Duration::ZERO, ttl);
    let sub = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("c", &sub);
    let before = Instant::now();
    hub.publish(sequenced("c", "1", None), PublishInput::Http);
    let after = Instant::now();
    assert!(
        hub.publish(sequenced("c", "1", None), PublishInput::Http)
            .held_or_dropped,
        "a duplicate within the ttl"
    );

    assert_eq!(hub.release_expired(before + ttl / 2).channels_visited, 0);
    assert_eq!(hub.release_expired(after + ttl).channels_visited, 1);
    assert_eq!(
        hub.release_expired(after + ttl * 2).channels_visited,
        0,
        "nothing left to expire"
    );
    assert_eq!(hub.last_id("c").as_deref(), Some("1"), "the last id stays");
}

#[test]
fn idle_channels_are_not_visited_by_maintenance() {
    const IDLE: usize = 19_000;
    let (hub, _events) = hub_with(Duration::from_secs(60), Duration::from_secs(60));
    let subscribers: Vec<_> = (0..IDLE)
        .map(|n| {
            let sub = Subscriber::new(Arc::from("r"), 10);
            hub.subscribe(&format!("idle.{n}"), &sub);
            sub
        })
        .collect();
    for n in 0..100 {
        hub.publish(item(&format!("idle.{n}"), b"x"), PublishInput::Http);
    }
    assert_eq!(hub.channels().len(), IDLE);

    let busy = Subscriber::new(Arc::from("r"), 10);
    hub.subscribe("busy", &busy);
    hub.publish(sequenced("busy", "1", None), PublishInput::Http);
    hub.publish(sequenced("busy", "3", Some("2")), PublishInput::Http);

    let now = Instant::now();
    assert_eq!(hub.release_expired(now).channels_visited, 0);
    let released = hub.release_expired(now + Duration::from_secs(5));
    assert_eq!(
        released.channels_visited, 1,
        "only the channel with a held item"
    );
    assert_eq!(released.deliveries, 1);
    drop(subscribers);
}

#[test]
fn items_received_are_counted_under_their_own_input() {
    let (hub, _events) = hub();
    for (index, input) in PublishInput::ALL.into_iter().enumerate() {
        assert_eq!(input as usize, index, "ALL is in declaration order");
        for _ in 0..=index {
            hub.publish(item("c", b"x"), input);
        }
    }
    for (index, input) in PublishInput::ALL.into_iter().enumerate() {
        let counted = hub
            .metrics()
            .items_received
            .with_label_values(&[input.label()])
            .get();
        assert_eq!(counted, index as u64 + 1, "{}", input.label());
    }
}
