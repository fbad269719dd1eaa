use super::*;
use crate::queue::QueueEvent;
use bytes::Bytes;

/// A hub whose channels go with their last subscriber.
fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    hub_lingering(Duration::ZERO)
}

fn hub_lingering(linger: Duration) -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    let config = HubConfig {
        sequencer: SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::ZERO,
        },
        subscription_linger: linger,
    };
    Hub::new(config, Arc::new(Metrics::new()))
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
    for _ in 0..5 {
        hub.publish(item("c", b"x"), PublishInput::Http);
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
    hub.publish(item("c", b"1"), PublishInput::Http);
    hub.publish(item("c", b"2"), PublishInput::Http);
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
