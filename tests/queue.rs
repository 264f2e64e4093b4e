//! `mp::Queue`, `JoinableQueue`, `SimpleQueue`: every method, every error, many
//! producers and consumers in different processes, handles passed to jobs.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[mp::job]
fn produce(q: mp::Queue<(u32, u32)>, producer: u32, n: u32) {
    for i in 0..n {
        q.put((producer, i)).unwrap();
    }
}

#[mp::job]
fn consume(q: mp::Queue<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    while let Ok(item) = q.get() {
        got.push(item);
    }
    got
}

#[mp::job]
fn put_one(q: mp::Queue<String>, s: String) -> usize {
    q.put(s).unwrap();
    q.len()
}

#[derive(Serialize, Deserialize)]
struct Work {
    items: Vec<u64>,
    results: mp::Queue<u64>,
}

#[mp::job]
fn square_into(work: Work) -> usize {
    for x in &work.items {
        work.results.put(x * x).unwrap();
    }
    work.items.len()
}

#[mp::job]
fn drain_and_mark(q: mp::JoinableQueue<u32>) -> u32 {
    let mut sum = 0;
    while let Ok(x) = q.get() {
        sum += x;
        q.task_done().unwrap();
    }
    sum
}

#[mp::job]
fn get_forever(q: mp::Queue<u32>) -> u32 {
    q.get().unwrap()
}

#[mp::job]
fn put_many_then_die(q: mp::Queue<u32>, n: u32) {
    for i in 0..n {
        q.put(i).unwrap();
    }
    std::process::abort();
}

#[test]
fn fifo_len_and_errors_in_one_process() {
    let q: mp::Queue<String> = mp::Queue::new().unwrap();
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.maxsize(), 0);
    assert!(matches!(q.try_get(), Err(mp::Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(mp::Error::Empty)
    ));
    for s in ["a", "b", "c"] {
        q.put(s.to_string()).unwrap();
    }
    assert_eq!(q.len(), 3);
    assert_eq!(q.get().unwrap(), "a");
    assert_eq!(q.try_get().unwrap(), "b");
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), "c");
    q.put("left".to_string()).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put("x".to_string()), Err(mp::Error::Closed)));
    // What is left can still be taken, then Closed.
    assert_eq!(q.get().unwrap(), "left");
    assert!(matches!(q.get(), Err(mp::Error::Closed)));
    assert!(matches!(q.try_get(), Err(mp::Error::Closed)));
}

#[test]
fn bounded_queue_blocks_and_times_out() {
    assert!(matches!(
        mp::Queue::<u32>::bounded(0),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let q = mp::Queue::bounded(2).unwrap();
    q.put(1u32).unwrap();
    q.try_put(2).unwrap();
    assert!(q.is_full());
    assert!(matches!(q.try_put(3), Err(mp::Error::Full)));
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(20)),
        Err(mp::Error::Full)
    ));
    // A consumer frees room: a blocked put goes through.
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.get().unwrap()
    });
    q.put_timeout(3, Duration::from_secs(10)).unwrap();
    assert_eq!(t.join().unwrap(), 1);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (2, 3));
}

#[test]
fn oversized_items_and_handles_are_refused() {
    let q: mp::Queue<Vec<u8>> = mp::Queue::with_buffer(1024).unwrap();
    let err = q.put(vec![0; 4096]).unwrap_err();
    assert!(matches!(err, mp::Error::Codec(_)), "{err}");
    assert!(err.to_string().contains("with_buffer"), "{err}");
    assert!(matches!(
        mp::Queue::<u8>::with_buffer(10),
        Err(mp::Error::InvalidArgument { .. })
    ));
    let qq: mp::Queue<mp::Queue<u8>> = mp::Queue::new().unwrap();
    let err = qq.put(mp::Queue::new().unwrap()).unwrap_err();
    assert!(matches!(err, mp::Error::Codec(_)), "{err}");
    // A full buffer (not item count) makes put wait, then time out.
    q.put(vec![1; 900]).unwrap();
    assert!(matches!(
        q.put_timeout(vec![2; 200], Duration::from_millis(20)),
        Err(mp::Error::Full)
    ));
}

