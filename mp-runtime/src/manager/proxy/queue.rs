//! `QueueProxy`: a shared FIFO queue (Python's `manager.Queue()`).

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Handle, encode, impl_proxy, unexpected};
use crate::error::{Error, Result};
use crate::manager::protocol::{Bytes, Kind, Op, Response, Wait};

/// A FIFO queue on a manager's server; made by [`Manager::queue`](crate::Manager::queue),
/// [`Manager::queue_bounded`](crate::Manager::queue_bounded) or
/// [`Manager::queue_named`](crate::Manager::queue_named).
///
/// The methods of `mp::Queue`, plus `task_done`/`join` as on a
/// `JoinableQueue` (a Python manager's `Queue` has them too). A blocking
/// `get` or `put` blocks only the calling thread; if the calling process dies
/// while it waits, the server notices and the item is not taken.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let q: mp::QueueProxy<String> = m.queue()?;
/// q.put("job".to_string())?;
/// assert_eq!(q.len()?, 1);
/// assert_eq!(q.get()?, "job");
/// assert!(matches!(q.try_get(), Err(mp::Error::Empty { .. })));
/// # Ok::<(), mp::Error>(())
/// ```
pub struct QueueProxy<T> {
    handle: Handle,
    _item: PhantomData<fn(T) -> T>,
}

impl_proxy!(QueueProxy, Kind::Queue, T);

impl<T> QueueProxy<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        QueueProxy {
            handle,
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn put_wait(&self, item: T, wait: Wait) -> Result<()> {
        let item = encode(&item)?;
        self.handle
            .call(Op::Put {
                value: Bytes(&item),
                wait,
            })?
            .done()
    }

    fn get_wait(&self, wait: Wait) -> Result<T> {
        let item = self.handle.call(Op::Take { wait })?.value()?;
        item.ok_or_else(|| unexpected(&Response::Value(None)))
    }

    /// Adds `item` at the back, waiting while a bounded queue is full.
    /// `Err(Closed)` after [`close`](QueueProxy::close).
    pub fn put(&self, item: T) -> Result<()> {
        self.put_wait(item, Wait::Forever)
    }

    /// Like [`put`](QueueProxy::put), waiting at most `timeout`: `Err(Full)` then.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_wait(item, Wait::from_timeout(timeout))
    }

    /// Adds `item` if there is room now; `Err(Full)` otherwise.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.put_wait(item, Wait::No)
    }

    /// Takes the front item, waiting for one. `Err(Closed)` once the queue
    /// is closed and empty.
    pub fn get(&self) -> Result<T> {
        self.get_wait(Wait::Forever)
    }

    /// Like [`get`](QueueProxy::get), waiting at most `timeout`: `Err(Empty)` then.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_wait(Wait::from_timeout(timeout))
    }

    /// Takes the front item if there is one now; `Err(Empty)` otherwise.
    pub fn try_get(&self) -> Result<T> {
        self.get_wait(Wait::No)
    }

    /// The number of items in the queue (Python's `qsize()`).
    pub fn len(&self) -> Result<usize> {
        self.handle.call(Op::Len)?.size()
    }

    /// True when the queue holds no item.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// True when a bounded queue holds its maximum.
    pub fn is_full(&self) -> Result<bool> {
        self.handle.call(Op::IsFull)?.boolean()
    }

    /// Closes the queue: `put` fails with `Err(Closed)`, `get` takes what is
    /// left and then fails with `Err(Closed)`; blocked callers wake up.
    pub fn close(&self) -> Result<()> {
        self.handle.call(Op::Close)?.done()
    }

    /// Marks one item taken earlier as processed (Python's `task_done`);
    /// `Err(InvalidArgument)` when called more times than items were put.
    pub fn task_done(&self) -> Result<()> {
        self.handle.call(Op::TaskDone)?.done()
    }

    /// Waits until every item put has been marked with
    /// [`task_done`](QueueProxy::task_done).
    pub fn join(&self) -> Result<()> {
        self.handle
            .call(Op::JoinQueue {
                wait: Wait::Forever,
            })?
            .done()
    }

    /// Like [`join`](QueueProxy::join), waiting at most `timeout`: `Err(Timeout)` then.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        match self
            .handle
            .call(Op::JoinQueue {
                wait: Wait::from_timeout(timeout),
            })?
            .done()
        {
            Err(Error::Timeout { .. }) => Err(Error::Timeout { after: timeout }),
            other => other,
        }
    }
}
