//! Jobs defined only in an integration test run in workers: the job registry keeps
//! its entries in every binary kind, including on x86_64-pc-windows-gnu, where the
//! linker drops sections nothing refers to unless each entry is kept alive.
//!
//! The `windows` module below covers what only Windows does differently: a worker
//! inheriting only its own handles, and no orphans through the kill-on-close job
//! object and the parent-handle lifeline. (The exit codes of `terminate` and
//! `kill` are checked on every platform by `tests/process.rs`.)

use std::time::Duration;

/// Defined here and nowhere else, so only this test binary's registry has it.
#[mp::job]
fn only_in_this_test(x: u32, tag: String) -> (u32, String, u32) {
    (x * 3, format!("{tag}!"), std::process::id())
}

mod nested {
    /// A job in a nested module of the test crate.
    #[mp::job]
    pub(crate) fn nested_job(values: Vec<u64>) -> u64 {
        values.iter().sum()
    }
}

#[test]
fn a_job_defined_only_in_this_test_runs_in_a_process() {
    let p = mp::Process::spawn(only_in_this_test, (14, "hi".to_string())).unwrap();
    let pid = p.pid();
    let (value, tag, worker_pid) = p.join().unwrap();
    assert_eq!((value, tag.as_str()), (42, "hi!"));
    assert_eq!(worker_pid, pid);
    assert_ne!(worker_pid, std::process::id());
}

#[test]
fn jobs_defined_only_in_this_test_run_in_a_pool() {
    let pool = mp::Pool::new(2).unwrap();
    let results = pool
        .starmap(only_in_this_test, (0..6u32).map(|x| (x, x.to_string())))
        .unwrap();
    for (x, (value, tag, pid)) in results.into_iter().enumerate() {
        assert_eq!(value, 3 * x as u32);
        assert_eq!(tag, format!("{x}!"));
        assert_ne!(pid, std::process::id());
    }
    assert_eq!(
        pool.apply(nested::nested_job, (vec![1, 2, 3, 4],)).unwrap(),
        10
    );
}

#[mp::job]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Ends with the process; the parent observes it through the exit code.
#[mp::job]
fn exit_with(code: i32) {
    std::process::exit(code);
}

