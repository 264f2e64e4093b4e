//! `mp::Manager` started locally: every proxy method, proxies passed to
//! processes and pool tasks, concurrency, and failures (a killed server, a
//! killed client holding a lock, a killed owner).

// API.md: every `mp::Error` variant is matched as `Variant { .. }`, so that a
// unit variant gaining fields breaks no caller.
#![allow(clippy::unneeded_struct_pattern)]

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- jobs

#[mp::job]
fn fill_dict(i: i32, d: mp::DictProxy<String, i32>) -> Vec<(String, i32)> {
    d.insert("num".into(), 100 + i).unwrap();
    d.items().unwrap()
}

#[mp::job]
fn seed_003(d: mp::DictProxy<String, String>, l: mp::ListProxy<i32>, n: i32) {
    d.insert(n.to_string(), "1".into()).unwrap();
    d.insert("2".into(), "2".into()).unwrap();
    l.push(n).unwrap();
}

/// `times` increments of `d["n"]`, each a get and an insert under the managed lock.
#[mp::job]
fn locked_increments(d: mp::DictProxy<String, u64>, lock: mp::LockProxy, times: u32) -> u32 {
    for _ in 0..times {
        let _guard = lock.lock().unwrap();
        let n = d.get(&"n".into()).unwrap().unwrap_or(0);
        d.insert("n".into(), n + 1).unwrap();
    }
    times
}

#[mp::job]
fn atomic_increments(d: mp::DictProxy<String, u64>, v: mp::ValueProxy<u64>, times: u32) -> u32 {
    for _ in 0..times {
        d.update_with(&"n".into(), |n| n.unwrap_or(0) + 1).unwrap();
        v.update(|x| x + 1).unwrap();
    }
    times
}

#[derive(Serialize, Deserialize)]
struct Shared {
    results: mp::DictProxy<u32, u64>,
    done: mp::QueueProxy<u32>,
    ns: mp::NamespaceProxy,
}

#[mp::job]
fn square_into(task: u32, shared: Shared) -> u32 {
    shared
        .results
        .insert(task, u64::from(task) * u64::from(task))
        .unwrap();
    shared.done.put(task).unwrap();
    let scale: u32 = shared.ns.get("scale").unwrap();
    task * scale
}

/// Takes the lock and then dies without releasing it.
#[mp::job]
fn die_holding(lock: mp::LockProxy, ready: mp::EventProxy) {
    let guard = lock.lock().unwrap();
    ready.set().unwrap();
    std::mem::forget(guard);
    std::thread::sleep(Duration::from_secs(60));
}

#[mp::job]
fn wait_event_then_push(e: mp::EventProxy, l: mp::ListProxy<String>) -> bool {
    let ok = e.wait_timeout(Duration::from_secs(30)).unwrap();
    l.push("woke".into()).unwrap();
    ok
}

#[mp::job]
fn condition_waiter(
    c: mp::ConditionProxy,
    v: mp::ValueProxy<u32>,
    ready: mp::SemaphoreProxy,
) -> u32 {
    let mut g = c.lock().unwrap();
    ready.release().unwrap();
    // Predicate loop, as with any condition variable.
    while v.get().unwrap() == 0 {
        g = c.wait(g).unwrap();
    }
    drop(g);
    v.get().unwrap()
}

#[mp::job]
fn barrier_party(b: mp::BarrierProxy) -> usize {
    b.wait().unwrap()
}

#[mp::job]
fn consume_until_none(q: mp::QueueProxy<Option<u32>>, out: mp::ListProxy<u32>) {
    while let Some(item) = q.get().unwrap() {
        out.push(item).unwrap();
    }
}

