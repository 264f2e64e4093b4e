//! `multiprocessing.Pool`: `map` + `close`/`join`, then each of the pool's
//! methods once: `apply`, `apply_async`, `map`, `map_async`, `close`, `join`,
//! `terminate`.
//!
//! ```python
//! import multiprocessing as mp
//!
//! def job(a):
//!     print(a)
//!
//! if __name__ == '__main__':
//!     pool = mp.Pool(processes=8)
//!     res = pool.map(job, range(10))
//!     pool.close()
//!     pool.join()
//!     for r in res:       # res holds the functions' return values
//!         print(r)
//! ```
//!
//! ```python
//! pool = multiprocessing.Pool(processes=multiprocessing.cpu_count())
//! for i in range(100):
//!     pool.apply_async(func=pow, args=(i, 2))           # pool.apply(...) blocks instead
//! results = pool.map(func=print, iterable=range(10000))
//! results = pool.map_async(func=print, iterable=range(10000))
//! pool.close()            # no new tasks
//! pool.join()             # wait for the workers; call close() first
//! pool.terminate()        # stop the workers, drop unfinished tasks
//! ```

use std::time::Duration;

/// Prints its argument in a worker. Python's `job` returns `None`; this one
/// returns the argument, so the results can be printed and checked.
#[mp::job]
fn job(a: u32) -> u32 {
    println!("{a}");
    a
}

#[mp::job]
fn pow(x: u64, y: u32) -> u64 {
    x.pow(y)
}

#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

mp::main! {
    fn main() {
        // Pool(8).map(job, range(10)), close, join, then print the results.
        let pool = mp::Pool::new(8).unwrap();
        let res = pool.map(job, 0..10).unwrap();
        pool.close();
        pool.join().unwrap();
        for r in &res {
            println!("result {r}");
        }
        assert_eq!(res, (0..10).collect::<Vec<_>>());

        // Every method once, on a pool of cpu_count() workers.
        let pool = mp::Pool::new(mp::cpu_count()).unwrap();
        println!("a pool of {} workers", pool.processes());

        // apply: blocks until the result is there.
        let r = pool.apply(pow, (3, 2)).unwrap();
        assert_eq!(r, 9);
        println!("apply(pow, (3, 2)) = {r}");

        // apply_async: returns at once; get() waits.
        let pending: Vec<mp::AsyncResult<u64>> =
            (0..100).map(|i| pool.apply_async(pow, (i, 2))).collect();
        let powers: Vec<u64> = pending.into_iter().map(|a| a.get().unwrap()).collect();
        assert_eq!(powers, (0..100u64).map(|i| i * i).collect::<Vec<_>>());
        println!("apply_async(pow, (i, 2)) for i in 0..100: ..., {:?}", &powers[95..]);

        // map: blocks; results in input order.
        let squares = pool.map(square, 0..10_000).unwrap();
        assert_eq!(squares.len(), 10_000);
        assert_eq!(squares[9_999], 9_999 * 9_999);
        println!("map(square, 0..10000): {} results, last {}", squares.len(), squares[9_999]);

        // map_async: returns at once.
        let pending = pool.map_async(square, 0..10_000);
        println!("map_async(square, 0..10000) submitted, ready: {}", pending.ready());
        let squares_again = pending.get().unwrap();
        assert_eq!(squares_again, squares);
        println!("map_async(...).get(): {} results", squares_again.len());

        // close: no more tasks; join: wait for the workers to exit.
        pool.close();
        match pool.apply(square, (1,)) {
            Err(e @ mp::Error::Closed) => println!("apply after close(): {e}"),
            other => panic!("a closed pool refuses work, got {other:?}"),
        }
        pool.join().unwrap();
        assert!(mp::active_children().is_empty());
        println!("close() + join(): the workers have exited");

        // terminate: stop the workers now; unfinished tasks fail with Terminated.
        let pool = mp::Pool::new(1).unwrap();
        let slow = pool.apply_async(sleep_ms, (60_000,));
        let queued = pool.apply_async(sleep_ms, (1,));
        pool.terminate().unwrap();
        assert!(matches!(queued.get(), Err(mp::Error::Terminated)));
        match slow.get() {
            Err(e @ mp::Error::Terminated) => {
                println!("terminate(): the unfinished task fails: {e}")
            }
            other => panic!("terminate() fails unfinished tasks, got {other:?}"),
        }
        pool.join().unwrap();
    }
}
