//! The Python side: runs `benches/python/bench.py` once per scenario and start
//! method, and reads the one JSON line it prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::Outcome;

/// A Python interpreter and the benchmark script.
#[derive(Debug)]
pub(crate) struct Python {
    exe: String,
    script: PathBuf,
    /// `platform.python_version()`, as the script reported it.
    pub(crate) version: Option<String>,
}

/// The line `bench.py` prints.
#[derive(Debug, Deserialize)]
struct Line {
    scenario: String,
    start_method: String,
    n: u64,
    unit: String,
    samples: Vec<f64>,
    python: String,
}

/// What one run asks of the script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) scenario: &'a str,
    pub(crate) start_method: &'a str,
    pub(crate) n: u64,
    pub(crate) unit: &'a str,
    pub(crate) reps: usize,
    pub(crate) warmup: usize,
    pub(crate) timeout: Duration,
}

impl Python {
    /// Checks that `exe` runs and `script` exists; `Err` says why Python is skipped.
    pub(crate) fn find(exe: &str, script: &Path) -> Result<Python, String> {
        let version = Command::new(exe)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{exe}` cannot be run ({e})"))?;
        if !version.status.success() {
            return Err(format!("`{exe} --version` failed"));
        }
        if !script.is_file() {
            return Err(format!("{} not found", script.display()));
        }
        Ok(Python {
            exe: exe.to_string(),
            script: script.to_path_buf(),
            version: None,
        })
    }

    pub(crate) fn run(&mut self, req: Request<'_>) -> Outcome {
        match self.try_run(req) {
            Ok(samples) => Outcome::from_samples(samples),
            Err(error) => Outcome::Failed { error },
        }
    }

    fn try_run(&mut self, req: Request<'_>) -> Result<Vec<f64>, String> {
        let child = Command::new(&self.exe)
            .arg(&self.script)
            .arg(req.scenario)
            .args(["--start-method", req.start_method])
            .args(["--n", &req.n.to_string()])
            .args(["--reps", &req.reps.to_string()])
            .args(["--warmup", &req.warmup.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe))?;
        let (status, stdout, stderr) = wait_with_timeout(child, req.timeout, "bench.py")?;
        if !status {
            return Err(format!(
                "bench.py {} failed: {}",
                req.scenario,
                last_lines(&stderr, 5)
            ));
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .ok_or("bench.py printed nothing")?;
        let line: Line =
            serde_json::from_str(line).map_err(|e| format!("bench.py printed `{line}`: {e}"))?;
        if line.scenario != req.scenario || line.start_method != req.start_method || line.n != req.n
        {
            return Err(format!(
                "bench.py answered for {}/{} n={}, not what was asked",
                line.scenario, line.start_method, line.n
            ));
        }
        if line.unit != req.unit {
            return Err(format!(
                "bench.py reports `{}` in {}, mp-bench in {}: the two sides disagree",
                req.scenario, line.unit, req.unit
            ));
        }
        if line.samples.is_empty() || line.samples.iter().any(|x| !x.is_finite()) {
            return Err(format!(
                "bench.py gave no usable samples: {:?}",
                line.samples
            ));
        }
        self.version = Some(line.python);
        Ok(line.samples)
    }
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn reader(mut pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(pipe) = pipe.as_mut() {
            let _ = pipe.read_to_end(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Waits for `child` (`what`, in messages), stopping it after `timeout`:
/// (success, stdout, stderr).
pub(crate) fn wait_with_timeout(
    mut child: Child,
    timeout: Duration,
    what: &str,
) -> Result<(bool, String, String), String> {
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                stop(&mut child);
                return Err(format!("{what} took more than {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok((status.success(), stdout, stderr))
}

/// Stops `child`: SIGTERM first on Unix, which `mpirun` passes on to its
/// ranks (a SIGKILL would leave them behind), then a kill after 5 s.
fn stop(child: &mut Child) {
    #[cfg(unix)]
    {
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if term.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
