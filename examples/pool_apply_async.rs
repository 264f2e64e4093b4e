//! `Pool.apply_async`: many tasks on a few workers, then `close` + `join`; and
//! `apply_async(..., callback=...)`, a function run in the parent with each result.
//!
//! ```python
//! from multiprocessing import Pool
//! import time
//!
//! def func(args):
//!     time.sleep(1)
//!     print("running task ", args)
//!
//! if __name__ == '__main__':
//!     p = Pool(5)
//!     for i in range(30):
//!         p.apply_async(func=func, args=(i,))
//!     p.close()       # no more tasks; the workers finish the queued ones
//!     p.join()        # wait for them
//! ```
//!
//! ```python
//! def Foo(i):
//!     time.sleep(1)
//!     print(i)
//!     return "HELLO %s" % i
//!
//! def Bar(arg):       # runs in the parent with Foo's return value
//!     print(arg)
//!     print("hello")
//!
//! if __name__ == '__main__':
//!     pool = Pool(5)
//!     for i in range(100):
//!         pool.apply_async(func=Foo, args=(i,), callback=Bar)
//!     pool.close()
//!     pool.join()
//! ```
//!
//! The sleeps are shortened so the example finishes quickly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[mp::job]
fn func(args: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(50));
    println!("running task {args} in {}", mp::current_process().name());
    args
}

#[mp::job]
fn foo(i: u32) -> String {
    std::thread::sleep(Duration::from_millis(10));
    println!("{i}");
    format!("HELLO {i}")
}

/// The callback: runs in this (the parent) process, on the pool's result thread.
fn bar(arg: &str) {
    // One `print!`, so the two lines of one callback stay together.
    print!("{arg}\nhello\n");
}

mp::main! {
    fn main() {
        // Pool(5) and 30 apply_async tasks; close + join waits for all of them.
        let p = mp::Pool::new(5).unwrap();
        let pending: Vec<mp::AsyncResult<u32>> =
            (0..30).map(|i| p.apply_async(func, (i,))).collect();
        p.close();
        p.join().unwrap();
        // After join every task has finished.
        assert!(pending.iter().all(|a| a.ready()));
        let done: Vec<u32> = pending.into_iter().map(|a| a.get().unwrap()).collect();
        assert_eq!(done, (0..30).collect::<Vec<_>>());
        println!("all 30 tasks finished");

        // Pool(5) and 100 tasks whose results go to a callback.
        let pool = mp::Pool::new(5).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let seen = Arc::clone(&seen);
            pool.apply_async(foo, (i,)).then(move |r: mp::Result<String>| {
                let arg = r.unwrap();
                bar(&arg);
                seen.lock().unwrap().push(arg);
            });
        }
        pool.close();
        pool.join().unwrap();

        // Every callback has run by the time join returns.
        let mut seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 100);
        seen.sort_by_key(|s| s["HELLO ".len()..].parse::<u32>().unwrap());
        let expected: Vec<String> = (0..100).map(|i| format!("HELLO {i}")).collect();
        assert_eq!(seen, expected);
        println!("all 100 callbacks ran");
    }
}
