//! The report: the results table, the machine description and
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::scenarios::{Better, Goal};
use crate::{Outcome, Run, ScenarioResult};

/// Text after this line of an existing report is kept when it is rewritten.
const KEEP_MARKER: &str =
    "<!-- Everything below this line is kept when mp-bench rewrites this file. -->";

/// What the run ran on.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) logical_cpus: Option<usize>,
    pub(crate) mp_cpu_count: usize,
    pub(crate) virtual_machine: Option<bool>,
    pub(crate) memory: Option<String>,
    pub(crate) kernel: String,
}

impl Machine {
    pub(crate) fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let processors = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
            .count();
        let virtual_machine =
            field("flags").map(|f| f.split_whitespace().any(|x| x == "hypervisor"));
        let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let kib: u64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64))
        });
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        let kernel = match (
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
        ) {
            (Some(os), Some(release)) => format!("{os} {release}"),
            _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        };
        Machine {
            cpu: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            logical_cpus: (processors > 0)
                .then_some(processors)
                .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get())),
            mp_cpu_count: mp::cpu_count(),
            virtual_machine,
            memory,
            kernel,
        }
    }

    fn describe(&self) -> String {
        let mut s = self.cpu.clone();
        if let Some(n) = self.logical_cpus {
            let _ = write!(s, ", {n} logical CPUs");
        }
        let _ = write!(s, " (`mp::cpu_count()` = {})", self.mp_cpu_count);
        if self.virtual_machine == Some(true) {
            s.push_str(", virtual machine");
        }
        if let Some(m) = &self.memory {
            let _ = write!(s, ", {m} RAM");
        }
        s
    }
}

/// Today's date and time in UTC, `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A figure with about three significant digits.
pub(crate) fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "–".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// How many times better `a` is than `b` in a unit where `better` wins.
pub(crate) fn advantage(a: f64, b: f64, better: Better) -> f64 {
    match better {
        Better::Lower => b / a,
        Better::Higher => a / b,
    }
}

fn versus(mp: Option<f64>, python: Option<f64>, better: Better) -> String {
    match (mp, python) {
        (Some(m), Some(p)) => {
            let f = advantage(m, p, better);
            if f >= 1.0 {
                format!("**{}× faster**", num(f))
            } else {
                format!("{}× slower", num(1.0 / f))
            }
        }
        _ => "–".into(),
    }
}

fn cell(outcome: &Outcome, unit: &str) -> String {
    match outcome {
        Outcome::Ok { median, .. } => format!("{} {unit}", num(*median)),
        Outcome::NotAvailable => "not yet available".into(),
        Outcome::Skipped { .. } => "skipped".into(),
        Outcome::Failed { .. } => "failed".into(),
    }
}

/// mp's floor for a scenario (its first baseline), as (median, text).
fn floor(s: &ScenarioResult) -> Option<(f64, String)> {
    let b = s.baselines.first()?;
    let m = b.outcome.median()?;
    Some((m, format!("{} {} ({})", num(m), b.unit, b.title)))
}

fn goal_text(s: &ScenarioResult) -> String {
    match s.scenario.goal {
        Some(Goal::AtMost(x)) => format!("≤ {} {}", num(x), s.unit),
        Some(Goal::AtLeast(x)) => format!("≥ {} {}", num(x), s.unit),
        Some(Goal::TimesBaseline(k)) => format!("≤ {}× floor", num(k)),
        None => "–".into(),
    }
}

/// Whether mp meets its goal: `None` when there is nothing to judge.
pub(crate) fn goal_met(s: &ScenarioResult) -> Option<bool> {
    let m = s.mp.median()?;
    let better = s.scenario.unit.better;
    match s.scenario.goal? {
        Goal::AtMost(x) => Some(m <= x),
        Goal::AtLeast(x) => Some(m >= x),
        Goal::TimesBaseline(k) => {
            let (f, _) = floor(s)?;
            Some(advantage(m, f, better) >= 1.0 / k)
        }
    }
}

/// The main table, in Markdown.
pub(crate) fn results_table(run: &Run) -> String {
    let mut t = String::new();
    t.push_str(
        "| scenario | mp | Python | mp vs Python | procspawn (Rust peer) | mp vs procspawn \
         | floor (baseline) | mp ÷ floor | goal | met |\n",
    );
    t.push_str("|---|--:|--:|:-:|--:|:-:|--:|--:|--:|:-:|\n");
    for s in &run.scenarios {
        let better = s.scenario.unit.better;
        let mp = s.mp.median();
        let floor = floor(s);
        let distance = match (mp, &floor) {
            (Some(m), Some((f, _))) => format!("{}×", num(1.0 / advantage(m, *f, better))),
            _ => "–".into(),
        };
        let met = match goal_met(s) {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let pythons: Vec<(String, Option<f64>)> = if s.python.is_empty() {
            vec![("–".into(), None)]
        } else {
            s.python
                .iter()
                .map(|p| {
                    let mut c = cell(&p.outcome, s.unit);
                    if s.python.len() > 1 || p.start_method != "fork" {
                        let _ = write!(c, " ({})", p.start_method);
                    }
                    (c, p.outcome.median())
                })
                .collect()
        };
        let (peer_cell, peer_versus) = match &s.procspawn {
            Some(o) => (cell(o, s.unit), versus(mp, o.median(), better)),
            None => ("–".to_string(), "–".to_string()),
        };
        for (i, (py_cell, py)) in pythons.into_iter().enumerate() {
            let first = i == 0;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&s.title),
                cell(&s.mp, s.unit),
                py_cell,
                versus(mp, py, better),
                if first { peer_cell.as_str() } else { "" },
                if first { peer_versus.as_str() } else { "" },
                if first {
                    floor.as_ref().map_or("–".into(), |f| f.1.clone())
                } else {
                    String::new()
                },
                if first { distance.as_str() } else { "" },
                if first { goal_text(s) } else { String::new() },
                if first { met } else { "" },
            );
        }
    }
    t
}

