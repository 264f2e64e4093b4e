//! Four processes, twelve tasks: workers loop on a shared queue until they get a
//! `None` sentinel, the alternative to a `Pool` from the post "搞懂Python多进程"
//! ("Understanding Python multiprocessing"). The original uses a manager's queue
//! and list; here the work queue and the results are both `mp::Queue`s, shared
//! memory with no server process. The original sleeps 5 s per task; this one
//! sleeps a few milliseconds.
//!
//! ```python
//! from multiprocessing import Process, Manager
//! import time
//! import itertools
//!
//! def do_work(in_queue, out_list):
//!     while True:
//!         item = in_queue.get()
//!         # exit signal
//!         if item == None:
//!             return
//!         # fake work
//!         import numpy as np
//!         work_time = np.random.random()
//!         time.sleep(5)
//!         result = item
//!         print(f"finish task: {item}!during time:{work_time}")
//!         print(in_queue.qsize())
//!         out_list.append(result)
//!
//! if __name__ == "__main__":
//!     num_workers = 4
//!     manager = Manager()
//!     results = manager.list()
//!     work = manager.Queue(num_workers)
//!     pool = []
//!     for i in range(num_workers):
//!         p = Process(target=do_work, args=(work, results))
//!         p.start()
//!         pool.append(p)
//!     print('........')
//!     iters = itertools.chain([1,2,3,4,5,6,7,8,9,10,11,12], (None,)*num_workers)
//!     for item in iters:
//!         work.put(item)
//!         print(f"execute task: {item}")
//!     print('.....................')
//!     for p in pool:
//!         p.join()
//!     print(results)
//! ```
//!
//! `work` holds at most `num_workers` items, so the parent's `put` waits while
//! the workers are busy, exactly as with `manager.Queue(num_workers)`.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random number in `[0, 1)`, like `np.random.random()`.
fn random() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Takes items until the `None` sentinel; returns how many tasks it did.
#[mp::job]
fn do_work(in_queue: mp::Queue<Option<u32>>, out: mp::Queue<u32>) -> usize {
    let mut done = 0;
    // exit signal: `None`
    while let Some(item) = in_queue.get().unwrap() {
        // fake work
        let work_time = random();
        std::thread::sleep(Duration::from_secs_f64(work_time * 0.02));
        let result = item;
        println!("finish task: {item}!during time:{work_time:.3}");
        println!("{}", in_queue.len());
        out.put(result).unwrap();
        done += 1;
    }
    done
}

mp::main! {
    fn main() -> mp::Result<()> {
        let num_workers = 4;
        let results: mp::Queue<u32> = mp::Queue::new()?;
        let work: mp::Queue<Option<u32>> = mp::Queue::bounded(num_workers)?;

        // start the workers
        let pool = (0..num_workers)
            .map(|_| mp::Process::spawn(do_work, (work.clone(), results.clone())))
            .collect::<mp::Result<Vec<_>>>()?;
        println!("........");

        let iters = (1..=12).map(Some).chain(std::iter::repeat_n(None, num_workers));
        for item in iters {
            work.put(item)?;
            match item {
                Some(n) => println!("execute task: {n}"),
                None => println!("execute task: None"),
            }
        }
        println!(".....................");

        // wait until all child processes terminate
        let mut tasks_done = 0;
        for p in pool {
            tasks_done += p.join()?;
        }
        assert_eq!(tasks_done, 12, "every task was done exactly once");
        assert!(work.is_empty(), "every sentinel was taken");

        // Every result was put before its worker returned: all twelve are there.
        let collected: Vec<u32> = (0..12).map(|_| results.try_get()).collect::<mp::Result<_>>()?;
        assert!(matches!(results.try_get(), Err(mp::Error::Empty)), "and nothing else");
        println!("{collected:?}");
        let mut sorted = collected.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=12).collect::<Vec<_>>());
        Ok(())
    }
}
