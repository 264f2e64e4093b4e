//! `Queue`, `JoinableQueue`, `SimpleQueue`: FIFO queues shared by processes.
//!
//! A queue is one shared-memory region: a process-shared robust lock, a byte
//! ring of length-prefixed encoded items (`ring.rs`), and futex words that
//! sleeping getters, putters and joiners wait on. No server process and no
//! feeder thread: `put` returns once the item is in the ring, visible to `len`
//! and `get` in every process. A process that dies holding the lock does not
//! wedge the queue: the next locker recounts the ring (or drops a torn message).

mod ring;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::ring::{Ring, RingHeader};
use crate::error::{CodecError, Error, Result};
use crate::shm::{Region, SharedState};
use crate::sync::{Deadline, Held, LockKind, RawLock, futex, spin_until, wait_on};
use crate::transfer;

/// Default size of a queue's buffer: items waiting in the queue share it.
pub(crate) const DEFAULT_BUFFER_BYTES: usize = 4 << 20;

#[repr(C)]
pub(crate) struct QueueState {
    lock: RawLock,
    /// Bumped when an item arrives or the queue closes; getters sleep on it.
    items_seq: AtomicU32,
    /// Getters asleep (or about to be) on `items_seq`.
    getters: AtomicU32,
    /// Bumped when room frees up or the queue closes; putters sleep on it.
    space_seq: AtomicU32,
    putters: AtomicU32,
    /// Bumped when `unfinished` reaches zero or the queue closes; joiners sleep on it.
    done_seq: AtomicU32,
    joiners: AtomicU32,
    closed: AtomicU32,
    /// Most items at once; 0 for no limit but the buffer.
    maxsize: AtomicU64,
    /// Items put and not yet marked done (`JoinableQueue`).
    unfinished: AtomicU64,
    ring: RingHeader,
}

// SAFETY: a lock, atomics and a ring header of atomics; all zeroes (then `init`
// of the lock) is an empty, open queue; the trailing bytes are the ring's data.
unsafe impl SharedState for QueueState {
    type Elem = u8;
    const WHAT: &'static str = "a Queue";
}

/// A FIFO queue shared by processes, like Python's `multiprocessing.Queue`.
///
/// Many producers and many consumers, in any processes: nothing is lost or
/// duplicated, and items of one producer come out in the order it put them.
/// Clone it, or pass it to a job (as an argument of `Process::spawn`, a pool
/// initializer or a pool task, also inside tuples, `Vec`s and your own structs):
/// every copy is the same queue.
///
/// ```
/// #[mp::job]
/// fn produce(q: mp::Queue<String>, n: u32) {
///     for i in 0..n {
///         q.put(format!("item {i}")).unwrap();
///     }
/// }
///
/// let q = mp::Queue::new()?;
/// let p = mp::Process::spawn(produce, (q.clone(), 3))?;
/// assert_eq!(q.get()?, "item 0");
/// assert_eq!(q.get()?, "item 1");
/// assert_eq!(q.get()?, "item 2");
/// p.join()?;
/// # Ok::<(), mp::Error>(())
/// ```
///
/// Items wait, encoded, in a shared buffer (4 MiB unless made with
/// [`with_buffer`](Queue::with_buffer)); `put` waits while it is full, and an
/// item larger than the whole buffer is an error. Pipes, queues, locks and
/// shared memory cannot travel *through* a queue (pass those as job arguments).
pub struct Queue<T> {
    region: Region<QueueState>,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            region: self.region.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Queue {
            region: Region::deserialize(d)?,
            _item: PhantomData,
        })
    }
}

impl<T> Queue<T> {
    /// An unbounded queue (bounded only by its 4 MiB buffer).
    pub fn new() -> Result<Queue<T>> {
        Self::create(0, DEFAULT_BUFFER_BYTES)
    }

