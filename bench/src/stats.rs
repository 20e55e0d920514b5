//! Latency histograms: how they are made, recorded into and merged across worker threads.
//!
//! Owns: the histogram bounds (1 ns .. 60 s, 3 significant digits) and the percentile summary.
//! Each worker records into its own histogram; the main thread merges them.
//! Must never: be shared between threads while recording (no locks on the hot path).

use hdrhistogram::Histogram;

/// Highest trackable value: 60 s in nanoseconds (larger values are clamped).
pub const MAX_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds.
pub type Hist = Histogram<u64>;

/// A fresh, empty histogram.
pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid")
}

/// Records one latency (clamped into the trackable range).
pub fn record(h: &mut Hist, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_NS));
}

/// Adds `from` into `into` (same bounds, so this cannot fail).
pub fn merge(into: &mut Hist, from: &Hist) {
    into.add(from).expect("histograms share bounds");
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Summarises a histogram (all zeros when it is empty).
pub fn percentiles(h: &Hist) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        min_us: us(h.min()),
        mean_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_per_thread_histograms_equals_one_histogram() {
        let mut all = new_hist();
        let mut parts: Vec<Hist> = (0..4).map(|_| new_hist()).collect();
        for i in 1..=10_000u64 {
            let v = i * 1_000;
            record(&mut all, v);
            record(&mut parts[(i % 4) as usize], v);
        }
        let threads: Vec<_> = parts
            .into_iter()
            .map(|h| std::thread::spawn(move || h))
            .collect();
        let mut merged = new_hist();
        for t in threads {
            merge(&mut merged, &t.join().unwrap());
        }
        assert_eq!(merged.len(), 10_000);
        assert_eq!(percentiles(&merged), percentiles(&all));
        let p = percentiles(&merged);
        assert!((p.p50_us - 5_000.0).abs() / 5_000.0 < 0.001);
        assert!((p.p99_us - 9_900.0).abs() / 9_900.0 < 0.001);
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = new_hist();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
        assert_eq!(percentiles(&Hist::new(3).unwrap()), Percentiles::default());
    }
}
