//! Locks, semaphores, events, conditions and barriers across real processes,
//! including holders that die while holding a lock.

use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(30);

/// Polls `done` every few milliseconds for up to a minute.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Lock

/// Increments a plain (non-atomic) counter in shared memory under `lock`:
/// exact only if the lock excludes the other processes.
#[mp::job]
fn locked_increments(lock: mp::Lock, shm: mp::SharedMemory, n: u32) {
    for _ in 0..n {
        let _g = lock.lock().unwrap();
        let mut bytes = [0u8; 8];
        shm.read_into(0, &mut bytes).unwrap();
        let next = u64::from_ne_bytes(bytes) + 1;
        shm.write(0, &next.to_ne_bytes()).unwrap();
    }
}

#[test]
fn lock_excludes_other_processes() {
    let lock = mp::Lock::new().unwrap();
    let shm = mp::SharedMemory::create(8).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| mp::Process::spawn(locked_increments, (lock.clone(), shm.clone(), 3_000)).unwrap())
        .collect();
    for child in children {
        child.join().unwrap();
    }
    let bytes: [u8; 8] = shm.read(0, 8).unwrap().try_into().unwrap();
    assert_eq!(u64::from_ne_bytes(bytes), 12_000);
}

/// Takes the lock, says so, and waits for `release` before unlocking.
#[mp::job]
fn hold_until(lock: mp::Lock, ready: mp::Event, release: mp::Event) -> bool {
    let g = lock.lock().unwrap();
    ready.set().unwrap();
    release.wait_timeout(LONG).unwrap();
    let died = g.holder_died();
    drop(g);
    died
}

