//! Descriptors (handles on Windows) never leak: counted in the parent and in a
//! worker around many round trips that pass pipe ends to jobs and back. (Its own
//! test binary, so no other test opens descriptors while it counts.)

#[cfg(target_os = "linux")]
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The open handles of this process, found by asking about each handle value in
/// turn (values are multiples of 4, handed out lowest first; the count stops after
/// 4096 values in a row name nothing). `GetProcessHandleCount` would be simpler,
/// but Wine always answers 0.
#[cfg(windows)]
fn open_fds() -> usize {
    use windows_sys::Win32::Foundation::GetHandleInformation;
    let (mut count, mut misses, mut value) = (0, 0, 4usize);
    while misses < 4096 {
        let mut flags = 0u32;
        // SAFETY: only queries the flags of a handle value; a value that names
        // no handle fails with ERROR_INVALID_HANDLE.
        let ok =
            unsafe { GetHandleInformation(std::ptr::without_provenance_mut(value), &mut flags) };
        if ok != 0 {
            count += 1;
            misses = 0;
        } else {
            misses += 1;
        }
        value += 4;
    }
    count
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
