//! `mp-bench`: mp against Python's `multiprocessing`, side by side, in one run.
//!
//! `cargo run --release -p mp-bench` runs every scenario of
//! [`scenarios::SCENARIOS`] for mp and, when `python3` is on the `PATH`, for
//! Python (`benches/python/bench.py`), measures the machine's baselines, prints
//! the table and writes `docs/benchmarks.md` and `docs/benchmarks.svg`.
//! `--quick` is a smoke run with small sizes (it writes the report only with
//! `--out-dir`). The cluster scenarios ([`cluster::SCENARIOS`]) run under
//! `mpirun` when it is on the `PATH`, mp against mpi4py.futures.
//!
//! This binary is also the workers' binary: mp re-executes it for its pools and
//! processes, and turns the copy into a worker before `main` runs.

mod baseline;
mod cluster;
#[cfg(feature = "mpi")]
mod cluster_mp;
mod peer;
mod plot;
mod python;
mod report;
mod scenarios;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::baseline::Baseline;
use crate::python::Python;
use crate::scenarios::{SCENARIOS, Scenario};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// One repetition's figure, in the scenario's unit.
pub(crate) type Sample = Result<f64, BoxError>;

/// mp against Python's multiprocessing, side by side: prints a table and
/// writes docs/benchmarks.md and docs/benchmarks.svg.
#[derive(Debug, Parser)]
#[command(name = "mp-bench")]
struct Args {
    /// Smoke run: small sizes, few repetitions; writes files only with --out-dir.
    #[arg(long)]
    quick: bool,
    /// Repetitions per scenario and side (default: 7, or 3 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Run only these scenarios (comma-separated ids; see --list).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Use this size for every selected scenario instead of its own (for profiling).
    #[arg(long)]
    n: Option<u64>,
    /// Print the scenario ids and exit.
    #[arg(long)]
    list: bool,
    /// Skip the Python side.
    #[arg(long)]
    no_python: bool,
    /// Skip the cluster scenarios (the ones run under `mpirun`).
    #[arg(long)]
    no_cluster: bool,
    /// Internal: the mp side of the cluster scenarios, run by mp-bench itself
    /// under `mpirun` (with --only, --sizes, --reps, --warmup).
    #[cfg(feature = "mpi")]
    #[arg(long, hide = true)]
    cluster_side: bool,
    /// Internal: `id=n,...` sizes for --cluster-side.
    #[cfg(feature = "mpi")]
    #[arg(long, hide = true, default_value = "")]
    sizes: String,
    /// Internal: unrecorded runs for --cluster-side.
    #[cfg(feature = "mpi")]
    #[arg(long, hide = true, default_value_t = 1)]
    warmup: usize,
    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The Python side's script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/python/bench.py"))]
    python_script: PathBuf,
    /// Where benchmarks.md and benchmarks.svg go (default: the repository's docs/).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also write every sample as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The result of one side of one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok { median: f64, samples: Vec<f64> },
    NotAvailable,
    Skipped { reason: String },
    Failed { error: String },
}

impl Outcome {
    pub(crate) fn from_samples(samples: Vec<f64>) -> Outcome {
        Outcome::Ok {
            median: median(&samples),
            samples,
        }
    }

    pub(crate) fn median(&self) -> Option<f64> {
        match self {
            Outcome::Ok { median, .. } => Some(*median),
            _ => None,
        }
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Runs `sample` `warmup` times unrecorded, then `reps` times.
fn measure(reps: usize, warmup: usize, mut sample: impl FnMut() -> Sample) -> Outcome {
    let mut samples = Vec::with_capacity(reps);
    for i in 0..warmup + reps {
        match sample() {
            Ok(x) if x.is_finite() && x > 0.0 => {
                if i >= warmup {
                    samples.push(x);
                }
            }
            Ok(x) => {
                return Outcome::Failed {
                    error: format!("measured {x}"),
                };
            }
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                };
            }
        }
    }
    Outcome::from_samples(samples)
}

#[derive(Debug, Serialize)]
pub(crate) struct PythonResult {
    pub(crate) start_method: &'static str,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Serialize)]
pub(crate) struct BaselineResult {
    pub(crate) baseline: Baseline,
    pub(crate) title: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) n: u64,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Serialize)]
pub(crate) struct ScenarioResult {
    #[serde(skip)]
    pub(crate) scenario: &'static Scenario,
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) unit: &'static str,
    pub(crate) n: u64,
    pub(crate) mp: Outcome,
    /// The Rust peer ([`peer::NAME`]), on the scenarios it has an equivalent for.
    pub(crate) procspawn: Option<Outcome>,
    pub(crate) python: Vec<PythonResult>,
    pub(crate) baselines: Vec<BaselineResult>,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    pub(crate) quick: bool,
    pub(crate) reps: usize,
    pub(crate) warmup: usize,
    pub(crate) command: String,
    pub(crate) date: String,
    pub(crate) machine: report::Machine,
    /// Python's version, or why the Python side was skipped.
    pub(crate) python: Result<String, String>,
    /// What the cluster scenarios ran on, or why they did not run (`None`:
    /// none was selected).
    pub(crate) cluster: Option<Result<String, String>>,
    pub(crate) scenarios: Vec<ScenarioResult>,
}

