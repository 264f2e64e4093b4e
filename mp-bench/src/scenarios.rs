//! The scenarios: what is measured, in which unit, with which sizes, and the mp
//! side of each. The Python side is the function registered under the same id
//! in `benches/python/bench.py`.
//!
//! Adding a scenario: write one function here (`fn(n) -> Sample`, one repetition,
//! returning one value in the scenario's unit), one line in [`SCENARIOS`], and
//! its twin in `bench.py` (one function and one line in its `SCENARIOS`). A
//! scenario whose mp side does not exist yet has `mp: None` and is reported as
//! "not yet available" beside Python's figure.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use crate::baseline::Baseline;
use crate::{BoxError, Sample};

/// Worker processes of every pool, on both sides.
pub(crate) const POOL_PROCESSES: usize = 2;
/// Tasks of the CPU-bound scenario.
pub(crate) const CPU_TASKS: usize = 8;

/// Which way is better for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

/// The unit of a scenario's figure (the Python side must report the same text).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    pub(crate) text: &'static str,
    pub(crate) better: Better,
}

impl Unit {
    pub(crate) const MS: Unit = Unit::lower("ms");
    pub(crate) const US: Unit = Unit::lower("µs");
    const M_ITEMS: Unit = Unit::higher("M items/s");
    const K_TASKS: Unit = Unit::higher("k tasks/s");
    const M_MSGS: Unit = Unit::higher("M msgs/s");
    const M_INCR: Unit = Unit::higher("M incr/s");
    pub(crate) const TIMES: Unit = Unit::higher("×");
    pub(crate) const MB_S: Unit = Unit::higher("MB/s");

    pub(crate) const fn lower(text: &'static str) -> Unit {
        Unit {
            text,
            better: Better::Lower,
        }
    }

    pub(crate) const fn higher(text: &'static str) -> Unit {
        Unit {
            text,
            better: Better::Higher,
        }
    }
}

/// A goal from `PERFORMANCE.md`, in the scenario's unit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// At most this many times the scenario's first baseline (a time).
    TimesBaseline(f64),
}

/// The size `n` handed to both sides: full run and `--quick`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    pub(crate) full: u64,
    pub(crate) quick: u64,
}

impl Size {
    pub(crate) fn get(self, quick: bool) -> u64 {
        if quick { self.quick } else { self.full }
    }
}

/// One scenario, defined identically for mp and Python.
#[derive(Debug)]
pub(crate) struct Scenario {
    /// Identifier on the command line and in the JSON output.
    pub(crate) id: &'static str,
    /// The Python scenario it is compared with (usually the same id).
    pub(crate) python_id: &'static str,
    /// The title; `{size}` stands for `n` (see [`Scenario::title`]).
    pub(crate) title: &'static str,
    /// What one repetition does, and what `n` means.
    pub(crate) definition: &'static str,
    pub(crate) unit: Unit,
    pub(crate) n: Size,
    /// What `n` counts (`bytes` is shown in MiB).
    pub(crate) n_means: &'static str,
    /// The mp side: one repetition, one value in `unit`. `None`: not in mp yet.
    pub(crate) mp: Option<fn(u64) -> Sample>,
    /// Python start methods to compare with (`multiprocessing.get_context`).
    pub(crate) python: &'static [&'static str],
    /// Machine baselines in the same unit; the first is the floor mp is held to.
    pub(crate) baselines: &'static [Baseline],
    pub(crate) goal: Option<Goal>,
}

impl Scenario {
    /// The title, with `{size}` replaced by `n` in its unit.
    pub(crate) fn title(&self, n: u64) -> String {
        self.title.replace("{size}", &self.size_text(n))
    }

    /// `n` and what it counts: `200000 items`, `64 MiB`.
    pub(crate) fn size_text(&self, n: u64) -> String {
        if self.n_means == "bytes" {
            bytes_text(n)
        } else {
            format!("{n} {}", self.n_means)
        }
    }
}

/// `n` bytes in the largest binary unit that divides it.
pub(crate) fn bytes_text(n: u64) -> String {
    match n {
        _ if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{} MiB", n >> 20),
        _ if n >= 1 << 10 && n.is_multiple_of(1 << 10) => format!("{} KiB", n >> 10),
        _ => format!("{n} bytes"),
    }
}

const FORK: &[&str] = &["fork"];

