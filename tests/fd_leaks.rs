//! Descriptors (handles on Windows) never leak: counted in the parent and in a
//! worker around many round trips that pass pipe ends to jobs and back. (Its own
//! test binary, so no other test opens descriptors while it counts.)

mod support;

#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The open handles of this process.
#[cfg(windows)]
fn open_fds() -> usize {
    support::open_handle_count()
}

#[cfg(not(any(target_os = "linux", windows)))]
fn open_fds() -> usize {
    0
}

#[mp::job]
fn open_fds_in_worker() -> usize {
    open_fds()
}

#[mp::job]
fn echo_end(conn: mp::Connection<u32>) -> mp::Connection<u32> {
    conn
}

#[mp::job]
fn use_and_drop(conn: mp::Connection<u32>) -> u32 {
    conn.send(&5).unwrap();
    5
}

#[test]
#[cfg(any(target_os = "linux", windows))]
fn no_descriptor_leaks() {
    let pool = mp::Pool::new(1).unwrap();
    // Warm up: the worker and its channel exist before we count.
    let worker_before = pool.apply(open_fds_in_worker, ()).unwrap();
    let parent_before = open_fds();
    for _ in 0..200 {
        let (a, b) = mp::pipe::<u32>().unwrap();
        assert_eq!(pool.apply(use_and_drop, (b.clone(),)).unwrap(), 5);
        assert_eq!(a.recv().unwrap(), 5);
        // Back from the worker in a result, and through a pipe.
        let b = pool.apply(echo_end, (b,)).unwrap();
        let (c, d) = mp::pipe::<mp::Connection<u32>>().unwrap();
        c.send(&b).unwrap();
        drop(b);
        d.recv().unwrap().send(&6).unwrap();
        assert_eq!(a.recv().unwrap(), 6);
    }
    let worker_after = pool.apply(open_fds_in_worker, ()).unwrap();
    let parent_after = open_fds();
    // A leak would show as hundreds (200 rounds, several handles each). On
    // Windows the runtime's own threads open and close a handle now and then (a
    // count one lower or higher was seen under Wine), so a little slack.
    let slack = if cfg!(windows) { 2 } else { 0 };
    assert!(
        worker_after <= worker_before + slack,
        "worker leaked descriptors: {worker_before} -> {worker_after}"
    );
    assert!(
        parent_after <= parent_before + slack,
        "parent leaked descriptors: {parent_before} -> {parent_after}"
    );
}
