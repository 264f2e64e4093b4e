//! `mp::Pool`: every method of API.md §3 and its failure semantics.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mp::job]
fn fails_on(x: u32, bad: u32) -> u32 {
    if x == bad {
        panic!("item {x} is bad");
    }
    x
}

#[mp::job]
fn fail_on_three(x: u32) -> u32 {
    if x == 3 {
        panic!("three is bad");
    }
    x
}

#[mp::job]
fn my_pid() -> u32 {
    std::process::id()
}

#[mp::job]
fn sleepy_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[mp::job]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

#[mp::job]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[mp::job]
fn die_hard(how: String) -> u32 {
    match how.as_str() {
        "abort" => std::process::abort(),
        "exit" => std::process::exit(3),
        // SAFETY: deliberately crash the worker; the pool must survive it.
        #[cfg(unix)]
        "segv" => unsafe {
            libc::raise(libc::SIGSEGV);
            0
        },
        _ => 0,
    }
}

#[mp::job]
fn worker_name() -> (String, bool) {
    let me = mp::current_process();
    (me.name().to_string(), me.is_worker())
}

static CONFIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[mp::job]
fn init_config(value: String) {
    CONFIG.set(value).expect("initializer runs once per worker");
}

#[mp::job]
fn read_config() -> Option<String> {
    CONFIG.get().cloned()
}

#[mp::job]
fn init_panics() {
    panic!("initializer failed on purpose");
}

fn plain_fn(x: u64) -> u64 {
    x
}

fn pool2() -> mp::Pool {
    mp::Pool::new(2).expect("pool starts")
}

#[test]
fn map_apply_starmap() {
    let pool = pool2();
    assert_eq!(pool.processes(), 2);
    assert_eq!(
        pool.map(square, 0..10u64).unwrap(),
        vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    let big: Vec<u64> = pool.map(square, 0..100_000u64).unwrap();
    assert_eq!(big.len(), 100_000);
    assert!(
        big.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64) * (i as u64))
    );
    assert_eq!(
        pool.map_chunked(square, 0..1000u64, 7).unwrap(),
        (0..1000u64).map(|x| x * x).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.starmap(add, vec![(1, 2), (3, 4), (-5, 5)]).unwrap(),
        vec![3, 7, 0]
    );
    assert_eq!(pool.apply(add, (40, 2)).unwrap(), 42);
}

#[test]
fn async_results() {
    let pool = pool2();
    let a = pool.apply_async(add, (1, 2));
    a.wait();
    assert!(a.ready());
    assert_eq!(a.get().unwrap(), 3);

    let m = pool.map_async(square, 0..10u64);
    assert!(m.wait_timeout(Duration::from_secs(30)));
    assert_eq!(m.get().unwrap()[9], 81);

    let s = pool.starmap_async(add, vec![(1, 2)]);
    assert_eq!(s.get().unwrap(), vec![3]);

    // A timed-out get leaves the result pending.
    let slow = pool.apply_async(sleep_ms, (300,));
    assert!(!slow.ready());
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(1)),
        Err(mp::Error::Timeout { .. })
    ));
    assert!(!slow.wait_timeout(Duration::from_millis(1)));
    assert_eq!(slow.get_timeout(Duration::from_secs(30)).unwrap(), 300);
    // Taken already: a clear error, not a hang.
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(1)),
        Err(mp::Error::InvalidArgument { .. })
    ));
}

#[test]
fn then_runs_the_callback_in_the_parent() {
    let pool = pool2();
    let (tx, rx) = mpsc::channel();
    for i in 0..10i64 {
        let tx = tx.clone();
        pool.apply_async(add, (i, 100))
            .then(move |r: mp::Result<i64>| {
                tx.send((std::process::id(), r.unwrap())).unwrap();
            });
    }
    drop(tx);
    let got: Vec<(u32, i64)> = rx.iter().collect();
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|(pid, _)| *pid == std::process::id()));
    let mut values: Vec<i64> = got.into_iter().map(|(_, v)| v).collect();
    values.sort();
    assert_eq!(values, (100..110).collect::<Vec<_>>());

    // On a result that is already there, the callback runs at once.
    let ready = pool.apply_async(add, (1, 1));
    ready.wait();
    let (tx, rx) = mpsc::channel();
    ready.then(move |r| tx.send(r.unwrap()).unwrap());
    assert_eq!(rx.try_recv().unwrap(), 2);
}

