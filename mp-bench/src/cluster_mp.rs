//! The mp side of the cluster scenarios (feature `mpi`): `mp-bench
//! --cluster-side ...` launched by `mpirun -np 3`. Ranks 1 and 2 never get
//! here (mp's entry guard makes them serve jobs); rank 0 runs every requested
//! scenario on one `mp::mpi::pool()` and prints one JSON line in the format of
//! `benches/python/cluster_bench.py` ([`crate::cluster::SideLine`]).

use std::hint::black_box;
use std::time::Instant;

use serde::Serialize;

use crate::scenarios::{add, square};
use crate::{BoxError, Sample};

#[derive(Debug, Serialize)]
struct Line {
    side: &'static str,
    mpi: String,
    workers: usize,
    scenarios: Vec<Scenario>,
}

#[derive(Debug, Serialize)]
struct Scenario {
    scenario: String,
    n: u64,
    unit: &'static str,
    samples: Vec<f64>,
}

/// Runs `ids` with `sizes` (`id=n,...`), `reps` times each after `warmup`
/// unrecorded runs, and prints the line.
pub(crate) fn run(ids: &[String], sizes: &str, reps: usize, warmup: usize) -> Result<(), BoxError> {
    if !mp::mpi::is_launched() {
        return Err("--cluster-side runs under mpirun: mp-bench starts it that way".into());
    }
    let mut sized = Vec::new();
    for item in sizes.split(',').filter(|s| !s.is_empty()) {
        let (id, n) = item
            .split_once('=')
            .ok_or_else(|| format!("bad --sizes item `{item}`"))?;
        let n: u64 = n.parse().map_err(|_| format!("bad size in `{item}`"))?;
        sized.push((id.to_string(), n.max(1)));
    }
    let pool = mp::mpi::pool()?;
    pool.apply(add, (1, 2))?;
    let mut scenarios = Vec::new();
    for id in ids {
        let scenario = crate::cluster::SCENARIOS
            .iter()
            .find(|s| s.python_id == id)
            .ok_or_else(|| format!("unknown cluster scenario `{id}`"))?;
        let n = sized
            .iter()
            .find(|(s, _)| s == id)
            .map_or(scenario.n.full, |(_, n)| *n);
        let f: fn(&mp::Pool, u64) -> Sample = match id.as_str() {
            "cluster_submit" => submit,
            "cluster_apply" | "cluster_apply_pair" => apply,
            "cluster_map_chunk1" => |pool, n| Ok(n as f64 / map_secs(pool, n, Some(1))? / 1e3),
            "cluster_map_chunk100" => |pool, n| Ok(n as f64 / map_secs(pool, n, Some(100))? / 1e6),
            "cluster_map" => |pool, n| Ok(n as f64 / map_secs(pool, n, None)? / 1e6),
            other => return Err(format!("no mp side for `{other}`").into()),
        };
        let mut samples = Vec::with_capacity(reps);
        for i in 0..warmup + reps.max(1) {
            let x = f(&pool, n)?;
            if i >= warmup {
                samples.push(x);
            }
        }
        scenarios.push(Scenario {
            scenario: id.clone(),
            n,
            unit: scenario.unit.text,
            samples,
        });
    }
    let line = Line {
        side: "mp",
        mpi: format!("mp {} (`mp::mpi::pool()`)", env!("CARGO_PKG_VERSION")),
        workers: pool.processes(),
        scenarios,
    };
    pool.close();
    pool.join()?;
    println!("{}", serde_json::to_string(&line)?);
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong result: {what}").into())
    }
}

/// k tasks/s: `n` tasks submitted one by one, then every result collected.
fn submit(pool: &mp::Pool, n: u64) -> Sample {
    let start = Instant::now();
    let pending: Vec<_> = (0..n).map(|i| pool.apply_async(square, (i,))).collect();
    let mut last = 0;
    for p in pending {
        last = p.get()?;
    }
    let elapsed = start.elapsed();
    check(last == square(n - 1), "apply_async(square)")?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e3)
}

/// µs: one `apply(add, (1, 2))` round trip, mean of `n`.
fn apply(pool: &mp::Pool, n: u64) -> Sample {
    for _ in 0..20 {
        pool.apply(add, (1, 2))?;
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(pool.apply(add, black_box((1, 2)))?);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Seconds for a `map` of `square` over `0..n` (`None`: automatic chunking).
fn map_secs(pool: &mp::Pool, n: u64, chunksize: Option<usize>) -> Result<f64, BoxError> {
    let start = Instant::now();
    let out = match chunksize {
        Some(c) => pool.map_chunked(square, 0..n, c)?,
        None => pool.map(square, 0..n)?,
    };
    let elapsed = start.elapsed();
    check(
        out.len() as u64 == n && out.last() == Some(&square(n - 1)),
        "map(square)",
    )?;
    Ok(elapsed.as_secs_f64())
}
