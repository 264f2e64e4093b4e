//! `mp::Process`: spawn, join, exit codes, signals, identity, no orphans.

use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[mp::job]
fn panics(message: String) -> u32 {
    panic!("{message}")
}

#[mp::job]
fn aborts() {
    std::process::abort();
}

#[mp::job]
fn whoami() -> (String, u32, bool, Option<u32>) {
    let me = mp::current_process();
    (
        me.name().to_string(),
        me.pid(),
        me.is_worker(),
        mp::parent_process().map(|p| p.pid()),
    )
}

/// Starts a non-daemon grandchild that sleeps, records its pid, then hangs.
#[mp::job]
fn spawn_grandchild_and_hang(pid_file: String) {
    let grandchild = mp::Process::spawn(sleep_ms, (60_000,)).expect("spawn grandchild");
    std::fs::write(&pid_file, grandchild.pid().to_string()).expect("write pid file");
    std::thread::sleep(Duration::from_secs(60));
}

/// Writes `path` after a pause.
#[mp::job]
fn write_after(path: String, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    std::fs::write(&path, "written").expect("write the file");
}

/// Starts a non-daemon child that writes `path` after a pause, and returns at once.
#[mp::job]
fn leave_a_child_running(path: String) -> u32 {
    let child = mp::Process::spawn(write_after, (path, 500)).expect("spawn child");
    child.pid()
}

fn not_a_job(x: u64) -> u64 {
    x
}

#[test]
fn join_returns_the_value() {
    let p = mp::Process::spawn(square, (7,)).unwrap();
    assert_ne!(p.pid(), std::process::id());
    assert!(p.name().starts_with("Process-"), "{}", p.name());
    assert!(!p.is_daemon());
    assert_eq!(p.join().unwrap(), 49);
}

#[test]
fn builder_sets_name_and_daemon() {
    let p = mp::Process::builder()
        .name("worker-1")
        .daemon(true)
        .spawn(whoami, ())
        .unwrap();
    assert_eq!(p.name(), "worker-1");
    assert!(p.is_daemon());
    let pid = p.pid();
    let (name, worker_pid, is_worker, parent) = p.join().unwrap();
    assert_eq!(name, "worker-1");
    assert_eq!(worker_pid, pid);
    assert!(is_worker);
    assert_eq!(parent, Some(std::process::id()));
}

#[test]
fn main_process_identity() {
    let me = mp::current_process();
    assert_eq!(me.name(), "MainProcess");
    assert_eq!(me.pid(), std::process::id());
    assert!(!me.is_worker());
    assert!(mp::parent_process().is_none());
    assert!(mp::cpu_count() >= 1);
}

#[test]
fn is_alive_exitcode_and_join_timeout() {
    let mut p = mp::Process::spawn(sleep_ms, (300,)).unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.join_timeout(Duration::from_millis(1)).unwrap(), None);
    assert!(mp::active_children().iter().any(|c| c.pid() == p.pid()));
    let value = loop {
        if let Some(v) = p.join_timeout(Duration::from_millis(100)).unwrap() {
            break v;
        }
    };
    assert_eq!(value, 300);
    // Callable again once finished.
    assert_eq!(p.join_timeout(Duration::from_millis(1)).unwrap(), Some(300));
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(0));
    assert!(!mp::active_children().iter().any(|c| c.pid() == p.pid()));
}

#[test]
fn panic_is_job_panicked_and_exit_code_1() {
    let mut p = mp::Process::spawn(panics, ("kaboom 42".to_string(),)).unwrap();
    while p
        .join_timeout(Duration::from_millis(50))
        .is_ok_and(|r| r.is_none())
    {}
    assert_eq!(p.exitcode(), Some(1));
    match p.join() {
        Err(mp::Error::JobPanicked { message, job, .. }) => {
            assert_eq!(message, "kaboom 42");
            assert!(job.ends_with("::panics"), "{job}");
        }
        other => panic!("expected JobPanicked, got {other:?}"),
    }
}

