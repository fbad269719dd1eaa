//! Machine load during a scenario: the 1-minute load average from
//! `/proc/loadavg`, sampled once a second by a background thread. The figure
//! counts every runnable task on the machine, including the system under test
//! and the load generator itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// The current 1-minute load average, if readable.
pub fn now() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Samples the 1-minute load average until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(v) = now() {
                        samples.lock().expect("loadavg samples").push(v);
                    }
                    // Short sleeps so that finish() returns promptly.
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Sampler {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    /// Stops sampling; returns `{start, end, min, max, mean, samples}`.
    pub fn finish(mut self) -> Value {
        self.halt();
        let mut v = self.samples.lock().expect("loadavg samples").clone();
        if let Some(x) = now() {
            v.push(x);
        }
        if v.is_empty() {
            return Value::Null;
        }
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        json!({
            "start": v[0],
            "end": v[v.len() - 1],
            "min": min,
            "max": max,
            "mean": r2(mean),
            "samples": v.len(),
        })
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}
