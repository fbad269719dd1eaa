//! `fjord demo`'s parts: the SuperEats simulation, the embedded Kafka and the producer
//! loop, and the set-up of config, key, token and page. `crate::demo_cmd` runs them.

pub mod kafka;
pub mod setup;
pub mod supereats;