pub(crate) static SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "pool_start",
        python_id: "pool_start",
        title: "pool(2) start + 1 task + stop",
        definition: "start a pool of 2, one `apply`, then close and join it; mean of `n` cycles",
        unit: Unit::MS,
        n: Size { full: 10, quick: 2 },
        n_means: "cycles",
        mp: Some(pool_start),
        python: &["fork", "forkserver", "spawn"],
        baselines: &[Baseline::ReexecTwo],
        goal: Some(Goal::AtMost(2.0)),
    },
    Scenario {
        id: "map",
        python_id: "map",
        title: "map, default chunking",
        definition: "`map` of a trivial function (`x * x`) over `n` ints, default chunk size",
        unit: Unit::M_ITEMS,
        n: Size {
            full: 200_000,
            quick: 20_000,
        },
        n_means: "items",
        mp: Some(map),
        python: FORK,
        baselines: &[],
        goal: Some(Goal::AtLeast(25.0)),
    },
    Scenario {
        id: "map_chunksize1",
        python_id: "map_chunksize1",
        title: "map, chunk size 1",
        definition: "`map` of the trivial function over `n` ints, one item per task",
        unit: Unit::K_TASKS,
        n: Size {
            full: 20_000,
            quick: 1_000,
        },
        n_means: "items",
        mp: Some(map_chunksize1),
        python: FORK,
        baselines: &[],
        goal: Some(Goal::AtLeast(200.0)),
    },
    Scenario {
        id: "apply",
        python_id: "apply",
        title: "apply round trip",
        definition: "one `apply(add, (1, 2))` on a warm pool of 2; mean of `n` calls",
        unit: Unit::US,
        n: Size {
            full: 2_000,
            quick: 100,
        },
        n_means: "calls",
        mp: Some(apply),
        python: FORK,
        baselines: &[Baseline::RawRoundTrip],
        goal: Some(Goal::AtMost(10.0)),
    },
    Scenario {
        id: "pipe",
        python_id: "pipe",
        title: "Pipe ping-pong",
        definition: "send an int over a pipe to a child process that sends it back; mean of `n`",
        unit: Unit::US,
        n: Size {
            full: 10_000,
            quick: 500,
        },
        n_means: "round trips",
        mp: Some(pipe),
        python: FORK,
        baselines: &[Baseline::RawRoundTrip],
        goal: Some(Goal::TimesBaseline(1.1)),
    },
    Scenario {
        id: "queue",
        python_id: "queue",
        title: "Queue 1 producer → 1 consumer",
        definition: "a child process puts `n` ints on a queue, the parent gets them; timed from the start signal to the last `get`",
        unit: Unit::M_MSGS,
        n: Size {
            full: 100_000,
            quick: 5_000,
        },
        n_means: "messages",
        mp: Some(queue),
        python: FORK,
        baselines: &[],
        goal: Some(Goal::AtLeast(5.0)),
    },
    Scenario {
        id: "value",
        python_id: "value",
        title: "Value += under its lock, 2 processes",
        definition: "2 processes each add 1 to a shared `i64` `n` times under its lock; the final count is checked. Timed from the start signal to both processes joined",
        unit: Unit::M_INCR,
        n: Size {
            full: 1_000_000,
            quick: 5_000,
        },
        n_means: "increments per process",
        mp: Some(value),
        python: FORK,
        baselines: &[],
        goal: Some(Goal::AtLeast(20.0)),
    },
    Scenario {
        id: "manager_dict",
        python_id: "manager_dict",
        title: "Manager dict insert",
        definition: "`d[i] = i` on a manager's dict proxy (mp: `DictProxy::insert`); mean of `n` inserts",
        unit: Unit::US,
        n: Size {
            full: 5_000,
            quick: 200,
        },
        n_means: "inserts",
        mp: Some(manager_dict),
        python: FORK,
        baselines: &[Baseline::RawTcpRoundTrip, Baseline::RawRoundTrip],
        goal: Some(Goal::TimesBaseline(1.2)),
    },
    Scenario {
        id: "cpu",
        python_id: "cpu",
        title: "CPU-bound, 8 tasks, speedup",
        definition: "8 tasks of `n` ms of xorshift each: time in the parent alone / time on a pool of 2 (each side calibrates its own loop)",
        unit: Unit::TIMES,
        n: Size { full: 50, quick: 5 },
        n_means: "ms per task",
        mp: Some(cpu_speedup),
        python: FORK,
        baselines: &[Baseline::IdealSpeedup],
        goal: Some(Goal::AtLeast(1.95)),
    },
    Scenario {
        id: "payload",
        python_id: "payload",
        title: "{size} payload round trip",
        definition: "`apply` of an echo job to `n` bytes (mp: `serde_bytes::ByteBuf`; Python: `bytes`): `n` / round-trip time",
        unit: Unit::MB_S,
        n: Size {
            full: 64 << 20,
            quick: 1 << 20,
        },
        n_means: "bytes",
        mp: Some(payload),
        python: FORK,
        baselines: &[Baseline::RawPayload, Baseline::Memcpy],
        goal: Some(Goal::AtLeast(1000.0)),
    },
    Scenario {
        id: "payload_vec",
        python_id: "payload",
        title: "{size} payload round trip, Vec<u8>",
        definition: "the same with a plain `Vec<u8>` (serde sees a sequence of `u8`), against the same Python figure",
        unit: Unit::MB_S,
        n: Size {
            full: 64 << 20,
            quick: 1 << 20,
        },
        n_means: "bytes",
        mp: Some(payload_vec),
        python: FORK,
        baselines: &[Baseline::RawPayload],
        goal: Some(Goal::AtLeast(1000.0)),
    },
];

