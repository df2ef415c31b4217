//! The Prometheus recorder keeps no histogram sample for long without a
//! scrape: its upkeep folds pending samples into their buckets. Without
//! it each RPC's duration stayed in memory until the next scrape, and an
//! unscraped server grew by about 85 KB/s under mixed load (performance
//! issue, M1). Its own test binary: it measures the heap with dhat's
//! allocator, and the recorder is one per process.

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn histogram_samples_are_folded_without_a_scrape() {
    let _profiler = dhat::Profiler::builder().testing().build();
    corridor_server::metrics::handle().expect("the recorder is installed");
    let histogram = metrics::histogram!("corridor_test_upkeep_seconds");
    let samples = 200_000;
    let before = dhat::HeapStats::get().curr_bytes;
    for i in 0..samples {
        histogram.record(f64::from(i) * 1e-6);
    }
    let pending = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
    // Each pending sample is an f64 in the recorder's bucket.
    assert!(
        pending >= samples as usize * 8 / 2,
        "{samples} samples hold only {pending} bytes: the check measures nothing"
    );
    // A trickle of samples, as a serving process records: the recorder
    // frees drained sample blocks lazily (epoch-based), as later records
    // come by.
    let started = Instant::now();
    let wait = corridor_server::metrics::UPKEEP_EVERY * 10;
    loop {
        histogram.record(0.001);
        let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        if held < pending / 10 {
            return;
        }
        assert!(
            started.elapsed() < wait,
            "{held} bytes still held {:?} after {samples} samples ({pending} right after), no scrape",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
