//! The Prometheus recorder keeps no histogram sample for long without a
//! scrape: its upkeep folds pending samples into their buckets. Without
//! it each RPC's duration stayed in memory until the next scrape, and an
//! unscraped server grew by about 5 MiB/min under mixed load
//! (docs/PERFORMANCE.md, M1). Its own test binary: it measures the heap
//! with dhat's allocator, and the recorder is one per process.

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn histogram_samples_are_folded_without_a_scrape() {
    let _profiler = dhat::Profiler::builder().testing().build();
    corridor_server::metrics::handle().expect("the recorder is installed");
    let histogram = metrics::histogram!("corridor_test_upkeep_seconds");
    // A pending sample is kept with its time: at least 16 bytes.
    let samples = 20_000_u32;
    let least = samples as usize * 16 / 2;
    // The samples are recorded in a few milliseconds; should an upkeep
    // land in between and fold some of them already, record again.
    let (before, pending) = (0..5)
        .map(|_| {
            let before = dhat::HeapStats::get().curr_bytes;
            for i in 0..samples {
                histogram.record(f64::from(i) * 1e-6);
            }
            let pending = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
            (before, pending)
        })
        .find(|(_, pending)| *pending >= least)
        .unwrap_or_else(|| {
            panic!("{samples} samples never held {least} bytes: the check would measure nothing")
        });
    // A trickle of samples goes on, as in a serving process: the recorder
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