fn baselines_table(run: &Run) -> String {
    let mut seen = BTreeMap::new();
    for s in &run.scenarios {
        for b in &s.baselines {
            seen.entry((b.title, b.n)).or_insert(b);
        }
    }
    let mut t = String::from("| baseline | size | median | min – max |\n|---|--:|--:|--:|\n");
    for ((title, n), b) in seen {
        let range = match &b.outcome {
            Outcome::Ok { samples, .. } => {
                let lo = samples.iter().copied().fold(f64::MAX, f64::min);
                let hi = samples.iter().copied().fold(f64::MIN, f64::max);
                format!("{} – {}", num(lo), num(hi))
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            t,
            "| {title} | {} | {} | {range} |",
            b.baseline.size_text(n),
            cell(&b.outcome, b.unit),
        );
    }
    t
}

/// Text for a Markdown table cell.
fn md_cell(text: &str) -> String {
    text.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

fn spread_table(run: &Run) -> String {
    let spread = |o: &Outcome| match o {
        Outcome::Ok { samples, median } if samples.len() > 1 => {
            let lo = samples.iter().copied().fold(f64::MAX, f64::min);
            let hi = samples.iter().copied().fold(f64::MIN, f64::max);
            format!("{} %", num((hi - lo) / median * 100.0))
        }
        _ => "–".into(),
    };
    let mut t = String::from("| scenario | n | mp spread | Python spread |\n|---|--:|--:|--:|\n");
    for s in &run.scenarios {
        let py: Vec<String> = s
            .python
            .iter()
            .map(|p| {
                if s.python.len() > 1 {
                    format!("{} ({})", spread(&p.outcome), p.start_method)
                } else {
                    spread(&p.outcome)
                }
            })
            .collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            md_cell(&s.title),
            s.scenario.size_text(s.n),
            spread(&s.mp),
            if py.is_empty() {
                "–".into()
            } else {
                py.join(", ")
            },
        );
    }
    t
}

fn definitions(run: &Run) -> String {
    let mut t = String::from("| id | scenario | one repetition | n |\n|---|---|---|--:|\n");
    for s in &run.scenarios {
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            s.id,
            md_cell(&s.title),
            s.scenario.definition,
            s.scenario.size_text(s.n)
        );
    }
    t
}