    /// A queue of at most `maxsize` items: `put` waits while it is full.
    pub fn bounded(maxsize: usize) -> Result<Queue<T>> {
        if maxsize == 0 {
            return Err(Error::invalid(
                "a bounded queue needs maxsize of at least 1 (use Queue::new for no limit)",
            ));
        }
        Self::create(maxsize, DEFAULT_BUFFER_BYTES)
    }

    /// An unbounded queue whose buffer holds `bytes` bytes of waiting items
    /// (each item takes its encoded size plus 4).
    pub fn with_buffer(bytes: usize) -> Result<Queue<T>> {
        if bytes < 64 {
            return Err(Error::invalid(format!(
                "a queue buffer needs at least 64 bytes, got {bytes}"
            )));
        }
        Self::create(0, bytes)
    }

    fn create(maxsize: usize, bytes: usize) -> Result<Queue<T>> {
        let region = Region::create(bytes, |state: *mut QueueState| {
            // SAFETY: `state` points to zeroed, writable, unshared memory for a
            // QueueState (Region::create's contract); the lock is set up in place.
            unsafe {
                RawLock::init(&raw mut (*state).lock, LockKind::Plain)?;
                (*state).maxsize.store(maxsize as u64, Ordering::Relaxed);
                (*state).ring.set_capacity(bytes);
            }
            Ok(())
        })?;
        Ok(Queue {
            region,
            _item: PhantomData,
        })
    }

    fn state(&self) -> &QueueState {
        self.region.state()
    }

    fn ring(&self) -> Ring<'_> {
        // SAFETY: the trailing `count()` bytes of the region are the ring's data,
        // mapped as long as `self.region`, and touched only under the lock.
        unsafe { Ring::new(&self.state().ring, self.region.elems(), self.region.count()) }
    }

    /// Takes the lock; `None` if `deadline` passed first. Repairs the ring if
    /// the last holder died mid-operation.
    fn lock(&self, deadline: Deadline) -> Result<Option<Held<'_>>> {
        let held = Held::acquire(&self.state().lock, self.region.segment(), deadline)?;
        if let Some(held) = &held
            && held.holder_died()
        {
            self.ring().repair();
        }
        Ok(held)
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        self.ring().items()
    }

    /// True if the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if a bounded queue holds `maxsize` items.
    pub fn is_full(&self) -> bool {
        let max = self.maxsize();
        max > 0 && self.len() >= max
    }

    /// The item limit (0: none).
    pub fn maxsize(&self) -> usize {
        self.state().maxsize.load(Ordering::Relaxed) as usize
    }

    /// True once [`close`](Queue::close) was called (in any process).
    pub fn is_closed(&self) -> bool {
        self.state().closed.load(Ordering::Acquire) != 0
    }

    /// Closes the queue for every process: `put` fails with `Closed`; `get`
    /// returns what is left, then fails with `Closed`. Wakes every waiter.
    pub fn close(&self) {
        let state = self.state();
        // Under the lock, so no waiter can miss the change between its check and its sleep.
        let held = self.lock(Deadline::NEVER);
        state.closed.store(1, Ordering::Release);
        state.items_seq.fetch_add(1, Ordering::Release);
        state.space_seq.fetch_add(1, Ordering::Release);
        state.done_seq.fetch_add(1, Ordering::Release);
        drop(held);
        futex::wake_all(&state.items_seq);
        futex::wake_all(&state.space_seq);
        futex::wake_all(&state.done_seq);
    }
}

impl<T: Serialize> Queue<T> {
    /// Adds an item, waiting while the queue is full.
    pub fn put(&self, item: T) -> Result<()> {
        self.put_until(&item, Deadline::NEVER, true)
    }