#[test]
fn imap_is_lazy_and_ordered() {
    let pool = pool2();
    let squares: Vec<u64> = pool.imap(square, 0..50u64).map(|r| r.unwrap()).collect();
    assert_eq!(squares, (0..50u64).map(|x| x * x).collect::<Vec<_>>());

    // An endless input works: only what is consumed is computed.
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(300)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(first.len(), 300);
    assert_eq!(first[299], 299 * 299);

    let chunked: Vec<u64> = pool
        .imap_chunked(square, 0..1000u64, 64)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(chunked, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());

    let mut unordered: Vec<u64> = pool
        .imap_unordered(slow_square, 0..20u64)
        .map(|r| r.unwrap())
        .collect();
    unordered.sort();
    assert_eq!(unordered, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        .imap_unordered_chunked(square, 0u64..1000, 100)
        .map(|r| r.unwrap())
        .collect();
    unordered.sort();
    assert_eq!(unordered.len(), 1000);
}

#[test]
fn imap_reports_a_panic_in_place() {
    let pool = pool2();
    let results: Vec<mp::Result<u32>> = pool.imap(fail_on_three, 0..6u32).collect();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(matches!(r, Err(mp::Error::JobPanicked { .. })), "{r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap(), &(i as u32));
        }
    }
}

#[test]
fn a_panic_fails_only_its_task() {
    let pool = pool2();
    let err = pool.apply(fails_on, (7, 7)).unwrap_err();
    match &err {
        mp::Error::JobPanicked {
            message,
            job,
            location,
            ..
        } => {
            assert_eq!(message, "item 7 is bad");
            assert!(job.ends_with("::fails_on"));
            assert!(
                location.as_deref().unwrap_or("").contains("pool.rs"),
                "{location:?}"
            );
        }
        other => panic!("expected JobPanicked, got {other:?}"),
    }
    assert!(err.to_string().contains("item 7 is bad"), "{err}");
    let err = pool
        .starmap(fails_on, (0..100u32).map(|x| (x, 55)))
        .unwrap_err();
    assert!(err.to_string().contains("item 55 is bad"), "{err}");
    // Still usable.
    assert_eq!(pool.apply(add, (2, 2)).unwrap(), 4);
    assert_eq!(pool.map(square, 0..4u64).unwrap(), vec![0, 1, 4, 9]);
}

#[test]
fn a_dead_worker_fails_its_task_and_is_replaced() {
    let pool = pool2();
    let before: HashSet<u32> = (0..20).map(|_| pool.apply(my_pid, ()).unwrap()).collect();
    let mut cases = vec!["abort", "exit"];
    if cfg!(unix) {
        cases.push("segv");
    }
    for how in cases {
        match pool.apply(die_hard, (how.to_string(),)) {
            Err(mp::Error::WorkerDied {
                pid,
                exit,
                job,
                rank,
            }) => {
                assert!(before.contains(&pid) || pid != std::process::id());
                assert_eq!(rank, None, "a local worker has no MPI rank");
                assert!(job.unwrap().ends_with("::die_hard"));
                match how {
                    "exit" => assert_eq!(exit, mp::ExitStatus::Code(3)),
                    "abort" if cfg!(unix) => assert_eq!(exit, mp::ExitStatus::Signal(6)),
                    "segv" => assert_eq!(exit, mp::ExitStatus::Signal(11)),
                    _ => {}
                }
            }
            other => panic!("{how}: expected WorkerDied, got {other:?}"),
        }
        // The pool goes on with a replacement worker.
        assert_eq!(pool.apply(add, (1, 1)).unwrap(), 2);
    }
    let after: HashSet<u32> = (0..20).map(|_| pool.apply(my_pid, ()).unwrap()).collect();
    assert!(after.len() <= 2);
    assert!(
        after.iter().any(|pid| !before.contains(pid)),
        "no worker was replaced"
    );
}

