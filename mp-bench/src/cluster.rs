//! The cluster scenarios: mp's `Pool` over the ranks of an MPI job
//! (`mp::mpi::pool()`) against mpi4py.futures' `MPIPoolExecutor`, with the same
//! ranks and the same sizes, in the same run.
//!
//! Unlike the other scenarios, neither side runs inside `mp-bench`: each side
//! is one `mpirun -np 3` launch that runs every selected cluster scenario (and
//! one `mpirun -np 2` launch for those measured between two ranks) and
//! prints one JSON line ([`SideLine`]). The Python side is
//! `benches/python/cluster_bench.py` under `python3 -m mpi4py.futures`; the mp
//! side is this binary, built with the `mpi` feature, run as `mp-bench
//! --cluster-side` (`cluster_mp.rs`). The
//! scenarios run only where `mpirun` exists; a side that cannot run (no
//! mpi4py, mp-bench built without the feature) is reported as skipped, with
//! the reason.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::Outcome;
use crate::python::{last_lines, wait_with_timeout};
use crate::scenarios::{Goal, Scenario, Size, Unit};

/// MPI ranks of the cluster launch: rank 0 and two worker ranks, as many
/// workers as the local pools have.
pub(crate) const RANKS: usize = 3;
/// MPI ranks of the pair launch ([`PAIR_SCENARIOS`]): rank 0 and one worker.
pub(crate) const PAIR_RANKS: usize = 2;
/// The scenarios run in a launch of their own with [`PAIR_RANKS`] ranks.
const PAIR_SCENARIOS: &[&str] = &["cluster_apply_pair"];
/// The label of the Python side in the report.
pub(crate) const PYTHON_SIDE: &str = "mpi4py.futures";
/// The Python side's script.
pub(crate) const PYTHON_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../benches/python/cluster_bench.py"
);

const K_TASKS: Unit = Unit::higher("k tasks/s");
const K_ITEMS: Unit = Unit::higher("k items/s");
const M_ITEMS: Unit = Unit::higher("M items/s");

/// The cluster scenarios; ids, units and sizes are also those of
/// `cluster_bench.py` (its `SCENARIOS`).
pub(crate) static SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "cluster_submit",
        python_id: "cluster_submit",
        title: "cluster: {size} submitted one by one",
        definition: "on 3 MPI ranks (2 workers): `n` tasks submitted one at a time, then every \
                     result collected (mp: `apply_async` + `get`; mpi4py: `submit` + `result`)",
        unit: K_TASKS,
        n: Size {
            full: 1_000,
            quick: 200,
        },
        n_means: "tasks",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: Some(Goal::AtLeast(200.0)),
    },
    Scenario {
        id: "cluster_apply",
        python_id: "cluster_apply",
        title: "cluster: apply round trip",
        definition: "on 3 MPI ranks: one `apply(add, (1, 2))` (mpi4py: `submit(add, 1, 2).result()`); \
                     mean of `n` calls",
        unit: Unit::US,
        n: Size {
            full: 2_000,
            quick: 100,
        },
        n_means: "calls",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: None,
    },
    Scenario {
        id: "cluster_apply_pair",
        python_id: "cluster_apply_pair",
        title: "cluster: apply round trip, 2 ranks",
        definition: "on 2 MPI ranks (rank 0 and one worker, one core each as `mpirun` binds \
                     them): one `apply(add, (1, 2))` (mpi4py: `submit(add, 1, 2).result()`); \
                     mean of `n` calls",
        unit: Unit::US,
        n: Size {
            full: 5_000,
            quick: 100,
        },
        n_means: "calls",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: Some(Goal::AtMost(10.0)),
    },
    Scenario {
        id: "cluster_map_chunk1",
        python_id: "cluster_map_chunk1",
        title: "cluster: map, chunk size 1",
        definition: "on 3 MPI ranks: `map` of the trivial function over `n` ints, one item per task",
        unit: K_ITEMS,
        n: Size {
            full: 10_000,
            quick: 1_000,
        },
        n_means: "items",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: None,
    },
    Scenario {
        id: "cluster_map_chunk100",
        python_id: "cluster_map_chunk100",
        title: "cluster: map, chunk size 100",
        definition: "on 3 MPI ranks: `map` of the trivial function over `n` ints, 100 items per task",
        unit: M_ITEMS,
        n: Size {
            full: 200_000,
            quick: 20_000,
        },
        n_means: "items",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: None,
    },
    Scenario {
        id: "cluster_map",
        python_id: "cluster_map",
        title: "cluster: map of {size}",
        definition: "on 3 MPI ranks: `map` of the trivial function over `n` ints, mp's automatic \
                     chunking (mpi4py has none: it gets `n / (4 × workers)`, `multiprocessing`'s rule)",
        unit: M_ITEMS,
        n: Size {
            full: 1_000_000,
            quick: 50_000,
        },
        n_means: "ints",
        mp: None,
        python: &[PYTHON_SIDE],
        baselines: &[],
        goal: Some(Goal::AtLeast(10.0)),
    },
];

