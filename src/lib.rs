//! # mp: Python's `multiprocessing`, done right in Rust
//!
//! Run functions in separate processes: for CPU-bound parallelism with crash
//! isolation, for code that is not thread-safe, for memory that must go back to
//! the OS, or to fence off a flaky native library. Mark a function with
//! [`#[mp::job]`](macro@job), then hand it to a [`Pool`] or a [`Process`].
//!
//! ```
//! #[mp::job]
//! fn square(x: u64) -> u64 { x * x }
//!
//! # fn main() -> mp::Result<()> {
//! let squares: Vec<u64> = mp::pool(2).map(square, 0..10)?;
//! assert_eq!(squares, vec![0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//! # Ok(()) }
//! ```
//!
//! Workers are started by re-executing the current binary ("spawn" mode, the only
//! start method that is correct on every platform). A small hook that runs before
//! `main` turns the re-executed binary into a worker, so pools work in programs,
//! examples, unit and integration tests and doctests with no setup at all.
//!
//! ## Jobs
//!
//! `#[mp::job]` goes on a free, non-generic, non-async function of up to 12
//! arguments whose arguments and return value are owned serde types. The function
//! stays an ordinary function (`square(3)` still works), and is registered under a
//! stable name, `module::path::fn_name`. Anything else, such as a closure, is
//! refused with [`Error::NotAJob`] before any work is sent:
//!
//! ```
//! fn not_a_job(x: u64) -> u64 { x }
//!
//! let pool = mp::Pool::new(1)?;
//! assert!(matches!(pool.apply(not_a_job, (1,)), Err(mp::Error::NotAJob { .. })));
//! # Ok::<(), mp::Error>(())
//! ```
//!
//! ## The entry guard
//!
//! Python needs `if __name__ == "__main__":`. mp catches workers before `main`
//! runs, so the guard is not needed for correctness; [`main!`] adds Python's exit
//! semantics (daemon children are terminated, the others joined, when `main`
//! returns):
//!
//! ```no_run
//! #[mp::job]
//! fn greet(name: String) {
//!     println!("hello {name} from {}", mp::current_process().name());
//! }
//!
//! mp::main! {
//!     fn main() -> Result<(), mp::Error> {
//!         mp::Process::spawn(greet, ("ann".to_string(),))?;
//!         Ok(()) // the process is joined here
//!     }
//! }
//! ```
//!
//! [`#[mp::entry]`](macro@entry) is the same guard as an attribute, and [`init()`]
//! the same as a plain call for a `main` that belongs to something else.
//!
//! ## Processes
//!
//! ```
//! # #[mp::job] fn square(x: u64) -> u64 { x * x }
//! let p = mp::Process::builder().name("worker-1").spawn(square, (7,))?;
//! assert_eq!(p.name(), "worker-1");
//! assert_eq!(p.join()?, 49);                // the job's return value
//! # Ok::<(), mp::Error>(())
//! ```
//!
//! ## Failures are errors, never hangs
//!
//! A job that panics fails only its own task with [`Error::JobPanicked`] (the
//! panic message inside); a worker that dies mid-task (abort, segfault, `kill -9`)
//! fails the task it held with [`Error::WorkerDied`], is replaced, and the pool
//! goes on. A worker whose parent dies, however it dies, exits at once: no orphans.
//!
//! ```
//! #[mp::job]
//! fn fragile(x: u32) -> u32 { if x == 3 { panic!("three is bad") } x }
//!
//! let pool = mp::Pool::new(2)?;
//! let err = pool.map(fragile, 0..5).unwrap_err();
//! assert!(err.to_string().contains("three is bad"));
//! assert_eq!(pool.map(fragile, 0..3)?, vec![0, 1, 2]);   // still usable
//! # Ok::<(), mp::Error>(())
//! ```
//!
//! ## From Python to mp
//!
//! | Python `multiprocessing` | mp |
//! |---|---|
//! | `def f(x): ...` | `#[mp::job] fn f(x: T) -> R { ... }` |
//! | `if __name__ == "__main__":` | `mp::main! { fn main() { ... } }` (or nothing: workers never run `main`) |
//! | `Process(target=f, args=(1,)).start()` | `mp::Process::spawn(f, (1,))?` |
//! | `Process(name="w", daemon=True)` | `mp::Process::builder().name("w").daemon(true).spawn(f, args)?` |
//! | `p.join()` | `p.join()?` (returns `f`'s value) / `p.join_timeout(d)?` |
//! | `p.is_alive()`, `p.exitcode`, `p.pid`, `p.name` | `p.is_alive()`, `p.exitcode()`, `p.pid()`, `p.name()` |
//! | `p.terminate()`, `p.kill()` | `p.terminate()?`, `p.kill()?` |
//! | `current_process().name`, `parent_process()`, `os.getppid()` | `mp::current_process().name()`, `mp::parent_process()` |
//! | `active_children()`, `cpu_count()` | `mp::active_children()`, `mp::cpu_count()` |
//! | `Pool(4)` | `mp::pool(4)` / `mp::Pool::new(4)?` |
//! | `Pool(4, initializer=g, initargs=(a,), maxtasksperchild=100)` | `mp::Pool::builder().processes(4).initializer(g, (a,)).max_tasks_per_child(100).build()?` |
//! | `pool.map(f, xs)`, `pool.map(f, xs, chunksize)` | `pool.map(f, xs)?`, `pool.map_chunked(f, xs, n)?` |
//! | `pool.starmap(f, [(a, b)])` | `pool.starmap(f, vec![(a, b)])?` |
//! | `pool.apply(f, (a,))` | `pool.apply(f, (a,))?` |
//! | `pool.apply_async(f, (a,), callback=cb)` | `pool.apply_async(f, (a,)).then(cb)` |
//! | `r = pool.map_async(f, xs); r.get(timeout)` | `let r = pool.map_async(f, xs); r.get_timeout(d)?` |
//! | `r.ready()`, `r.wait(t)` | `r.ready()`, `r.wait_timeout(t)` |
//! | `pool.imap(f, xs)`, `pool.imap_unordered(f, xs)` | `pool.imap(f, xs)`, `pool.imap_unordered(f, xs)` (iterators of `Result`) |
//! | `pool.close(); pool.join()` | `pool.close(); pool.join()?` (or just drop the pool) |
//! | `pool.terminate()` | `pool.terminate()?` |
//! | an exception in a worker | `Err(mp::Error::JobPanicked { .. })` |
//! | a worker killed: `Pool` hangs forever | `Err(mp::Error::WorkerDied { .. })`, the pool goes on |
//!
//! ## Platform support
//!
//! | platform | status |
//! |---|---|
//! | Linux (x86_64, aarch64) | complete: socketpair channels, `PR_SET_PDEATHSIG` and a lifeline pipe against orphans |
//! | macOS (x86_64, aarch64) | builds; the same POSIX mechanisms without `PR_SET_PDEATHSIG` (the lifeline pipe guards against orphans) |
//! | Windows (x86_64) | builds; worker processes are not supported yet and say so with a clear error |
//!
//! `docs/platforms.md` in the repository details each mechanism per platform.
//!
//! ## Limitations
//!
//! - Jobs are free functions; closures cannot cross a process boundary.
//! - Arguments and results are serialized (postcard). Big byte buffers are
//!   cheapest as `serde_bytes` types; one message is at most
//!   [`max_frame_size`] bytes (1 GiB by default, `MP_MAX_FRAME_SIZE`).
//! - With `panic = "abort"` a panicking job kills its worker: the task fails with
//!   `WorkerDied` instead of `JobPanicked`.
//! - Worker stdout and stderr are the parent's. Lines printed by several workers
//!   at once can interleave; Rust's `eprintln!` may even split one line into
//!   pieces, so write a whole line with one `write_all` when that matters.
//! - A worker runs the binary's code that runs before `main` (static constructors)
//!   again; keep such code free of side effects.
//! - `#[mp::main]` cannot exist beside `mp::main!` in stable Rust (a name cannot be
//!   both an attribute and a function-like macro); the attribute is
//!   [`#[mp::entry]`](macro@entry).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[doc(inline)]
pub use mp_runtime::*;

