//! `multiprocessing.Process` basics: `start`/`join`, `current_process().name`,
//! `os.getppid()`/`os.getpid()`, and `is_alive`/`terminate`/`daemon`/`exitcode`.
//!
//! ```python
//! import multiprocessing as mp
//!
//! def job(name):
//!     print(name)
//!
//! p1 = mp.Process(target=job, args=(1,))
//! p2 = mp.Process(target=job, args=(2,))
//! p1.start(); p2.start()
//! p1.join(); p2.join()
//! print("finish all subprocesses")
//! ```
//!
//! ```python
//! def foo(i):
//!     print("this is", multiprocessing.current_process().name)
//!     print("parent pid:", os.getppid())
//!     print("own pid:", os.getpid())
//!
//! for i in range(5):
//!     multiprocessing.Process(target=foo, args=(i,)).start()
//! ```
//!
//! ```python
//! def f(name):
//!     time.sleep(1)
//!     print('hello', name, time.ctime())
//!
//! p_list = [Process(target=f, args=('alvin',)) for i in range(3)]
//! for p in p_list: p.start()
//! for p in p_list: p.join()
//! print('end')
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[mp::job]
fn job(name: u32) -> u32 {
    println!("{name}");
    name
}

/// What a process reports about itself: its name, its parent's pid and its own.
#[mp::job]
fn foo(i: u32) -> (String, Option<u32>, u32) {
    let me = mp::current_process();
    let parent = mp::parent_process().map(|p| p.pid());
    // One `print!` per report, so the reports of the 5 processes do not interleave.
    print!(
        "this is {}\nis a worker: {}\nparent pid: {}\nown pid: {}\n(argument {i})\n{}\n",
        me.name(),
        me.is_worker(),
        parent.map_or_else(|| "none".to_string(), |pid| pid.to_string()),
        me.pid(),
        "-".repeat(24),
    );
    (me.name().to_string(), parent, me.pid())
}

/// `time.sleep(1); print('hello', name, time.ctime())`, with a shorter sleep.
#[mp::job]
fn f(name: String) -> String {
    std::thread::sleep(Duration::from_millis(200));
    let line = format!("hello {name} {}", clock());
    println!("{line}");
    line
}

/// Sleeps far longer than this program runs: something to terminate.
#[mp::job]
fn sleeper(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds));
}

/// The time of day in UTC with milliseconds, standing in for `time.ctime()`.
fn clock() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

mp::main! {
    fn main() {
        // 1. Two processes, started together, then joined.
        let p1 = mp::Process::spawn(job, (1,)).unwrap();
        let p2 = mp::Process::spawn(job, (2,)).unwrap();
        assert_eq!(p1.join().unwrap(), 1);
        assert_eq!(p2.join().unwrap(), 2);
        println!("finish all subprocesses");

        // 2. Five processes report their name and their parent's pid.
        let me = std::process::id();
        let procs: Vec<_> = (0..5)
            .map(|i| mp::Process::spawn(foo, (i,)).unwrap())
            .collect();
        for p in procs {
            let (pid, expected_name) = (p.pid(), p.name().to_string());
            let (name, parent, own) = p.join().unwrap();
            assert_eq!(name, expected_name);
            assert!(name.starts_with("Process-"), "{name}");
            assert_eq!(parent, Some(me), "the parent of {name} is this process");
            assert_eq!(own, pid);
        }
        println!("main process {} (pid {me}) joined 5 children", mp::current_process().name());

        // 3. Three processes sleep at the same time: the three lines show
        //    (nearly) the same time.
        let p_list: Vec<_> = (0..3)
            .map(|_| mp::Process::spawn(f, ("alvin".to_string(),)).unwrap())
            .collect();
        for p in p_list {
            assert!(p.join().unwrap().starts_with("hello alvin "));
        }
        println!("end");

        // 4. is_alive, terminate, exitcode, and a named daemon process.
        let mut p = mp::Process::builder()
            .name("sleepy")
            .daemon(true)
            .spawn(sleeper, (60,))
            .unwrap();
        assert_eq!(p.name(), "sleepy");
        assert!(p.is_daemon());
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        println!(
            "{}: alive={} daemon={} exitcode={:?}",
            p.name(),
            p.is_alive(),
            p.is_daemon(),
            p.exitcode()
        );
        p.terminate().unwrap();
        // The process did not answer: join reports how it died.
        match p.join_timeout(Duration::from_secs(10)) {
            Err(e @ mp::Error::WorkerDied { .. }) => println!("after terminate(): {e}"),
            other => panic!("a terminated process gives WorkerDied, got {other:?}"),
        }
        assert!(!p.is_alive());
        // Python's convention: -N when signal N ended the process (-15 for SIGTERM).
        #[cfg(unix)]
        assert_eq!(p.exitcode(), Some(-15));
        println!("{}: alive={} exitcode={:?}", p.name(), p.is_alive(), p.exitcode());

        let mut done = mp::Process::spawn(job, (3,)).unwrap();
        let value = done.join_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(value, Some(3));
        assert_eq!(done.exitcode(), Some(0));
        println!("{}: alive={} exitcode={:?}", done.name(), done.is_alive(), done.exitcode());

        // A daemon still running when main returns is terminated by `mp::main!`;
        // a non-daemon one would be joined instead.
        let daemon = mp::Process::builder()
            .daemon(true)
            .spawn(sleeper, (60,))
            .unwrap();
        assert!(mp::active_children().iter().any(|c| c.pid() == daemon.pid()));
        println!("leaving {} (daemon) running; it is terminated at exit", daemon.name());
    }
}
