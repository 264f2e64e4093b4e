//! Shared memory across real processes: `Value`, `Array`, `SharedMemory`, the
//! `Pod` derive, handles inside process/pool/initializer arguments and results,
//! and that no segment outlives the processes using it.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Value

#[mp::job]
fn add_many(v: mp::Value<i64>, n: u32) {
    for _ in 0..n {
        *v.lock().unwrap() += 1;
    }
}

#[test]
fn value_increments_are_exact_under_contention() {
    let v = mp::Value::new(0i64).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| mp::Process::spawn(add_many, (v.clone(), 5_000)).unwrap())
        .collect();
    // The parent competes too.
    add_many(v.clone(), 5_000);
    for child in children {
        child.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 25_000);
}

#[mp::job]
fn set_quarter(num: mp::Value<f64>) -> f64 {
    let before = num.get().unwrap();
    num.set(1.25).unwrap();
    before
}

#[test]
fn value_get_and_set_cross_processes() {
    let num = mp::Value::new(0.5f64).unwrap();
    let seen = mp::Process::spawn(set_quarter, (num.clone(),))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen, 0.5);
    assert_eq!(num.get().unwrap(), 1.25);
    assert!(!num.lock().unwrap().holder_died());
}

#[mp::job]
fn make_value(x: i32) -> mp::Value<i32> {
    mp::Value::new(x).unwrap()
}

#[test]
fn a_value_created_in_a_child_outlives_it() {
    // The segment crosses back inside the result; the child has exited since.
    let v = mp::Process::spawn(make_value, (41,))
        .unwrap()
        .join()
        .unwrap();
    *v.lock().unwrap() += 1;
    assert_eq!(v.get().unwrap(), 42);
}

#[test]
fn value_try_lock_and_timeout() {
    let v = mp::Value::new(1u8).unwrap();
    let g = v.lock().unwrap();
    assert!(v.try_lock().unwrap().is_none());
    let same_thread = v.lock_timeout(Duration::from_millis(10));
    assert!(
        matches!(same_thread, Err(mp::Error::InvalidArgument { .. })),
        "{same_thread:?}"
    );
    drop(g);
    assert_eq!(*v.try_lock().unwrap().unwrap(), 1);
    assert_eq!(
        *v.lock_timeout(Duration::from_millis(10)).unwrap().unwrap(),
        1
    );
}

// ---------------------------------------------------------------------------
// Array

