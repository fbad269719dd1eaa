//! Log-linear latency histogram (microseconds, ≤1.6 % relative error).
//!
//! Values below 128 µs get one bucket each; above that every power of two is
//! split into 64 buckets. Histograms from several worker processes are merged
//! exactly by adding bucket counts, so merged percentiles are as good as local
//! ones.

use serde::{Deserialize, Serialize};

const LINEAR: u64 = 128;
const SUB: usize = 64;

/// Latency histogram over microsecond values.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

/// Sparse, serialisable form used between worker processes and the runner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SparseHistogram {
    /// `[bucket index, count]` pairs for non-empty buckets.
    pub buckets: Vec<(u32, u64)>,
    pub max_us: u64,
}

/// Percentile summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let high = 63 - v.leading_zeros(); // >= 7
    let shift = high - 6; // >= 1
    let mant = (v >> shift) as usize; // 64..=127
    LINEAR as usize + (shift as usize - 1) * SUB + (mant - SUB)
}

/// Midpoint of the bucket, used as its representative value.
fn value_of(idx: usize) -> u64 {
    if idx < LINEAR as usize {
        return idx as u64;
    }
    let rel = idx - LINEAR as usize;
    let shift = (rel / SUB + 1) as u32;
    let mant = (rel % SUB + SUB) as u64;
    (mant << shift) + (1u64 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        let idx = index(v);
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
        self.max = 0;
    }

    pub fn merge(&mut self, other: &SparseHistogram) {
        for &(idx, n) in &other.buckets {
            let idx = idx as usize;
            if idx >= self.counts.len() {
                self.counts.resize(idx + 1, 0);
            }
            self.counts[idx] += n;
            self.total += n;
        }
        self.max = self.max.max(other.max_us);
    }

    pub fn to_sparse(&self) -> SparseHistogram {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (i as u32, n))
            .collect();
        SparseHistogram {
            buckets,
            max_us: self.max,
        }
    }

    /// Value (µs) at quantile `q` in `0.0..=1.0`.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            samples: self.total,
            p50_ms: ms(self.quantile(0.50)),
            p99_ms: ms(self.quantile(0.99)),
            p999_ms: ms(self.quantile(0.999)),
            max_ms: ms(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            1000,
            65_535,
            1 << 20,
            10_000_000_000,
        ] {
            let idx = index(v);
            assert!(idx >= last);
            last = idx;
            let rep = value_of(idx);
            let err = (rep as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 0.016, "v={v} rep={rep}");
        }
    }

    #[test]
    fn quantiles_and_merge() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 1..=500u64 {
            a.record(v * 1000);
        }
        for v in 501..=1000u64 {
            b.record(v * 1000);
        }
        let mut m = Histogram::default();
        m.merge(&a.to_sparse());
        m.merge(&b.to_sparse());
        assert_eq!(m.summary().samples, 1000);
        let p50 = m.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02);
        assert_eq!(m.summary().max_ms, 1000.0);
    }
}
