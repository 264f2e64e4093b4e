//! A pool's workers store their results in a managed dict, under a managed lock.
//!
//! From the posts: each task computes a sum over a range and writes it to a
//! shared dict instead of returning it; the parent prints the dict.
//!
//! ```python
//! import math, datetime
//! import multiprocessing as mp
//!
//! def train_on_parameter(name, param, result_dict, result_lock):
//!     result = 0
//!     for num in param:
//!         result += math.sqrt(num * math.tanh(num) / math.log2(num) / math.log10(num))
//!     with result_lock:
//!         result_dict[name] = result
//!     return
//!
//! if __name__ == '__main__':
//!     start_t = datetime.datetime.now()
//!     num_cores = int(mp.cpu_count())
//!     pool = mp.Pool(num_cores)
//!     param_dict = {'task1': list(range(10, 30000000)),
//!                   'task2': list(range(30000000, 60000000)),
//!                   ...
//!                   'task8': list(range(210000000, 240000000))}
//!     manager = mp.Manager()
//!     managed_locker = manager.Lock()
//!     managed_dict = manager.dict()
//!     results = [pool.apply_async(train_on_parameter,
//!                                 args=(name, param, managed_dict, managed_locker))
//!                for name, param in param_dict.items()]
//!     results = [p.get() for p in results]
//!     print(managed_dict)
//!     elapsed_sec = (datetime.datetime.now() - start_t).total_seconds()
//!     print("took {:.2f} s".format(elapsed_sec))
//! ```
//!
//! The ranges here are 100 times shorter, so that the example ends in a
//! moment, and travel as `(start, end)` rather than as lists.

use std::time::Instant;

#[mp::job]
fn train_on_parameter(
    name: String,
    param: (u64, u64),
    result_dict: mp::DictProxy<String, f64>,
    result_lock: mp::LockProxy,
) {
    let mut result = 0.0;
    for num in param.0..param.1 {
        let num = num as f64;
        result += (num * num.tanh() / num.log2() / num.log10()).sqrt();
    }
    let _guard = result_lock.lock().unwrap();
    result_dict.insert(name, result).unwrap();
}

mp::main! {
    fn main() {
        let start = Instant::now();
        let num_cores = mp::cpu_count();
        println!("this computer has {num_cores} cores");
        let pool = mp::Pool::new(num_cores).unwrap();
        let param_dict: Vec<(String, (u64, u64))> = (0..8u64)
            .map(|i| {
                let from = if i == 0 { 10 } else { i * 300_000 };
                (format!("task{}", i + 1), (from, (i + 1) * 300_000))
            })
            .collect();
        let manager = mp::Manager::start().unwrap();
        let managed_locker = manager.lock().unwrap();
        let managed_dict: mp::DictProxy<String, f64> = manager.dict().unwrap();
        let results: Vec<mp::AsyncResult<()>> = param_dict
            .iter()
            .map(|(name, param)| {
                pool.apply_async(
                    train_on_parameter,
                    (name.clone(), *param, managed_dict.clone(), managed_locker.clone()),
                )
            })
            .collect();
        for r in results {
            r.get().unwrap();
        }
        let mut items = managed_dict.items().unwrap();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, result) in &items {
            println!("{name}: {result:.3}");
        }
        assert_eq!(items.len(), 8);
        assert!(items.iter().all(|(_, r)| r.is_finite() && *r > 0.0));
        println!("took {:.2} s", start.elapsed().as_secs_f64());
    }
}
