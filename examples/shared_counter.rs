//! A counter shared by several processes, each adding to it under the
//! counter's own lock: Python's `Value('i', 0)` example.
//!
//! ```python
//! from multiprocessing import Process, Value
//!
//! def add(counter, n):
//!     for _ in range(n):
//!         with counter.get_lock():
//!             counter.value += 1
//!
//! if __name__ == "__main__":
//!     counter = Value('i', 0)
//!     procs = [Process(target=add, args=(counter, 10000)) for _ in range(4)]
//!     for p in procs: p.start()
//!     for p in procs: p.join()
//!     print(counter.value)      # 40000
//! ```

/// Adds 1 to the shared counter `n` times, taking its lock each time.
#[mp::job]
fn add(counter: mp::Value<i32>, n: u32) -> u32 {
    for _ in 0..n {
        *counter.lock().unwrap() += 1;
    }
    std::process::id()
}

mp::main! {
    fn main() -> mp::Result<()> {
        let counter = mp::Value::new(0i32)?;
        let procs = (0..4)
            .map(|_| mp::Process::spawn(add, (counter.clone(), 10_000)))
            .collect::<mp::Result<Vec<_>>>()?;
        for p in procs {
            let pid = p.join()?;
            assert_ne!(pid, std::process::id(), "the work ran in another process");
        }
        let total = counter.get()?;
        println!("counter = {total}");
        assert_eq!(total, 40_000, "every increment counted exactly once");

        // Without the lock a read-modify-write could lose increments; `get` and
        // `set` each take the lock once.
        counter.set(0)?;
        println!("after set(0): {}", counter.get()?);
        Ok(())
    }
}
