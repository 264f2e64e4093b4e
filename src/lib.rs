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
//! ## Queues, pipes and shared state
//!
//! [`Queue`], [`JoinableQueue`], [`SimpleQueue`] and [`pipe`] carry messages
//! between processes. [`Value`], [`Array`], [`SharedMemory`], [`Lock`],
//! [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`] and
//! [`Barrier`] share state through shared memory, with no server process; a
//! [`Manager`] keeps objects in a server process, reachable by address. Each of
//! them is a value: clone it, and pass it to a job as an argument of
//! `Process::spawn`, of a pool initializer, or of an ordinary pool task (Python
//! refuses that), also inside tuples, `Vec`s and your own structs. The OS handle
//! inside travels with the value; `docs/handles.md` in the repository says how.
//!
//! ```
//! #[mp::job]
//! fn square_all(tasks: mp::Queue<Option<u32>>, results: mp::Queue<u32>) {
//!     while let Some(n) = tasks.get().unwrap() {   // until the `None` sentinel
//!         results.put(n * n).unwrap();
//!     }
//! }
//!
//! let tasks = mp::Queue::bounded(2)?;                // put waits while it is full
//! let results = mp::Queue::new()?;
//! let p = mp::Process::spawn(square_all, (tasks.clone(), results.clone()))?;
//! for n in [1, 2, 3] {
//!     tasks.put(Some(n))?;
//! }
//! tasks.put(None)?;
//! p.join()?;
//! assert_eq!([results.get()?, results.get()?, results.get()?], [1, 4, 9]);
//! assert!(results.is_empty());
//! # Ok::<(), mp::Error>(())
//! ```
//!
//! A queue holds encoded items in shared memory, so handles cannot travel
//! *through* a queue (`put` says so with a `Codec` error); send them through a
//! [`Connection`] or as job arguments. A lock whose holder died is not a
//! deadlock: the next guard's `holder_died()` reports it. Shared memory is freed
//! when the last process using it exits, however it exits.
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
//! | `Queue()`, `Queue(maxsize)` | `mp::Queue::new()?`, `mp::Queue::bounded(maxsize)?` (pass it to jobs like any argument) |
//! | `q.put(x)`, `q.get()` | `q.put(x)?`, `q.get()?` |
//! | `q.put(x, timeout=t)`, `q.get(timeout=t)` | `q.put_timeout(x, t)?`, `q.get_timeout(t)?` (`Err(mp::Error::Full)` / `Err(mp::Error::Empty)`) |
//! | `q.put_nowait(x)`, `q.get_nowait()` | `q.try_put(x)?`, `q.try_get()?` |
//! | `q.qsize()`, `q.empty()`, `q.full()` | `q.len()`, `q.is_empty()`, `q.is_full()` |
//! | `q.close()` | `q.close()` (for every process: `get` drains, then `Err(mp::Error::Closed)`) |
//! | `JoinableQueue()`, `q.task_done()`, `q.join()` | `mp::JoinableQueue::new()?`, `q.task_done()?`, `q.join()?` |
//! | `SimpleQueue()` | `mp::SimpleQueue::new()?` (`put`, `get`, `is_empty`, `close`) |
//! | `a, b = Pipe()` | `let (a, b) = mp::pipe::<T>()?;` (duplex) |
//! | `c.send(x)`, `c.recv()`, `c.poll(t)` | `c.send(&x)?`, `c.recv()?`, `c.poll(Some(t))?` (`None`: do not wait) |
//! | `c.send_bytes(b)`, `c.recv_bytes()`, `c.close()` | `c.send_bytes(&b)?`, `c.recv_bytes()?`, `drop(c)` |
//! | `c.recv()` with the peer gone: `EOFError`, or a hang | `Err(mp::Error::Disconnected)` |
//! | `Value('i', 0)`, `v.value` | `mp::Value::new(0i32)?`, `v.get()?` / `v.set(x)?` |
//! | `with v.get_lock(): v.value += 1` | `*v.lock()? += 1;` |
//! | `Array('i', 10)`, `Array('i', range(10))` | `mp::Array::<i32>::new(10)?`, `mp::Array::from_slice(&(0..10).collect::<Vec<i32>>())?` |
//! | `a[i] = x`, `a[i]`, `a[:]` | `a.set(i, x)?` (or `a.lock()?[i] = x`), `a.get(i)?`, `a.to_vec()?` |
//! | `SharedMemory(create=True, size=n)`, `SharedMemory(name)` | `mp::SharedMemory::create(n)?`, `mp::SharedMemory::open(name)?` |
//! | `shm.buf[i:j] = data`, `bytes(shm.buf[i:j])`, `shm.unlink()` | `shm.write(i, &data)?`, `shm.read(i, j - i)?`, nothing (freed with its last user) |
//! | `Lock()`, `with lock:` | `mp::Lock::new()?`, `let _g = lock.lock()?;` |
//! | `lock.acquire(False)`, `lock.acquire(timeout=t)` | `lock.try_lock()?`, `lock.lock_timeout(t)?` (`Option` of a guard) |
//! | `RLock()` | `mp::RLock::new()?` |
//! | `Semaphore(n)`, `BoundedSemaphore(n)` | `mp::Semaphore::new(n)?`, `mp::BoundedSemaphore::new(n)?` (`acquire`, `try_acquire`, `acquire_timeout`, `release`, `value`) |
//! | `Event()`, `e.set()`, `e.clear()`, `e.is_set()`, `e.wait(t)` | `mp::Event::new()?`, `e.set()?`, `e.clear()?`, `e.is_set()`, `e.wait()?` / `e.wait_timeout(t)?` |
//! | `Condition()`, `with c: c.wait()`, `c.wait_for(pred)`, `c.notify()`, `c.notify_all()` | `mp::Condition::new()?`, `let g = c.wait(c.lock()?)?;`, `c.wait_while(g, pred)?`, `c.notify_one()`, `c.notify_all()` |
//! | `Barrier(n)`, `b.wait()`, `b.abort()`, `b.reset()` | `mp::Barrier::new(n)?`, `b.wait()?`, `b.abort()`, `b.reset()` |
//! | `Manager()` | `mp::Manager::start()?` (dropping it stops the server) |
//! | `m.dict()`, `m.list()`, `m.Namespace()` | `m.dict::<K, V>()?`, `m.list::<T>()?`, `m.namespace()?` |
//! | `m.Queue()`, `m.Lock()`, `m.Value('i', 0)` | `m.queue::<T>()?`, `m.lock()?`, `m.value(0i32)?` |
//! | `BaseManager(address, authkey)`, serve / connect | `mp::Manager::serve(address, authkey)?` / `mp::Manager::connect(address, authkey)?` |
//! | a process dies holding a `Lock`: the others wait forever | the next `lock()` succeeds; `guard.holder_died()` is `true` |
//! | a `Queue` passed to a pool task: `RuntimeError` | works, also inside tuples, `Vec`s and your structs |
//! | shared memory leaks in `/dev/shm` when a process is killed | freed when the last process using it exits, even after `kill -9` |
//!
//! ## Platform support
//!
//! | platform | status |
//! |---|---|
//! | Linux (x86_64, aarch64) | complete: socketpair channels, `PR_SET_PDEATHSIG` and a lifeline pipe against orphans |
//! | macOS (x86_64, aarch64) | builds; the same POSIX mechanisms without `PR_SET_PDEATHSIG` (the lifeline pipe guards against orphans) |
//! | Windows (x86_64) | spawn, [`Process`], [`Pool`], [`pipe`] connections, shared memory ([`Value`], [`Array`], [`SharedMemory`]), locks and the other synchronization primitives, queues and managers work (`CreateProcessW` with an explicit handle list, channels over anonymous pipes, a kill-on-close job object against orphans, handles duplicated into the receiving process, pagefile-backed file mappings, a lock word holding the holder's pid as on macOS, wake-ups across processes through per-thread named events; tested under Wine); a handle sent through a [`Connection`] must be received while its sender still runs |
//!
//! Across machines, with the `mpi` feature: [`mpi::pool()`](mpi/fn.pool.html) on
//! rank 0 of an MPI job (`mpirun`, `srun`) is a [`Pool`] whose workers are the
//! other ranks. Tested with Open MPI 4.1 and MPICH 4.0 on Linux; `docs/cluster.md`
//! has the recipes.
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
//! - Over MPI (feature `mpi`): arguments cannot hold queues, pipes, shared
//!   memory or locks (they are handles of one machine); a rank that dies is not
//!   replaced (the pool goes on with the others, under `mpirun --enable-recovery`);
//!   `terminate` cannot interrupt a job a rank is running (its result is dropped);
//!   one MPI pool at a time; a panic outside a job aborts the whole MPI job.
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