    /// Adds an item, waiting at most `timeout` for room: `Err(Full)` after that.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_until(&item, Deadline::after(timeout), true)
    }

    /// Adds an item if there is room now, else `Err(Full)`.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.put_until(&item, Deadline::after(Duration::ZERO), false)
    }

    fn put_until(&self, item: &T, deadline: Deadline, block: bool) -> Result<()> {
        let encoded = transfer::encode(item)?;
        if !encoded.handles.is_empty() {
            return Err(Error::Codec(CodecError::new(
                "pipes, queues, locks and shared memory cannot travel through a queue; \
                 pass them to the job as arguments instead",
            )));
        }
        let bytes = encoded.bytes;
        let capacity = self.region.count();
        if Ring::footprint(bytes.len()) > capacity {
            return Err(Error::Codec(CodecError::new(format!(
                "an item of {} bytes does not fit in this queue's buffer of {capacity} bytes; \
                 make the queue with Queue::with_buffer, or send big data through a pipe",
                bytes.len()
            ))));
        }
        let state = self.state();
        loop {
            let Some(held) = self.lock(deadline)? else {
                return Err(Error::Full);
            };
            if state.closed.load(Ordering::Acquire) != 0 {
                return Err(Error::Closed);
            }
            let ring = self.ring();
            let max = state.maxsize.load(Ordering::Relaxed) as usize;
            if (max == 0 || ring.items() < max) && ring.fits(bytes.len()) {
                ring.push(&bytes);
                state.unfinished.fetch_add(1, Ordering::Relaxed);
                // SeqCst here and on `getters` (below and in `get_until`): a getter
                // about to sleep either is seen here, or sees this bump.
                state.items_seq.fetch_add(1, Ordering::SeqCst);
                drop(held);
                if state.getters.load(Ordering::SeqCst) > 0 {
                    futex::wake_one(&state.items_seq);
                }
                return Ok(());
            }
            if !block || deadline.remaining().is_none() {
                return Err(Error::Full);
            }
            let seq = state.space_seq.load(Ordering::Acquire);
            state.putters.fetch_add(1, Ordering::AcqRel);
            drop(held);
            let waited = wait_on(&state.space_seq, seq, deadline, "a queue");
            state.putters.fetch_sub(1, Ordering::AcqRel);
            waited?;
        }
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Removes and returns the oldest item, waiting for one. `Err(Closed)` once
    /// the queue is closed and empty.
    pub fn get(&self) -> Result<T> {
        self.get_until(Deadline::NEVER, true)
    }

    /// Like [`get`](Queue::get), waiting at most `timeout`: `Err(Empty)` after that.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Deadline::after(timeout), true)
    }

    /// Removes the oldest item if there is one now, else `Err(Empty)`.
    pub fn try_get(&self) -> Result<T> {
        self.get_until(Deadline::after(Duration::ZERO), false)
    }

    fn get_until(&self, deadline: Deadline, block: bool) -> Result<T> {
        let state = self.state();
        let mut buf = Vec::new();
        loop {
            let Some(held) = self.lock(deadline)? else {
                return Err(Error::Empty);
            };
            if self.ring().pop(&mut buf) {
                state.space_seq.fetch_add(1, Ordering::Release);
                drop(held);
                if state.putters.load(Ordering::Acquire) > 0 {
                    futex::wake_one(&state.space_seq);
                }
                return Ok(transfer::decode(&buf, Vec::new())?);
            }
            if state.closed.load(Ordering::Acquire) != 0 {
                return Err(Error::Closed);
            }
            if !block || deadline.remaining().is_none() {
                return Err(Error::Empty);
            }
            let seq = state.items_seq.load(Ordering::Acquire);
            drop(held);
            // A producer on another CPU usually delivers within microseconds:
            // look briefly before paying for a sleep and a wake-up. Not counted
            // among the getters while spinning, so that producers do not make a
            // wake-up system call for a getter that is not asleep.
            if spin_until(|| state.items_seq.load(Ordering::Acquire) != seq) {
                continue;
            }
            // Counted before the kernel compares `items_seq` with `seq`: a put
            // that bumps it from now on sees the count and wakes us, and one
            // that bumped it already makes the wait return at once.
            state.getters.fetch_add(1, Ordering::SeqCst);
            let waited = wait_on(&state.items_seq, seq, deadline, "a queue");
            state.getters.fetch_sub(1, Ordering::AcqRel);
            waited?;
        }
    }
}

