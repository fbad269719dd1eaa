//! What `/healthz` and `/readyz` report (design "Observability"): alive while the process
//! runs; ready while the relay consumes (subscriptions settled, group subscription made)
//! and the Kafka cluster answers.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    kafka_up: AtomicBool,
    consuming: AtomicBool,
}

impl Health {
    pub fn set_kafka_up(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
    }

    pub fn kafka_up(&self) -> bool {
        self.kafka_up.load(Ordering::Relaxed)
    }

    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    pub fn consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    pub fn ready(&self) -> bool {
        self.kafka_up() && self.consuming()
    }

    /// Why the relay is not ready, for the `/readyz` body.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.consuming() {
            Some("not consuming yet (waiting for subscriptions to settle or shutting down)")
        } else if !self.kafka_up() {
            Some("Kafka cluster unreachable")
        } else {
            None
        }
    }
}
