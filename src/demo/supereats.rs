//! The SuperEats event generator: a small, deterministic simulation of a food-delivery
//! service, producing the two Kafka topics the demo streams.
//!
//! - `orders`, keyed by order id: each order moves through [`OrderState::ALL`] one step
//!   at a time, so a client that shows an order's history can tell at a glance whether
//!   it missed an update (a skipped step) — that is what makes a lossless resume visible;
//! - `drivers`, keyed by driver id: GPS positions of drivers wandering around Bergen,
//!   carrying the order they deliver.
//!
//! The simulation is pure: [`SuperEats::tick`] returns the records of one step, and the
//! caller decides when and where to produce them.

use serde::Serialize;

/// Kafka topic of order status changes.
pub const ORDERS_TOPIC: &str = "orders";
/// Kafka topic of driver positions.
pub const DRIVERS_TOPIC: &str = "drivers";

/// The life of an order, in the order it is lived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Cooking,
    PickedUp,
    FiveMinutesAway,
    Delivered,
}

impl OrderState {
    pub const ALL: [OrderState; 5] = [
        OrderState::Placed,
        OrderState::Cooking,
        OrderState::PickedUp,
        OrderState::FiveMinutesAway,
        OrderState::Delivered,
    ];

    /// Position in [`OrderState::ALL`]; sent as `step` so clients can spot gaps.
    pub fn step(self) -> usize {
        self as usize
    }

    fn next(self) -> Option<OrderState> {
        OrderState::ALL.get(self.step() + 1).copied()
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRecord {
    pub topic: &'static str,
    pub key: String,
    /// JSON.
    pub value: String,
}

/// An order's event, the value of an `orders` record.
#[derive(Debug, Serialize)]
struct OrderEvent<'a> {
    order: &'a str,
    state: OrderState,
    step: usize,
    restaurant: &'a str,
    dish: &'a str,
    driver: Option<&'a str>,
    /// Minutes until delivery, as a customer's app would show it.
    eta_min: u32,
    /// Counts every order event of this run: consecutive on a one-partition topic.
    seq: u64,
    /// When it happened, Unix milliseconds.
    at: u64,
}

/// A driver's position, the value of a `drivers` record.
#[derive(Debug, Serialize)]
struct DriverEvent<'a> {
    driver: &'a str,
    name: &'a str,
    lat: f64,
    lon: f64,
    order: Option<&'a str>,
    seq: u64,
    at: u64,
}

const RESTAURANTS: [(&str, &str); 6] = [
    ("Fjordside Sushi", "salmon nigiri"),
    ("Bryggen Burger", "cheeseburger"),
    ("Fløyen Pizza", "margherita"),
    ("Fish Market Grill", "fish and chips"),
    ("Nordnes Noodles", "ramen"),
    ("Ulriken Tacos", "tacos al pastor"),
];

const DRIVER_NAMES: [&str; 4] = ["Ingrid", "Lars", "Sofie", "Magnus"];

/// Bergen city centre; drivers stay within about a kilometre of it.
const CENTRE: (f64, f64) = (60.3913, 5.3221);
const RADIUS_DEG: f64 = 0.012;

struct Order {
    id: String,
    state: OrderState,
    restaurant: usize,
    driver: Option<usize>,
    /// Tick of the last change; the stalest order moves next, so all keep moving.
    changed_at: u64,
}

struct Driver {
    id: String,
    lat: f64,
    lon: f64,
    order: Option<String>,
}

/// The simulation state.
pub struct SuperEats {
    rng: XorShift,
    tick: u64,
    next_order_id: u64,
    orders: Vec<Order>,
    drivers: Vec<Driver>,
    order_seq: u64,
    driver_seq: u64,
}

impl SuperEats {
    /// `active_orders` orders are in flight at any time; a delivered one is replaced by
    /// a newly placed one. `seed` makes a run reproducible.
    pub fn new(active_orders: usize, seed: u64) -> SuperEats {
        let mut rng = XorShift::new(seed);
        let first_id = 2_235_400 + rng.below(500);
        let drivers = DRIVER_NAMES
            .iter()
            .enumerate()
            .map(|(i, _)| Driver {
                id: format!("d{}", i + 1),
                lat: CENTRE.0 + rng.signed_unit() * RADIUS_DEG * 0.5,
                lon: CENTRE.1 + rng.signed_unit() * RADIUS_DEG,
                order: None,
            })
            .collect();
        let mut eats = SuperEats {
            rng,
            tick: 0,
            next_order_id: first_id,
            orders: Vec::new(),
            drivers,
            order_seq: 0,
            driver_seq: 0,
        };
        // Stagger the first orders across the life cycle so the page is busy at once.
        for i in 0..active_orders.max(1) {
            let id = eats.new_order_id();
            eats.orders.push(Order {
                id,
                state: OrderState::Placed,
                restaurant: i % RESTAURANTS.len(),
                driver: None,
                changed_at: 0,
            });
        }
        eats
    }