#[test]
fn many_producers_many_consumers_across_processes() {
    const PRODUCERS: u32 = 3;
    const PER_PRODUCER: u32 = 2_000;
    let q: mp::Queue<(u32, u32)> = mp::Queue::new().unwrap();
    let consumers: Vec<_> = (0..2)
        .map(|_| mp::Process::spawn(consume, (q.clone(),)).unwrap())
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| mp::Process::spawn(produce, (q.clone(), p, PER_PRODUCER)).unwrap())
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        // FIFO per producer within what each consumer saw.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, i) in &got {
            if let Some(&prev) = last.get(&p) {
                assert!(i > prev, "producer {p}: {i} after {prev}");
            }
            last.insert(p, i);
        }
        all.extend(got);
    }
    all.sort();
    let expected: Vec<(u32, u32)> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| (p, i)))
        .collect();
    assert_eq!(all, expected, "items lost or duplicated");
}

#[test]
fn put_is_visible_at_once_in_the_parent() {
    let q: mp::Queue<String> = mp::Queue::new().unwrap();
    let p = mp::Process::spawn(put_one, (q.clone(), "hello".to_string())).unwrap();
    assert_eq!(p.join().unwrap(), 1);
    assert_eq!(q.len(), 1);
    assert_eq!(q.get().unwrap(), "hello");
}

#[test]
fn queues_travel_inside_pool_tasks() {
    let pool = mp::Pool::new(2).unwrap();
    let results: mp::Queue<u64> = mp::Queue::new().unwrap();
    let work: Vec<Work> = (0..4u64)
        .map(|i| Work {
            items: vec![i, i + 10],
            results: results.clone(),
        })
        .collect();
    let counts = pool.map(square_into, work).unwrap();
    assert_eq!(counts, vec![2, 2, 2, 2]);
    let mut got: Vec<u64> = (0..8).map(|_| results.get().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec![0, 1, 4, 9, 100, 121, 144, 169]);
}

#[test]
fn queue_in_an_initializer() {
    #[mp::job]
    fn init_report(q: mp::Queue<u32>) {
        q.put(std::process::id()).unwrap();
    }
    #[mp::job]
    fn noop() {}
    let q: mp::Queue<u32> = mp::Queue::new().unwrap();
    let pool = mp::Pool::builder()
        .processes(2)
        .initializer(init_report, (q.clone(),))
        .build()
        .unwrap();
    pool.apply(noop, ()).unwrap();
    let a = q.get_timeout(Duration::from_secs(30)).unwrap();
    let b = q.get_timeout(Duration::from_secs(30)).unwrap();
    assert_ne!(a, b);
}

#[test]
fn closing_wakes_a_blocked_getter_in_another_process() {
    let q: mp::Queue<u32> = mp::Queue::new().unwrap();
    let p = mp::Process::spawn(get_forever, (q.clone(),)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    q.put(42).unwrap();
    assert_eq!(p.join().unwrap(), 42);
    let p = mp::Process::spawn(get_forever, (q.clone(),)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    q.close();
    assert!(matches!(p.join(), Err(mp::Error::JobPanicked { .. })));
}

#[test]
fn a_producer_killed_mid_stream_loses_nothing_it_put() {
    let q: mp::Queue<u32> = mp::Queue::new().unwrap();
    let p = mp::Process::spawn(put_many_then_die, (q.clone(), 500)).unwrap();
    assert!(matches!(p.join(), Err(mp::Error::WorkerDied { .. })));
    let got: Vec<u32> = (0..500).map(|_| q.try_get().unwrap()).collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    assert!(q.is_empty());
    // And the queue still works.
    q.put(7).unwrap();
    assert_eq!(q.get().unwrap(), 7);
}

#[test]
fn joinable_queue_join_waits_for_task_done() {
    let q: mp::JoinableQueue<u32> = mp::JoinableQueue::new().unwrap();
    assert!(matches!(
        q.task_done(),
        Err(mp::Error::InvalidArgument { .. })
    ));
    q.join().unwrap(); // nothing outstanding
    for i in 1..=10 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 10);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(20)),
        Err(mp::Error::Timeout { .. })
    ));
    let p = mp::Process::spawn(drain_and_mark, (q.clone(),)).unwrap();
    q.join().unwrap();
    assert_eq!(q.unfinished(), 0);
    q.close();
    assert_eq!(p.join().unwrap(), 55);
}

#[test]
fn simple_queue() {
    let q: mp::SimpleQueue<(String, u8)> = mp::SimpleQueue::new().unwrap();
    assert!(q.is_empty());
    q.put(("x".into(), 1)).unwrap();
    assert!(!q.is_empty());
    assert_eq!(q.get().unwrap(), ("x".to_string(), 1));
    q.close();
    assert!(matches!(q.put(("y".into(), 2)), Err(mp::Error::Closed)));
    assert!(matches!(q.get(), Err(mp::Error::Closed)));
}