#[mp::job]
fn negate(arr: mp::Array<i32>) {
    for x in arr.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

#[test]
fn array_is_negated_in_a_child() {
    let values: Vec<i32> = (0..10).collect();
    let arr = mp::Array::from_slice(&values).unwrap();
    mp::Process::spawn(negate, (arr.clone(),))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        arr.to_vec().unwrap(),
        vec![0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
    );
}

#[test]
fn array_methods_and_bounds() {
    let arr = mp::Array::<f64>::new(4).unwrap();
    assert_eq!(arr.len(), 4);
    assert!(!arr.is_empty());
    assert_eq!(arr.to_vec().unwrap(), vec![0.0; 4]);
    arr.set(3, 1.5).unwrap();
    assert_eq!(arr.get(3).unwrap(), 1.5);
    arr.lock().unwrap()[0] = 2.0;
    assert_eq!(arr.to_vec().unwrap(), vec![2.0, 0.0, 0.0, 1.5]);
    let err = arr.get(4).unwrap_err();
    assert!(matches!(err, mp::Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("index 4"), "{err}");
    assert!(matches!(
        arr.set(100, 0.0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let empty = mp::Array::<u8>::new(0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_vec().unwrap(), Vec::<u8>::new());
}

#[mp::job]
fn add_to_all(arr: mp::Array<u64>, rounds: u32) {
    for _ in 0..rounds {
        for x in arr.lock().unwrap().iter_mut() {
            *x += 1;
        }
    }
}

#[test]
fn array_updates_are_exact_under_contention() {
    let arr = mp::Array::<u64>::new(16).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| mp::Process::spawn(add_to_all, (arr.clone(), 2_000)).unwrap())
        .collect();
    for child in children {
        child.join().unwrap();
    }
    assert_eq!(arr.to_vec().unwrap(), vec![6_000; 16]);
}

// ---------------------------------------------------------------------------
// Pod derive

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C)]
struct Particle {
    position: [f64; 3],
    id: u32,
    alive: bool,
    tag: char,
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
#[repr(C)]
struct Pair<T: Copy>(T, T);

#[mp::job]
fn move_particles(ps: mp::Array<Particle>, pair: mp::Value<Pair<u16>>) {
    for p in ps.lock().unwrap().iter_mut() {
        p.position[0] += 1.0;
        p.alive = !p.alive;
    }
    let mut pair = pair.lock().unwrap();
    *pair = Pair(pair.1, pair.0);
}

#[test]
fn derived_pod_structs_cross_processes() {
    let start = Particle {
        position: [0.5, 1.0, 2.0],
        id: 7,
        alive: true,
        tag: 'λ',
    };
    let ps = mp::Array::from_slice(&[start; 3]).unwrap();
    let pair = mp::Value::new(Pair(1u16, 2u16)).unwrap();
    mp::Process::spawn(move_particles, (ps.clone(), pair.clone()))
        .unwrap()
        .join()
        .unwrap();
    let moved = Particle {
        position: [1.5, 1.0, 2.0],
        alive: false,
        ..start
    };
    assert_eq!(ps.to_vec().unwrap(), vec![moved; 3]);
    assert_eq!(pair.get().unwrap(), Pair(2, 1));
}

// ---------------------------------------------------------------------------
// SharedMemory

#[mp::job]
fn shm_fill(shm: mp::SharedMemory, offset: u64, byte: u8, len: u64) {
    shm.write(offset as usize, &vec![byte; len as usize])
        .unwrap();
}

#[mp::job]
fn shm_read_by_name(name: String, offset: u64, len: u64) -> Vec<u8> {
    let shm = mp::SharedMemory::open(&name).unwrap();
    shm.read(offset as usize, len as usize).unwrap()
}

#[mp::job]
fn shm_write_by_name(name: String, data: Vec<u8>) -> u64 {
    let shm = mp::SharedMemory::open(&name).unwrap();
    shm.write(0, &data).unwrap();
    shm.len() as u64
}

#[test]
fn shared_memory_is_shared_with_children() {
    let shm = mp::SharedMemory::create(1 << 20).unwrap();
    assert_eq!(shm.len(), 1 << 20);
    mp::Process::spawn(shm_fill, (shm.clone(), 1000, 0xAB, 500_000))
        .unwrap()
        .join()
        .unwrap();
    let back = shm.read(0, 1 << 20).unwrap();
    assert!(back[..1000].iter().all(|&b| b == 0));
    assert!(back[1000..501_000].iter().all(|&b| b == 0xAB));
    assert!(back[501_000..].iter().all(|&b| b == 0));
}

#[test]
fn shared_memory_opens_by_name_in_another_process() {
    let shm = mp::SharedMemory::create(4096).unwrap();
    shm.write(10, b"hello from the parent").unwrap();
    let name = shm.name().to_string();
    let read = mp::Process::spawn(shm_read_by_name, (name.clone(), 10, 21))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(read, b"hello from the parent");
    let len = mp::Process::spawn(shm_write_by_name, (name, b"child".to_vec()))
        .unwrap()
        .join()
        .unwrap();
    assert!(len >= 4096);
    assert_eq!(shm.read(0, 5).unwrap(), b"child");
}

#[mp::job]
fn shm_name_of_own_segment() -> String {
    let shm = mp::SharedMemory::create(64).unwrap();
    shm.name().to_string()
}

#[test]
fn a_name_dies_with_its_segment() {
    let name = mp::Process::spawn(shm_name_of_own_segment, ())
        .unwrap()
        .join()
        .unwrap();
    let err = mp::SharedMemory::open(&name).unwrap_err();
    assert!(matches!(err, mp::Error::Io(_)), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(mp::SharedMemory::open("no-such-segment").is_err());
}

#[test]
fn shared_memory_reads_and_writes_are_bounds_checked() {
    let shm = mp::SharedMemory::create(100).unwrap();
    assert!(!shm.is_empty());
    shm.write(98, &[1, 2]).unwrap();
    assert_eq!(shm.read(98, 2).unwrap(), vec![1, 2]);
    assert_eq!(shm.read(100, 0).unwrap(), Vec::<u8>::new());
    for err in [
        shm.write(99, &[1, 2]).unwrap_err(),
        shm.read(99, 2).unwrap_err(),
        shm.read(usize::MAX, 2).unwrap_err(),
        shm.write(101, &[]).unwrap_err(),
    ] {
        assert!(matches!(err, mp::Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains("out of bounds"), "{err}");
    }
    let mut buf = [0u8; 4];
    assert!(shm.read_into(97, &mut buf).is_err());
    shm.read_into(96, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 1, 2]);
    assert!(matches!(
        mp::SharedMemory::create(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert!(!shm.as_ptr().is_null());
}

// ---------------------------------------------------------------------------
// Handles inside pool tasks, nested values and initializers

#[derive(Clone, Serialize, Deserialize)]
struct Bundle {
    counters: Vec<mp::Value<u32>>,
    seen: mp::Array<u8>,
    notes: mp::SharedMemory,
    nested: (String, (mp::Lock, mp::Value<u64>)),
}

#[mp::job]
fn use_bundle(bundle: Bundle, i: u32) -> String {
    *bundle.counters[i as usize % bundle.counters.len()]
        .lock()
        .unwrap() += 1;
    bundle.seen.set(i as usize, 1).unwrap();
    bundle.notes.write(i as usize, &[i as u8 + 1]).unwrap();
    let (tag, (lock, total)) = &bundle.nested;
    {
        let _g = lock.lock().unwrap();
        *total.lock().unwrap() += u64::from(i);
    }
    tag.clone()
}

#[test]
fn handles_travel_inside_pool_tasks() {
    let bundle = Bundle {
        counters: (0..3).map(|_| mp::Value::new(0u32).unwrap()).collect(),
        seen: mp::Array::new(20).unwrap(),
        notes: mp::SharedMemory::create(20).unwrap(),
        nested: (
            "tag".to_string(),
            (mp::Lock::new().unwrap(), mp::Value::new(0u64).unwrap()),
        ),
    };
    let pool = mp::Pool::new(2).unwrap();
    let tasks: Vec<(Bundle, u32)> = (0..20).map(|i| (bundle.clone(), i)).collect();
    let tags = pool.starmap(use_bundle, tasks).unwrap();
    assert_eq!(tags, vec!["tag".to_string(); 20]);
    let counts: Vec<u32> = bundle.counters.iter().map(|c| c.get().unwrap()).collect();
    assert_eq!(counts, vec![7, 7, 6]);
    assert_eq!(bundle.seen.to_vec().unwrap(), vec![1; 20]);
    assert_eq!(
        bundle.notes.read(0, 20).unwrap(),
        (1..=20).collect::<Vec<u8>>()
    );
    assert_eq!(bundle.nested.1.1.get().unwrap(), (0..20).sum::<u64>());
    // The same handles, one at a time through `apply`.
    assert_eq!(pool.apply(use_bundle, (bundle.clone(), 0)).unwrap(), "tag");
    assert_eq!(bundle.counters[0].get().unwrap(), 8);
}

static INIT_TOTAL: OnceLock<mp::Value<u64>> = OnceLock::new();

#[mp::job]
fn keep_total(total: mp::Value<u64>) {
    let _ = INIT_TOTAL.set(total);
}

#[mp::job]
fn add_to_total(x: u64) -> bool {
    let total = INIT_TOTAL
        .get()
        .expect("the initializer ran in this worker");
    *total.lock().unwrap() += x;
    true
}

#[test]
fn handles_reach_pool_initializers() {
    let total = mp::Value::new(0u64).unwrap();
    let pool = mp::Pool::builder()
        .processes(2)
        .initializer(keep_total, (total.clone(),))
        .build()
        .unwrap();
    let done = pool.map(add_to_total, 1..=100u64).unwrap();
    assert!(done.into_iter().all(|d| d));
    drop(pool);
    assert_eq!(total.get().unwrap(), 5050);
}

#[test]
fn every_handle_is_clone_serde_send_sync() {
    fn check<T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>() {}
    check::<mp::Value<u64>>();
    check::<mp::Array<f32>>();
    check::<mp::SharedMemory>();
    check::<mp::Lock>();
    check::<mp::RLock>();
    check::<mp::Semaphore>();
    check::<mp::BoundedSemaphore>();
    check::<mp::Event>();
    check::<mp::Condition>();
    check::<mp::Barrier>();
}

// ---------------------------------------------------------------------------
// No leaks

#[cfg(unix)]
fn dev_shm() -> std::collections::BTreeSet<String> {
    match std::fs::read_dir("/dev/shm") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => std::collections::BTreeSet::new(),
    }
}

/// Memfd segments of mp mapped into process `pid`.
#[cfg(unix)]
fn mp_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("/memfd:mp-shm"))
        .count()
}

/// Descriptors of process `pid` that are mp memfd segments.
#[cfg(unix)]
fn mp_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("/memfd:mp-shm"))
                .count()
        })
        .unwrap_or(0)
}

