//! A lock around a shared resource (the terminal): ten processes take turns.
//!
//! ```python
//! from multiprocessing import Process, Lock
//! import time
//!
//! def f(lock, i):
//!     lock.acquire()
//!     time.sleep(1)
//!     print('hello world ', i)
//!     lock.release()
//!
//! if __name__ == '__main__':
//!     lock = Lock()
//!     for num in range(10):
//!         Process(target=f, args=(lock, num)).start()
//! ```
//!
//! Here each process also records, under the lock, how many processes were
//! inside it at once; the lock must keep that at one.

use std::io::Write;
use std::time::Duration;

#[mp::job]
fn f(lock: mp::Lock, inside: mp::Value<u32>, most: mp::Value<u32>, i: u32) {
    let _guard = lock.lock().expect("lock");
    let now = {
        let mut n = inside.lock().expect("value lock");
        *n += 1;
        *n
    };
    {
        let mut m = most.lock().expect("value lock");
        *m = (*m).max(now);
    }
    std::thread::sleep(Duration::from_millis(20));
    // One write per line, so lines of different processes never mix.
    let _ = std::io::stdout().write_all(format!("hello world  {i}\n").as_bytes());
    *inside.lock().expect("value lock") -= 1;
}

mp::main! {
    fn main() -> mp::Result<()> {
        let lock = mp::Lock::new()?;
        let inside = mp::Value::new(0u32)?;
        let most = mp::Value::new(0u32)?;
        let processes = (0..10)
            .map(|num| mp::Process::spawn(f, (lock.clone(), inside.clone(), most.clone(), num)))
            .collect::<mp::Result<Vec<_>>>()?;
        for p in processes {
            p.join()?;
        }
        assert_eq!(most.get()?, 1, "two processes held the lock at once");
        println!("at most {} process held the lock at a time", most.get()?);
        Ok(())
    }
}
