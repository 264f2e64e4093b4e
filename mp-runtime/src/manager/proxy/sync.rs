//! Managed synchronization: locks, semaphores, events, conditions, barriers.
//!
//! A lock taken through a manager belongs to the connection it was taken on;
//! the guard keeps that connection until it releases. If the holder's process
//! dies, its connection closes and the server releases the lock: a dead
//! client never deadlocks the others, and the next holder learns it through
//! `holder_died()`.

use std::sync::Arc;
use std::time::Duration;

use super::{Handle, failure_error, impl_proxy, unexpected};
use crate::error::{Error, Result};
use crate::manager::client::{Lease, current_owner};
use crate::manager::protocol::{Failure, Kind, Op, Owner, Response, Wait};

impl Handle {
    fn same_object(&self, other: &Handle) -> bool {
        self.id == other.id && Arc::ptr_eq(&self.client, &other.client)
    }
}

/// Takes a lock-like object on a connection of its own; `None` on timeout.
fn acquire(handle: &Handle, op: Op<'_>) -> Result<Option<(Lease, bool)>> {
    let mut lease = handle.lease()?;
    let reply = handle.call_on(&mut lease, op)?;
    match reply.response()? {
        Response::Acquired { holder_died } => Ok(Some((lease, holder_died))),
        Response::Failed(Failure::Timeout) => Ok(None),
        Response::Failed(failure) => Err(failure_error(failure)),
        other => Err(unexpected(&other)),
    }
}

/// Releases through the connection the lock was taken on.
fn release(handle: &Handle, lease: Option<Lease>, op: Op<'_>) -> Result<()> {
    match lease {
        Some(mut lease) => handle.call_on(&mut lease, op)?.done(),
        None => Ok(()),
    }
}

/// `Done` → true, `Timeout` → false.
fn done_or_timeout(handle: &Handle, op: Op<'_>) -> Result<bool> {
    match handle.call(op)?.done() {
        Ok(()) => Ok(true),
        Err(Error::Timeout { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- Lock

/// A lock on a manager's server (Python's `manager.Lock()`); made by
/// [`Manager::lock`](crate::Manager::lock) or [`Manager::lock_named`](crate::Manager::lock_named).
///
/// The methods of `mp::Lock`: `lock()` waits and returns a
/// guard that releases on drop; `try_lock()` and `lock_timeout(d)` return
/// `None` when the lock was not taken. It is not re-entrant: a thread that
/// holds it and asks again waits forever, as in Python (use [`RLockProxy`]).
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let lock = m.lock()?;
/// {
///     let _guard = lock.lock()?;
///     assert!(lock.try_lock()?.is_none());
/// }
/// assert!(lock.try_lock()?.is_some());
/// # Ok::<(), mp::Error>(())
/// ```
pub struct LockProxy {
    handle: Handle,
}

impl_proxy!(LockProxy, Kind::Lock);

/// Holds a [`LockProxy`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockProxyGuard<'a> {
    lock: &'a LockProxy,
    held: Option<Lease>,
    holder_died: bool,
}

impl LockProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        LockProxy { handle }
    }

    fn acquire(&self, wait: Wait) -> Result<Option<LockProxyGuard<'_>>> {
        Ok(
            acquire(&self.handle, Op::Acquire { wait })?.map(|(lease, holder_died)| {
                LockProxyGuard {
                    lock: self,
                    held: Some(lease),
                    holder_died,
                }
            }),
        )
    }

    /// Takes the lock, waiting as long as it takes.
    pub fn lock(&self) -> Result<LockProxyGuard<'_>> {
        self.acquire(Wait::Forever)?
            .ok_or_else(|| unexpected(&Response::Failed(Failure::Timeout)))
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Result<Option<LockProxyGuard<'_>>> {
        self.acquire(Wait::No)
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockProxyGuard<'_>>> {
        self.acquire(Wait::from_timeout(timeout))
    }
}

impl LockProxyGuard<'_> {
    /// True when the previous holder's process died (or lost its connection)
    /// while holding the lock: the data it protects may be half-written.
    pub fn holder_died(&self) -> bool {
        self.holder_died
    }

    /// Releases the lock now, reporting a failure (dropping the guard ignores it).
    pub fn unlock(mut self) -> Result<()> {
        release(&self.lock.handle, self.held.take(), Op::Release)
    }
}