#[test]
fn a_worker_killed_from_outside_fails_its_task() {
    let pool = mp::Pool::new(1).unwrap();
    let pid = pool.apply(my_pid, ()).unwrap();
    let pending = pool.apply_async(sleepy_pid, (30_000,));
    let queued = pool.apply_async(add, (20, 22));
    std::thread::sleep(Duration::from_millis(100));
    #[cfg(unix)]
    // SAFETY: plain kill(2) of our own worker.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    #[cfg(windows)]
    windows::kill_from_outside(pid);
    match pending.get_timeout(Duration::from_secs(30)) {
        Err(mp::Error::WorkerDied {
            pid: died, exit, ..
        }) => {
            assert_eq!(died, pid);
            assert_eq!(exit, mp::ExitStatus::Signal(9));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // The task queued behind it was not lost: it ran on the replacement.
    assert_eq!(queued.get().unwrap(), 42);
}

/// Ends a process the way another program would, through its own handle,
/// with the exit code mp's `kill()` uses (so mp reports it as SIGKILL).
#[cfg(windows)]
mod windows {
    type Handle = *mut core::ffi::c_void;

    const PROCESS_TERMINATE: u32 = 0x0001;
    /// `0x10000 | SIGKILL`: the exit code that reads as `ExitStatus::Signal(9)`.
    const KILLED: u32 = 0x1_0009;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn OpenProcess(access: u32, inherit: i32, pid: u32) -> Handle;
        fn TerminateProcess(process: Handle, code: u32) -> i32;
        fn CloseHandle(handle: Handle) -> i32;
    }

    pub(crate) fn kill_from_outside(pid: u32) {
        // SAFETY: plain Win32 calls on a handle we open and close here.
        unsafe {
            let handle = OpenProcess(PROCESS_TERMINATE, 0, pid);
            assert!(!handle.is_null(), "cannot open worker {pid}");
            let ended = TerminateProcess(handle, KILLED);
            CloseHandle(handle);
            assert_ne!(ended, 0, "cannot terminate worker {pid}");
        }
    }
}

#[test]
fn workers_know_who_they_are() {
    let pool = pool2();
    let (name, is_worker) = pool.apply(worker_name, ()).unwrap();
    assert!(name.starts_with("PoolWorker-"), "{name}");
    assert!(is_worker);
    let children = mp::active_children();
    assert!(
        children
            .iter()
            .filter(|c| c.name().starts_with("PoolWorker-"))
            .count()
            >= 2
    );
}

#[test]
fn close_join_and_submit_after_close() {
    let pool = pool2();
    assert!(matches!(
        pool.join(),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let pending: Vec<_> = (0..6u64)
        .map(|i| pool.apply_async(slow_square, (i,)))
        .collect();
    pool.close();
    assert!(matches!(pool.apply(add, (1, 2)), Err(mp::Error::Closed)));
    assert!(matches!(pool.map(square, 0..3u64), Err(mp::Error::Closed)));
    pool.join().unwrap();
    // Close lets submitted work finish.
    let values: Vec<u64> = pending.into_iter().map(|a| a.get().unwrap()).collect();
    assert_eq!(values, vec![0, 1, 4, 9, 16, 25]);
}

#[test]
fn terminate_fails_outstanding_work() {
    let pool = pool2();
    let pending: Vec<_> = (0..6)
        .map(|_| pool.apply_async(sleep_ms, (30_000,)))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    pool.terminate().unwrap();
    for a in pending {
        assert!(matches!(a.get(), Err(mp::Error::Terminated)));
    }
    assert!(matches!(pool.apply(add, (1, 2)), Err(mp::Error::Closed)));
    pool.join().unwrap();
}

#[test]
fn drop_finishes_submitted_work() {
    let pool = pool2();
    let pending: Vec<_> = (0..4u64)
        .map(|i| pool.apply_async(slow_square, (i,)))
        .collect();
    drop(pool);
    let values: Vec<u64> = pending.into_iter().map(|a| a.get().unwrap()).collect();
    assert_eq!(values, vec![0, 1, 4, 9]);
}

#[test]
fn invalid_arguments() {
    assert!(matches!(
        mp::Pool::new(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        mp::Pool::builder().processes(0).build(),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        mp::Pool::builder()
            .processes(1)
            .max_tasks_per_child(0)
            .build(),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let lazy = mp::pool(0);
    assert!(matches!(
        lazy.apply(add, (1, 2)),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let pool = mp::Pool::new(1).unwrap();
    assert!(matches!(
        pool.map_chunked(square, 0..10u64, 0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let first = pool.imap_chunked(square, 0..10u64, 0).next();
    assert!(matches!(
        first,
        Some(Err(mp::Error::InvalidArgument { .. }))
    ));
    let first = pool.imap_unordered_chunked(square, 0..10u64, 0).next();
    assert!(matches!(
        first,
        Some(Err(mp::Error::InvalidArgument { .. }))
    ));
}

#[test]
fn not_a_job_fails_before_sending() {
    let pool = mp::Pool::new(1).unwrap();
    assert!(matches!(
        pool.apply(plain_fn, (1,)),
        Err(mp::Error::NotAJob { .. })
    ));
    assert!(matches!(
        pool.map(plain_fn, 0..3u64),
        Err(mp::Error::NotAJob { .. })
    ));
    let closure = |x: u64| x * 2;
    assert!(matches!(
        pool.map(closure, 0..3u64),
        Err(mp::Error::NotAJob { .. })
    ));
    let first = pool.imap(plain_fn, 0..3u64).next();
    assert!(matches!(first, Some(Err(mp::Error::NotAJob { .. }))));
    let err = pool.apply(plain_fn, (1,)).unwrap_err();
    assert!(err.to_string().contains("#[mp::job]"), "{err}");
}

#[test]
fn lazy_pool_works() {
    let pool = mp::pool(2);
    assert_eq!(pool.map(square, 0..5u64).unwrap(), vec![0, 1, 4, 9, 16]);
}

#[test]
fn initializer_runs_in_every_worker() {
    let pool = mp::Pool::builder()
        .processes(2)
        .initializer(init_config, ("configured".to_string(),))
        .build()
        .unwrap();
    for _ in 0..10 {
        assert_eq!(
            pool.apply(read_config, ()).unwrap().as_deref(),
            Some("configured")
        );
    }
}

#[test]
fn initializer_panic_is_reported() {
    let err = mp::Pool::builder()
        .processes(1)
        .initializer(init_panics, ())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("initializer failed on purpose"),
        "{err}"
    );
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = mp::Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let pids: HashSet<u32> = (0..6).map(|_| pool.apply(my_pid, ()).unwrap()).collect();
    assert_eq!(
        pids.len(),
        6,
        "each task should run in a fresh worker: {pids:?}"
    );
    // Still produces correct results across recycling.
    assert_eq!(pool.map_chunked(square, 0..20u64, 3).unwrap()[19], 361);
}

#[test]
fn many_threads_share_one_pool() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<mp::Pool>();
    let pool = pool2();
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..25i64 {
                    assert_eq!(pool.apply(add, (t, i)).unwrap(), t + i);
                }
            });
        }
    });
}

#[test]
fn a_short_task_does_not_wait_behind_a_long_one() {
    let pool = pool2();
    // Warm both workers so both are started and idle.
    let _ = pool.map(square, 0..4u64).unwrap();
    for _ in 0..2 {
        let long = pool.apply_async(sleep_ms, (1_500,));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pool.apply(sleep_ms, (1,)).unwrap(), 1);
        assert!(!long.ready(), "the short task waited for the long one");
        assert_eq!(long.get().unwrap(), 1_500);
    }
}

/// Tasks submitted back to back go to the idle workers at once: the second
/// does not wait for the first to end.
#[test]
fn back_to_back_tasks_start_on_idle_workers() {
    let pool = pool2();
    for _ in 0..3 {
        let a = pool.apply_async(start_then_sleep, (500,));
        let b = pool.apply_async(start_then_sleep, (500,));
        let ((pid_a, start_a), (pid_b, start_b)) = (a.get().unwrap(), b.get().unwrap());
        assert_ne!(pid_a, pid_b, "both tasks ran on worker {pid_a}");
        // Far apart only if the second waited for the first (500 ms).
        assert!(
            start_b.abs_diff(start_a) < 400,
            "the second task started {} ms after the first",
            start_b.abs_diff(start_a)
        );
    }
}

/// (pid, wall-clock start in ms), then sleeps `ms`.
#[mp::job]
fn start_then_sleep(ms: u64) -> (u32, u128) {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    std::thread::sleep(Duration::from_millis(ms));
    (std::process::id(), start)
}
