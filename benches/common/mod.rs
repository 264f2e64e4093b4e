//! What the criterion benchmarks share: sampling settings, the record of every
//! measured sample (for the ratio summaries printed at the end), and `Suite`,
//! a criterion group whose benchmarks all use `iter_custom`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// Samples per benchmark (criterion's minimum).
pub(crate) const SAMPLES: usize = 10;
pub(crate) const MEASUREMENT: Duration = Duration::from_secs(3);
pub(crate) const WARM_UP: Duration = Duration::from_secs(1);

/// True under `cargo bench` (criterion's `--bench` without `--test`).
pub(crate) fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

/// Per-iteration times (ns) of every call of every benchmark, in call order.
static RECORDS: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

pub(crate) fn record(key: &str, iters: u64, elapsed: Duration) {
    let per_iter = elapsed.as_nanos() as f64 / iters.max(1) as f64;
    let mut records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    records.entry(key.to_string()).or_default().push(per_iter);
}

/// The median (NaN for no values).
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Median time per iteration over the measured samples (the last `SAMPLES`
/// calls; earlier calls are criterion's warm-up).
pub(crate) fn median_ns(key: &str) -> Option<f64> {
    let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    let all = records.get(key)?;
    let samples = all[all.len().saturating_sub(SAMPLES)..].to_vec();
    (!samples.is_empty()).then(|| median(samples))
}

/// True if the benchmark `key` ran.
#[allow(dead_code)] // used by some benches only
pub(crate) fn recorded(key: &str) -> bool {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(key)
}

/// A criterion group whose benchmarks all use `iter_custom` and are recorded
/// for the summary.
pub(crate) struct Suite<'a> {
    name: &'static str,
    group: BenchmarkGroup<'a, WallTime>,
}

impl<'a> Suite<'a> {
    pub(crate) fn new(c: &'a mut Criterion, name: &'static str, mode: SamplingMode) -> Suite<'a> {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(SAMPLES)
            .measurement_time(MEASUREMENT)
            .warm_up_time(WARM_UP)
            .sampling_mode(mode);
        Suite { name, group }
    }

    pub(crate) fn throughput(&mut self, t: Throughput) -> &mut Self {
        self.group.throughput(t);
        self
    }

    /// Benchmarks `run(iters)`, which returns the time `iters` iterations took.
    pub(crate) fn run(&mut self, id: &str, mut run: impl FnMut(u64) -> Duration) {
        let key = format!("{}/{id}", self.name);
        self.group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let elapsed = run(iters);
                record(&key, iters, elapsed);
                elapsed
            })
        });
    }

    pub(crate) fn finish(self) {
        self.group.finish();
    }
}

/// The `memcpy_64MiB` baseline: copying `data` within this process.
pub(crate) fn memcpy_baseline(suite: &mut Suite<'_>, data: &[u8]) {
    let mut dst = vec![0u8; data.len()];
    suite.run("memcpy_64MiB", |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            dst.copy_from_slice(black_box(data));
            black_box(&mut dst);
        }
        start.elapsed()
    });
}
