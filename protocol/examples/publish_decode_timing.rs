//! Time and heap allocations per body of `parse_publish_request` against parsing the same body into a
//! `serde_json::Value` and decoding each item with `PublishItem::from_json` (how
//! `POST /publish` bodies were decoded before). Two bodies: one `http-stream` item with
//! an SSE event of about 100 bytes, as the `fanout-many` benchmark publishes, and 100
//! such items on distinct channels.
//!
//! Run in release mode: `cargo run --release -p fjord-protocol --example publish_decode_timing`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjord_protocol::item::{parse_publish_request, PublishItem};

/// Counts allocations, which unlike times do not depend on other load on the machine.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations(body: &[u8], decode: Decoder) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(decode(black_box(body)));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn item(channel: usize) -> String {
    let event = format!(
        r#"data: {{\"seq\":{channel},\"ts\":1767225600123,\"kind\":\"tick\",\"payload\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}}\n\n"#
    );
    format!(r#"{{"channel":"c{channel}","formats":{{"http-stream":{{"content":"{event}"}}}}}}"#)
}

fn body(items: usize) -> Vec<u8> {
    let items: Vec<String> = (0..items).map(|i| item(123 + i)).collect();
    format!(r#"{{"items":[{}]}}"#, items.join(",")).into_bytes()
}

fn via_value(body: &[u8]) -> Vec<PublishItem> {
    let document: serde_json::Value = serde_json::from_slice(body).expect("body is JSON");
    document["items"]
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|item| PublishItem::from_json(item, None).expect("item decodes"))
        .collect()
}

type Decoder<'a> = &'a dyn Fn(&[u8]) -> Vec<PublishItem>;

/// Mean time per call of each decoder. Rounds of the decoders alternate and the fastest
/// round of each is reported, as the one least disturbed by other load on the machine.
fn time(body: &[u8], decoders: &[Decoder]) -> Vec<Duration> {
    const ROUNDS: usize = 40;
    let calls = (1_000_000 / body.len()).max(20) as u32;
    let mut best = vec![Duration::MAX; decoders.len()];
    for _ in 0..ROUNDS {
        for (decode, best) in decoders.iter().zip(&mut best) {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(decode(black_box(body)));
            }
            *best = (*best).min(start.elapsed() / calls);
        }
    }
    best
}

fn main() {
    let borrowed = |b: &[u8]| parse_publish_request(b).expect("body decodes");
    for (name, body) in [("1 item", body(1)), ("100 items", body(100))] {
        let expected = via_value(&body);
        assert_eq!(parse_publish_request(&body).as_ref(), Ok(&expected));
        let times = time(&body, &[&via_value, &borrowed]);
        println!(
            "{name} ({} bytes): Value tree {} ns/body, {} allocations; \
             borrowed tree {} ns/body, {} allocations ({:.2}x)",
            body.len(),
            times[0].as_nanos(),
            allocations(&body, &via_value),
            times[1].as_nanos(),
            allocations(&body, &borrowed),
            times[0].as_secs_f64() / times[1].as_secs_f64(),
        );
    }
}
