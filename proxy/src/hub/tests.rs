use super::*;
use crate::queue::QueueEvent;
use bytes::Bytes;

fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<ChannelEvent>) {
    let config = HubConfig {
        sequencer: SequencerConfig {
            message_wait: Duration::from_secs(5),
            id_cache_ttl: Duration::ZERO,
        },
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
