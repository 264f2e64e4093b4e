//! `Pool`: a fixed set of worker processes running submitted jobs.
//!
//! Design (see also `docs/design.md`): one FIFO of tasks (a task is one call, or
//! one chunk of a map) shared by all workers. For each worker the parent runs a
//! supervisor thread that starts the process, reads its replies and replaces it
//! when it dies, and a writer thread that keeps up to `PIPELINE_DEPTH` tasks
//! queued in the worker's channel so it never waits for the parent between
//! tasks (`SHORT_PIPELINE_DEPTH` for the tasks of a job seen to be short). A
//! worker that dies fails the one task it was running with `WorkerDied`; tasks
//! queued behind it go back to the front of the FIFO.

mod imap;
pub(crate) mod link;
mod result;
pub(crate) mod spin;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::imap::Imap;
use self::link::{Backend, Link, LinkReader, LinkWriter, Peer};
pub use self::result::AsyncResult;
use self::result::{MapSink, Payload, ResultCell, SingleSink, Sink};
use crate::children;
use crate::transfer::{self, Encoded};

use crate::error::{CodecError, Error, Result};
use crate::job::Job;
use crate::registry::{self, JobEntry};
use crate::wire::{self, Reply, Request};

/// Tasks sent ahead to one local worker: one running, one waiting in its channel.
pub(crate) const PIPELINE_DEPTH: usize = 2;
/// ... or more when the tasks are known to be short (`SHORT_TASK`): a map of
/// small tasks then crosses in fewer, fuller writes and wake-ups, and at most
/// `SHORT_PIPELINE_DEPTH - 1` short tasks wait behind any one.
pub(crate) const SHORT_PIPELINE_DEPTH: usize = 8;
/// A task is short when the last task of its job (in this pool) took less than
/// this, from its start to its reply. A job not seen yet is not short: eight
/// long tasks submitted at once must spread over the workers, not queue up
/// behind the first.
const SHORT_TASK: Duration = Duration::from_micros(200);

/// A task is queued behind a running one only if that one started this recently:
/// short tasks then flow without a pause, and a short task never waits behind a
/// long one while another worker could take it.
const PIPELINE_WINDOW: Duration = Duration::from_millis(1);

impl State {
    /// Moves the queue's first task to `slot`'s tasks in flight; the caller
    /// checked that the slot may take it. Returns what to send.
    fn take_task(&mut self, slot: usize, limit: Option<usize>) -> Option<Outgoing> {
        let mut task = self.queue.pop_front()?;
        let request = (task.id, task.job, task.batch, Arc::clone(&task.payload));
        task.short = self.is_short(task.job);
        let s = &mut self.slots[slot];
        if s.in_flight.is_empty() {
            s.front_since = Some(Instant::now());
        }
        if !task.short {
            s.long_in_flight += 1;
        }
        s.in_flight.push_back(task);
        s.sent += 1;
        if limit.is_some_and(|limit| s.sent >= limit) {
            s.retiring = true;
        }
        Some(request)
    }

    /// A running worker, other than `except`, that may take the queue's next
    /// task now.
    fn taker(&self, except: Option<usize>, depth: (usize, usize)) -> Option<usize> {
        (0..self.slots.len()).find(|&i| {
            let s = &self.slots[i];
            Some(i) != except && s.started && !s.dead && !s.retiring && self.may_take(i, depth)
        })
    }

    /// Whether the last task of `job` was short (see `SHORT_TASK`).
    fn is_short(&self, job: &JobEntry) -> bool {
        self.job_times
            .get(job.name())
            .is_some_and(|&t| t < SHORT_TASK)
    }

    /// Whether slot `slot` should take another task now; `depth` is (tasks in
    /// flight at most, the same when they are all short).
    fn may_take(&self, slot: usize, (depth, short_depth): (usize, usize)) -> bool {
        let s = &self.slots[slot];
        if s.in_flight.is_empty() {
            return true;
        }
        let all_short = short_depth > depth
            && s.long_in_flight == 0
            && self.queue.front().is_some_and(|t| self.is_short(t.job));
        let depth = if all_short { short_depth } else { depth };
        if s.in_flight.len() >= depth || s.front_since.is_none_or(|t| t.elapsed() > PIPELINE_WINDOW)
        {
            return false;
        }
        // Leave it to a worker that has nothing to do.
        !self.slots.iter().enumerate().any(|(i, other)| {
            i != slot
                && other.started
                && !other.dead
                && !other.retiring
                && other.in_flight.is_empty()
        })
    }
}