/// Starts a manager, reports its server's pid, then waits to be killed.
#[mp::job]
fn own_a_manager(report: mp::Connection<u32>) {
    let m = mp::Manager::start().unwrap();
    report.send(&m.pid().unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[mp::job]
fn blocked_get(q: mp::QueueProxy<u32>, started: mp::EventProxy) -> String {
    // The test may kill the server as soon as the event is set, before our
    // `set` hears back: that too is an error to report, not a panic.
    if let Err(e) = started.set() {
        return format!("error: {e}");
    }
    match q.get() {
        Ok(v) => format!("got {v}"),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------- helpers

fn manager() -> mp::Manager {
    mp::Manager::start().expect("start a manager")
}

#[cfg(target_os = "linux")]
fn process_gone(pid: u32) -> bool {
    // Gone, or a zombie nobody reaped yet: either way it runs no more.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

// ---------------------------------------------------------------- every method

#[test]
fn manager_and_proxies_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + serde::Serialize + serde::de::DeserializeOwned>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<mp::Manager>();
    check::<mp::DictProxy<String, Vec<u8>>>();
    check::<mp::ListProxy<String>>();
    check::<mp::NamespaceProxy>();
    check::<mp::QueueProxy<String>>();
    check::<mp::LockProxy>();
    check::<mp::RLockProxy>();
    check::<mp::SemaphoreProxy>();
    check::<mp::EventProxy>();
    check::<mp::ConditionProxy>();
    check::<mp::BarrierProxy>();
    check::<mp::ValueProxy<String>>();
    send_sync::<mp::LockProxyGuard<'static>>();
}

#[test]
fn dict_methods() {
    let m = manager();
    let d: mp::DictProxy<String, i32> = m.dict().unwrap();
    assert!(d.is_empty().unwrap());
    assert_eq!(d.insert("a".into(), 1).unwrap(), None);
    assert_eq!(d.insert("b".into(), 2).unwrap(), None);
    assert_eq!(d.insert("a".into(), 10).unwrap(), Some(1));
    assert_eq!(d.get(&"a".into()).unwrap(), Some(10));
    assert_eq!(d.get(&"zz".into()).unwrap(), None);
    assert_eq!(d.len().unwrap(), 2);
    assert!(d.contains_key(&"b".into()).unwrap());
    assert!(!d.contains_key(&"c".into()).unwrap());
    // Insertion order, as in Python; replacing keeps the place.
    assert_eq!(d.keys().unwrap(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(d.values().unwrap(), vec![10, 2]);
    assert_eq!(
        d.items().unwrap(),
        vec![("a".to_string(), 10), ("b".to_string(), 2)]
    );
    let map: HashMap<String, i32> = d.to_map().unwrap();
    assert_eq!(map, HashMap::from([("a".into(), 10), ("b".into(), 2)]));
    assert_eq!(d.remove(&"b".into()).unwrap(), Some(2));
    assert_eq!(d.remove(&"b".into()).unwrap(), None);
    d.update(vec![("c".into(), 3), ("d".into(), 4)]).unwrap();
    assert_eq!(d.len().unwrap(), 3);
    assert_eq!(d.set_default("c".into(), 99).unwrap(), 3);
    assert_eq!(d.set_default("e".into(), 5).unwrap(), 5);
    assert_eq!(d.pop_item().unwrap(), Some(("e".to_string(), 5)));
    assert_eq!(
        d.update_with(&"a".into(), |v| v.unwrap_or(0) + 1).unwrap(),
        11
    );
    assert_eq!(
        d.update_with(&"new".into(), |v| v.unwrap_or(0) + 1)
            .unwrap(),
        1
    );
    assert_eq!(d.get(&"new".into()).unwrap(), Some(1));
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(d.pop_item().unwrap(), None);

    let from = m
        .dict_from([(1u8, "x".to_string()), (2, "y".to_string())])
        .unwrap();
    assert_eq!(from.get(&2).unwrap().as_deref(), Some("y"));

    // A clone and a deserialized copy reach the same object.
    let clone = d.clone();
    clone.insert("shared".into(), 7).unwrap();
    assert_eq!(d.get(&"shared".into()).unwrap(), Some(7));
    assert!(format!("{d:?}").contains("DictProxy"));
}

#[test]
fn list_methods() {
    let m = manager();
    let l: mp::ListProxy<i32> = m.list().unwrap();
    assert!(l.is_empty().unwrap());
    l.push(1).unwrap();
    l.push(2).unwrap();
    assert_eq!(l.get(0).unwrap(), Some(1));
    assert_eq!(l.get(5).unwrap(), None);
    l.set(0, 5).unwrap();
    assert!(matches!(
        l.set(9, 0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert_eq!(l.len().unwrap(), 2);
    assert_eq!(l.to_vec().unwrap(), vec![5, 2]);
    assert_eq!(l.pop().unwrap(), Some(2));
    l.extend(vec![1, 2, 3, 2]).unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![5, 1, 2, 3, 2]);
    l.insert(0, 0).unwrap();
    l.insert(6, 9).unwrap();
    assert!(matches!(
        l.insert(99, 0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert_eq!(l.to_vec().unwrap(), vec![0, 5, 1, 2, 3, 2, 9]);
    assert_eq!(l.remove(1).unwrap(), 5);
    assert!(matches!(
        l.remove(99),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert_eq!(l.index_of(&2).unwrap(), Some(2));
    assert_eq!(l.index_of(&42).unwrap(), None);
    assert!(l.contains(&3).unwrap());
    assert_eq!(l.count(&2).unwrap(), 2);
    assert!(l.remove_item(&2).unwrap());
    assert!(!l.remove_item(&42).unwrap());
    assert_eq!(l.to_vec().unwrap(), vec![0, 1, 3, 2, 9]);
    l.reverse().unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![9, 2, 3, 1, 0]);
    l.clear().unwrap();
    assert_eq!(l.pop().unwrap(), None);

    let from = m.list_from(0..5).unwrap();
    assert_eq!(from.to_vec().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn namespace_methods() {
    let m = manager();
    let ns = m.namespace().unwrap();
    ns.set("x", 5).unwrap();
    ns.set("name", "ann").unwrap();
    ns.set("v", vec![1.5f64, 2.5]).unwrap();
    let x: i32 = ns.get("x").unwrap();
    assert_eq!(x, 5);
    assert_eq!(ns.get::<String>("name").unwrap(), "ann");
    assert_eq!(ns.get::<Vec<f64>>("v").unwrap(), vec![1.5, 2.5]);
    assert!(matches!(
        ns.get::<i32>("missing"),
        Err(mp::Error::InvalidArgument { .. })
    ));
    assert_eq!(ns.get_opt::<i32>("missing").unwrap(), None);
    assert!(ns.contains("x").unwrap());
    assert_eq!(ns.names().unwrap(), vec!["x", "name", "v"]);
    assert!(ns.remove("x").unwrap());
    assert!(!ns.remove("x").unwrap());
    assert!(!ns.contains("x").unwrap());
    // Reading a value as the wrong type is a codec error, not garbage.
    assert!(matches!(ns.get::<u64>("name"), Err(mp::Error::Codec(_))));
}

#[test]
fn queue_methods() {
    let m = manager();
    let q: mp::QueueProxy<String> = m.queue().unwrap();
    assert!(q.is_empty().unwrap());
    q.put("a".into()).unwrap();
    q.try_put("b".into()).unwrap();
    q.put_timeout("c".into(), Duration::from_millis(10))
        .unwrap();
    assert_eq!(q.len().unwrap(), 3);
    assert!(!q.is_full().unwrap());
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.try_get().unwrap(), "b");
    assert_eq!(q.get_timeout(Duration::from_millis(10)).unwrap(), "c");
    assert!(matches!(q.try_get(), Err(mp::Error::Empty { .. })));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(mp::Error::Empty { .. })
    ));
    // Joinable: every put item must be marked done.
    assert!(matches!(
        q.join_timeout(Duration::from_millis(20)),
        Err(mp::Error::Timeout { .. })
    ));
    for _ in 0..3 {
        q.task_done().unwrap();
    }
    q.join().unwrap();
    assert!(matches!(
        q.task_done(),
        Err(mp::Error::InvalidArgument { .. })
    ));
    q.put("last".into()).unwrap();
    q.close().unwrap();
    assert!(matches!(q.put("x".into()), Err(mp::Error::Closed { .. })));
    assert_eq!(q.get().unwrap(), "last");
    assert!(matches!(q.get(), Err(mp::Error::Closed { .. })));

    let b: mp::QueueProxy<u8> = m.queue_bounded(2).unwrap();
    b.put(1).unwrap();
    b.put(2).unwrap();
    assert!(b.is_full().unwrap());
    assert!(matches!(b.try_put(3), Err(mp::Error::Full { .. })));
    assert!(matches!(
        b.put_timeout(3, Duration::from_millis(20)),
        Err(mp::Error::Full { .. })
    ));
    assert!(matches!(
        m.queue_bounded::<u8>(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
}

#[test]
fn blocking_calls_do_not_block_other_threads() {
    let m = manager();
    let q: mp::QueueProxy<u32> = m.queue().unwrap();
    let getter = {
        let q = q.clone();
        std::thread::spawn(move || q.get().unwrap())
    };
    // Other calls of this process go on while the getter is blocked.
    let d: mp::DictProxy<u32, u32> = m.dict().unwrap();
    for i in 0..50 {
        d.insert(i, i).unwrap();
    }
    q.put(7).unwrap();
    assert_eq!(getter.join().unwrap(), 7);
}

#[test]
fn lock_methods() {
    let m = manager();
    let lock = m.lock().unwrap();
    let guard = lock.lock().unwrap();
    assert!(!guard.holder_died());
    assert!(lock.try_lock().unwrap().is_none());
    assert!(
        lock.lock_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    // Another thread waits until the guard is dropped.
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let g = lock.lock().unwrap();
            g.unlock().unwrap();
        })
    };
    drop(guard);
    waiter.join().unwrap();
    let g = lock.try_lock().unwrap().expect("free again");
    g.unlock().unwrap();
    assert!(
        lock.lock_timeout(Duration::from_millis(20))
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_dead_holder_does_not_deadlock_others() {
    let m = manager();
    let lock = m.lock().unwrap();
    let ready = m.event().unwrap();
    let p = mp::Process::spawn(die_holding, (lock.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(Duration::from_secs(30)).unwrap());
    assert!(lock.try_lock().unwrap().is_none(), "held by the child");
    p.kill().unwrap();
    assert!(p.join().is_err());
    // Its connection closed, so the server released the lock.
    let guard = lock.lock().unwrap();
    assert!(guard.holder_died());
    drop(guard);
    assert!(!lock.lock().unwrap().holder_died());
}

#[test]
fn rlock_methods() {
    let m = manager();
    let r = m.rlock().unwrap();
    let outer = r.lock().unwrap();
    let inner = r
        .try_lock()
        .unwrap()
        .expect("re-entrant for the same thread");
    let third = r
        .lock_timeout(Duration::from_millis(10))
        .unwrap()
        .expect("again");
    // Another thread must wait.
    let other = {
        let r = r.clone();
        std::thread::spawn(move || r.try_lock().unwrap().is_some())
    };
    assert!(!other.join().unwrap());
    drop(third);
    inner.unlock().unwrap();
    let other = {
        let r = r.clone();
        std::thread::spawn(move || r.try_lock().unwrap().is_some())
    };
    assert!(!other.join().unwrap(), "one level is still held");
    drop(outer);
    let other = {
        let r = r.clone();
        std::thread::spawn(move || r.lock().map(|g| !g.holder_died()).unwrap())
    };
    assert!(other.join().unwrap());
}

#[test]
fn semaphore_methods() {
    let m = manager();
    let s = m.semaphore(2).unwrap();
    assert_eq!(s.value().unwrap(), 2);
    s.acquire().unwrap();
    assert!(s.try_acquire().unwrap());
    assert!(!s.try_acquire().unwrap());
    assert!(!s.acquire_timeout(Duration::from_millis(20)).unwrap());
    s.release().unwrap();
    s.release().unwrap();
    s.release().unwrap(); // unbounded: above the initial value is fine
    assert_eq!(s.value().unwrap(), 3);

    let b = m.bounded_semaphore(1).unwrap();
    assert!(matches!(b.release(), Err(mp::Error::Bounded { .. })));
    b.acquire().unwrap();
    b.release().unwrap();
    let named = m.semaphore_named("slots", 4).unwrap();
    assert_eq!(named.value().unwrap(), 4);
    assert_eq!(m.semaphore_named("slots", 9).unwrap().value().unwrap(), 4);
}

#[test]
fn event_methods_across_processes() {
    let m = manager();
    let e = m.event().unwrap();
    let l = m.list().unwrap();
    assert!(!e.is_set().unwrap());
    assert!(!e.wait_timeout(Duration::from_millis(20)).unwrap());
    let p = mp::Process::spawn(wait_event_then_push, (e.clone(), l.clone())).unwrap();
    e.set().unwrap();
    assert!(p.join().unwrap());
    assert_eq!(l.to_vec().unwrap(), vec!["woke".to_string()]);
    assert!(e.is_set().unwrap());
    e.wait().unwrap();
    e.clear().unwrap();
    assert!(!e.is_set().unwrap());
}

#[test]
fn condition_methods_across_processes() {
    let m = manager();
    let c = m.condition().unwrap();
    let v = m.value(0u32).unwrap();
    let ready = m.semaphore(0).unwrap();
    let p = mp::Process::spawn(condition_waiter, (c.clone(), v.clone(), ready.clone())).unwrap();
    ready.acquire().unwrap();
    {
        // The waiter released the lock in wait(), so we can take it.
        let g = c.lock().unwrap();
        assert!(!g.holder_died());
        v.set(42).unwrap();
        c.notify_all().unwrap();
    }
    assert_eq!(p.join().unwrap(), 42);

    let g = c.lock().unwrap();
    assert!(c.try_lock().unwrap().is_none());
    let (g, notified) = c.wait_timeout(g, Duration::from_millis(20)).unwrap();
    assert!(!notified);
    assert!(
        c.lock_timeout(Duration::from_millis(10)).unwrap().is_none(),
        "held again"
    );
    drop(g);
    c.notify_one().unwrap();
    c.notify(3).unwrap();
    assert!(c.try_lock().unwrap().is_some());
}

#[test]
fn barrier_methods_across_processes() {
    let m = manager();
    let b = m.barrier(3).unwrap();
    assert_eq!(b.parties().unwrap(), 3);
    let ps: Vec<_> = (0..2)
        .map(|_| mp::Process::spawn(barrier_party, (b.clone(),)).unwrap())
        .collect();
    let mine = b.wait().unwrap();
    let mut indices: Vec<usize> = ps.into_iter().map(|p| p.join().unwrap()).collect();
    indices.push(mine);
    indices.sort_unstable();
    assert_eq!(indices, vec![0, 1, 2]);

    // A timeout breaks it for everyone until reset.
    assert!(matches!(
        b.wait_timeout(Duration::from_millis(20)),
        Err(mp::Error::Timeout { .. })
    ));
    assert!(b.is_broken().unwrap());
    assert!(matches!(b.wait(), Err(mp::Error::BrokenBarrier { .. })));
    b.reset().unwrap();
    assert!(!b.is_broken().unwrap());
    assert_eq!(b.n_waiting().unwrap(), 0);
    b.abort().unwrap();
    assert!(matches!(b.wait(), Err(mp::Error::BrokenBarrier { .. })));
    assert!(matches!(
        m.barrier(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
}

#[test]
fn value_methods() {
    let m = manager();
    let v: mp::ValueProxy<i64> = m.value(0).unwrap();
    assert_eq!(v.get().unwrap(), 0);
    v.set(5).unwrap();
    assert_eq!(v.swap(7).unwrap(), 5);
    assert_eq!(v.update(|x| x * 2).unwrap(), 14);
    assert_eq!(v.get().unwrap(), 14);
    let s: mp::ValueProxy<String> = m.value_named("greeting", "hi".to_string()).unwrap();
    assert_eq!(
        m.value_named("greeting", "ignored".to_string())
            .unwrap()
            .get()
            .unwrap(),
        "hi"
    );
    s.set("hello".into()).unwrap();
    assert_eq!(s.get().unwrap(), "hello");
}

#[test]
fn named_objects_are_shared() {
    let m = manager();
    let a = m.dict_named::<String, i32>("jobs").unwrap();
    let b = m.dict_named::<String, i32>("jobs").unwrap();
    a.insert("x".into(), 1).unwrap();
    assert_eq!(b.get(&"x".into()).unwrap(), Some(1));
    m.list_named::<u8>("items").unwrap().push(1).unwrap();
    assert_eq!(m.list_named::<u8>("items").unwrap().len().unwrap(), 1);
    m.queue_named::<u8>("work").unwrap().put(1).unwrap();
    assert_eq!(m.queue_named::<u8>("work").unwrap().get().unwrap(), 1);
    m.namespace_named("cfg").unwrap().set("k", 1).unwrap();
    assert_eq!(
        m.namespace_named("cfg").unwrap().get::<i32>("k").unwrap(),
        1
    );
    let named_lock = m.lock_named("l").unwrap();
    let _held = named_lock.lock().unwrap();
    assert!(m.lock_named("l").unwrap().try_lock().unwrap().is_none());
    m.event_named("e").unwrap().set().unwrap();
    assert!(m.event_named("e").unwrap().is_set().unwrap());
    assert_eq!(m.barrier_named("b", 2).unwrap().parties().unwrap(), 2);
    assert_eq!(m.barrier_named("b", 5).unwrap().parties().unwrap(), 2);
    let _r = m.rlock_named("r").unwrap();
    let _c = m.condition_named("c").unwrap();
    // A name holds one kind of object.
    assert!(matches!(
        m.list_named::<u8>("jobs"),
        Err(mp::Error::InvalidArgument { .. })
    ));
}

// ---------------------------------------------------------------- processes and pools

#[test]
fn seed_001_dict_filled_by_ten_processes() {
    let m = manager();
    let dic: mp::DictProxy<String, i32> = m.dict().unwrap();
    for i in 0..10 {
        let p = mp::Process::spawn(fill_dict, (i, dic.clone())).unwrap();
        let items = p.join().unwrap();
        assert_eq!(items, vec![("num".to_string(), 100 + i)]);
    }
}

#[test]
fn seed_003_dict_and_list_in_processes() {
    let m = manager();
    let d: mp::DictProxy<String, String> = m.dict().unwrap();
    let l: mp::ListProxy<i32> = m.list_from(0..5).unwrap();
    let ps: Vec<_> = (0..10)
        .map(|n| mp::Process::spawn(seed_003, (d.clone(), l.clone(), n)).unwrap())
        .collect();
    for p in ps {
        p.join().unwrap();
    }
    // Keys "0".."9"; the "2" every process writes is one of them.
    assert_eq!(d.len().unwrap(), 10);
    assert_eq!(d.get(&"2".into()).unwrap().as_deref(), Some("2"));
    let mut items = l.to_vec().unwrap();
    assert_eq!(items.len(), 15);
    assert_eq!(&items[..5], &[0, 1, 2, 3, 4]);
    items[5..].sort_unstable();
    assert_eq!(&items[5..], &(0..10).collect::<Vec<_>>()[..]);
}

#[test]
fn seed_000_queue_workers_fill_a_list() {
    let m = manager();
    let work: mp::QueueProxy<Option<u32>> = m.queue_bounded(4).unwrap();
    let results: mp::ListProxy<u32> = m.list().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| mp::Process::spawn(consume_until_none, (work.clone(), results.clone())).unwrap())
        .collect();
    for item in (1..=12).map(Some).chain(std::iter::repeat_n(None, 4)) {
        work.put(item).unwrap();
    }
    for w in workers {
        w.join().unwrap();
    }
    let mut got = results.to_vec().unwrap();
    got.sort_unstable();
    assert_eq!(got, (1..=12).collect::<Vec<_>>());
}

#[test]
fn pool_tasks_hammering_one_dict_lose_no_update() {
    let m = manager();
    let d: mp::DictProxy<String, u64> = m.dict().unwrap();
    let lock = m.lock().unwrap();
    let pool = mp::Pool::new(2).unwrap();
    // 10 tasks x 100 = 1000 increments, each a get then an insert under the lock.
    let done: Vec<u32> = pool
        .starmap(
            locked_increments,
            (0..10)
                .map(|_| (d.clone(), lock.clone(), 100))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(done.iter().sum::<u32>(), 1000);
    assert_eq!(d.get(&"n".into()).unwrap(), Some(1000));

    // The same with the atomic updates, no lock.
    let d2: mp::DictProxy<String, u64> = m.dict().unwrap();
    let v = m.value(0u64).unwrap();
    let done: Vec<u32> = pool
        .starmap(
            atomic_increments,
            (0..10)
                .map(|_| (d2.clone(), v.clone(), 100))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(done.iter().sum::<u32>(), 1000);
    assert_eq!(d2.get(&"n".into()).unwrap(), Some(1000));
    assert_eq!(v.get().unwrap(), 1000);
}

#[test]
fn proxies_inside_structs_reach_pool_tasks() {
    let m = manager();
    let ns = m.namespace().unwrap();
    ns.set("scale", 3u32).unwrap();
    let results = m.dict().unwrap();
    let done = m.queue().unwrap();
    let pool = mp::Pool::new(2).unwrap();
    let pending: Vec<_> = (0..8)
        .map(|task| {
            let shared = Shared {
                results: results.clone(),
                done: done.clone(),
                ns: ns.clone(),
            };
            pool.apply_async(square_into, (task, shared))
        })
        .collect();
    let scaled: Vec<u32> = pending.into_iter().map(|a| a.get().unwrap()).collect();
    assert_eq!(scaled, (0..8).map(|t| t * 3).collect::<Vec<_>>());
    assert_eq!(results.len().unwrap(), 8);
    assert_eq!(results.get(&7).unwrap(), Some(49));
    let mut finished: Vec<u32> = (0..8).map(|_| done.get().unwrap()).collect();
    finished.sort_unstable();
    assert_eq!(finished, (0..8).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- failures

#[cfg(unix)]
#[test]
fn a_killed_server_gives_errors_not_hangs() {
    let m = manager();
    let d: mp::DictProxy<u32, u32> = m.dict().unwrap();
    let q: mp::QueueProxy<u32> = m.queue().unwrap();
    let started = m.event().unwrap();
    d.insert(1, 1).unwrap();
    // One thread of this process and one child process block on the queue.
    let blocked_here = {
        let q = q.clone();
        std::thread::spawn(move || q.get())
    };
    let blocked_child = mp::Process::spawn(blocked_get, (q.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(Duration::from_secs(30)).unwrap());
    let pid = m.pid().expect("a started manager has a server pid");
    // SAFETY: kill(2) with a pid we own and a valid signal.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);

    let err = blocked_here.join().unwrap().unwrap_err();
    assert!(
        matches!(err, mp::Error::Disconnected { .. } | mp::Error::Io(_)),
        "{err}"
    );
    let child = blocked_child.join().unwrap();
    assert!(child.starts_with("error"), "{child}");
    // Pooled and new connections alike report the server gone.
    for _ in 0..3 {
        let err = d.insert(2, 2).unwrap_err();
        assert!(
            matches!(err, mp::Error::Disconnected { .. } | mp::Error::Io(_)),
            "{err}"
        );
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        m.dict::<u8, u8>(),
        Err(mp::Error::Disconnected { .. } | mp::Error::Io(_))
    ));
}

#[test]
fn shutdown_stops_the_server() {
    let m = manager();
    let d: mp::DictProxy<u32, u32> = m.dict().unwrap();
    d.insert(1, 1).unwrap();
    let pid = m.pid().unwrap();
    assert!(mp::active_children().iter().any(|c| c.pid() == pid));
    m.shutdown().unwrap();
    m.shutdown().unwrap();
    assert!(!mp::active_children().iter().any(|c| c.pid() == pid));
    let err = d.get(&1).unwrap_err();
    assert!(
        matches!(err, mp::Error::Disconnected { .. } | mp::Error::Io(_)),
        "{err}"
    );
}

#[test]
fn dropping_the_manager_stops_the_server() {
    let pid = {
        let m = manager();
        m.pid().unwrap()
    };
    assert!(!mp::active_children().iter().any(|c| c.pid() == pid));
}

#[cfg(target_os = "linux")]
#[test]
fn the_server_dies_with_its_owner() {
    let (ours, theirs) = mp::pipe::<u32>().unwrap();
    let owner = mp::Process::spawn(own_a_manager, (theirs,)).unwrap();
    let server_pid = ours.recv().unwrap();
    assert!(!process_gone(server_pid));
    owner.kill().unwrap();
    assert!(owner.join().is_err());
    // Not a timing check: a bound on how long to look before calling it an orphan.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !process_gone(server_pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the manager server outlived its owner"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