    /// One step: the order that waited longest moves on by one state (a delivered
    /// order is replaced by a new one, whose `placed` event this is), and every
    /// driver reports a position. The first tick places the initial orders. `at_ms`
    /// (Unix milliseconds) stamps the events.
    pub fn tick(&mut self, at_ms: u64) -> Vec<DemoRecord> {
        self.tick += 1;
        let mut records = Vec::new();
        if self.tick == 1 {
            for index in 0..self.orders.len() {
                records.push(self.order_record(index, at_ms));
            }
        } else if let Some(index) = self.stalest_order() {
            self.advance(index);
            records.push(self.order_record(index, at_ms));
        }
        for index in 0..self.drivers.len() {
            self.move_driver(index);
            records.push(self.driver_record(index, at_ms));
        }
        records
    }

    fn new_order_id(&mut self) -> String {
        let id = self.next_order_id;
        self.next_order_id += 1 + self.rng.below(7);
        id.to_string()
    }

    /// The order that waited longest among those that can move: a cooked order waits
    /// for a free driver. One always can: a busy driver's order is on its way.
    fn stalest_order(&self) -> Option<usize> {
        let driver_free = self.drivers.iter().any(|d| d.order.is_none());
        (0..self.orders.len())
            .filter(|&i| driver_free || self.orders[i].state != OrderState::Cooking)
            .min_by_key(|&i| self.orders[i].changed_at)
    }

    fn advance(&mut self, index: usize) {
        let tick = self.tick;
        match self.orders[index].state.next() {
            Some(state) => {
                if state == OrderState::PickedUp {
                    let driver = self.free_driver();
                    self.orders[index].driver = driver;
                    if let Some(d) = driver {
                        self.drivers[d].order = Some(self.orders[index].id.clone());
                    }
                }
                if state == OrderState::Delivered {
                    if let Some(d) = self.orders[index].driver {
                        self.drivers[d].order = None;
                    }
                }
                self.orders[index].state = state;
            }
            None => {
                let id = self.new_order_id();
                let restaurant = self.rng.below(RESTAURANTS.len() as u64) as usize;
                self.orders[index] = Order {
                    id,
                    state: OrderState::Placed,
                    restaurant,
                    driver: None,
                    changed_at: tick,
                };
            }
        }
        self.orders[index].changed_at = tick;
    }

    fn free_driver(&mut self) -> Option<usize> {
        let free: Vec<usize> = (0..self.drivers.len())
            .filter(|&d| self.drivers[d].order.is_none())
            .collect();
        if free.is_empty() {
            return None;
        }
        Some(free[self.rng.below(free.len() as u64) as usize])
    }

    fn move_driver(&mut self, index: usize) {
        let step = RADIUS_DEG / 8.0;
        let (dlat, dlon) = (
            self.rng.signed_unit() * step * 0.5,
            self.rng.signed_unit() * step,
        );
        let driver = &mut self.drivers[index];
        // Wander, but stay near the centre: steps that leave the circle turn back.
        let (lat, lon) = (driver.lat + dlat, driver.lon + dlon);
        let far = ((lat - CENTRE.0) * 2.0).hypot(lon - CENTRE.1) > RADIUS_DEG;
        if far {
            driver.lat -= dlat;
            driver.lon -= dlon;
        } else {
            driver.lat = lat;
            driver.lon = lon;
        }
    }

    fn order_record(&mut self, index: usize, at: u64) -> DemoRecord {
        self.order_seq += 1;
        let order = &self.orders[index];
        let (restaurant, dish) = RESTAURANTS[order.restaurant];
        let eta_min = match order.state {
            OrderState::Placed => 35,
            OrderState::Cooking => 25,
            OrderState::PickedUp => 12,
            OrderState::FiveMinutesAway => 5,
            OrderState::Delivered => 0,
        };
        let event = OrderEvent {
            order: &order.id,
            state: order.state,
            step: order.state.step(),
            restaurant,
            dish,
            driver: order.driver.map(|d| self.drivers[d].id.as_str()),
            eta_min,
            seq: self.order_seq,
            at,
        };
        DemoRecord {
            topic: ORDERS_TOPIC,
            key: order.id.clone(),
            value: to_json(&event),
        }
    }