/// A task on its way to a worker: id, job, batch or not, arguments.
type Outgoing = (u64, &'static JobEntry, bool, Arc<Encoded>);

static NEXT_WORKER: AtomicUsize = AtomicUsize::new(1);

/// A pool of worker processes, like `multiprocessing.Pool`.
///
/// ```
/// #[mp::job]
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = mp::Pool::new(2)?;
/// assert_eq!(pool.map(square, 0..5)?, vec![0, 1, 4, 9, 16]);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// Dropping a pool finishes the work already submitted, then stops the workers
/// (`close` + `join`); [`terminate`](Pool::terminate) stops them at once.
pub struct Pool {
    shared: Arc<Shared>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Pool")
            .field("processes", &self.shared.processes)
            .field("phase", &state.phase)
            .field("queued", &state.queue.len())
            .field("outstanding", &state.outstanding)
            .finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Each slot's writer waits on its own for tasks and phase changes, so a
    /// new task wakes one writer, not all of them.
    work: Vec<Condvar>,
    /// `build`, `join` and `terminate` wait here.
    idle: Condvar,
    processes: usize,
    initializer: Option<(&'static JobEntry, Encoded)>,
    max_tasks_per_child: Option<usize>,
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Closed,
    Terminated,
}

struct State {
    phase: Phase,
    queue: VecDeque<Task>,
    slots: Vec<Slot>,
    /// Submitted tasks whose sink has not been completed yet.
    outstanding: usize,
    next_id: u64,
    /// Set when workers cannot be started (or their initializer fails): every
    /// pending and later task fails with a copy of this error.
    broken: Option<Error>,
    /// How long the last task of each job took, start to reply (see `SHORT_TASK`).
    job_times: HashMap<&'static str, Duration>,
}

#[derive(Default)]
struct Slot {
    peer: Option<Arc<dyn Peer>>,
    in_flight: VecDeque<Task>,
    /// When the task at the front of `in_flight` started running.
    front_since: Option<Instant>,
    /// Tasks in `in_flight` not known to be short when they were sent.
    long_in_flight: usize,
    sent: usize,
    dead: bool,
    retiring: bool,
    started: bool,
    /// The worker ended and cannot be replaced (a dead MPI rank).
    gone: bool,
    /// A writer that never blocks, when the link has one (an MPI rank's):
    /// whoever queues a task or settles a reply sends the next task through it
    /// at once, under the state lock (which keeps tasks in `in_flight` order),
    /// instead of handing it to the slot's writer thread.
    inline: Option<Box<dyn LinkWriter>>,
}

struct Task {
    id: u64,
    job: &'static JobEntry,
    batch: bool,
    payload: Arc<Encoded>,
    index: usize,
    sink: Arc<dyn Sink>,
    /// Its job was known to be short when it was sent (see `SHORT_TASK`).
    short: bool,
}

impl Task {
    fn fail(self, error: Error) {
        self.sink.complete(self.index, Err(error));
    }
}

fn lock_state(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// Wakes the writers: the queue, a slot or the phase changed.
    fn kick(&self) {
        for writer in &self.work {
            writer.notify_all();
        }
    }

    fn wait<'a>(&self, cv: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        cv.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Completes tasks outside the lock, then counts them done.
    fn finish(&self, tasks: Vec<(Task, Error)>) {
        if tasks.is_empty() {
            return;
        }
        let n = tasks.len();
        for (task, error) in tasks {
            task.fail(error);
        }
        self.done(n);
    }

    fn done(&self, n: usize) {
        let mut state = self.lock();
        state.outstanding -= n;
        if state.outstanding == 0 {
            self.idle.notify_all();
        }
    }

    /// Marks the pool broken and fails everything queued.
    fn break_pool(&self, error: Error) {
        let mut state = self.lock();
        let failed: Vec<(Task, Error)> = state
            .queue
            .drain(..)
            .map(|t| (t, error.duplicate()))
            .collect();
        if state.broken.is_none() {
            state.broken = Some(error);
        }
        drop(state);
        self.kick();
        self.idle.notify_all();
        self.finish(failed);
    }
}

/// Options for a [`Pool`]: `mp::Pool::builder().processes(4).build()?`.
#[derive(Debug, Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<Result<(&'static JobEntry, Encoded)>>,
    max_tasks_per_child: Option<usize>,
}

impl PoolBuilder {
    /// Number of worker processes (default: [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// A job each worker runs once, before any task (for example to load a model).
    /// If it panics, the pool is broken and every task fails with that panic.
    pub fn initializer<F, Args>(mut self, _job: F, args: Args) -> Self
    where
        F: Job<Args>,
        Args: Serialize,
    {
        self.initializer =
            Some(registry::job_of::<F>().and_then(|entry| Ok((entry, transfer::encode(&args)?))));
        self
    }

    /// Replace each worker after it has run this many tasks (a map chunk counts as one).
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// The number of processes asked for, if any.
    #[cfg(feature = "mpi")]
    pub(crate) fn requested_processes(&self) -> Option<usize> {
        self.processes
    }

    /// Starts the workers and waits until each has started (and run the initializer).
    pub fn build(self) -> Result<Pool> {
        let pool = self.launch()?;
        pool.wait_started()?;
        Ok(pool)
    }

    fn launch(self) -> Result<Pool> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(Error::invalid(
                "a pool needs at least one process, got processes(0)",
            ));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::invalid(
                "max_tasks_per_child must be at least 1 (leave it unset for no limit)",
            ));
        }
        let initializer = self.initializer.transpose()?;
        Ok(Pool::start(
            processes,
            initializer,
            self.max_tasks_per_child,
            Backend::Local,
        ))
    }

    /// Starts a pool whose workers are the ranks 1..N of the MPI job.
    #[cfg(feature = "mpi")]
    pub(crate) fn build_mpi(self, ranks: crate::mpi::Ranks) -> Result<Pool> {
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::invalid(
                "max_tasks_per_child must be at least 1 (leave it unset for no limit)",
            ));
        }
        let initializer = self.initializer.transpose()?;
        let pool = Pool::start(
            ranks.count(),
            initializer,
            self.max_tasks_per_child,
            Backend::Mpi(ranks),
        );
        pool.wait_started()?;
        Ok(pool)
    }
}

