//! Producers and consumers in different processes sharing an `mp::Queue`:
//! three small Python examples from the posts, one after the other.
//!
//! The first, from "进程间通信" ("communication between processes"): a child
//! process puts `123` and `"chen"` on a queue, the parent gets them.
//!
//! ```python
//! import time
//! import multiprocessing
//!
//! def foo(q):
//!     time.sleep(1)
//!     print("son process", id(q))
//!     q.put(123)
//!     q.put("chen")
//!
//! if __name__ == '__main__':
//!     q = multiprocessing.Queue()
//!     p = multiprocessing.Process(target=foo, args=(q,))
//!     p.start()
//!     print("main process", id(q))
//!     print(q.get())
//!     print(q.get())
//! ```
//!
//! The second, from "使用 queues 的 Queue 类共享数据" ("sharing data with a
//! Queue"): a queue starts with `0`; ten processes each take one item and put
//! their own index back.
//!
//! ```python
//! def func(i, q):
//!     ret = q.get()
//!     print("进程%s 从队列里获取了一个%s，然后又向队列里放入了一个%s" % (i, ret, i))
//!     q.put(i)
//!
//! if __name__ == "__main__":
//!     lis = queues.Queue(20, ctx=multiprocessing)
//!     lis.put(0)
//!     for i in range(10):
//!         p = Process(target=func, args=(i, lis,))
//!         p.start()
//! ```
//!
//! The third, from "Python-多进程编程" ("multiprocess programming in Python"):
//! `multiprocessing.Queue(maxsize)` lets many processes put and many get, with
//! `put`, `get` and `qsize`; here two producers and two consumers share a queue
//! of at most three items, and then the parent tries every method on its own.
//!
//! A Python queue holds any mix of objects; an `mp::Queue<T>` holds one type,
//! so the first example's `123` and `"chen"` travel as an enum.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `123` or `"chen"`: the two kinds of item the first example puts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Item {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Int(n) => write!(f, "{n}"),
            Item::Str(s) => write!(f, "{s}"),
        }
    }
}

#[mp::job]
fn foo(q: mp::Queue<Item>) {
    std::thread::sleep(Duration::from_millis(100));
    // Python prints id(q), which differs in every process; the pid does too.
    println!("son process (pid {})", std::process::id());
    q.put(Item::Int(123)).unwrap();
    q.put(Item::Str("chen".into())).unwrap();
}

/// Takes one item and puts its own index back; returns what it took.
#[mp::job]
fn func(i: u32, q: mp::Queue<u32>) -> u32 {
    let ret = q.get().unwrap();
    println!("process {i} got {ret} from the queue, then put {i} into it");
    q.put(i).unwrap();
    ret
}

#[mp::job]
fn producer(q: mp::Queue<String>, id: u32, n: u32) {
    for i in 0..n {
        // Waits while the queue holds `maxsize` items.
        q.put(format!("producer {id}: message {i}")).unwrap();
    }
}

#[mp::job]
fn consumer(q: mp::Queue<String>, n: u32) -> Vec<String> {
    (0..n).map(|_| q.get().unwrap()).collect()
}

mp::main! {
    fn main() -> mp::Result<()> {
        // 1. A child puts 123 and "chen"; the parent gets them.
        let q = mp::Queue::new()?;
        let p = mp::Process::spawn(foo, (q.clone(),))?;
        println!("main process (pid {})", std::process::id());
        let first = q.get()?;
        println!("{first}");
        let second = q.get()?;
        println!("{second}");
        assert_eq!((first, second), (Item::Int(123), Item::Str("chen".into())));
        p.join()?;

        // 2. Ten processes pass the queue's one item along.
        let lis = mp::Queue::bounded(20)?;
        lis.put(0u32)?;
        let procs = (0..10)
            .map(|i| mp::Process::spawn(func, (i, lis.clone())))
            .collect::<mp::Result<Vec<_>>>()?;
        let mut taken = procs
            .into_iter()
            .map(|p| p.join())
            .collect::<mp::Result<Vec<u32>>>()?;
        // The item left is the index of the last process to run; every other
        // index, and the first 0, was taken exactly once.
        let left = lis.try_get()?;
        println!("left in the queue: {left}");
        taken.push(left);
        taken.sort_unstable();
        assert_eq!(taken, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(lis.is_empty());

        // 3. Queue(maxsize): two producers and two consumers, at most 3 items waiting.
        let q = mp::Queue::bounded(3)?;
        let producers = (0..2)
            .map(|id| mp::Process::spawn(producer, (q.clone(), id, 5)))
            .collect::<mp::Result<Vec<_>>>()?;
        let consumers = (0..2)
            .map(|_| mp::Process::spawn(consumer, (q.clone(), 5)))
            .collect::<mp::Result<Vec<_>>>()?;
        for p in producers {
            p.join()?;
        }
        let mut all = Vec::new();
        for (i, c) in consumers.into_iter().enumerate() {
            let got = c.join()?;
            println!("consumer {i} got {} messages", got.len());
            // Each producer's messages come out in the order it put them.
            for id in 0..2 {
                let prefix = format!("producer {id}: ");
                let mine: Vec<&String> = got.iter().filter(|m| m.starts_with(&prefix)).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
            }
            all.extend(got);
        }
        all.sort();
        let expected: Vec<String> = (0..2)
            .flat_map(|id| (0..5).map(move |i| format!("producer {id}: message {i}")))
            .collect();
        assert_eq!(all, expected, "nothing lost, nothing duplicated");
        println!("10 messages from 2 producers reached 2 consumers");

        // The methods one by one, in this process (Python's names in the text).
        for word in ["a", "b", "c"] {
            q.put(word.to_string())?;
        }
        println!("qsize() = {}, empty() = {}, full() = {}", q.len(), q.is_empty(), q.is_full());
        assert!(q.is_full());
        let err = q.try_put("d".to_string()).unwrap_err();
        println!("put_nowait() on a full queue: {err}");
        assert!(matches!(err, mp::Error::Full));
        let err = q.put_timeout("d".to_string(), Duration::from_millis(20)).unwrap_err();
        println!("put(timeout=0.02) on a full queue: {err}");
        assert!(matches!(err, mp::Error::Full));
        println!("get() = {}", q.get()?);
        println!("get(timeout=1) = {}", q.get_timeout(Duration::from_secs(1))?);
        println!("get_nowait() = {}", q.try_get()?);
        println!("qsize() = {}, empty() = {}, full() = {}", q.len(), q.is_empty(), q.is_full());
        let err = q.try_get().unwrap_err();
        println!("get_nowait() on an empty queue: {err}");
        assert!(matches!(err, mp::Error::Empty));
        let err = q.get_timeout(Duration::from_millis(20)).unwrap_err();
        println!("get(timeout=0.02) on an empty queue: {err}");
        assert!(matches!(err, mp::Error::Empty));
        q.put("last".to_string())?;
        q.close();
        println!("after close(): get() = {}", q.get()?);
        assert!(matches!(q.get(), Err(mp::Error::Closed)));
        assert!(matches!(q.put("x".to_string()), Err(mp::Error::Closed)));
        println!("after close(), once empty: get() and put() are Err(Closed)");
        Ok(())
    }
}