/// Writes the whole report to `path`, keeping the text after [`KEEP_MARKER`]
/// of the file it replaces.
pub(crate) fn write_markdown(run: &Run, path: &Path) -> std::io::Result<()> {
    let kept = std::fs::read_to_string(path).ok().and_then(|old| {
        old.split_once(KEEP_MARKER)
            .map(|(_, rest)| rest.trim_start_matches('\n').to_string())
    });
    let mut md = String::new();
    md.push_str("# Benchmarks: mp against Python `multiprocessing`\n\n");
    md.push_str(
        "Written by `mp-bench` (`mp-bench/`); do not edit above the marker near the end, \
         run the command again.\n\n",
    );
    if run.quick {
        md.push_str(
            "> **Quick run**: small sizes and few repetitions, a smoke test. These figures \
             are not comparable with a full run's.\n\n",
        );
    }
    md.push_str(
        "**Read the ratios, not the times.** The machine is a shared virtual machine: \
         absolute figures move 15–30 % from run to run, and more while other work runs. \
         mp, Python and the baselines were measured in the same run, one after another \
         for each scenario, so the ratio columns (mp vs Python, mp ÷ floor) are what a \
         reader can trust; compare an absolute figure only with one from the same run.\n\n",
    );
    let _ = writeln!(md, "- Command: `{}`", run.command);
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- CPU: {}", run.machine.describe());
    let _ = writeln!(md, "- Kernel: {}", run.machine.kernel);
    let _ = writeln!(
        md,
        "- Python: {}",
        match &run.python {
            Ok(v) => format!("{v} (`multiprocessing`, start method fork unless noted)"),
            Err(why) => format!("not run ({why})"),
        }
    );
    if let Some(cluster) = &run.cluster {
        let _ = writeln!(
            md,
            "- Cluster scenarios: {}",
            match cluster {
                Ok(text) => text.clone(),
                Err(why) => format!("not run ({why})"),
            }
        );
    }
    let _ = writeln!(
        md,
        "- Repetitions: {} per scenario and side, after {} unrecorded warm-up; every figure is their median",
        run.reps, run.warmup
    );
    let _ = writeln!(
        md,
        "- Pools: {} worker processes on both sides\n",
        crate::scenarios::POOL_PROCESSES
    );

    md.push_str("## Results\n\n");
    md.push_str(&results_table(run));
    md.push_str(
        "\n*mp vs Python*: how many times faster mp is than Python in the same run. \
         *floor*: the machine's own limit for the scenario, measured in the same run with \
         no library (see Baselines); *mp ÷ floor*: how many times slower than that limit \
         mp is (1× = at the floor). *goal*: from `PERFORMANCE.md`. *procspawn (Rust \
         peer)*: the `procspawn` crate, a Rust process pool, on the scenarios it has an \
         equivalent for (Unix only), in the same run: a warm `procspawn::Pool` of the \
         same size, one `pool.spawn(args, f).join()` per `apply` call, and for the \
         chunk-size-1 map one `spawn` per item, all submitted, then all joined in order; \
         *mp vs procspawn*: how many times faster mp is. The *cluster* rows run on 3 MPI \
         ranks (rank 0 submits, 2 worker ranks serve) launched by `mpirun` on this machine: \
         mp's `mp::mpi::pool()` (`mp-bench` itself, built with `--features mpi`, run as \
         `mp-bench --cluster-side`) against mpi4py.futures' `MPIPoolExecutor` (`benches/python/cluster_bench.py` \
         under `python3 -m mpi4py.futures`), one launch per side, same sizes.\n\n",
    );
    md.push_str(
        "![mp and Python per scenario, relative to Python (fork), log scale](benchmarks.svg)\n\n",
    );

    let missing: Vec<String> = run
        .scenarios
        .iter()
        .filter(|s| {
            matches!(s.mp, Outcome::NotAvailable) && !crate::cluster::is_cluster(s.scenario)
        })
        .map(|s| md_cell(&s.title))
        .collect();
    if !missing.is_empty() {
        md.push_str("### Not yet available in mp\n\n");
        let _ = writeln!(
            md,
            "{}: mp does not have these yet. Python's figure is measured already; the mp \
             side is one function in `mp-bench/src/scenarios.rs` when the feature lands.\n",
            missing.join("; ")
        );
    }

    md.push_str("## Baselines\n\n");
    md.push_str(
        "Measured with no library in between. The raw round trips go to a copy of the \
         `mp-bench` binary re-executed as an echo process, over one socketpair (Unix) or \
         two pipes (Windows), or over a TCP connection on loopback (Nagle's delay off on \
         both ends); the ideal speedup is computed, not measured.\n\n",
    );
    md.push_str(&baselines_table(run));

    md.push_str("\n## Scenarios\n\n");
    md.push_str(
        "Each scenario does the same work on both sides, with the same `n` (passed by \
         `mp-bench` to `benches/python/bench.py`). A repetition builds what it needs (a \
         pool, a child process) outside the timed part and warms it up first.\n\n",
    );
    md.push_str(&definitions(run));
    md.push_str(
        "\nSpread of the repetitions, (max − min) / median, a measure of how noisy this \
         run was:\n\n",
    );
    md.push_str(&spread_table(run));

    md.push_str("\n## Running it\n\n");
    md.push_str(
        "```sh\n\
         cargo run --release -p mp-bench                 # full run: writes docs/benchmarks.{md,svg}\n\
         cargo run --release -p mp-bench -- --quick      # smoke run, under a minute, writes nothing\n\
         cargo run --release -p mp-bench -- --only apply,pipe --reps 11\n\
         cargo run --release -p mp-bench -- --list       # the scenario ids\n\
         cargo run --release -p mp-bench --features mpi  # with the mp side of the cluster rows\n\
         python3 benches/python/bench.py apply --n 2000  # the Python side alone\n\
         mpirun --oversubscribe -np 3 python3 -m mpi4py.futures benches/python/cluster_bench.py\n\
         mpirun -np 2 python3 -m mpi4py.futures benches/python/cluster_bench.py --only cluster_apply_pair\n\
         ```\n\n",
    );
    md.push_str(
        "Adding a scenario: one function on each side (`mp-bench/src/scenarios.rs` and \
         `benches/python/bench.py`), each registered in its `SCENARIOS` table under the \
         same id. Without `python3` on the `PATH` the Python side is skipped. The cluster \
         scenarios live in `mp-bench/src/cluster.rs` (definitions), `cluster_mp.rs` (mp \
         side) and `benches/python/cluster_bench.py` (mpi4py.futures side); without \
         `mpirun` on the `PATH` they are skipped.\n\n",
    );
    md.push_str(KEEP_MARKER);
    md.push_str("\n\n");
    md.push_str(
        kept.as_deref()
            .unwrap_or("## Notes\n\nProfiles, and what each optimization bought, go here.\n"),
    );
    std::fs::write(path, md)
}