#[test]
fn try_lock_and_timeout_while_another_process_holds_it() {
    let lock = mp::Lock::new().unwrap();
    let (ready, release) = (mp::Event::new().unwrap(), mp::Event::new().unwrap());
    let p = mp::Process::spawn(hold_until, (lock.clone(), ready.clone(), release.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    assert!(lock.try_lock().unwrap().is_none());
    assert!(lock.lock_timeout(SHORT).unwrap().is_none());
    release.set().unwrap();
    let g = lock
        .lock_timeout(LONG)
        .unwrap()
        .expect("released by the child");
    assert!(!g.holder_died());
    drop(g);
    assert!(!p.join().unwrap());
}

#[test]
fn relocking_from_the_same_thread_is_an_error_not_a_deadlock() {
    let lock = mp::Lock::new().unwrap();
    let g = lock.lock().unwrap();
    let err = lock.lock().unwrap_err();
    assert!(matches!(err, mp::Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("RLock"), "{err}");
    assert!(lock.try_lock().unwrap().is_none());
    drop(g);
    assert!(lock.try_lock().unwrap().is_some());
}

/// Takes the lock and kills itself while holding it: SIGKILL on Unix, an
/// abort (no unwinding, no destructors) on Windows, which has no signals.
#[mp::job]
fn take_lock_then_kill_self(lock: mp::Lock, ready: mp::Event) {
    let _g = lock.lock().unwrap();
    ready.set().unwrap();
    #[cfg(unix)]
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    #[cfg(windows)]
    std::process::abort();
    #[allow(unreachable_code)]
    std::thread::sleep(LONG);
}

#[mp::job]
fn take_lock_then_sleep(lock: mp::Lock, ready: mp::Event) {
    let _g = lock.lock().unwrap();
    ready.set().unwrap();
    std::thread::sleep(LONG);
}

#[test]
fn lock_of_a_holder_that_killed_itself_goes_to_the_next_locker() {
    let lock = mp::Lock::new().unwrap();
    let ready = mp::Event::new().unwrap();
    let p = mp::Process::spawn(take_lock_then_kill_self, (lock.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    assert!(matches!(p.join(), Err(mp::Error::WorkerDied { .. })));
    let g = lock.lock_timeout(LONG).unwrap().expect("not a deadlock");
    assert!(g.holder_died());
    drop(g);
    let g = lock.lock().unwrap();
    assert!(
        !g.holder_died(),
        "only the first locker after the death is told"
    );
}

#[test]
fn lock_of_a_sigkilled_holder_goes_to_a_waiter() {
    let lock = mp::Lock::new().unwrap();
    let ready = mp::Event::new().unwrap();
    let p = mp::Process::spawn(take_lock_then_sleep, (lock.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    assert!(lock.try_lock().unwrap().is_none());
    // A waiter already asleep on the lock is woken by the holder's death.
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || lock.lock().map(|g| g.holder_died()))
    };
    std::thread::sleep(SHORT);
    p.kill().unwrap();
    assert!(matches!(p.join(), Err(mp::Error::WorkerDied { .. })));
    assert!(
        waiter.join().unwrap().unwrap(),
        "the waiter learns the holder died"
    );
}

#[mp::job]
fn write_half_then_sleep(v: mp::Value<[u64; 2]>, ready: mp::Event) {
    let mut g = v.lock().unwrap();
    g[0] = 1;
    ready.set().unwrap();
    std::thread::sleep(LONG);
    g[1] = 1;
}

#[test]
fn value_of_a_killed_holder_is_flagged_half_written() {
    let v = mp::Value::new([0u64; 2]).unwrap();
    let ready = mp::Event::new().unwrap();
    let p = mp::Process::spawn(write_half_then_sleep, (v.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    p.kill().unwrap();
    let _ = p.join();
    let g = v.lock_timeout(LONG).unwrap().expect("not a deadlock");
    assert!(g.holder_died());
    assert_eq!(*g, [1, 0]);
}

#[mp::job]
fn rlock_try_elsewhere(r: mp::RLock) -> bool {
    r.try_lock().unwrap().is_some()
}

#[mp::job]
fn take_rlock_twice_then_sleep(r: mp::RLock, ready: mp::Event) {
    let _a = r.lock().unwrap();
    let _b = r.lock().unwrap();
    ready.set().unwrap();
    std::thread::sleep(LONG);
}

#[test]
fn rlock_is_reentrant_per_thread_and_exclusive_across_processes() {
    let r = mp::RLock::new().unwrap();
    let outer = r.lock().unwrap();
    let inner = r.try_lock().unwrap().expect("re-entrant");
    let third = r.lock_timeout(SHORT).unwrap().expect("re-entrant");
    let other = mp::Process::spawn(rlock_try_elsewhere, (r.clone(),)).unwrap();
    assert!(!other.join().unwrap(), "another process cannot take it");
    let thread = {
        let r = r.clone();
        std::thread::spawn(move || r.try_lock().unwrap().is_some())
    };
    assert!(!thread.join().unwrap(), "another thread cannot take it");
    drop(third);
    drop(inner);
    let other = mp::Process::spawn(rlock_try_elsewhere, (r.clone(),)).unwrap();
    assert!(!other.join().unwrap(), "still held once");
    drop(outer);
    let other = mp::Process::spawn(rlock_try_elsewhere, (r.clone(),)).unwrap();
    assert!(other.join().unwrap(), "free after the last guard");
}

#[test]
fn rlock_of_a_killed_holder_goes_to_the_next_locker() {
    let r = mp::RLock::new().unwrap();
    let ready = mp::Event::new().unwrap();
    let p = mp::Process::spawn(take_rlock_twice_then_sleep, (r.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    assert!(r.try_lock().unwrap().is_none());
    p.kill().unwrap();
    let _ = p.join();
    let g = r.lock_timeout(LONG).unwrap().expect("not a deadlock");
    assert!(g.holder_died());
    drop(g);
    assert!(!r.lock().unwrap().holder_died());
}

// ---------------------------------------------------------------------------
// Event

#[mp::job]
fn wait_for_event(e: mp::Event, waiting: mp::Value<u32>) -> bool {
    *waiting.lock().unwrap() += 1;
    e.wait_timeout(LONG).unwrap()
}

#[mp::job]
fn wait_for_event_briefly(e: mp::Event) -> bool {
    e.wait_timeout(SHORT).unwrap()
}

#[test]
fn event_wakes_several_processes() {
    let e = mp::Event::new().unwrap();
    let waiting = mp::Value::new(0u32).unwrap();
    assert!(
        !mp::Process::spawn(wait_for_event_briefly, (e.clone(),))
            .unwrap()
            .join()
            .unwrap()
    );
    let children: Vec<_> = (0..3)
        .map(|_| mp::Process::spawn(wait_for_event, (e.clone(), waiting.clone())).unwrap())
        .collect();
    eventually("three waiters", || waiting.get().unwrap() == 3);
    std::thread::sleep(SHORT); // let them fall asleep in the kernel
    assert!(!e.is_set());
    e.set().unwrap();
    for child in children {
        assert!(
            child.join().unwrap(),
            "woken by the set, not by the timeout"
        );
    }
    assert!(
        mp::Process::spawn(wait_for_event_briefly, (e.clone(),))
            .unwrap()
            .join()
            .unwrap()
    );
    e.clear().unwrap();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(SHORT).unwrap());
}

// ---------------------------------------------------------------------------
// Semaphore

#[mp::job]
fn bounded_work(s: mp::Semaphore, current: mp::Value<u32>, peak: mp::Value<u32>) {
    s.acquire().unwrap();
    {
        let mut now = current.lock().unwrap();
        *now += 1;
        let mut peak = peak.lock().unwrap();
        *peak = (*peak).max(*now);
    }
    std::thread::sleep(Duration::from_millis(5));
    *current.lock().unwrap() -= 1;
    s.release().unwrap();
}

#[test]
fn semaphore_bounds_concurrency_across_processes() {
    let s = mp::Semaphore::new(2).unwrap();
    let current = mp::Value::new(0u32).unwrap();
    let peak = mp::Value::new(0u32).unwrap();
    let pool = mp::Pool::new(4).unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|_| (s.clone(), current.clone(), peak.clone()))
        .collect();
    pool.starmap(bounded_work, tasks).unwrap();
    let peak = peak.get().unwrap();
    assert!((1..=2).contains(&peak), "peak concurrency {peak}");
    assert_eq!(current.get().unwrap(), 0);
    assert_eq!(s.value(), 2);
}

#[mp::job]
fn acquire_within(s: mp::Semaphore, ms: u64) -> bool {
    s.acquire_timeout(Duration::from_millis(ms)).unwrap()
}

#[test]
fn semaphore_try_and_timeout_across_processes() {
    let s = mp::Semaphore::new(1).unwrap();
    assert!(s.try_acquire().unwrap());
    assert!(!s.try_acquire().unwrap());
    assert_eq!(s.value(), 0);
    assert!(
        !mp::Process::spawn(acquire_within, (s.clone(), 30))
            .unwrap()
            .join()
            .unwrap()
    );
    let p = mp::Process::spawn(acquire_within, (s.clone(), 60_000)).unwrap();
    std::thread::sleep(SHORT);
    s.release().unwrap();
    assert!(p.join().unwrap(), "the release woke the waiting process");
    assert_eq!(s.value(), 0);
    assert!(mp::Semaphore::new(usize::MAX).is_err());
}

#[mp::job]
fn over_release(s: mp::BoundedSemaphore) -> String {
    match s.release() {
        Ok(()) => "released".to_string(),
        Err(mp::Error::Bounded) => "bounded".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let s = mp::BoundedSemaphore::new(2).unwrap();
    assert!(matches!(s.release(), Err(mp::Error::Bounded)));
    s.acquire().unwrap();
    let run = |s: &mp::BoundedSemaphore| {
        mp::Process::spawn(over_release, (s.clone(),))
            .unwrap()
            .join()
            .unwrap()
    };
    assert_eq!(run(&s), "released");
    assert_eq!(run(&s), "bounded");
    assert_eq!(s.value(), 2);
    assert!(s.try_acquire().unwrap());
    assert!(s.acquire_timeout(Duration::ZERO).unwrap());
    assert!(!s.acquire_timeout(Duration::ZERO).unwrap());
    assert_eq!(s.value(), 0);
}

// ---------------------------------------------------------------------------
// Barrier

#[mp::job]
fn barrier_rounds(b: mp::Barrier, rounds: u32) -> Vec<usize> {
    (0..rounds).map(|_| b.wait_timeout(LONG).unwrap()).collect()
}

#[test]
fn barrier_indices_are_a_permutation_every_round() {
    let b = mp::Barrier::new(3).unwrap();
    assert_eq!(b.parties(), 3);
    let children: Vec<_> = (0..3)
        .map(|_| mp::Process::spawn(barrier_rounds, (b.clone(), 50)).unwrap())
        .collect();
    let results: Vec<Vec<usize>> = children.into_iter().map(|c| c.join().unwrap()).collect();
    for round in 0..50 {
        let mut indices: Vec<usize> = results.iter().map(|r| r[round]).collect();
        indices.sort();
        assert_eq!(indices, vec![0, 1, 2], "round {round}");
    }
    assert_eq!(b.n_waiting(), 0);
    assert!(!b.is_broken());
}

#[mp::job]
fn barrier_outcome(b: mp::Barrier) -> String {
    match b.wait() {
        Ok(i) => format!("index {i}"),
        Err(mp::Error::BrokenBarrier) => "broken".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn barrier_abort_frees_waiting_processes_and_reset_repairs_it() {
    let b = mp::Barrier::new(3).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| mp::Process::spawn(barrier_outcome, (b.clone(),)).unwrap())
        .collect();
    eventually("two waiters", || b.n_waiting() == 2);
    b.abort();
    assert!(b.is_broken());
    for child in children {
        assert_eq!(child.join().unwrap(), "broken");
    }
    assert!(matches!(b.wait(), Err(mp::Error::BrokenBarrier)));
    b.reset();
    assert!(!b.is_broken());
    // A full round works again: two children and this process.
    let children: Vec<_> = (0..2)
        .map(|_| mp::Process::spawn(barrier_outcome, (b.clone(),)).unwrap())
        .collect();
    let mine = b.wait_timeout(LONG).unwrap();
    let mut all = vec![format!("index {mine}")];
    all.extend(children.into_iter().map(|c| c.join().unwrap()));
    all.sort();
    assert_eq!(all, vec!["index 0", "index 1", "index 2"]);
}

#[test]
fn barrier_timeout_breaks_it_and_reset_frees_waiters() {
    let b = mp::Barrier::new(2).unwrap();
    assert!(matches!(
        b.wait_timeout(SHORT),
        Err(mp::Error::BrokenBarrier)
    ));
    assert!(b.is_broken());
    b.reset();
    // A waiter caught by a reset is told the barrier broke under it.
    let b3 = mp::Barrier::new(3).unwrap();
    let child = mp::Process::spawn(barrier_outcome, (b3.clone(),)).unwrap();
    eventually("a waiter", || b3.n_waiting() == 1);
    b3.reset();
    assert_eq!(child.join().unwrap(), "broken");
    assert!(!b3.is_broken());
    assert!(matches!(
        mp::Barrier::new(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
}

// ---------------------------------------------------------------------------
// Condition

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
struct Ring {
    head: u64,
    tail: u64,
    items: [u64; 8],
}

#[mp::job]
fn produce(
    ring: mp::Value<Ring>,
    not_empty: mp::Condition,
    not_full: mp::Condition,
    from: u64,
    n: u64,
) {
    for x in from..from + n {
        let mut r = not_full
            .wait_while(ring.lock().unwrap(), |r| r.tail - r.head == 8)
            .unwrap();
        let slot = (r.tail % 8) as usize;
        r.items[slot] = x;
        r.tail += 1;
        drop(r);
        not_empty.notify_one();
    }
}

#[mp::job]
fn consume(
    ring: mp::Value<Ring>,
    not_empty: mp::Condition,
    not_full: mp::Condition,
    n: u64,
) -> (u64, u64) {
    let (mut sum, mut count) = (0, 0);
    for _ in 0..n {
        let mut r = not_empty
            .wait_while(ring.lock().unwrap(), |r| r.tail == r.head)
            .unwrap();
        let slot = (r.head % 8) as usize;
        sum += r.items[slot];
        r.head += 1;
        count += 1;
        drop(r);
        not_full.notify_one();
    }
    (sum, count)
}

#[test]
fn condition_producers_and_consumers_across_processes() {
    let ring = mp::Value::new(Ring {
        head: 0,
        tail: 0,
        items: [0; 8],
    })
    .unwrap();
    let not_empty = mp::Condition::new().unwrap();
    let not_full = mp::Condition::new().unwrap();
    let args = (ring.clone(), not_empty.clone(), not_full.clone());
    let producers: Vec<_> = [1u64, 10_001]
        .into_iter()
        .map(|from| {
            mp::Process::spawn(
                produce,
                (args.0.clone(), args.1.clone(), args.2.clone(), from, 1_000),
            )
            .unwrap()
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            mp::Process::spawn(
                consume,
                (args.0.clone(), args.1.clone(), args.2.clone(), 1_000),
            )
            .unwrap()
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let (sum, count) = consumers
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let expected: u64 = (1..=1_000u64).sum::<u64>() + (10_001..=11_000u64).sum::<u64>();
    assert_eq!((sum, count), (expected, 2_000));
    let r = ring.get().unwrap();
    assert_eq!((r.head, r.tail), (2_000, 2_000));
}

#[mp::job]
fn wait_for_notify(c: mp::Condition, ready: mp::Event) -> bool {
    let g = c.lock().unwrap();
    ready.set().unwrap();
    let (g, notified) = c.wait_timeout(g, LONG).unwrap();
    drop(g);
    notified
}

#[test]
fn condition_with_its_own_lock_wakes_another_process() {
    let c = mp::Condition::new().unwrap();
    let ready = mp::Event::new().unwrap();
    let p = mp::Process::spawn(wait_for_notify, (c.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LONG).unwrap());
    // The child releases the lock only inside `wait`: once we have it, the
    // child is waiting, and the notify cannot be lost.
    drop(c.lock().unwrap());
    c.notify_all();
    assert!(p.join().unwrap(), "notified, not timed out");

    let g = c.lock().unwrap();
    let (g, notified) = c.wait_timeout(g, SHORT).unwrap();
    assert!(!notified);
    assert!(!g.holder_died());
    c.notify_one(); // nobody waiting: nothing happens
}

#[test]
fn condition_over_a_given_lock() {
    let lock = mp::Lock::new().unwrap();
    let c = mp::Condition::with_lock(lock.clone()).unwrap();
    let g = c.lock().unwrap();
    assert!(lock.try_lock().unwrap().is_none(), "the same lock");
    drop(g);
    assert!(c.try_lock().unwrap().is_some());
    let g = c.get_lock().lock().unwrap();
    let (_g, notified) = c.wait_timeout(g, SHORT).unwrap();
    assert!(!notified);
}