/// Views of mp segments mapped into this process (`pid` must be ours): the
/// mapped regions that start with the magic of mp's private header page.
#[cfg(windows)]
fn mp_mappings(pid: u32) -> usize {
    use windows_sys::Win32::System::Memory::{
        MEM_COMMIT, MEM_MAPPED, MEMORY_BASIC_INFORMATION, PAGE_READWRITE, VirtualQuery,
    };
    assert_eq!(
        pid,
        std::process::id(),
        "only this process's views are counted"
    );
    const MAGIC: &[u8; 8] = b"mp-wseg\x01";
    let (mut count, mut addr) = (0, 0usize);
    loop {
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: only describes the region holding `addr` into `info`.
        let n = unsafe {
            VirtualQuery(
                std::ptr::without_provenance(addr),
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        if n == 0 || info.RegionSize == 0 {
            return count;
        }
        let base = info.BaseAddress as usize;
        if info.Type == MEM_MAPPED
            && info.State == MEM_COMMIT
            && info.AllocationBase == info.BaseAddress
            && info.Protect == PAGE_READWRITE
        {
            // SAFETY: a committed read-write view of at least one page.
            let head = unsafe { std::ptr::read_volatile(info.BaseAddress.cast::<[u8; 8]>()) };
            if &head == MAGIC {
                count += 1;
            }
        }
        addr = base + info.RegionSize;
    }
}

/// Every open handle of this process (`pid` must be ours): a leaked segment
/// shows as a handle more after than before.
#[cfg(windows)]
fn mp_descriptors(pid: u32) -> usize {
    assert_eq!(
        pid,
        std::process::id(),
        "only this process's handles are counted"
    );
    support::open_handle_count()
}

/// One handle of every kind.
type Everything = (
    mp::Value<u64>,
    mp::Array<u8>,
    mp::SharedMemory,
    mp::Lock,
    mp::RLock,
    mp::Semaphore,
    mp::BoundedSemaphore,
    mp::Event,
    mp::Condition,
    mp::Barrier,
);

/// Every kind of segment, created in this process.
fn one_of_everything() -> Everything {
    (
        mp::Value::new(1).unwrap(),
        mp::Array::new(100).unwrap(),
        mp::SharedMemory::create(1 << 16).unwrap(),
        mp::Lock::new().unwrap(),
        mp::RLock::new().unwrap(),
        mp::Semaphore::new(1).unwrap(),
        mp::BoundedSemaphore::new(1).unwrap(),
        mp::Event::new().unwrap(),
        mp::Condition::new().unwrap(),
        mp::Barrier::new(2).unwrap(),
    )
}

#[mp::job]
fn create_and_drop_everything() -> (usize, usize, usize, usize) {
    let me = std::process::id();
    // Handles that stay for good, not leaks: on Windows the first named object a
    // process creates opens its session's directory of named objects, and a
    // thread's first sleep creates its wake-up event, kept until it exits.
    #[cfg(windows)]
    {
        drop(mp::SharedMemory::create(1).unwrap());
        let warm = mp::Event::new().unwrap();
        assert!(!warm.wait_timeout(Duration::from_millis(1)).unwrap());
    }
    let before = (mp_mappings(me), mp_descriptors(me));
    let all = one_of_everything();
    let _guards = (all.0.lock().unwrap(), all.3.lock().unwrap());
    let during = mp_mappings(me);
    // A wait that sleeps (and so, on Windows, opens a wake-up semaphore).
    assert!(!all.7.wait_timeout(Duration::from_millis(1)).unwrap());
    drop(_guards);
    drop(all);
    let after = (mp_mappings(me), mp_descriptors(me));
    assert_eq!(before, after, "segments left behind after drop");
    (before.0, during, after.0, after.1)
}

#[test]
fn dropping_handles_unmaps_and_closes_segments() {
    let (before, during, after, fds) = mp::Process::spawn(create_and_drop_everything, ())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(before, 0);
    assert_eq!(during, 11, "one mapping per segment (a Condition has two)");
    assert_eq!(after, 0);
    // Windows counts every handle (the job checked that none was left behind).
    #[cfg(unix)]
    assert_eq!(fds, 0);
    let _ = fds;
}

#[mp::job]
fn forget_a_guard_then_drop_its_lock() -> (usize, usize, u64) {
    let me = std::process::id();
    let lock = mp::Lock::new().unwrap();
    std::mem::forget(lock.lock().unwrap());
    drop(lock);
    // The lock is still linked into this thread's robust list, so its memory
    // must stay mapped; other locks keep working.
    let kept = mp_mappings(me);
    let v = mp::Value::new(1u64).unwrap();
    *v.lock().unwrap() += 1;
    let value = v.get().unwrap();
    drop(v);
    (kept, mp_mappings(me), value)
}

#[test]
fn a_forgotten_guard_keeps_its_memory_mapped() {
    let (kept, after, value) = mp::Process::spawn(forget_a_guard_then_drop_its_lock, ())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!((kept, after, value), (1, 1, 2));
}

#[mp::job]
fn hold_everything_until_killed(ready: mp::Event) {
    let all = one_of_everything();
    let _held = (all.0.lock().unwrap(), all.3.lock().unwrap());
    ready.set().unwrap();
    std::thread::sleep(LONG);
}

#[test]
#[cfg(unix)]
fn nothing_in_dev_shm_even_after_sigkill_of_every_user() {
    let before = dev_shm();
    let ready = mp::Event::new().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let ready = mp::Event::new().unwrap();
            let p = mp::Process::spawn(hold_everything_until_killed, (ready.clone(),)).unwrap();
            (p, ready)
        })
        .collect();
    for (p, ready) in &children {
        assert!(ready.wait_timeout(LONG).unwrap(), "child never got ready");
        // The segments exist, as memfds, nowhere in the file system.
        assert!(mp_mappings(p.pid()) >= 11);
    }
    assert_eq!(dev_shm(), before, "segments must not appear in /dev/shm");
    for (p, _) in &children {
        p.kill().unwrap();
    }
    for (p, _) in children {
        let err = p.join().unwrap_err();
        assert!(matches!(err, mp::Error::WorkerDied { .. }), "{err}");
    }
    drop(ready);
    let new: Vec<String> = dev_shm().difference(&before).cloned().collect();
    assert!(new.is_empty(), "new entries in /dev/shm: {new:?}");
}