/// A [`Queue`] whose consumers mark items done, so a producer can wait for all
/// of them: like Python's `multiprocessing.JoinableQueue`.
///
/// Every `Queue` method is available on it (it dereferences to its queue).
///
/// ```
/// #[mp::job]
/// fn consume(q: mp::JoinableQueue<u32>) {
///     while let Ok(_item) = q.get() {
///         q.task_done().unwrap();
///     }
/// }
///
/// let q = mp::JoinableQueue::new()?;
/// for i in 0..10 { q.put(i)?; }
/// let p = mp::Process::spawn(consume, (q.clone(),))?;
/// q.join()?;               // every item was taken and marked done
/// q.close();               // lets the consumer's loop end
/// p.join()?;
/// # Ok::<(), mp::Error>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("len", &self.queue.len())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(JoinableQueue {
            queue: Queue::deserialize(d)?,
        })
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue of at most `maxsize` items.
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::bounded(maxsize)?,
        })
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        self.queue.state().unfinished.load(Ordering::Acquire) as usize
    }

    /// Marks one item taken with `get` as processed. Calling it more often than
    /// items were put is `Err(InvalidArgument)` (Python's `ValueError`).
    pub fn task_done(&self) -> Result<()> {
        let state = self.queue.state();
        let held = self.queue.lock(Deadline::NEVER)?;
        let left = state.unfinished.load(Ordering::Acquire);
        if left == 0 {
            return Err(Error::invalid(
                "task_done() called more times than items were put",
            ));
        }
        state.unfinished.store(left - 1, Ordering::Release);
        if left == 1 {
            state.done_seq.fetch_add(1, Ordering::Release);
            drop(held);
            if state.joiners.load(Ordering::Acquire) > 0 {
                futex::wake_all(&state.done_seq);
            }
        }
        Ok(())
    }

    /// Waits until every item put has been marked done (or the queue is closed).
    pub fn join(&self) -> Result<()> {
        self.join_until(Deadline::NEVER).map(|_| ())
    }

    /// Like [`join`](JoinableQueue::join), waiting at most `timeout`: `Err(Timeout)` after that.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        match self.join_until(Deadline::after(timeout))? {
            true => Ok(()),
            false => Err(Error::Timeout { after: timeout }),
        }
    }

    fn join_until(&self, deadline: Deadline) -> Result<bool> {
        let state = self.queue.state();
        loop {
            let Some(held) = self.queue.lock(deadline)? else {
                return Ok(false);
            };
            if state.unfinished.load(Ordering::Acquire) == 0
                || state.closed.load(Ordering::Acquire) != 0
            {
                return Ok(true);
            }
            if deadline.remaining().is_none() {
                return Ok(false);
            }
            let seq = state.done_seq.load(Ordering::Acquire);
            state.joiners.fetch_add(1, Ordering::AcqRel);
            drop(held);
            let waited = wait_on(&state.done_seq, seq, deadline, "a joinable queue");
            state.joiners.fetch_sub(1, Ordering::AcqRel);
            waited?;
        }
    }
}

/// The simplest queue, like Python's `multiprocessing.SimpleQueue`: unbounded,
/// with `put`, `get`, `is_empty` and `close`.
///
/// ```
/// let q = mp::SimpleQueue::new()?;
/// q.put(1)?;
/// assert!(!q.is_empty());
/// assert_eq!(q.get()?, 1);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("len", &self.queue.len())
            .finish()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SimpleQueue {
            queue: Queue::deserialize(d)?,
        })
    }
}

impl<T> SimpleQueue<T> {
    /// A new, empty queue.
    pub fn new() -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// True if the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Closes the queue for every process (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close()
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Adds an item.
    pub fn put(&self, item: T) -> Result<()> {
        self.queue.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Removes and returns the oldest item, waiting for one.
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }
}