// ---------------------------------------------------------------------------
// Jobs.

#[mp::job]
pub(crate) fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mp::job]
pub(crate) fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// CPU-bound work: `rounds` steps of xorshift64, each depending on the last.
#[mp::job]
fn burn(rounds: u64) -> u64 {
    let mut x = rounds | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

#[mp::job]
fn echo_bytes(data: ByteBuf) -> ByteBuf {
    data
}

#[mp::job]
fn echo_vec(data: Vec<u8>) -> Vec<u8> {
    data
}

/// Echoes `count` messages, then returns how many it echoed.
#[mp::job]
fn pipe_echo(conn: mp::Connection<u64>, count: u64) -> u64 {
    for done in 0..count {
        let Ok(m) = conn.recv() else { return done };
        if conn.send(&m).is_err() {
            return done;
        }
    }
    count
}

/// Puts `0..n` on `queue` once `start` is set; returns how many it put.
#[mp::job]
fn queue_produce(queue: mp::Queue<u64>, start: mp::Event, n: u64) -> u64 {
    if start.wait().is_err() {
        return 0;
    }
    for i in 0..n {
        if queue.put(i).is_err() {
            return i;
        }
    }
    n
}

/// Adds 1 to `value` `n` times under its lock once `start` is set; returns how
/// many it added.
#[mp::job]
fn value_increment(value: mp::Value<i64>, start: mp::Event, n: u64) -> u64 {
    if start.wait().is_err() {
        return 0;
    }
    for done in 0..n {
        match value.lock() {
            Ok(mut v) => *v += 1,
            Err(_) => return done,
        }
    }
    n
}

// ---------------------------------------------------------------------------
// The mp side, one repetition each.

fn check(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong result: {what}").into())
    }
}

fn pool2() -> Result<mp::Pool, BoxError> {
    Ok(mp::Pool::new(POOL_PROCESSES)?)
}

fn pool_start(n: u64) -> Sample {
    let start = Instant::now();
    for _ in 0..n {
        let pool = pool2()?;
        check(pool.apply(add, (1, 2))? == 3, "apply(add, (1, 2))")?;
        pool.close();
        pool.join()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / n as f64)
}

fn map(n: u64) -> Sample {
    let pool = pool2()?;
    pool.map(square, 0..1000u64)?;
    let start = Instant::now();
    let out = pool.map(square, 0..n)?;
    let elapsed = start.elapsed();
    check(
        out.len() as u64 == n && out.last() == Some(&square(n - 1)),
        "map(square)",
    )?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn map_chunksize1(n: u64) -> Sample {
    let pool = pool2()?;
    pool.map_chunked(square, 0..100u64, 1)?;
    let start = Instant::now();
    let out = pool.map_chunked(square, 0..n, 1)?;
    let elapsed = start.elapsed();
    check(out.len() as u64 == n, "map_chunked(square, .., 1)")?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e3)
}