impl Drop for LockProxyGuard<'_> {
    fn drop(&mut self) {
        // On failure the connection is closed, which releases the lock too.
        let _ = release(&self.lock.handle, self.held.take(), Op::Release);
    }
}

impl std::fmt::Debug for LockProxyGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockProxyGuard")
            .field("lock", &self.lock)
            .field("holder_died", &self.holder_died)
            .finish()
    }
}

// ---------------------------------------------------------------- RLock

/// A re-entrant lock on a manager's server (Python's `manager.RLock()`): the
/// thread that holds it may take it again; it is free once every guard is
/// dropped. Made by [`Manager::rlock`](crate::Manager::rlock).
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let r = m.rlock()?;
/// let outer = r.lock()?;
/// let inner = r.lock()?;   // the same thread: no deadlock
/// drop(inner);
/// drop(outer);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct RLockProxy {
    handle: Handle,
}

impl_proxy!(RLockProxy, Kind::RLock);

/// Holds one level of an [`RLockProxy`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockProxyGuard<'a> {
    lock: &'a RLockProxy,
    held: Option<Lease>,
    owner: Owner,
    holder_died: bool,
}

impl RLockProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        RLockProxy { handle }
    }

    fn acquire(&self, wait: Wait) -> Result<Option<RLockProxyGuard<'_>>> {
        let owner = current_owner();
        Ok(
            acquire(&self.handle, Op::AcquireOwned { owner, wait })?.map(|(lease, holder_died)| {
                RLockProxyGuard {
                    lock: self,
                    held: Some(lease),
                    owner,
                    holder_died,
                }
            }),
        )
    }

    /// Takes the lock (again, if this thread holds it), waiting as long as it takes.
    pub fn lock(&self) -> Result<RLockProxyGuard<'_>> {
        self.acquire(Wait::Forever)?
            .ok_or_else(|| unexpected(&Response::Failed(Failure::Timeout)))
    }

    /// Takes the lock if it is free now or this thread holds it.
    pub fn try_lock(&self) -> Result<Option<RLockProxyGuard<'_>>> {
        self.acquire(Wait::No)
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<RLockProxyGuard<'_>>> {
        self.acquire(Wait::from_timeout(timeout))
    }
}

impl RLockProxyGuard<'_> {
    /// True when a previous holder's process died while holding the lock.
    pub fn holder_died(&self) -> bool {
        self.holder_died
    }

    /// Releases this level now, reporting a failure (dropping the guard ignores it).
    pub fn unlock(mut self) -> Result<()> {
        let owner = self.owner;
        release(
            &self.lock.handle,
            self.held.take(),
            Op::ReleaseOwned { owner },
        )
    }
}

impl Drop for RLockProxyGuard<'_> {
    fn drop(&mut self) {
        let owner = self.owner;
        let _ = release(
            &self.lock.handle,
            self.held.take(),
            Op::ReleaseOwned { owner },
        );
    }
}

impl std::fmt::Debug for RLockProxyGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLockProxyGuard")
            .field("lock", &self.lock)
            .field("holder_died", &self.holder_died)
            .finish()
    }
}

// ---------------------------------------------------------------- Semaphore

/// A semaphore on a manager's server (Python's `manager.Semaphore(n)` and
/// `manager.BoundedSemaphore(n)`); made by [`Manager::semaphore`](crate::Manager::semaphore)
/// or [`Manager::bounded_semaphore`](crate::Manager::bounded_semaphore).
///
/// Permits are not owned: any process may release one. So, unlike a lock, a
/// permit taken by a process that dies is not given back.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let s = m.bounded_semaphore(1)?;
/// s.acquire()?;
/// assert!(!s.try_acquire()?);
/// s.release()?;
/// assert!(matches!(s.release(), Err(mp::Error::Bounded { .. })));
/// # Ok::<(), mp::Error>(())
/// ```
pub struct SemaphoreProxy {
    handle: Handle,
}

impl_proxy!(SemaphoreProxy, Kind::Semaphore);