#[test]
fn terminate_gives_minus_sigterm() {
    let p = mp::Process::spawn(sleep_ms, (30_000,)).unwrap();
    p.terminate().unwrap();
    let pid = p.pid();
    let code = wait_for_exit(&p);
    assert_eq!(code, -15);
    match p.join() {
        Err(mp::Error::WorkerDied {
            pid: died, exit, ..
        }) => {
            assert_eq!(died, pid);
            assert_eq!(exit, mp::ExitStatus::Signal(15));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn kill_gives_minus_sigkill_and_is_idempotent() {
    let p = mp::Process::spawn(sleep_ms, (30_000,)).unwrap();
    p.kill().unwrap();
    assert_eq!(wait_for_exit(&p), -9);
    // Signalling an exited process is a no-op, never a signal to a recycled pid.
    p.kill().unwrap();
    p.terminate().unwrap();
    let err = p.join().unwrap_err();
    assert!(err.to_string().contains("SIGKILL"), "{err}");
}

#[test]
#[cfg(unix)]
fn abort_is_worker_died() {
    let p = mp::Process::spawn(aborts, ()).unwrap();
    match p.join() {
        Err(mp::Error::WorkerDied { exit, .. }) => assert_eq!(exit, mp::ExitStatus::Signal(6)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

/// Python's exit rule: a program whose `main` returns while a non-daemon child
/// runs joins that child before it exits (through the exit hook, `atexit`),
/// where it would otherwise take the child down with it (no orphans). The
/// program is this test binary, run again with this test alone: with the
/// variable below set, the test leaves a child running and returns.
#[test]
fn a_program_joins_its_non_daemon_children_when_main_returns() {
    const FILE: &str = "MP_TEST_EXIT_JOIN_FILE";
    const NAME: &str = "a_program_joins_its_non_daemon_children_when_main_returns";
    if let Ok(path) = std::env::var(FILE) {
        mp::Process::spawn(write_after, (path, 500)).unwrap();
        return;
    }
    let path = std::env::temp_dir().join(format!("mp-main-join-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads=1"])
        .env(FILE, &path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let written = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        written.ok().as_deref(),
        Some("written"),
        "the child was not joined before the program exited"
    );
}

/// The same rule for a process that mp started: its job returns while a
/// non-daemon child of its own runs; the process joins the child, then exits.
#[test]
fn a_process_joins_its_non_daemon_children_when_it_exits() {
    let path = std::env::temp_dir().join(format!("mp-exit-join-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = mp::Process::spawn(leave_a_child_running, (path.display().to_string(),)).unwrap();
    let child = p.join().unwrap();
    // `join` returns once the process has exited, so its child has finished.
    let written = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        written.ok().as_deref(),
        Some("written"),
        "child {child} was not joined before its parent exited"
    );
}

#[test]
fn not_a_job_is_rejected_before_spawning() {
    let before = mp::active_children().len();
    match mp::Process::spawn(not_a_job, (1,)) {
        Err(mp::Error::NotAJob { name }) => assert!(name.contains("not_a_job"), "{name}"),
        other => panic!("expected NotAJob, got {other:?}"),
    }
    let closure = |x: u64| x + 1;
    assert!(matches!(
        mp::Process::spawn(closure, (1,)),
        Err(mp::Error::NotAJob { .. })
    ));
    assert!(mp::active_children().len() <= before);
}

#[test]
#[cfg(target_os = "linux")]
fn killed_parent_leaves_no_orphans() {
    let dir = std::env::temp_dir().join(format!("mp-orphan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("grandchild.pid");
    let p =
        mp::Process::spawn(spawn_grandchild_and_hang, (pid_file.display().to_string(),)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let grandchild: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && let Ok(pid) = text.trim().parse()
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "grandchild never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(process_exists(grandchild));
    p.kill().unwrap();
    assert_eq!(wait_for_exit(&p), -9);
    // Its child must go too, promptly; 10 s is a liveness bound, not a speed check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_exists(grandchild) {
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn wait_for_exit<R>(p: &mp::Process<R>) -> i32 {
    loop {
        if let Some(code) = p.exitcode() {
            return code;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(target_os = "linux")]
/// Alive and not a zombie (an orphaned zombie may wait for a reaper).
fn process_exists(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Pins this worker to one CPU, then reports what `cpu_count` sees.
#[cfg(target_os = "linux")]
#[mp::job]
fn cpu_count_when_pinned() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only
    // write the set and this thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
    mp::cpu_count()
}

#[test]
#[cfg(target_os = "linux")]
fn cpu_count_respects_the_affinity_mask() {
    let p = mp::Process::spawn(cpu_count_when_pinned, ()).unwrap();
    assert_eq!(p.join().unwrap(), 1);
}
