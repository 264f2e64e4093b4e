//! `AsyncResult` and the sinks that turn workers' replies into typed results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::sys::OsHandle;
use crate::transfer;

/// The encoded result of one task and the OS handles that came with it.
pub(crate) struct Payload<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) handles: Vec<OsHandle>,
}

impl Payload<'_> {
    fn decode<T: DeserializeOwned>(self) -> Result<T> {
        Ok(transfer::decode(self.bytes, self.handles)?)
    }
}

/// Where the replies of one submission go. Called on a pool's reader threads,
/// never with a pool lock held.
pub(crate) trait Sink: Send + Sync {
    /// Chunk `index` finished: its encoded result, or why it failed.
    fn complete(&self, index: usize, result: Result<Payload<'_>>);
}

type Callback<T> = Box<dyn FnOnce(Result<T>) + Send>;

enum CellState<T> {
    Pending(Option<Callback<T>>),
    Ready(Result<T>),
    Taken,
}

pub(crate) struct ResultCell<T> {
    state: Mutex<CellState<T>>,
    ready: Condvar,
    /// Set once the state left `Pending`, for waiters that poll first.
    filled: AtomicBool,
    /// How long a waiter polls before it sleeps.
    spin: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> ResultCell<T> {
    pub(crate) fn new() -> Arc<Self> {
        Self::with_spin(Duration::ZERO)
    }

    /// A cell whose waiters poll for `spin` before sleeping.
    pub(crate) fn with_spin(spin: Duration) -> Arc<Self> {
        Arc::new(ResultCell {
            state: Mutex::new(CellState::Pending(None)),
            ready: Condvar::new(),
            filled: AtomicBool::new(false),
            spin,
        })
    }

    /// Stores the result (the first one wins) or hands it to the callback.
    pub(crate) fn fill(&self, result: Result<T>) {
        let mut state = lock(&self.state);
        match &mut *state {
            CellState::Pending(callback) => match callback.take() {
                Some(callback) => {
                    *state = CellState::Taken;
                    self.filled.store(true, Ordering::Release);
                    drop(state);
                    self.ready.notify_all();
                    callback(result);
                }
                None => {
                    *state = CellState::Ready(result);
                    self.filled.store(true, Ordering::Release);
                    drop(state);
                    self.ready.notify_all();
                }
            },
            CellState::Ready(_) | CellState::Taken => {}
        }
    }

    fn is_pending(state: &CellState<T>) -> bool {
        matches!(state, CellState::Pending(_))
    }

    /// Waits until a result is there; false on timeout.
    fn wait_until(&self, deadline: Option<Instant>) -> (MutexGuard<'_, CellState<T>>, bool) {
        if !self.spin.is_zero() {
            let limit = deadline.map_or(self.spin, |d| {
                self.spin.min(d.saturating_duration_since(Instant::now()))
            });
            super::spin::spin_until(limit, || self.filled.load(Ordering::Acquire));
        }
        let mut state = lock(&self.state);
        while Self::is_pending(&state) {
            match deadline {
                None => state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return (state, false);
                    }
                    state = self
                        .ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        (state, true)
    }
}

/// The pending result of `apply_async`, `map_async` or `starmap_async`.
///
/// ```
/// #[mp::job]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let pool = mp::Pool::new(2)?;
/// let r: mp::AsyncResult<i64> = pool.apply_async(add, (1, 2));
/// assert_eq!(r.get()?, 3);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct AsyncResult<T> {
    cell: Arc<ResultCell<T>>,
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn from_cell(cell: Arc<ResultCell<T>>) -> Self {
        AsyncResult { cell }
    }

    pub(crate) fn failed(error: Error) -> Self {
        let cell = ResultCell::new();
        cell.fill(Err(error));
        AsyncResult { cell }
    }

    /// True once the result (or its error) is there.
    pub fn ready(&self) -> bool {
        !ResultCell::is_pending(&lock(&self.cell.state))
    }

    /// Blocks until the result is there.
    pub fn wait(&self) {
        let _ = self.cell.wait_until(None);
    }

    /// Blocks up to `timeout`; true if the result is there.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait_until(Some(Instant::now() + timeout)).1
    }

    /// Waits for and returns the result.
    pub fn get(self) -> Result<T> {
        let (mut state, _) = self.cell.wait_until(None);
        take(&mut state)
    }

    /// Waits up to `timeout`. `Err(Timeout)` leaves the result pending, so it can
    /// be asked for again; after a value has been returned, a later call is an error.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        let (mut state, ready) = self.cell.wait_until(Some(Instant::now() + timeout));
        if ready {
            take(&mut state)
        } else {
            Err(Error::Timeout { after: timeout })
        }
    }

