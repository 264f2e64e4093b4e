//! Printing from workers: a worker's stdout and stderr are the parent's.
//!
//! ```python
//! import sys
//! from multiprocessing import Pool, Process
//!
//! def report(i):
//!     print("stdout of task", i)
//!     print("stderr of task", i, file=sys.stderr)
//!     return i
//!
//! if __name__ == '__main__':
//!     p = Process(target=report, args=(0,)); p.start(); p.join()
//!     with Pool(2) as pool:
//!         print(pool.map(report, range(1, 5)))
//! ```
//!
//! Each worker writes straight to the stdout and stderr it inherited from the
//! parent (nothing is relayed through the parent). A worker flushes its stdout
//! when each task ends, before the result is sent back, so what a job prints
//! always comes before what the parent prints after receiving its result, and
//! a `print!` without a newline is not left behind in a buffer.

use std::io::Write;

#[mp::job]
fn report(i: u32) -> u32 {
    let me = mp::current_process();
    println!("stdout of task {i} from {} (pid {})", me.name(), me.pid());
    // Rust's stderr is unbuffered: `eprintln!` writes each piece of the line
    // separately, and the pieces of processes writing at the same moment can
    // interleave. Writing the whole line at once keeps it in one piece.
    let line = format!("stderr of task {i} from {}\n", me.name());
    std::io::stderr().write_all(line.as_bytes()).unwrap();
    i
}

#[mp::job]
fn partial_line(text: String) -> usize {
    print!("{text}");
    text.len()
}

#[mp::job]
fn fails(i: u32) -> u32 {
    panic!("task {i} failed")
}

mp::main! {
    fn main() {
        println!("parent is {} (pid {})", mp::current_process().name(), std::process::id());

        // A process of its own.
        let p = mp::Process::spawn(report, (0,)).unwrap();
        assert_eq!(p.join().unwrap(), 0);
        println!("process joined: its lines are above");

        // Pool workers, several at once; each line arrives whole.
        let pool = mp::Pool::new(2).unwrap();
        let results = pool.map_chunked(report, 1..5, 1).unwrap();
        assert_eq!(results, vec![1, 2, 3, 4]);
        println!("map results {results:?}: the workers' lines are above");

        // A line without its newline is flushed when the task ends.
        let text = "a worker began this line; ".to_string();
        let n = pool.apply(partial_line, (text.clone(),)).unwrap();
        assert_eq!(n, text.len());
        println!("the parent ended it");

        // A job's panic is not printed by the worker: it comes back as an error.
        match pool.apply(fails, (7,)) {
            Err(e @ mp::Error::JobPanicked { .. }) => {
                assert!(e.to_string().contains("task 7 failed"), "{e}");
                println!("the panic came back as an error: {e}");
            }
            other => panic!("a panicking job gives JobPanicked, got {other:?}"),
        }
    }
}
