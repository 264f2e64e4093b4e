//! A short tour of mp: `Pool.map`, `Pool.apply`, `Pool.imap` and `Process`,
//! the Rust take on Python's
//!
//! ```python
//! from multiprocessing import Pool, Process, current_process
//!
//! def square(x): return x * x
//! def add(a, b): return a + b
//! def greet(name): print("hello", name, "from", current_process().name)
//!
//! if __name__ == "__main__":
//!     with Pool(8) as pool:
//!         print(pool.map(square, range(10)))
//!         print(pool.apply(add, (1, 2)))
//!         for r in pool.imap(square, range(5)): print(r)
//!     p = Process(target=greet, args=("ann",)); p.start(); p.join()
//! ```
//!
//! Run it with `cargo run --release --example quickstart`.

/// Runs in a worker process; still an ordinary function in this one.
#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mp::job]
fn greet(name: String) -> String {
    let me = mp::current_process();
    println!("hello {name} from {} (pid {})", me.name(), me.pid());
    format!("greeted {name}")
}

mp::main! {
    fn main() {
        // Pool.map: ordered results, one call per item, spread over 8 workers.
        let squares: Vec<u64> = mp::pool(8).map(square, 0..10).unwrap();
        assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
        println!("map(square, 0..10) = {squares:?}");

        let pool = mp::Pool::new(2).expect("start a pool of 2 workers");

        // Pool.apply: one call, waited for.
        let sum: i64 = pool.apply(add, (1, 2)).unwrap();
        assert_eq!(sum, 3);
        println!("apply(add, (1, 2)) = {sum}");

        // Pool.imap: a lazy iterator of results, in input order.
        let mut lazy = Vec::new();
        for r in pool.imap(square, (0..5u64).map(|x| x * 10)) {
            let r: u64 = r.unwrap();
            println!("imap -> {r}");
            lazy.push(r);
        }
        assert_eq!(lazy, vec![0, 100, 400, 900, 1600]);

        // Process: one job in a process of its own; join returns its value.
        let p = mp::Process::spawn(greet, ("ann".to_string(),)).unwrap();
        println!("started {} with pid {}", p.name(), p.pid());
        assert_ne!(p.pid(), std::process::id());
        let greeting = p.join().unwrap();
        assert_eq!(greeting, "greeted ann");
        println!("join() = {greeting:?}");

        // The jobs are still plain functions here.
        assert_eq!(square(12), 144);
        println!("done");
    }
}