impl SemaphoreProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        SemaphoreProxy { handle }
    }

    /// Takes a permit, waiting as long as it takes.
    pub fn acquire(&self) -> Result<()> {
        self.handle
            .call(Op::Acquire {
                wait: Wait::Forever,
            })?
            .done()
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Result<bool> {
        done_or_timeout(&self.handle, Op::Acquire { wait: Wait::No })
    }

    /// Takes a permit, waiting at most `timeout`; false if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        done_or_timeout(
            &self.handle,
            Op::Acquire {
                wait: Wait::from_timeout(timeout),
            },
        )
    }

    /// Gives a permit back; `Err(Bounded)` past the initial value of a bounded semaphore.
    pub fn release(&self) -> Result<()> {
        self.handle.call(Op::Release)?.done()
    }

    /// The number of free permits.
    pub fn value(&self) -> Result<usize> {
        self.handle.call(Op::SemaphoreValue)?.size()
    }
}

// ---------------------------------------------------------------- Event

/// An event on a manager's server (Python's `manager.Event()`); made by
/// [`Manager::event`](crate::Manager::event) or [`Manager::event_named`](crate::Manager::event_named).
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let e = m.event()?;
/// assert!(!e.wait_timeout(std::time::Duration::from_millis(10))?);
/// e.set()?;
/// e.wait()?;
/// assert!(e.is_set()?);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct EventProxy {
    handle: Handle,
}

impl_proxy!(EventProxy, Kind::Event);

impl EventProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        EventProxy { handle }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) -> Result<()> {
        self.handle.call(Op::Set)?.done()
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<()> {
        self.handle.call(Op::Unset)?.done()
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool> {
        self.handle.call(Op::IsSet)?.boolean()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.handle
            .call(Op::WaitEvent {
                wait: Wait::Forever,
            })?
            .boolean()
            .map(drop)
    }

    /// Waits at most `timeout` for the flag; false if it stayed clear.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.handle
            .call(Op::WaitEvent {
                wait: Wait::from_timeout(timeout),
            })?
            .boolean()
    }
}

// ---------------------------------------------------------------- Condition

/// A condition variable with its own lock on a manager's server (Python's
/// `manager.Condition()`); made by [`Manager::condition`](crate::Manager::condition).
///
/// As with `mp::Condition`: `lock()` gives a guard,
/// `wait(guard)` releases the lock while it waits and takes it back before it
/// returns, `notify_one`/`notify_all` wake waiters.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let c = m.condition()?;
/// let g = c.lock()?;
/// let (g, notified) = c.wait_timeout(g, std::time::Duration::from_millis(10))?;
/// assert!(!notified);
/// drop(g);
/// c.notify_all()?;
/// # Ok::<(), mp::Error>(())
/// ```
pub struct ConditionProxy {
    handle: Handle,
}

impl_proxy!(ConditionProxy, Kind::Condition);

/// Holds a [`ConditionProxy`]'s lock; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionProxyGuard<'a> {
    condition: &'a ConditionProxy,
    held: Option<Lease>,
    holder_died: bool,
}

impl ConditionProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        ConditionProxy { handle }
    }

    fn acquire(&self, wait: Wait) -> Result<Option<ConditionProxyGuard<'_>>> {
        Ok(
            acquire(&self.handle, Op::Acquire { wait })?.map(|(lease, holder_died)| {
                ConditionProxyGuard {
                    condition: self,
                    held: Some(lease),
                    holder_died,
                }
            }),
        )
    }

    /// Takes the condition's lock, waiting as long as it takes.
    pub fn lock(&self) -> Result<ConditionProxyGuard<'_>> {
        self.acquire(Wait::Forever)?
            .ok_or_else(|| unexpected(&Response::Failed(Failure::Timeout)))
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Result<Option<ConditionProxyGuard<'_>>> {
        self.acquire(Wait::No)
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<ConditionProxyGuard<'_>>> {
        self.acquire(Wait::from_timeout(timeout))
    }

    fn wait_for<'a>(
        &'a self,
        mut guard: ConditionProxyGuard<'a>,
        wait: Wait,
    ) -> Result<(ConditionProxyGuard<'a>, bool)> {
        if !guard.condition.handle.same_object(&self.handle) {
            return Err(Error::invalid(
                "wait() was given the guard of another condition",
            ));
        }
        let Some(lease) = guard.held.as_mut() else {
            return Err(Error::Disconnected);
        };
        let notified = self
            .handle
            .call_on(lease, Op::WaitNotify { wait })?
            .boolean()?;
        Ok((guard, notified))
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    pub fn wait<'a>(&'a self, guard: ConditionProxyGuard<'a>) -> Result<ConditionProxyGuard<'a>> {
        self.wait_for(guard, Wait::Forever).map(|(guard, _)| guard)
    }

    /// Like [`wait`](ConditionProxy::wait), for at most `timeout`; the flag is
    /// false when it timed out. The lock is held again either way.
    pub fn wait_timeout<'a>(
        &'a self,
        guard: ConditionProxyGuard<'a>,
        timeout: Duration,
    ) -> Result<(ConditionProxyGuard<'a>, bool)> {
        self.wait_for(guard, Wait::from_timeout(timeout))
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<()> {
        self.handle.call(Op::Notify { n: u64::MAX })?.done()
    }

    /// Wakes up to `n` waiters.
    pub fn notify(&self, n: usize) -> Result<()> {
        self.handle.call(Op::Notify { n: n as u64 })?.done()
    }
}

