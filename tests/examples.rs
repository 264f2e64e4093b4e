//! Runs every example in `examples/` and checks its exit status and output.
//!
//! The binaries are the ones in this test's own target directory
//! (`target/<profile>/deps/examples-HASH` → `target/<profile>/examples/NAME`).
//! A plain `cargo test` builds them before running any test, but
//! `cargo test --test examples` does not, so the first test to need them runs
//! `cargo build --examples` for the same profile and target first (Cargo has
//! released its build lock by the time tests run; when the examples are fresh
//! this takes a moment). If Cargo cannot be started (a test binary run under an
//! emulator, say), the binaries already built are used. A Windows test binary
//! built on a Unix host (run under Wine) does not try: the Cargo it would start is
//! the host's, which would read Windows paths as relative Unix ones; there the
//! examples must be built beforehand (`cargo build --examples --target ...`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longer than any example takes on a loaded machine: a hang fails, it does not block.
const TIMEOUT: Duration = Duration::from_secs(180);

/// `target/<profile>` (or `target/<triple>/<profile>`) of this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let deps = exe
        .parent()
        .expect("the test binary is in target/<profile>/deps");
    deps.parent()
        .expect("the test binary is in target/<profile>/deps")
        .to_path_buf()
}

/// Brings the example binaries up to date with `cargo build --examples`.
fn build_examples() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        if cfg!(windows) && env!("CARGO").starts_with('/') {
            eprintln!(
                "a Windows test binary cross-built on a Unix host; using the example \
                 binaries already built"
            );
            return Ok(());
        }
        let profile_dir = profile_dir();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a profile directory name")
            .to_string();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--examples",
            "--message-format=short",
        ]);
        match profile.as_str() {
            // `cargo test` builds examples with the `test` profile into `debug`.
            "debug" => cmd.args(["--profile", "test"]),
            "release" => cmd.arg("--release"),
            other => cmd.args(["--profile", other]),
        };
        // `target/<triple>/<profile>` when built for an explicit target.
        let parent = profile_dir.parent().expect("the target directory");
        if parent.join("CACHEDIR.TAG").exists() {
            cmd.arg("--target-dir").arg(parent);
        } else if let (Some(triple), Some(root)) = (parent.file_name(), parent.parent()) {
            cmd.arg("--target")
                .arg(triple)
                .arg("--target-dir")
                .arg(root);
        }
        let output = match cmd.output() {
            Ok(output) => output,
            Err(e) => {
                eprintln!("could not run cargo ({e}); using the example binaries already built");
                return Ok(());
            }
        };
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo build --examples` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    })
}

fn example_path(name: &str) -> PathBuf {
    profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

struct Run {
    stdout: String,
    stderr: String,
}

/// Runs example `name` with `args`, asserts it succeeded, returns its output.
fn run(name: &str, args: &[&str]) -> Run {
    if let Err(message) = build_examples() {
        panic!("{message}");
    }
    let path = example_path(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples with `cargo build --examples` (and the same \
         `--target`)",
        path.display()
    );
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the example") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.success(),
        "example {name} failed with {status}\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl Run {
    /// The index of the first line equal to `line`, failing with the output if none is.
    fn line(&self, line: &str) -> usize {
        self.stdout
            .lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?} in stdout:\n{}", self.stdout))
    }

    /// Lines of stdout starting with `prefix`.
    fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

#[test]
fn quickstart() {
    let run = run("quickstart", &[]);
    run.line("map(square, 0..10) = [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    run.line("apply(add, (1, 2)) = 3");
    run.line("imap -> 1600");
    assert_eq!(
        run.lines_starting("hello ann from Process-1 (pid ").len(),
        1
    );
    run.line("join() = \"greeted ann\"");
    run.line("done");
}

#[test]
fn process_basics() {
    let run = run("process_basics", &[]);
    let finish = run.line("finish all subprocesses");
    assert!(run.line("1") < finish && run.line("2") < finish);
    // Five children, each told its parent's pid: this run's example process.
    assert_eq!(run.lines_starting("this is Process-").len(), 5);
    let parents = run.lines_starting("parent pid: ");
    assert_eq!(parents.len(), 5);
    assert!(parents.iter().all(|l| *l == parents[0]), "{parents:?}");
    assert_eq!(run.lines_starting("hello alvin ").len(), 3);
    assert!(run.line("end") > finish);
    run.line("sleepy: alive=true daemon=true exitcode=None");
    run.line("sleepy: alive=false exitcode=Some(-15)");
    assert_eq!(run.lines_starting("leaving Process-").len(), 1);
}

#[test]
fn process_subclass() {
    let run = run("process_subclass", &[]);
    for i in 1..=3 {
        assert_eq!(
            run.lines_starting(&format!("hello MyProcess-{i} ")).len(),
            1
        );
    }
    let end = run.line("end");
    assert_eq!(end, run.stdout.lines().count() - 1, "`end` comes last");
}

#[test]
fn global_state() {
    let run = run("global_state", &[]);
    run.line("The end of list_1: []");
    for i in 0..5 {
        let lines = run.lines_starting(&format!("This is Process {i} and lis is [{i}] "));
        assert_eq!(lines.len(), 1, "{}", run.stdout);
    }
    run.line("after joining all processes, lis is still []");
}

#[test]
fn pool_map() {
    let run = run("pool_map", &[]);
    let first_result = run.line("result 0");
    for i in 0..10 {
        // Printed by the workers, before the results came back.
        assert!(run.line(&i.to_string()) < first_result);
        run.line(&format!("result {i}"));
    }
    run.line("apply(pow, (3, 2)) = 9");
    run.line("map(square, 0..10000): 10000 results, last 99980001");
    run.line("map_async(...).get(): 10000 results");
    assert_eq!(run.lines_starting("apply after close(): ").len(), 1);
    run.line("close() + join(): the workers have exited");
    assert_eq!(run.lines_starting("terminate(): ").len(), 1);
}

#[test]
fn pool_apply_async() {
    let run = run("pool_apply_async", &[]);
    let finished = run.line("all 30 tasks finished");
    for i in 0..30 {
        let lines = run.lines_starting(&format!("running task {i} in PoolWorker-"));
        assert_eq!(lines.len(), 1, "{}", run.stdout);
        assert!(run.line(lines[0]) < finished);
    }
    for i in 0..100 {
        run.line(&format!("HELLO {i}"));
    }
    assert_eq!(run.lines_starting("hello").len(), 100);
    assert!(run.line("all 100 callbacks ran") > finished);
}

#[test]
fn cpu_speedup() {
    let run = run("cpu_speedup", &["1_000_000"]);
    run.line("8 tasks of 1000000 numbers each");
    assert_eq!(run.lines_starting("sequential: ").len(), 1);
    assert_eq!(run.lines_starting("pool of ").len(), 1);
    for i in 1..=8 {
        assert_eq!(run.lines_starting(&format!("  task{i}: ")).len(), 1);
    }
    assert_eq!(run.lines_starting("speedup: ").len(), 1);
}

#[test]
fn worker_output() {
    let run = run("worker_output", &[]);
    // What a job prints comes before what the parent prints after it returns.
    let task0 = run.lines_starting("stdout of task 0 from Process-1 (pid ");
    assert_eq!(task0.len(), 1, "{}", run.stdout);
    assert!(run.line(task0[0]) < run.line("process joined: its lines are above"));
    let results = run.line("map results [1, 2, 3, 4]: the workers' lines are above");
    for i in 1..=4 {
        let lines = run.lines_starting(&format!("stdout of task {i} from PoolWorker-"));
        assert_eq!(lines.len(), 1, "{}", run.stdout);
        assert!(run.line(lines[0]) < results);
    }
    run.line("a worker began this line; the parent ended it");
    assert_eq!(
        run.lines_starting("the panic came back as an error: ")
            .len(),
        1
    );
    // The workers' stderr is the example's stderr, each line whole.
    for (i, who) in [(0, "Process-1"), (1, "PoolWorker-"), (4, "PoolWorker-")] {
        let prefix = format!("stderr of task {i} from {who}");
        assert!(
            run.stderr.lines().any(|l| l.starts_with(&prefix)),
            "no line {prefix:?} in stderr:\n{}",
            run.stderr
        );
    }
    // The panic message is not printed by the worker.
    assert!(!run.stderr.contains("task 7 failed"), "{}", run.stderr);
}

#[test]
fn queue_workers() {
    let run = run("queue_workers", &[]);
    let start = run.line("........");
    let end = run.line(".....................");
    assert!(start < end);
    for i in 1..=12 {
        assert!(run.line(&format!("execute task: {i}")) < end);
        let finished = run.lines_starting(&format!("finish task: {i}!during time:"));
        assert_eq!(finished.len(), 1, "{}", run.stdout);
    }
    assert_eq!(run.lines_starting("execute task: None").len(), 4);
    // The last line is the results in completion order: each task once.
    let last = run.stdout.lines().last().expect("some output");
    let mut results: Vec<u32> = last
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a result list: {last:?}"))
        })
        .collect();
    results.sort_unstable();
    assert_eq!(results, (1..=12).collect::<Vec<_>>());
}

#[test]
fn queue_producer_consumer() {
    let run = run("queue_producer_consumer", &[]);
    assert_eq!(run.lines_starting("main process (pid ").len(), 1);
    assert_eq!(run.lines_starting("son process (pid ").len(), 1);
    assert!(run.line("123") < run.line("chen"));
    for i in 0..10 {
        let prefix = format!("process {i} got ");
        let lines = run.lines_starting(&prefix);
        assert_eq!(lines.len(), 1, "{}", run.stdout);
        assert!(lines[0].ends_with(&format!(", then put {i} into it")));
    }
    assert_eq!(run.lines_starting("left in the queue: ").len(), 1);
    run.line("consumer 0 got 5 messages");
    run.line("consumer 1 got 5 messages");
    run.line("10 messages from 2 producers reached 2 consumers");
    run.line("qsize() = 3, empty() = false, full() = true");
    run.line("put_nowait() on a full queue: the queue is full");
    run.line("put(timeout=0.02) on a full queue: the queue is full");
    run.line("get() = a");
    run.line("get(timeout=1) = b");
    run.line("get_nowait() = c");
    run.line("qsize() = 0, empty() = true, full() = false");
    run.line("get_nowait() on an empty queue: the queue is empty");
    run.line("get(timeout=0.02) on an empty queue: the queue is empty");
    run.line("after close(): get() = last");
    run.line("after close(), once empty: get() and put() are Err(Closed)");
}

#[test]
fn pipe_demo() {
    let run = run("pipe_demo", &[]);
    assert!(run.line("[12, {'name': 'chen'}, 'hello']") < run.line("response hello, son!"));
    assert!(run.line("proc2 rec: hello") < run.line("proc1 rec: hello, too"));
    run.line("poll() with nothing sent: false");
    run.line("poll(30) after send_bytes(b'stressed'): true");
    run.line("recv_bytes() = b'desserts'");
    assert_eq!(
        run.lines_starting("recv() after the child exited: the other end is gone")
            .len(),
        1
    );
}

#[test]
fn lock_print() {
    let run = run("lock_print", &[]);
    for i in 0..10 {
        assert_eq!(
            run.lines_starting(&format!("hello world  {i}")).len(),
            1,
            "{}",
            run.stdout
        );
    }
    run.line("at most 1 process held the lock at a time");
}

#[test]
fn shared_array_add() {
    let run = run("shared_array_add", &[]);
    for k in 1..=10 {
        let value = 1 + 100 * k;
        let lines: Vec<_> = run
            .stdout
            .lines()
            .filter(|l| l.ends_with(&format!("-----> {value}")))
            .collect();
        assert_eq!(lines.len(), 1, "{}", run.stdout);
    }
    run.line("final array: [1001, 2, 3, 4]");
}