/// Whether `s` is one of the cluster scenarios.
pub(crate) fn is_cluster(s: &Scenario) -> bool {
    SCENARIOS.iter().any(|c| std::ptr::eq(c, s))
}

/// The ranks of the launch that runs cluster scenario `s`.
pub(crate) fn ranks_of(s: &Scenario) -> usize {
    if PAIR_SCENARIOS.contains(&s.id) {
        PAIR_RANKS
    } else {
        RANKS
    }
}

/// The line each side prints.
#[derive(Debug, Deserialize)]
pub(crate) struct SideLine {
    /// `mp` or `mpi4py.futures`.
    pub(crate) side: String,
    /// The MPI library, as `MPI_Get_library_version` names it.
    pub(crate) mpi: String,
    /// Worker ranks the side's pool had.
    pub(crate) workers: usize,
    /// mpi4py's version (Python side only).
    #[serde(default)]
    pub(crate) mpi4py: Option<String>,
    pub(crate) scenarios: Vec<SideScenario>,
}

/// One scenario's samples in a [`SideLine`].
#[derive(Debug, Deserialize)]
pub(crate) struct SideScenario {
    pub(crate) scenario: String,
    pub(crate) n: u64,
    pub(crate) unit: String,
    pub(crate) samples: Vec<f64>,
}

/// `mpirun` and the flags its implementation needs here.
#[derive(Debug)]
pub(crate) struct Launcher {
    mpirun: PathBuf,
    /// Open MPI refuses root without `--allow-run-as-root`, and more ranks
    /// than cores without `--oversubscribe`; MPICH's launcher knows neither.
    open_mpi: bool,
    /// The first line of `mpirun --version`.
    pub(crate) version: String,
}

impl Launcher {
    /// `mpirun` from the `PATH`; `Err` says why the cluster scenarios are skipped.
    pub(crate) fn find() -> Result<Launcher, String> {
        let out = Command::new("mpirun")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("no `mpirun` on the PATH ({e})"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "`mpirun --version` failed: {}",
                last_lines(&text, 3)
            ));
        }
        Ok(Launcher {
            mpirun: PathBuf::from("mpirun"),
            open_mpi: text.contains("Open MPI") || text.contains("OpenRTE"),
            version: text.lines().next().unwrap_or("").trim().to_string(),
        })
    }

    /// `mpirun -np ranks program args...`.
    fn command(&self, ranks: usize, program: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.mpirun);
        if self.open_mpi {
            cmd.args(["--allow-run-as-root", "--oversubscribe"]);
        }
        cmd.args(["-np", &ranks.to_string()]).args(program);
        cmd
    }
}

/// What one run asks of both sides.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The selected cluster scenarios and their sizes.
    pub(crate) scenarios: &'a [(&'static Scenario, u64)],
    /// The launch's ranks (rank 0 and `ranks - 1` workers).
    pub(crate) ranks: usize,
    pub(crate) reps: usize,
    pub(crate) warmup: usize,
    pub(crate) timeout: Duration,
}

impl Request<'_> {
    /// The arguments both sides take after the program.
    pub(crate) fn args(&self) -> Vec<OsString> {
        let ids: Vec<&str> = self.scenarios.iter().map(|(s, _)| s.python_id).collect();
        let sizes: Vec<String> = self
            .scenarios
            .iter()
            .map(|(s, n)| format!("{}={n}", s.python_id))
            .collect();
        [
            "--only".to_string(),
            ids.join(","),
            "--sizes".into(),
            sizes.join(","),
            "--reps".into(),
            self.reps.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect()
    }
}

/// One side's outcome for every requested scenario, by id, and what it ran on.
#[derive(Debug, Default)]
pub(crate) struct Side {
    pub(crate) outcomes: HashMap<&'static str, Outcome>,
    /// `mpi4py 4.1.2, Open MPI v4.1.4` and the like, when it ran.
    pub(crate) description: Option<String>,
}

impl Side {
    /// Adds `other`'s outcomes (another launch's scenarios) to these.
    pub(crate) fn merge(&mut self, other: Side) {
        self.outcomes.extend(other.outcomes);
        if self.description.is_none() {
            self.description = other.description;
        }
    }

    /// The same outcome for every scenario (skipped, not available, failed).
    pub(crate) fn all(req: &Request<'_>, outcome: Outcome) -> Side {
        Side {
            outcomes: req
                .scenarios
                .iter()
                .map(|(s, _)| (s.id, outcome.clone()))
                .collect(),
            description: None,
        }
    }
}