#[mp::job]
fn hold_shared_memory_until_killed(shm: mp::SharedMemory, ready: mp::Event) {
    shm.write(0, b"held").unwrap();
    ready.set().unwrap();
    std::thread::sleep(LONG);
}

/// Windows: a named segment lives while any process holds it (as Python's
/// `SharedMemory` there), and goes with the last holder even if it is killed.
#[test]
#[cfg(windows)]
fn a_named_segment_lives_while_held_and_goes_when_every_holder_is_killed() {
    let shm = mp::SharedMemory::create(4096).unwrap();
    let name = shm.name().to_string();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let ready = mp::Event::new().unwrap();
            let p = mp::Process::spawn(
                hold_shared_memory_until_killed,
                (shm.clone(), ready.clone()),
            )
            .unwrap();
            (p, ready)
        })
        .collect();
    for (_, ready) in &children {
        assert!(ready.wait_timeout(LONG).unwrap(), "child never got ready");
    }
    drop(shm);
    // The children still hold it: it opens, with their writes.
    let again = mp::SharedMemory::open(&name).unwrap();
    assert_eq!(again.read(0, 4).unwrap(), b"held");
    drop(again);
    for (p, _) in &children {
        p.kill().unwrap();
    }
    for (p, _) in children {
        let err = p.join().unwrap_err();
        assert!(matches!(err, mp::Error::WorkerDied { .. }), "{err}");
    }
    let err = mp::SharedMemory::open(&name).unwrap_err();
    assert!(err.to_string().contains("no shared memory named"), "{err}");
}

#[test]
fn this_process_keeps_no_segment_after_dropping_them() {
    // Other tests of this binary run at the same time, so compare one segment's
    // descriptor directly: it is closed on drop.
    let shm = mp::SharedMemory::create(4096).unwrap();
    let name = shm.name().to_string();
    assert!(mp::SharedMemory::open(&name).is_ok());
    drop(shm);
    assert!(mp::SharedMemory::open(&name).is_err());
}