/// A pool of `processes` workers whose start errors surface on first use;
/// `mp::pool(0)` returns a pool whose every call fails with `InvalidArgument`.
pub fn pool(processes: usize) -> Pool {
    match Pool::builder().processes(processes).launch() {
        Ok(pool) => pool,
        Err(e) => Pool::broken(e),
    }
}

/// A value wrapped as a 1-tuple, serialized without moving it: `map`'s items
/// are the single argument of the job.
pub(crate) struct OneTuples<'a, A>(pub(crate) &'a [A]);

impl<A: Serialize> Serialize for OneTuples<'_, A> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|a| (a,)))
    }
}

impl Pool {
    /// A pool of `n` workers, started now: start errors are returned here.
    pub fn new(n: usize) -> Result<Pool> {
        Pool::builder().processes(n).build()
    }

    /// Options: processes, initializer, max_tasks_per_child.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn broken(error: Error) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                queue: VecDeque::new(),
                slots: Vec::new(),
                outstanding: 0,
                next_id: 0,
                broken: Some(error),
                job_times: HashMap::new(),
            }),
            work: Vec::new(),
            idle: Condvar::new(),
            processes: 0,
            initializer: None,
            max_tasks_per_child: None,
            backend: Backend::Local,
        });
        Pool {
            shared,
            supervisors: Mutex::new(Vec::new()),
        }
    }

    fn start(
        processes: usize,
        initializer: Option<(&'static JobEntry, Encoded)>,
        max_tasks_per_child: Option<usize>,
        backend: Backend,
    ) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                queue: VecDeque::new(),
                slots: (0..processes).map(|_| Slot::default()).collect(),
                outstanding: 0,
                next_id: 0,
                broken: None,
                job_times: HashMap::new(),
            }),
            work: (0..processes).map(|_| Condvar::new()).collect(),
            idle: Condvar::new(),
            processes,
            initializer,
            max_tasks_per_child,
            backend,
        });
        let mut supervisors = Vec::with_capacity(processes);
        for slot in 0..processes {
            let shared2 = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("mp-pool-{slot}"))
                .spawn(move || supervise(&shared2, slot));
            match spawned {
                Ok(handle) => supervisors.push(handle),
                Err(e) => {
                    shared.break_pool(Error::io("starting a pool supervisor thread", e));
                    break;
                }
            }
        }
        Pool {
            shared,
            supervisors: Mutex::new(supervisors),
        }
    }

    fn wait_started(&self) -> Result<()> {
        let mut state = self.shared.lock();
        loop {
            if let Some(e) = &state.broken {
                return Err(e.duplicate());
            }
            if state.slots.iter().all(|s| s.started) {
                return Ok(());
            }
            state = self.shared.wait(&self.shared.idle, state);
        }
    }

    /// Number of worker processes.
    pub fn processes(&self) -> usize {
        self.shared.processes
    }

    /// Queues one task; the pool must be running.
    fn submit(
        &self,
        job: &'static JobEntry,
        batch: bool,
        payload: Encoded,
        index: usize,
        sink: Arc<dyn Sink>,
    ) -> Result<()> {
        wire::check_payload_size(job.name(), payload.bytes.len())?;
        self.shared
            .backend
            .check_handles(job.name(), &payload.handles)?;
        let mut state = self.shared.lock();
        if let Some(e) = &state.broken {
            return Err(e.duplicate());
        }
        if state.phase != Phase::Running {
            return Err(Error::Closed);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.outstanding += 1;
        state.queue.push_back(Task {
            id,
            job,
            batch,
            payload: Arc::new(payload),
            index,
            sink,
            short: false,
        });
        if self.shared.backend.sends_inline() {
            feed_inline(&self.shared, state);
        } else {
            // Wake the writer of one worker that may take it now; when none
            // may, a reply that frees one wakes the writers.
            let taker = state.taker(None, self.shared.backend.pipeline_depth());
            drop(state);
            if let Some(slot) = taker {
                self.shared.work[slot].notify_one();
            }
        }
        Ok(())
    }

    fn submit_chunk<A: Serialize>(
        &self,
        job: &'static JobEntry,
        chunk: &OneTuples<'_, A>,
        index: usize,
        sink: Arc<dyn Sink>,
    ) -> Result<()> {
        let payload = transfer::encode(chunk)?;
        self.submit(job, true, payload, index, sink)
    }

    /// Runs `job(args...)` in a worker and waits for its value.
    pub fn apply<F, Args>(&self, job: F, args: Args) -> Result<F::Output>
    where
        F: Job<Args>,
        Args: Serialize,
    {
        self.apply_async(job, args).get()
    }

    /// Runs `job(args...)` in a worker; the result arrives later.
    pub fn apply_async<F, Args>(&self, _job: F, args: Args) -> AsyncResult<F::Output>
    where
        F: Job<Args>,
        Args: Serialize,
    {
        let submitted = (|| {
            let entry = registry::job_of::<F>()?;
            let payload = transfer::encode(&args)?;
            let cell = ResultCell::with_spin(self.shared.backend.spin());
            let sink = Arc::new(SingleSink {
                cell: Arc::clone(&cell),
            });
            self.submit(entry, false, payload, 0, sink)?;
            Ok(cell)
        })();
        match submitted {
            Ok(cell) => AsyncResult::from_cell(cell),
            Err(e) => AsyncResult::failed(e),
        }
    }

    /// `job(x)` for every item, in order, with an automatic chunk size.
    pub fn map<F, A, I>(&self, job: F, items: I) -> Result<Vec<F::Output>>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_async(job, items).get()
    }

    /// `map` with an explicit chunk size (items sent to a worker at once).
    pub fn map_chunked<F, A, I>(&self, job: F, items: I, chunksize: usize) -> Result<Vec<F::Output>>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_async_chunked(job, items, chunksize).get()
    }

    /// `map` without waiting.
    pub fn map_async<F, A, I>(&self, job: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        let chunksize = self.auto_chunksize(items.len());
        self.spread(job, &items, chunksize, |c| transfer::encode(&OneTuples(c)))
    }

    /// `map_chunked` without waiting.
    pub fn map_async_chunked<F, A, I>(
        &self,
        job: F,
        items: I,
        chunksize: usize,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        if chunksize == 0 {
            return AsyncResult::failed(Error::invalid("chunksize must be at least 1, got 0"));
        }
        let items: Vec<A> = items.into_iter().collect();
        self.spread(job, &items, chunksize, |c| transfer::encode(&OneTuples(c)))
    }

    /// `job(a, b, ...)` for every argument tuple, in order.
    pub fn starmap<F, Args, I>(&self, job: F, items: I) -> Result<Vec<F::Output>>
    where
        F: Job<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
    {
        self.starmap_async(job, items).get()
    }

    /// `starmap` without waiting.
    pub fn starmap_async<F, Args, I>(&self, job: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: Job<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
    {
        let items: Vec<Args> = items.into_iter().collect();
        let chunksize = self.auto_chunksize(items.len());
        self.spread(job, &items, chunksize, transfer::encode)
    }

    /// Python's rule: about four chunks per worker.
    fn auto_chunksize(&self, len: usize) -> usize {
        let parts = self.processes().max(1) * 4;
        len.div_ceil(parts).max(1)
    }

    fn spread<F, Args, T, W>(
        &self,
        _job: F,
        items: &[T],
        chunksize: usize,
        wrap: W,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: Job<Args>,
        W: Fn(&[T]) -> std::result::Result<Encoded, CodecError>,
    {
        let entry = match registry::job_of::<F>() {
            Ok(entry) => entry,
            Err(e) => return AsyncResult::failed(e),
        };
        let chunks = items.len().div_ceil(chunksize);
        let cell = ResultCell::with_spin(self.shared.backend.spin());
        let sink = Arc::new(MapSink::new(Arc::clone(&cell), chunks));
        for (index, chunk) in items.chunks(chunksize).enumerate() {
            let submitted = wrap(chunk)
                .map_err(Error::from)
                .and_then(|payload| self.submit(entry, true, payload, index, sink.clone()));
            if let Err(e) = submitted {
                sink.fail(e);
                break;
            }
        }
        AsyncResult::from_cell(cell)
    }

    /// Lazy, ordered results of `job(x)` for each item (chunk size 1).
    pub fn imap<F, A, I>(&self, job: F, items: I) -> Imap<'_, F::Output, I::IntoIter>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(job, items, 1, true)
    }

    /// `imap` sending `chunksize` items to a worker at once.
    pub fn imap_chunked<F, A, I>(
        &self,
        job: F,
        items: I,
        chunksize: usize,
    ) -> Imap<'_, F::Output, I::IntoIter>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(job, items, chunksize, true)
    }

    /// Lazy results of `job(x)` in the order they finish (chunk size 1).
    pub fn imap_unordered<F, A, I>(&self, job: F, items: I) -> Imap<'_, F::Output, I::IntoIter>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(job, items, 1, false)
    }

    /// `imap_unordered` sending `chunksize` items to a worker at once.
    pub fn imap_unordered_chunked<F, A, I>(
        &self,
        job: F,
        items: I,
        chunksize: usize,
    ) -> Imap<'_, F::Output, I::IntoIter>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.imap_with(job, items, chunksize, false)
    }

    fn imap_with<F, A, I>(
        &self,
        _job: F,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> Imap<'_, F::Output, I::IntoIter>
    where
        F: Job<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        let job = if chunksize == 0 {
            Err(Error::invalid("chunksize must be at least 1, got 0"))
        } else {
            registry::job_of::<F>()
        };
        Imap::new(self, job, items.into_iter(), chunksize, ordered)
    }

    /// Accept no more work; workers finish what was submitted, then exit.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        if state.phase == Phase::Running {
            state.phase = Phase::Closed;
        }
        drop(state);
        self.shared.kick();
    }

    /// Stops the workers at once; unfinished results fail with `Terminated`.
    pub fn terminate(&self) -> Result<()> {
        let mut state = self.shared.lock();
        state.phase = Phase::Terminated;
        let queued: Vec<(Task, Error)> = state
            .queue
            .drain(..)
            .map(|t| (t, Error::Terminated))
            .collect();
        let peers: Vec<Arc<dyn Peer>> = state.slots.iter().filter_map(|s| s.peer.clone()).collect();
        drop(state);
        self.shared.kick();
        self.shared.finish(queued);
        for peer in peers {
            peer.kill();
        }
        self.join_supervisors();
        Ok(())
    }

    /// Waits for the workers to exit; call [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) first.
    pub fn join(&self) -> Result<()> {
        if self.shared.lock().phase == Phase::Running {
            return Err(Error::invalid("call close() or terminate() before join()"));
        }
        self.join_supervisors();
        Ok(())
    }

    fn join_supervisors(&self) {
        let handles: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
        self.join_supervisors();
    }
}