    /// Runs `callback` with the result in this (the parent) process: at once if it
    /// is ready, otherwise on the pool's thread that receives it. Keep the callback
    /// short; it delays the delivery of other results.
    pub fn then<C>(self, callback: C)
    where
        C: FnOnce(Result<T>) + Send + 'static,
    {
        let mut state = lock(&self.cell.state);
        match std::mem::replace(&mut *state, CellState::Taken) {
            CellState::Pending(_) => *state = CellState::Pending(Some(Box::new(callback))),
            CellState::Ready(result) => {
                drop(state);
                callback(result);
            }
            CellState::Taken => {
                drop(state);
                callback(Err(already_taken()));
            }
        }
    }
}

fn already_taken() -> Error {
    Error::invalid("the result was already taken by an earlier get_timeout")
}

fn take<T>(state: &mut CellState<T>) -> Result<T> {
    match std::mem::replace(state, CellState::Taken) {
        CellState::Ready(result) => result,
        CellState::Taken => Err(already_taken()),
        CellState::Pending(callback) => {
            *state = CellState::Pending(callback);
            Err(Error::invalid("the result is not ready"))
        }
    }
}

/// One task, one value.
pub(crate) struct SingleSink<R> {
    pub(crate) cell: Arc<ResultCell<R>>,
}

impl<R: DeserializeOwned + Send> Sink for SingleSink<R> {
    fn complete(&self, _index: usize, result: Result<Payload<'_>>) {
        self.cell.fill(result.and_then(Payload::decode::<R>));
    }
}

/// Several chunks whose results are concatenated in order.
pub(crate) struct MapSink<R> {
    cell: Arc<ResultCell<Vec<R>>>,
    parts: Mutex<MapParts<R>>,
}

struct MapParts<R> {
    chunks: Vec<Option<Vec<R>>>,
    remaining: usize,
    failed: bool,
}

impl<R> MapSink<R> {
    pub(crate) fn new(cell: Arc<ResultCell<Vec<R>>>, chunks: usize) -> Self {
        if chunks == 0 {
            cell.fill(Ok(Vec::new()));
        }
        let parts = MapParts {
            chunks: (0..chunks).map(|_| None).collect(),
            remaining: chunks,
            failed: false,
        };
        MapSink {
            cell,
            parts: Mutex::new(parts),
        }
    }

    /// Fails the whole map (for example when submitting a later chunk failed).
    pub(crate) fn fail(&self, error: Error) {
        let mut parts = lock(&self.parts);
        if !parts.failed {
            parts.failed = true;
            drop(parts);
            self.cell.fill(Err(error));
        }
    }
}

impl<R: DeserializeOwned + Send> Sink for MapSink<R> {
    fn complete(&self, index: usize, result: Result<Payload<'_>>) {
        if lock(&self.parts).failed {
            return;
        }
        let decoded = result.and_then(Payload::decode::<Vec<R>>);
        match decoded {
            Err(e) => self.fail(e),
            Ok(values) => {
                let mut parts = lock(&self.parts);
                if parts.failed || index >= parts.chunks.len() {
                    return;
                }
                parts.chunks[index] = Some(values);
                parts.remaining -= 1;
                if parts.remaining == 0 {
                    let total = parts
                        .chunks
                        .iter()
                        .map(|c| c.as_ref().map_or(0, Vec::len))
                        .sum();
                    let mut all = Vec::with_capacity(total);
                    for chunk in parts.chunks.iter_mut() {
                        all.append(chunk.get_or_insert_with(Vec::new));
                    }
                    drop(parts);
                    self.cell.fill(Ok(all));
                }
            }
        }
    }
}

/// Chunks delivered as they finish, to an `imap` iterator.
pub(crate) struct StreamSink<R> {
    tx: Mutex<mpsc::Sender<(usize, Result<Vec<R>>)>>,
}

impl<R> StreamSink<R> {
    pub(crate) fn new(tx: mpsc::Sender<(usize, Result<Vec<R>>)>) -> Self {
        StreamSink { tx: Mutex::new(tx) }
    }
}

impl<R: DeserializeOwned + Send> Sink for StreamSink<R> {
    fn complete(&self, index: usize, result: Result<Payload<'_>>) {
        let decoded = result.and_then(Payload::decode::<Vec<R>>);
        // The iterator may have been dropped: then nobody wants the result.
        let _ = lock(&self.tx).send((index, decoded));
    }
}