impl Run {
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.scenarios {
            let mut push = |side: String, o: &Outcome| {
                if let Outcome::Failed { error } = o {
                    out.push(format!("{} ({side}): {error}", s.id));
                }
            };
            push("mp".into(), &s.mp);
            if let Some(o) = &s.procspawn {
                push(peer::NAME.into(), o);
            }
            for p in &s.python {
                push(format!("python {}", p.start_method), &p.outcome);
            }
            for b in &s.baselines {
                push(format!("baseline {}", b.title), &b.outcome);
            }
        }
        out
    }
}

// The entry guard: with the `mpi` feature, it also finalizes MPI on rank 0
// when `main` returns (ranks 1..N never reach `main`).
#[mp::entry]
fn main() -> ExitCode {
    // procspawn's workers are copies of this binary too: they stop here. mp's
    // own workers never reach `main`.
    peer::init();
    if let Some(code) = baseline::run_child_if_asked() {
        return code;
    }
    let args = Args::parse();
    #[cfg(feature = "mpi")]
    if args.cluster_side {
        let reps = args.reps.unwrap_or(7);
        return match cluster_mp::run(&args.only, &args.sizes, reps, args.warmup) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mp-bench --cluster-side: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, BoxError> {
    if args.list {
        for s in all_scenarios() {
            let mp = if cluster::is_cluster(s) {
                "  (cluster: under mpirun)"
            } else if s.mp.is_some() {
                ""
            } else {
                "  (mp: not yet available)"
            };
            println!("{:<20} {}{mp}", s.id, s.title(s.n.full));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let selected: Vec<&'static Scenario> = if args.only.is_empty() {
        all_scenarios()
            .filter(|s| !(args.no_cluster && cluster::is_cluster(s)))
            .collect()
    } else {
        let mut v = Vec::new();
        for id in &args.only {
            let s = all_scenarios().find(|s| s.id == id).ok_or_else(|| {
                let ids: Vec<&str> = all_scenarios().map(|s| s.id).collect();
                format!(
                    "unknown scenario `{id}`; the scenarios are {}",
                    ids.join(", ")
                )
            })?;
            v.push(s);
        }
        v
    };
    let quick = args.quick;
    let reps = args.reps.unwrap_or(if quick { 3 } else { 7 }).max(1);
    let warmup = if quick { 0 } else { 1 };
    let timeout = Duration::from_secs(if quick { 120 } else { 900 });

    let mut python = if args.no_python {
        Err("--no-python".to_string())
    } else {
        Python::find(&args.python, &args.python_script)
    };
    if let Err(why) = &python {
        eprintln!("Python side skipped: {why}");
    }

    // One launch per rank count: the 3-rank scenarios, then the 2-rank ones.
    let mut cluster_run: Option<Result<String, String>> = None;
    let mut cluster_mp = cluster::Side::default();
    let mut cluster_py = cluster::Side::default();
    for ranks in [cluster::RANKS, cluster::PAIR_RANKS] {
        let sizes: Vec<(&'static Scenario, u64)> = selected
            .iter()
            .filter(|s| cluster::is_cluster(s) && cluster::ranks_of(s) == ranks)
            .map(|&s| (s, args.n.unwrap_or_else(|| s.n.get(quick)).max(1)))
            .collect();
        let (run, mp, py) = run_cluster(
            &args,
            &python,
            cluster::Request {
                scenarios: &sizes,
                ranks,
                reps,
                warmup,
                timeout,
            },
        );
        cluster_mp.merge(mp);
        cluster_py.merge(py);
        cluster_run = match (cluster_run, run) {
            (None, run) | (run, None) => run,
            (Some(Ok(a)), Some(Ok(b))) => Some(Ok(format!("{a}; {b}"))),
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(Err(e)),
        };
    }

    let mut baselines: HashMap<(Baseline, u64), Outcome> = HashMap::new();
    let mut python_cache: HashMap<(&str, &str, u64), Outcome> = HashMap::new();
    let mut results = Vec::new();
    for scenario in selected {
        let n = args.n.unwrap_or_else(|| scenario.n.get(quick)).max(1);
        let title = scenario.title(n);
        eprintln!("== {title} (n = {n})");

        let mut base = Vec::new();
        for &b in scenario.baselines {
            let bn = b.size(n, quick);
            let outcome = baselines
                .entry((b, bn))
                .or_insert_with(|| measure(reps, warmup, || b.measure(bn)))
                .clone();
            eprintln!(
                "   baseline {:<38} {}",
                b.title(),
                show(&outcome, b.unit().text)
            );
            base.push(BaselineResult {
                baseline: b,
                title: b.title(),
                unit: b.unit().text,
                n: bn,
                outcome,
            });
        }

        let is_cluster = cluster::is_cluster(scenario);
        let mp = match scenario.mp {
            _ if is_cluster => cluster_mp.outcomes[scenario.id].clone(),
            Some(f) => measure(reps, warmup, || f(n)),
            None => Outcome::NotAvailable,
        };
        eprintln!("   mp {:<44} {}", "", show(&mp, scenario.unit.text));

        let procspawn = peer::for_scenario(scenario.id).map(|f| measure(reps, warmup, || f(n)));
        if let Some(o) = &procspawn {
            eprintln!("   {:<47} {}", peer::NAME, show(o, scenario.unit.text));
        }

        let mut py = Vec::new();
        for &method in scenario.python {
            let outcome = match &mut python {
                _ if is_cluster => cluster_py.outcomes[scenario.id].clone(),
                Err(why) => Outcome::Skipped {
                    reason: why.clone(),
                },
                Ok(python) => python_cache
                    .entry((scenario.python_id, method, n))
                    .or_insert_with(|| {
                        python.run(python::Request {
                            scenario: scenario.python_id,
                            start_method: method,
                            n,
                            unit: scenario.unit.text,
                            reps,
                            warmup,
                            timeout,
                        })
                    })
                    .clone(),
            };
            eprintln!(
                "   python {method:<40} {}",
                show(&outcome, scenario.unit.text)
            );
            py.push(PythonResult {
                start_method: method,
                outcome,
            });
        }

        results.push(ScenarioResult {
            scenario,
            id: scenario.id,
            title,
            unit: scenario.unit.text,
            n,
            mp,
            procspawn,
            python: py,
            baselines: base,
        });
    }

    let python_version = match &python {
        Ok(p) => Ok(p.version.clone().unwrap_or_else(|| "unknown".into())),
        Err(why) => Err(why.clone()),
    };
    let run = Run {
        quick,
        reps,
        warmup,
        command: command_line(),
        date: report::today_utc(),
        machine: report::Machine::detect(),
        python: python_version,
        cluster: cluster_run,
        scenarios: results,
    };

    let table = report::results_table(&run);
    println!("\n{table}");

    let out_dir = match (&args.out_dir, quick) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs"
        ))),
        (None, true) => None,
    };
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(&dir)?;
        let md = dir.join("benchmarks.md");
        let svg = dir.join("benchmarks.svg");
        plot::write_svg(&run, &svg)?;
        report::write_markdown(&run, &md)?;
        eprintln!("wrote {} and {}", md.display(), svg.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&run)?)?;
    }

    let failures = run.failures();
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\n{} measurement(s) failed:", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Every scenario: the local ones, then the cluster ones.
fn all_scenarios() -> impl Iterator<Item = &'static Scenario> {
    SCENARIOS.iter().chain(cluster::SCENARIOS)
}