/// One worker slot, for the pool's whole life: start, serve, replace.
fn supervise(shared: &Shared, slot: usize) {
    loop {
        {
            let state = shared.lock();
            let finished = match state.phase {
                Phase::Terminated => true,
                Phase::Closed => state.queue.is_empty(),
                Phase::Running => false,
            };
            if finished || state.broken.is_some() || children::exiting() {
                return;
            }
        }
        let name = format!("PoolWorker-{}", NEXT_WORKER.fetch_add(1, Ordering::Relaxed));
        let link = match start_worker(shared, slot, &name) {
            Ok(link) => link,
            Err(_) if !shared.backend.replaceable(slot) => {
                // A rank that died before this pool: the pool goes on without it.
                retire_slot(shared, slot);
                return;
            }
            Err(e) => {
                shared.break_pool(e);
                return;
            }
        };
        {
            let mut state = shared.lock();
            let s = &mut state.slots[slot];
            *s = Slot {
                peer: Some(Arc::clone(&link.peer)),
                started: true,
                inline: link.writer.nonblocking_clone(),
                ..Slot::default()
            };
            let terminated = state.phase == Phase::Terminated;
            drop(state);
            shared.idle.notify_all();
            if terminated {
                link.peer.kill();
            }
        }
        serve(shared, slot, link);
        if !shared.backend.replaceable(slot) {
            retire_slot(shared, slot);
            return;
        }
    }
}