/// Runs the Python side: `mpirun -np 3 python -m mpi4py.futures cluster_bench.py`.
pub(crate) fn python_side(
    launcher: &Launcher,
    python: &str,
    script: &Path,
    req: &Request<'_>,
) -> Side {
    let import = Command::new(python)
        .args(["-c", "import mpi4py.futures"])
        .stdin(Stdio::null())
        .output();
    match import {
        Ok(o) if o.status.success() => {}
        Ok(_) => {
            return Side::all(
                req,
                Outcome::Skipped {
                    reason: format!("mpi4py is not installed for {python} (pip install mpi4py)"),
                },
            );
        }
        Err(e) => {
            return Side::all(
                req,
                Outcome::Skipped {
                    reason: format!("`{python}` cannot be run ({e})"),
                },
            );
        }
    }
    if !script.is_file() {
        return Side::all(
            req,
            Outcome::Failed {
                error: format!("{} not found", script.display()),
            },
        );
    }
    let mut program: Vec<OsString> = vec![
        python.into(),
        "-m".into(),
        "mpi4py.futures".into(),
        script.into(),
        "--json".into(),
    ];
    program.extend(req.args());
    run_side(launcher, &program, req, PYTHON_SIDE)
}

/// Runs one side under `mpirun` and turns its line into outcomes.
pub(crate) fn run_side(
    launcher: &Launcher,
    program: &[OsString],
    req: &Request<'_>,
    expected_side: &str,
) -> Side {
    match try_run_side(launcher, program, req, expected_side) {
        Ok(side) => side,
        Err(error) => Side::all(req, Outcome::Failed { error }),
    }
}

fn try_run_side(
    launcher: &Launcher,
    program: &[OsString],
    req: &Request<'_>,
    expected_side: &str,
) -> Result<Side, String> {
    let child = launcher
        .command(req.ranks, program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start mpirun: {e}"))?;
    let what = format!("mpirun ({expected_side})");
    let (ok, stdout, stderr) = wait_with_timeout(child, req.timeout, &what)?;
    if !ok {
        return Err(format!("{what} failed: {}", last_lines(&stderr, 5)));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{what} printed no result: {}", last_lines(&stdout, 3)))?;
    let line: SideLine =
        serde_json::from_str(line).map_err(|e| format!("{what} printed `{line}`: {e}"))?;
    if line.side != expected_side {
        return Err(format!(
            "{what} answered as `{}`, not `{expected_side}`",
            line.side
        ));
    }
    if line.workers != req.ranks - 1 {
        return Err(format!(
            "{what} had {} worker ranks, not {}",
            line.workers,
            req.ranks - 1
        ));
    }
    let mut outcomes = HashMap::new();
    for &(s, n) in req.scenarios {
        let outcome = match line.scenarios.iter().find(|x| x.scenario == s.python_id) {
            None => Outcome::Failed {
                error: format!("{what} gave no figure for {}", s.python_id),
            },
            Some(x) if x.n != n => Outcome::Failed {
                error: format!("{what} ran {} with n = {}, not {n}", s.python_id, x.n),
            },
            Some(x) if x.unit != s.unit.text => Outcome::Failed {
                error: format!(
                    "{what} reports {} in {}, mp-bench in {}: the two sides disagree",
                    s.python_id, x.unit, s.unit.text
                ),
            },
            Some(x)
                if x.samples.is_empty()
                    || x.samples.iter().any(|v| !v.is_finite() || *v <= 0.0) =>
            {
                Outcome::Failed {
                    error: format!("{what} gave unusable samples: {:?}", x.samples),
                }
            }
            Some(x) => Outcome::from_samples(x.samples.clone()),
        };
        outcomes.insert(s.id, outcome);
    }
    let mut description = String::new();
    if let Some(v) = &line.mpi4py {
        description.push_str(&format!("mpi4py {v}, "));
    }
    // "Open MPI v4.1.4, package: Debian OpenMPI, ident: ...": the name is enough.
    description.push_str(line.mpi.split(',').next().unwrap_or("").trim());
    Ok(Side {
        outcomes,
        description: Some(description),
    })
}

/// The mp side: this binary, `mpirun -np 3 mp-bench --cluster-side ...`.
#[cfg(feature = "mpi")]
pub(crate) fn mp_side(launcher: &Launcher, req: &Request<'_>) -> Side {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return Side::all(
                req,
                Outcome::Failed {
                    error: format!("cannot find this program's path: {e}"),
                },
            );
        }
    };
    let mut program: Vec<OsString> = vec![exe.into(), "--cluster-side".into()];
    program.extend(req.args());
    run_side(launcher, &program, req, "mp")
}

/// The mp side needs mp's `mpi` feature, which this build lacks.
#[cfg(not(feature = "mpi"))]
pub(crate) fn mp_side(_launcher: &Launcher, req: &Request<'_>) -> Side {
    Side::all(
        req,
        Outcome::Skipped {
            reason: "mp-bench was built without `--features mpi`".into(),
        },
    )
}
