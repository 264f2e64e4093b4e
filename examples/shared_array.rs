//! `Value` and `Array` changed by child processes: the example of Python's
//! documentation, and the "say hi" example of an `Array` guarded by an `RLock`.
//!
//! ```python
//! from multiprocessing import Process, Value, Array
//!
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! if __name__ == '__main__':
//!     num = Value('d', 0.0)
//!     arr = Array('i', range(10))
//!     p = Process(target=f, args=(num, arr))
//!     p.start()
//!     p.join()
//!     print(num.value)          # 3.1415927
//!     print(arr[:])             # [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//! ```
//!
//! ```python
//! def func(i, lis, lc):
//!     lc.acquire()
//!     lis[0] = lis[0] - 1
//!     time.sleep(1)
//!     print('say hi', lis[0])
//!     lc.release()
//!
//! if __name__ == "__main__":
//!     array = Array('i', 1)
//!     array[0] = 10
//!     lock = RLock()
//!     for i in range(10):
//!         Process(target=func, args=(i, array, lock)).start()
//! ```

use std::time::Duration;

/// The value Python's example stores (not `f64::consts::PI`, on purpose).
#[allow(clippy::approx_constant)]
const ALMOST_PI: f64 = 3.1415927;

#[mp::job]
fn f(n: mp::Value<f64>, a: mp::Array<i32>) {
    n.set(ALMOST_PI).unwrap();
    for x in a.lock().unwrap().iter_mut() {
        *x = -*x;
    }
}

/// Takes the shared `RLock`, decrements `lis[0]`, and says hi while holding it.
#[mp::job]
fn func(i: u32, lis: mp::Array<i32>, lc: mp::RLock) -> i32 {
    let _held = lc.lock().unwrap();
    let value = lis.get(0).unwrap() - 1;
    lis.set(0, value).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The RLock is re-entrant: taking it again in the same thread is fine.
    let _again = lc.lock().unwrap();
    println!("say hi {value} (process {i})");
    value
}

mp::main! {
    fn main() -> mp::Result<()> {
        let num = mp::Value::new(0.0f64)?;
        let arr = mp::Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
        mp::Process::spawn(f, (num.clone(), arr.clone()))?.join()?;
        let (n, a) = (num.get()?, arr.to_vec()?);
        println!("{n}");
        println!("{a:?}");
        assert_eq!(n, ALMOST_PI);
        assert_eq!(a, vec![0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);

        let array = mp::Array::<i32>::new(1)?;
        array.set(0, 10)?;
        let lock = mp::RLock::new()?;
        let procs = (0..10)
            .map(|i| mp::Process::spawn(func, (i, array.clone(), lock.clone())))
            .collect::<mp::Result<Vec<_>>>()?;
        let mut said = procs
            .into_iter()
            .map(|p| p.join())
            .collect::<mp::Result<Vec<i32>>>()?;
        said.sort();
        // Each process saw a different value: the lock made the decrements atomic.
        assert_eq!(said, (0..10).collect::<Vec<i32>>());
        assert_eq!(array.get(0)?, 0);
        println!("array[0] = {}", array.get(0)?);
        Ok(())
    }
}