/// A worker that ended for good (a dead MPI rank): the others carry on; with
/// none left, the pool is broken.
fn retire_slot(shared: &Shared, slot: usize) {
    let mut state = shared.lock();
    let s = &mut state.slots[slot];
    s.gone = true;
    s.dead = true;
    s.started = true;
    let all_gone = state.slots.iter().all(|s| s.gone);
    let running = state.phase != Phase::Terminated;
    drop(state);
    shared.kick();
    shared.idle.notify_all();
    if all_gone && running {
        shared.break_pool(Error::WorkerStart {
            message: "every worker of the pool has died (no MPI rank is left to run tasks)"
                .to_string(),
        });
    }
}

fn start_worker(shared: &Shared, slot: usize, name: &str) -> Result<Link> {
    let mut link = shared.backend.start(slot, name)?;
    if let Some((entry, payload)) = &shared.initializer {
        let pid = link.peer.pid();
        let request = Request::Init { job: entry.name() };
        let result = link
            .writer
            .send(&request, &payload.bytes, &payload.handles)
            .and_then(|()| link.reader.next());
        let failure = match result {
            Ok(Some(frame)) => match frame.header::<Reply>() {
                Ok(Reply::InitDone) => None,
                Ok(Reply::InitFailed { failure }) => Some(failure.into_error(entry.name(), pid)),
                Ok(other) => Some(Error::WorkerStart {
                    message: format!("worker {pid} answered the initializer with {other:?}"),
                }),
                Err(e) => Some(e),
            },
            Ok(None) | Err(Error::Disconnected) => {
                let exit = link.peer.reap();
                Some(link.peer.died(exit, Some(entry.name().to_string())))
            }
            Err(e) => Some(e),
        };
        if let Some(error) = failure {
            link.peer.kill();
            link.peer.reap();
            return Err(error);
        }
    }
    Ok(link)
}

