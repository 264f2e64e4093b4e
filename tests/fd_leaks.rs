//! Descriptors never leak: counted in the parent and in a worker around many
//! round trips that pass pipe ends to jobs. (Its own test binary, so no other
//! test opens descriptors while it counts.)

#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[mp::job]
fn open_fds_in_worker() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[mp::job]
fn use_and_drop(conn: mp::Connection<u32>) -> u32 {
    conn.send(&5).unwrap();
    5
}

#[test]
#[cfg(target_os = "linux")]
fn no_descriptor_leaks() {
    let pool = mp::Pool::new(1).unwrap();
    // Warm up: the worker and its channel exist before we count.
    let worker_before = pool.apply(open_fds_in_worker, ()).unwrap();
    let parent_before = open_fds();
    for _ in 0..200 {
        let (a, b) = mp::pipe::<u32>().unwrap();
        assert_eq!(pool.apply(use_and_drop, (b,)).unwrap(), 5);
        assert_eq!(a.recv().unwrap(), 5);
    }
    let worker_after = pool.apply(open_fds_in_worker, ()).unwrap();
    assert_eq!(worker_after, worker_before, "worker leaked descriptors");
    assert_eq!(open_fds(), parent_before, "parent leaked descriptors");
}