#[test]
fn an_exit_code_reaches_the_parent() {
    let p = mp::Process::spawn(exit_with, (7,)).unwrap();
    match p.join() {
        Err(mp::Error::WorkerDied { exit, .. }) => assert_eq!(exit, mp::ExitStatus::Code(7)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[cfg(windows)]
mod windows {
    use std::time::{Duration, Instant};

    use super::sleep_ms;

    type Handle = *mut core::ffi::c_void;

    const SYNCHRONIZE: u32 = 0x0010_0000;
    const WAIT_OBJECT_0: u32 = 0;

    #[repr(C)]
    struct SecurityAttributes {
        length: u32,
        descriptor: *mut core::ffi::c_void,
        inherit: i32,
    }

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn CreatePipe(
            read: *mut Handle,
            write: *mut Handle,
            attributes: *const SecurityAttributes,
            size: u32,
        ) -> i32;
        fn ReadFile(
            file: Handle,
            buffer: *mut u8,
            len: u32,
            read: *mut u32,
            overlapped: *mut core::ffi::c_void,
        ) -> i32;
        fn CloseHandle(handle: Handle) -> i32;
        fn OpenProcess(access: u32, inherit: i32, pid: u32) -> Handle;
        fn WaitForSingleObject(handle: Handle, ms: u32) -> u32;
        fn GetCurrentProcess() -> Handle;
        fn SetProcessAffinityMask(process: Handle, mask: usize) -> i32;
    }

    /// Pins the worker to its first CPU; `cpu_count()` before and after.
    #[mp::job]
    fn cpu_count_pinned_to_one_cpu() -> (usize, usize) {
        let before = mp::cpu_count();
        // SAFETY: plain Win32 calls on this process's pseudo handle.
        let pinned = unsafe { SetProcessAffinityMask(GetCurrentProcess(), 1) };
        assert_ne!(pinned, 0, "SetProcessAffinityMask failed");
        (before, mp::cpu_count())
    }

    /// `cpu_count()` counts the CPUs of the affinity mask, not the machine's.
    #[test]
    fn cpu_count_follows_the_affinity_mask() {
        let (before, pinned) = mp::Process::spawn(cpu_count_pinned_to_one_cpu, ())
            .unwrap()
            .join()
            .unwrap();
        assert!(before >= 1);
        assert_eq!(pinned, 1, "pinned to one CPU, was {before}");
    }

    fn wait_for_exit<R>(p: &mp::Process<R>) -> i32 {
        loop {
            if let Some(code) = p.exitcode() {
                return code;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An inheritable handle of the parent does not leak into a worker: once the
    /// parent closes its write end, the read end sees EOF although workers run.
    #[test]
    fn a_worker_inherits_only_its_own_handles() {
        let attributes = SecurityAttributes {
            length: std::mem::size_of::<SecurityAttributes>() as u32,
            descriptor: std::ptr::null_mut(),
            inherit: 1,
        };
        let (mut read, mut write): (Handle, Handle) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: CreatePipe writes two handles into the locals.
        let created = unsafe { CreatePipe(&mut read, &mut write, &attributes, 0) };
        assert_ne!(created, 0);
        let pool = mp::Pool::new(2).unwrap();
        assert_eq!(pool.map(sleep_ms, [1u64, 1]).unwrap(), vec![1, 1]);
        let p = mp::Process::spawn(sleep_ms, (30_000,)).unwrap();
        // SAFETY: closes our only copy of the write end.
        unsafe { CloseHandle(write) };
        let read = read as usize;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = 0u8;
            let mut n = 0u32;
            // SAFETY: reads at most one byte into `byte`.
            let ok =
                unsafe { ReadFile(read as Handle, &mut byte, 1, &mut n, std::ptr::null_mut()) };
            let _ = tx.send((ok, n));
        });
        // A liveness bound: a leaked write end would block the read for as long
        // as the workers live.
        let (ok, n) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the pipe's write end leaked into a worker");
        assert_eq!((ok, n), (0, 0), "EOF (ERROR_BROKEN_PIPE) expected");
        p.kill().unwrap();
        let _ = p.join();
    }

    /// Starts a grandchild, records its pid, then hangs.
    #[mp::job]
    fn spawn_grandchild_and_hang(pid_file: String) {
        let grandchild = mp::Process::spawn(sleep_ms, (60_000,)).expect("spawn grandchild");
        std::fs::write(&pid_file, grandchild.pid().to_string()).expect("write pid file");
        std::thread::sleep(Duration::from_secs(60));
    }

    #[test]
    fn a_killed_worker_leaves_no_orphans() {
        let dir = std::env::temp_dir().join(format!("mp-orphan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("grandchild.pid");
        let p = mp::Process::spawn(spawn_grandchild_and_hang, (pid_file.display().to_string(),))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let grandchild: u32 = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file)
                && let Ok(pid) = text.trim().parse()
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "grandchild never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        // SAFETY: plain Win32 call; a null result means the process is gone.
        let handle = unsafe { OpenProcess(SYNCHRONIZE, 0, grandchild) };
        assert!(!handle.is_null(), "grandchild {grandchild} is not running");
        p.kill().unwrap();
        assert_eq!(wait_for_exit(&p), -9);
        // A liveness bound, not a speed check.
        // SAFETY: waits on the handle we opened, then closes it.
        let waited = unsafe { WaitForSingleObject(handle, 20_000) };
        // SAFETY: as above.
        unsafe { CloseHandle(handle) };
        assert_eq!(
            waited, WAIT_OBJECT_0,
            "grandchild {grandchild} outlived its parent"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