/// Runs one worker until it exits, then settles the tasks it held.
fn serve(shared: &Shared, slot: usize, link: Link) {
    let Link {
        peer,
        mut reader,
        mut writer,
    } = link;
    std::thread::scope(|scope| {
        let writer = &mut *writer;
        let peer = &*peer;
        let spawned = std::thread::Builder::new()
            .name(format!("mp-pool-{slot}-send"))
            .spawn_scoped(scope, || feed(shared, slot, writer, peer));
        if spawned.is_ok() {
            drain(shared, slot, &mut *reader, peer);
        }
        let mut state = shared.lock();
        state.slots[slot].dead = true;
        drop(state);
        shared.kick();
        // The writer may be blocked writing to a worker that stopped reading.
        peer.kill();
    });
    let exit = peer.reap();

    let mut state = shared.lock();
    let held: Vec<Task> = state.slots[slot].in_flight.drain(..).collect();
    state.slots[slot].long_in_flight = 0;
    state.slots[slot].peer = None;
    state.slots[slot].inline = None;
    let mut failed = Vec::new();
    if state.phase == Phase::Terminated {
        failed.extend(held.into_iter().map(|t| (t, Error::Terminated)));
    } else {
        let mut held = held.into_iter();
        if let Some(running) = held.next() {
            let job = Some(running.job.name().to_string());
            failed.push((running, peer.died(exit, job)));
        }
        // Tasks queued behind the dead one never started: run them elsewhere.
        for task in held.rev() {
            state.queue.push_front(task);
        }
    }
    drop(state);
    shared.kick();
    shared.finish(failed);
}