/// Runs the selected cluster scenarios, each side in one `mpirun` launch:
/// (what they ran on or why not, the mp side, the Python side).
fn run_cluster(
    args: &Args,
    python: &Result<Python, String>,
    req: cluster::Request<'_>,
) -> (Option<Result<String, String>>, cluster::Side, cluster::Side) {
    if req.scenarios.is_empty() {
        return (None, cluster::Side::default(), cluster::Side::default());
    }
    let skipped = |reason: &str| {
        cluster::Side::all(
            &req,
            Outcome::Skipped {
                reason: reason.to_string(),
            },
        )
    };
    let launcher = match cluster::Launcher::find() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("cluster scenarios skipped: {why}");
            return (Some(Err(why.clone())), skipped(&why), skipped(&why));
        }
    };
    eprintln!(
        "== cluster scenarios: {} ranks under {}",
        req.ranks, launcher.version
    );
    let mp = cluster::mp_side(&launcher, &req);
    let py = match python {
        Err(why) => skipped(why),
        Ok(_) => cluster::python_side(
            &launcher,
            &args.python,
            std::path::Path::new(cluster::PYTHON_SCRIPT),
            &req,
        ),
    };
    let mut text = format!("{} ranks under `mpirun` ({})", req.ranks, launcher.version);
    for (name, side) in [("mp", &mp), ("Python", &py)] {
        if let Some(d) = &side.description {
            text.push_str(&format!("; {name}: {d}"));
        }
    }
    (Some(Ok(text)), mp, py)
}

/// How this run was started, as a user would type it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = "cargo run --release -p mp-bench".to_string();
    if cfg!(feature = "mpi") {
        cmd.push_str(" --features mpi");
    }
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

fn show(outcome: &Outcome, unit: &str) -> String {
    match outcome {
        Outcome::Ok { median, samples } => {
            let (lo, hi) = samples
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            format!(
                "{} {unit}  (min {}, max {})",
                report::num(*median),
                report::num(lo),
                report::num(hi)
            )
        }
        Outcome::NotAvailable => "not yet available".into(),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Failed { error } => format!("FAILED: {error}"),
    }
}