/// Makes a free function runnable in another process.
///
/// ```
/// #[mp::job]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// assert_eq!(add(1, 2), 3);                                  // still a plain fn
/// assert_eq!(mp::Pool::new(1)?.apply(add, (1, 2))?, 3);      // and a job
/// # Ok::<(), mp::Error>(())
/// ```
///
/// Options: `#[mp::job(crate = "path::to::mp")]` when `mp` is re-exported under
/// another path.
#[doc(inline)]
pub use mp_macros::job;

/// The entry guard around `fn main`, like Python's `if __name__ == "__main__":`.
///
/// A worker never runs the body; in the program, when `main` returns, daemon
/// children are terminated and the others joined. Works with `fn main()` and
/// `fn main() -> Result<(), E>`.
#[doc(inline)]
pub use mp_macros::main;

/// [`main!`] as an attribute: `#[mp::entry] fn main() { .. }`.
#[doc(inline)]
pub use mp_macros::entry;

/// Derives [`Pod`](trait@Pod) for a `#[repr(C)]` struct whose fields are all `Pod`,
/// so it can live in a [`Value`] or an [`Array`] shared between processes.
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq, mp::Pod)]
/// #[repr(C)]
/// struct Stats {
///     count: u64,
///     mean: f64,
///     last: [i32; 4],
/// }
///
/// #[mp::job]
/// fn record(stats: mp::Value<Stats>, x: i32) {
///     let mut s = stats.lock().unwrap();
///     s.mean = (s.mean * s.count as f64 + x as f64) / (s.count + 1) as f64;
///     s.count += 1;
///     s.last = [s.last[1], s.last[2], s.last[3], x];
/// }
///
/// let stats = mp::Value::new(Stats { count: 0, mean: 0.0, last: [0; 4] })?;
/// mp::Process::spawn(record, (stats.clone(), 4))?.join()?;
/// mp::Process::spawn(record, (stats.clone(), 8))?.join()?;
/// assert_eq!(stats.get()?, Stats { count: 2, mean: 6.0, last: [0, 0, 4, 8] });
/// # Ok::<(), mp::Error>(())
/// ```
///
/// A field that is not `Pod` (a reference, `Box`, `Vec`, `String`, ...) is a
/// compile error naming the field, as is a struct without `#[repr(C)]` (or
/// `#[repr(transparent)]`), an enum or a union. `#[mp(crate = "path::to::mp")]`
/// sets the path of `mp` in the generated code.
#[doc(inline)]
pub use mp_macros::Pod;

// Lets this crate's own unit tests use `#[mp::job]`, whose expansion names `::mp`.
#[cfg(test)]
extern crate self as mp;

#[cfg(test)]
mod tests {
    #[crate::job]
    fn double(x: u32) -> u32 {
        x * 2
    }

    /// Pools and processes work in unit tests with no setup: the test harness
    /// re-executed as a worker never runs its tests.
    #[test]
    fn pools_and_processes_work_in_unit_tests() {
        let pool = crate::Pool::new(2).unwrap();
        assert_eq!(pool.map(double, 0..5u32).unwrap(), vec![0, 2, 4, 6, 8]);
        let p = crate::Process::spawn(double, (21,)).unwrap();
        assert_ne!(p.pid(), std::process::id());
        assert_eq!(p.join().unwrap(), 42);
    }
}