/// Sends one task to a worker.
fn send_task(writer: &mut dyn LinkWriter, (id, job, batch, payload): &Outgoing) -> Result<()> {
    let request = Request::Task {
        id: *id,
        job: job.name(),
        batch: *batch,
    };
    writer.send(&request, &payload.bytes, &payload.handles)
}

/// Sends `request` through `slot`'s inline writer (the state lock is held).
fn send_inline(state: &mut State, slot: usize, request: &Outgoing) -> Result<()> {
    match state.slots[slot].inline.as_mut() {
        Some(writer) => send_task(writer.as_mut(), request),
        None => Err(Error::Disconnected),
    }
}

/// Hands queued tasks to the slots that have an inline writer and may take
/// them, then releases the lock. (Tasks left in the queue go out inline as
/// replies free the slots; a writer thread woken for them would find nothing
/// to do.)
fn feed_inline(shared: &Shared, mut state: MutexGuard<'_, State>) {
    let mut failed: Vec<Arc<dyn Peer>> = Vec::new();
    let depth = shared.backend.pipeline_depth();
    if state.phase != Phase::Terminated {
        for slot in 0..state.slots.len() {
            let s = &state.slots[slot];
            if s.inline.is_none() || s.dead || s.retiring || !s.started {
                continue;
            }
            while !state.queue.is_empty() && state.may_take(slot, depth) {
                let Some(request) = state.take_task(slot, shared.max_tasks_per_child) else {
                    break;
                };
                if send_inline(&mut state, slot, &request).is_err() {
                    // The worker is gone: its reader settles the task, as
                    // when the writer thread fails to send.
                    failed.extend(state.slots[slot].peer.clone());
                    break;
                }
                if state.slots[slot].retiring {
                    break;
                }
            }
        }
    }
    drop(state);
    for peer in failed {
        peer.kill();
    }
}