fn apply(n: u64) -> Sample {
    let pool = pool2()?;
    for _ in 0..50 {
        pool.apply(add, (1, 2))?;
    }
    let start = Instant::now();
    for _ in 0..n {
        black_box(pool.apply(add, black_box((1, 2)))?);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn pipe(n: u64) -> Sample {
    const WARM: u64 = 100;
    let (ours, theirs) = mp::pipe::<u64>()?;
    let child = mp::Process::spawn(pipe_echo, (theirs, WARM + n))?;
    for i in 0..WARM {
        ours.send(&i)?;
        ours.recv()?;
    }
    let start = Instant::now();
    for i in 0..n {
        ours.send(&i)?;
        check(ours.recv()? == i, "pipe echo")?;
    }
    let elapsed = start.elapsed();
    check(child.join()? == WARM + n, "messages echoed by the child")?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

/// Rounds of `burn` that take about `ms` milliseconds here, and their result.
fn calibrate_burn(ms: u64) -> (u64, u64) {
    /// (ms, rounds, result) of earlier calibrations.
    static CALIBRATED: Mutex<Vec<(u64, u64, u64)>> = Mutex::new(Vec::new());
    let mut cache = CALIBRATED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, rounds, expected)) = cache.iter().find(|c| c.0 == ms) {
        return (rounds, expected);
    }
    const PROBE: u64 = 1 << 20;
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(burn(black_box(PROBE)));
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1))
        .max(Duration::from_micros(1));
    let rounds = ((PROBE as f64 * ms as f64 / 1e3 / best.as_secs_f64()) as u64).max(1);
    let expected = burn(rounds);
    cache.push((ms, rounds, expected));
    (rounds, expected)
}

fn cpu_speedup(n: u64) -> Sample {
    let (rounds, expected) = calibrate_burn(n);
    let pool = pool2()?;
    pool.apply(add, (1, 2))?;
    let start = Instant::now();
    for _ in 0..CPU_TASKS {
        check(burn(black_box(rounds)) == expected, "burn")?;
    }
    let sequential = start.elapsed();
    let start = Instant::now();
    let out = pool.map_chunked(burn, vec![rounds; CPU_TASKS], 1)?;
    let parallel = start.elapsed();
    check(out.iter().all(|&x| x == expected), "map(burn)")?;
    Ok(sequential.as_secs_f64() / parallel.as_secs_f64())
}

/// `n` bytes of a repeating pattern.
pub(crate) fn pattern(n: u64) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

fn payload(n: u64) -> Sample {
    let pool = pool2()?;
    pool.apply(echo_bytes, (ByteBuf::from(b"warm".to_vec()),))?;
    let data = ByteBuf::from(pattern(n));
    let start = Instant::now();
    let back = pool.apply(echo_bytes, (data,))?;
    let elapsed = start.elapsed();
    check(back.len() as u64 == n, "echoed length")?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn payload_vec(n: u64) -> Sample {
    let pool = pool2()?;
    pool.apply(echo_vec, (b"warm".to_vec(),))?;
    let data = pattern(n);
    let start = Instant::now();
    let back = pool.apply(echo_vec, (data,))?;
    let elapsed = start.elapsed();
    check(back.len() as u64 == n, "echoed length")?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn queue(n: u64) -> Sample {
    let q = mp::Queue::<u64>::new()?;
    let start = mp::Event::new()?;
    let child = mp::Process::spawn(queue_produce, (q.clone(), start.clone(), n))?;
    let t0 = Instant::now();
    start.set()?;
    for i in 0..n {
        check(q.get()? == i, "queue items in order")?;
    }
    let elapsed = t0.elapsed();
    check(child.join()? == n, "items put by the child")?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn value(n: u64) -> Sample {
    let v = mp::Value::new(0i64)?;
    let start = mp::Event::new()?;
    let children = (0..2)
        .map(|_| mp::Process::spawn(value_increment, (v.clone(), start.clone(), n)))
        .collect::<mp::Result<Vec<_>>>()?;
    let t0 = Instant::now();
    start.set()?;
    for child in children {
        check(child.join()? == n, "increments made by a child")?;
    }
    let elapsed = t0.elapsed();
    let total = v.get()?;
    if total != 2 * n as i64 {
        return Err(format!("wrong final count: {total}, expected {}", 2 * n).into());
    }
    Ok(2.0 * n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn manager_dict(n: u64) -> Sample {
    let manager = mp::Manager::start()?;
    let d = manager.dict::<u64, u64>()?;
    for i in 0..100 {
        d.insert(i, i)?;
    }
    let t0 = Instant::now();
    for i in 0..n {
        d.insert(i, i)?;
    }
    let elapsed = t0.elapsed();
    check(d.len()? as u64 == n.max(100), "entries in the dict")?;
    manager.shutdown()?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}