    fn driver_record(&mut self, index: usize, at: u64) -> DemoRecord {
        self.driver_seq += 1;
        let driver = &self.drivers[index];
        let event = DriverEvent {
            driver: &driver.id,
            name: DRIVER_NAMES[index % DRIVER_NAMES.len()],
            lat: round6(driver.lat),
            lon: round6(driver.lon),
            order: driver.order.as_deref(),
            seq: self.driver_seq,
            at,
        };
        DemoRecord {
            topic: DRIVERS_TOPIC,
            key: driver.id.clone(),
            value: to_json(&event),
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn to_json(value: &impl Serialize) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// A tiny xorshift generator: the simulation needs variety, not cryptography.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [-1, 1).
    fn signed_unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(record: &DemoRecord) -> serde_json::Value {
        serde_json::from_str(&record.value).expect("generator writes JSON")
    }

    fn run(ticks: usize) -> Vec<DemoRecord> {
        // More orders than drivers: cooked orders must wait for one.
        let mut eats = SuperEats::new(6, 42);
        (0..ticks as u64)
            .flat_map(|t| eats.tick(1_700_000_000_000 + t * 100))
            .collect()
    }

    #[test]
    fn every_order_moves_through_each_state_in_turn_without_skipping() {
        let records = run(200);
        let mut steps: HashMap<String, Vec<u64>> = HashMap::new();
        for record in records.iter().filter(|r| r.topic == ORDERS_TOPIC) {
            let value = parse(record);
            assert_eq!(value["order"].as_str(), Some(record.key.as_str()));
            steps
                .entry(record.key.clone())
                .or_default()
                .push(value["step"].as_u64().expect("step"));
        }
        let delivered = steps.values().filter(|s| s.len() == 5).count();
        assert!(delivered >= 20, "only {delivered} orders were delivered");
        for (order, steps) in &steps {
            let expected: Vec<u64> = (0..steps.len() as u64).collect();
            assert_eq!(steps, &expected, "order {order}");
        }
    }

    #[test]
    fn state_names_follow_the_life_cycle() {
        let names: Vec<serde_json::Value> = OrderState::ALL
            .iter()
            .map(|s| serde_json::to_value(s).expect("state"))
            .collect();
        assert_eq!(
            names,
            [
                "placed",
                "cooking",
                "picked_up",
                "five_minutes_away",
                "delivered"
            ]
        );
    }

    #[test]
    fn order_events_carry_a_run_wide_sequence_without_holes() {
        let seqs: Vec<u64> = run(50)
            .iter()
            .filter(|r| r.topic == ORDERS_TOPIC)
            .map(|r| parse(r)["seq"].as_u64().expect("seq"))
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected);
    }

    #[test]
    fn picked_up_orders_have_a_driver_who_carries_them() {
        let records = run(100);
        let mut carrying: HashMap<String, String> = HashMap::new();
        for record in &records {
            let value = parse(record);
            if record.topic == DRIVERS_TOPIC {
                if let Some(order) = value["order"].as_str() {
                    carrying.insert(order.to_owned(), record.key.clone());
                }
            } else if value["state"] == "picked_up" {
                assert!(value["driver"].is_string(), "{value}");
            }
        }
        assert!(!carrying.is_empty(), "no driver ever carried an order");
    }

    #[test]
    fn drivers_stay_near_bergen_and_report_every_tick() {
        let records = run(500);
        let positions: Vec<(f64, f64)> = records
            .iter()
            .filter(|r| r.topic == DRIVERS_TOPIC)
            .map(|r| {
                let v = parse(r);
                (
                    v["lat"].as_f64().expect("lat"),
                    v["lon"].as_f64().expect("lon"),
                )
            })
            .collect();
        assert_eq!(positions.len(), 500 * DRIVER_NAMES.len());
        for (lat, lon) in positions {
            assert!((lat - CENTRE.0).abs() < 0.02 && (lon - CENTRE.1).abs() < 0.02);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        assert_eq!(run(30), run(30));
    }
}