/// Writer thread: keeps the worker's channel fed.
fn feed(shared: &Shared, slot: usize, writer: &mut dyn LinkWriter, peer: &dyn Peer) {
    loop {
        let next = {
            let mut state = shared.lock();
            loop {
                let phase = state.phase;
                let queue_empty = state.queue.is_empty();
                let s = &state.slots[slot];
                if s.dead || phase == Phase::Terminated {
                    return;
                }
                if s.retiring || (phase == Phase::Closed && queue_empty) {
                    if s.in_flight.is_empty() {
                        break None;
                    }
                } else if state.may_take(slot, shared.backend.pipeline_depth())
                    && let Some(request) = state.take_task(slot, shared.max_tasks_per_child)
                {
                    if state.slots[slot].inline.is_some() {
                        // Sent under the lock, in order with the inline sends.
                        let sent = send_inline(&mut state, slot, &request);
                        if sent.is_err() {
                            drop(state);
                            peer.kill();
                            return;
                        }
                        continue;
                    }
                    break Some(request);
                }
                if !state.queue.is_empty()
                    && let Some(other) = state.taker(Some(slot), shared.backend.pipeline_depth())
                {
                    // Woken for a task this worker may not take: pass it on.
                    shared.work[other].notify_one();
                }
                state = shared.wait(&shared.work[slot], state);
            }
        };
        match next {
            None => {
                let _ = writer.send(&Request::Shutdown { report_last: false }, &[], &[]);
                return;
            }
            Some(request) => {
                if send_task(writer, &request).is_err() {
                    // Usually the worker is gone already; if not, it would wait for
                    // a task that never comes: end it, and the reader settles the tasks.
                    peer.kill();
                    return;
                }
            }
        }
    }
}

/// Reader loop: delivers replies until the worker's channel ends.
fn drain(shared: &Shared, slot: usize, reader: &mut dyn LinkReader, peer: &dyn Peer) {
    let pid = peer.pid();
    loop {
        let mut frame = match reader.next() {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => return,
        };
        let (id, failure) = match frame.header::<Reply>() {
            Ok(Reply::Done { id }) => (id, None),
            Ok(Reply::Failed { id, failure }) => (id, Some(failure)),
            // A reply that makes no sense: treat the worker as broken.
            Ok(_) | Err(_) => return,
        };
        let (task, wanted) = {
            let mut state = shared.lock();
            let s = &mut state.slots[slot];
            let (task, took) = match s.in_flight.front() {
                Some(task) if task.id == id => {
                    let done = s.in_flight.pop_front();
                    if done.as_ref().is_some_and(|t| !t.short) {
                        s.long_in_flight = s.long_in_flight.saturating_sub(1);
                    }
                    let took = s.front_since.map(|t| t.elapsed());
                    s.front_since = (!s.in_flight.is_empty()).then(Instant::now);
                    (done, took)
                }
                _ => (None, None),
            };
            if let (Some(task), Some(took)) = (&task, took) {
                state.job_times.insert(task.job.name(), took);
            }
            let s = &state.slots[slot];
            // The writers need a wake-up only for tasks left in the queue (this
            // worker may take one now) or for this worker's `Shutdown`; waking
            // them for every reply costs each `apply` two thread switches.
            let shutdown_due =
                s.in_flight.is_empty() && (s.retiring || state.phase != Phase::Running);
            let queued = !state.queue.is_empty();
            let inline = shared.backend.sends_inline();
            if inline {
                feed_inline(shared, state);
            } else {
                drop(state);
            }
            (task, shutdown_due || (!inline && queued))
        };
        let Some(task) = task else { return };
        if wanted {
            shared.kick();
        }
        match failure {
            None => {
                let handles = frame.take_handles();
                let payload = Payload {
                    bytes: frame.payload(),
                    handles,
                };
                task.sink.complete(task.index, Ok(payload));
            }
            Some(failure) => {
                let error = failure.into_error(task.job.name(), pid);
                task.sink.complete(task.index, Err(error));
            }
        }
        shared.done(1);
    }
}