impl ConditionProxyGuard<'_> {
    /// True when a previous holder's process died while holding the lock.
    pub fn holder_died(&self) -> bool {
        self.holder_died
    }
}

impl Drop for ConditionProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = release(&self.condition.handle, self.held.take(), Op::Release);
    }
}

impl std::fmt::Debug for ConditionProxyGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionProxyGuard")
            .field("condition", &self.condition)
            .field("holder_died", &self.holder_died)
            .finish()
    }
}

// ---------------------------------------------------------------- Barrier

/// A barrier on a manager's server (Python's `manager.Barrier(parties)`);
/// made by [`Manager::barrier`](crate::Manager::barrier).
///
/// `wait` returns once `parties` callers wait, each with a distinct index in
/// `0..parties`. A waiter that times out breaks the barrier (it gets
/// `Err(Timeout)`, the others `Err(BrokenBarrier)`), and so does a waiter
/// whose process dies, so the others never wait for a party that cannot come.
/// `reset()` makes a broken barrier usable again.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let b = m.barrier(1)?;
/// assert_eq!(b.wait()?, 0);
/// assert_eq!(b.parties()?, 1);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct BarrierProxy {
    handle: Handle,
}

impl_proxy!(BarrierProxy, Kind::Barrier);

impl BarrierProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        BarrierProxy { handle }
    }

    /// Waits for every party; returns this caller's index.
    pub fn wait(&self) -> Result<usize> {
        self.handle
            .call(Op::WaitBarrier {
                wait: Wait::Forever,
            })?
            .size()
    }

    /// Like [`wait`](BarrierProxy::wait), for at most `timeout`:
    /// `Err(Timeout)` then, and the barrier is broken.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        match self
            .handle
            .call(Op::WaitBarrier {
                wait: Wait::from_timeout(timeout),
            })?
            .size()
        {
            Err(Error::Timeout { .. }) => Err(Error::Timeout { after: timeout }),
            other => other,
        }
    }

    /// Breaks the barrier: current and future waiters get `Err(BrokenBarrier)`
    /// until [`reset`](BarrierProxy::reset).
    pub fn abort(&self) -> Result<()> {
        self.handle.call(Op::Abort)?.done()
    }

    /// Returns the barrier to its initial state; current waiters get `Err(BrokenBarrier)`.
    pub fn reset(&self) -> Result<()> {
        self.handle.call(Op::Reset)?.done()
    }

    fn state(&self) -> Result<(u64, u64, bool)> {
        match self.handle.call(Op::BarrierState)?.response()? {
            Response::Barrier {
                parties,
                waiting,
                broken,
            } => Ok((parties, waiting, broken)),
            Response::Failed(failure) => Err(failure_error(failure)),
            other => Err(unexpected(&other)),
        }
    }

    /// The number of parties.
    pub fn parties(&self) -> Result<usize> {
        Ok(self.state()?.0 as usize)
    }

    /// The number of callers waiting now.
    pub fn n_waiting(&self) -> Result<usize> {
        Ok(self.state()?.1 as usize)
    }

    /// True when the barrier is broken.
    pub fn is_broken(&self) -> Result<bool> {
        Ok(self.state()?.2)
    }
}
