//! CPU-bound work on every core: `Pool(cpu_count()).apply_async` of eight
//! independent tasks, timed against running them one after another.
//!
//! ```python
//! def train_on_parameter(name, param):
//!     result = 0
//!     for num in param:
//!         result += math.sqrt(num * math.tanh(num) / math.log2(num) / math.log10(num))
//!     return {name: result}
//!
//! if __name__ == '__main__':
//!     num_cores = int(mp.cpu_count())
//!     print("This computer has: " + str(num_cores) + " cores")
//!     pool = mp.Pool(num_cores)
//!     param_dict = {'task1': list(range(10, 30000000)),
//!                   'task2': list(range(30000000, 60000000)),
//!                   ...
//!                   'task8': list(range(210000000, 240000000))}
//!     results = [pool.apply_async(train_on_parameter, args=(name, param))
//!                for name, param in param_dict.items()]
//!     results = [p.get() for p in results]
//! ```
//!
//! Usage: `cargo run --release --example cpu_speedup [PER_TASK]`, where
//! `PER_TASK` is the size of each task's range (default 4,000,000; the Python
//! original uses 30,000,000). The pooled sums must equal the sequential ones
//! bit for bit: the same code sums the same numbers in the same order.

use std::ops::Range;
use std::time::Instant;

const TASKS: u64 = 8;
const DEFAULT_PER_TASK: u64 = 4_000_000;

/// One task: a sum over `param`, returned with the task's name.
#[mp::job]
fn train_on_parameter(name: String, param: Range<u64>) -> (String, f64) {
    let mut result = 0.0;
    for num in param {
        let num = num as f64;
        result += (num * num.tanh() / num.log2() / num.log10()).sqrt();
    }
    (name, result)
}

/// `task1: 10..N`, `task2: N..2N`, ... `task8: 7N..8N`, as in the original.
fn param_dict(per_task: u64) -> Vec<(String, Range<u64>)> {
    (0..TASKS)
        .map(|k| {
            let start = if k == 0 { 10 } else { k * per_task };
            (format!("task{}", k + 1), start..(k + 1) * per_task)
        })
        .collect()
}

mp::main! {
    fn main() {
        let per_task: u64 = match std::env::args().nth(1) {
            Some(arg) => arg
                .replace('_', "")
                .parse()
                .expect("the argument is the size of each task's range, e.g. 30000000"),
            None => DEFAULT_PER_TASK,
        };
        assert!(per_task > 10, "each task's range needs more than 10 numbers");
        let params = param_dict(per_task);

        let num_cores = mp::cpu_count();
        println!("This computer has: {num_cores} cores");
        println!("{TASKS} tasks of {per_task} numbers each");

        // One after another, in this process.
        let start = Instant::now();
        let sequential: Vec<(String, f64)> = params
            .iter()
            .map(|(name, param)| train_on_parameter(name.clone(), param.clone()))
            .collect();
        let sequential_secs = start.elapsed().as_secs_f64();
        println!("sequential: {sequential_secs:.2} s");

        // All at once, in a pool of one worker per core (its start-up included).
        let start = Instant::now();
        let pool = mp::Pool::new(num_cores).unwrap();
        let pending: Vec<mp::AsyncResult<(String, f64)>> = params
            .into_iter()
            .map(|(name, param)| pool.apply_async(train_on_parameter, (name, param)))
            .collect();
        let pooled: Vec<(String, f64)> = pending.into_iter().map(|p| p.get().unwrap()).collect();
        let pooled_secs = start.elapsed().as_secs_f64();
        println!("pool of {num_cores}: {pooled_secs:.2} s");

        for ((name, seq), (pooled_name, par)) in sequential.iter().zip(&pooled) {
            println!("  {name}: {par}");
            assert_eq!(name, pooled_name);
            assert_eq!(
                seq.to_bits(),
                par.to_bits(),
                "{name}: {seq} sequentially, {par} in the pool"
            );
        }
        println!("speedup: {:.2}x", sequential_secs / pooled_secs);
    }
}
