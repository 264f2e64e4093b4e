//! `Condition`: a sequence word and a waiter count in shared memory, used with
//! any mp lock guard. A waiter reads the sequence while holding the lock,
//! unlocks, and sleeps while the word still has that value; a notifier bumps the
//! word and wakes. Nothing is lost between the unlock and the sleep: a notify in
//! between changes the word, so the sleep returns at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Deadline, Lock, LockGuard, futex, spin_until, wait_on};
use crate::error::Result;
use crate::shm::{Region, SharedState};

mod sealed {
    /// Unlock and relock through a guard, for condition waits.
    pub trait Sealed {
        fn unlock_for_wait(&mut self);
        fn relock(&mut self) -> crate::error::Result<()>;
    }
}

/// A lock guard that a [`Condition`] can wait with: a [`LockGuard`] (from
/// [`Condition::lock`] or any [`Lock`]), a [`ValueGuard`](crate::ValueGuard) or
/// an [`ArrayGuard`](crate::ArrayGuard). Not implementable outside mp.
pub trait Waitable: sealed::Sealed {}

impl sealed::Sealed for LockGuard<'_> {
    fn unlock_for_wait(&mut self) {
        self.held.unlock_for_wait();
    }
    fn relock(&mut self) -> Result<()> {
        self.held.relock()
    }
}

impl Waitable for LockGuard<'_> {}

pub(crate) use sealed::Sealed;

#[repr(C)]
pub(crate) struct ConditionState {
    /// Bumped by every notify; waiters sleep while it is unchanged.
    seq: AtomicU32,
    /// Processes/threads asleep (or about to sleep) on `seq`.
    waiters: AtomicU32,
}

// SAFETY: only atomics; all zeroes is a valid condition with no waiters.
unsafe impl SharedState for ConditionState {
    type Elem = ();
    const WHAT: &'static str = "a Condition";
}

/// A condition variable shared between processes, like Python's
/// `multiprocessing.Condition`: wait, holding a lock, until another process
/// changes some shared state and notifies.
///
/// [`wait`](Condition::wait) takes the guard, unlocks while asleep, and gives
/// the guard back locked. It works with the condition's own lock
/// ([`lock`](Condition::lock)), with any [`Lock`], and with the lock of a
/// [`Value`](crate::Value) or [`Array`](crate::Array). Like every condition
/// variable, it can wake without a notify: wait in a loop on your predicate, or
/// use [`wait_while`](Condition::wait_while).
///
/// ```
/// # use mp_runtime as mp;
/// let ready = mp::Value::new(false)?;
/// let cond = mp::Condition::new()?;
/// let (r, c) = (ready.clone(), cond.clone());
/// std::thread::spawn(move || {
///     *r.lock().unwrap() = true;
///     c.notify_all();
/// });
/// let guard = cond.wait_while(ready.lock()?, |ready| !**ready)?;
/// assert!(*guard);
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: Lock,
    region: Region<ConditionState>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}

impl Condition {
    /// A new condition with its own lock.
    pub fn new() -> Result<Condition> {
        Condition::with_lock(Lock::new()?)
    }

    /// A new condition whose [`lock`](Condition::lock) is `lock`.
    pub fn with_lock(lock: Lock) -> Result<Condition> {
        Ok(Condition {
            lock,
            region: Region::create(0, |_| Ok(()))?,
        })
    }

    /// Takes the condition's lock.
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock.lock()
    }

    /// Takes the condition's lock if it is free right now.
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>> {
        self.lock.try_lock()
    }

    /// The condition's lock.
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }

    fn state(&self) -> &ConditionState {
        self.region.state()
    }

    /// Unlocks `guard`, sleeps until notified (or spuriously woken), and returns
    /// the guard locked again.
    pub fn wait<G: Waitable>(&self, guard: G) -> Result<G> {
        self.wait_until(guard, Deadline::NEVER).map(|(g, _)| g)
    }

    /// Like [`wait`](Condition::wait) for at most `timeout`; the `bool` is
    /// `false` if the time ran out.
    pub fn wait_timeout<G: Waitable>(&self, guard: G, timeout: Duration) -> Result<(G, bool)> {
        self.wait_until(guard, Deadline::after(timeout))
    }

    /// Waits while `condition(&mut guard)` is true (checked with the lock held),
    /// like `std::sync::Condvar::wait_while` and Python's `wait_for`.
    pub fn wait_while<G: Waitable>(
        &self,
        mut guard: G,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> Result<G> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    fn wait_until<G: Waitable>(&self, mut guard: G, deadline: Deadline) -> Result<(G, bool)> {
        let state = self.state();
        state.waiters.fetch_add(1, Ordering::SeqCst);
        let seq = state.seq.load(Ordering::SeqCst);
        guard.unlock_for_wait();
        let notified = if spin_until(|| state.seq.load(Ordering::Acquire) != seq) {
            Ok(true)
        } else {
            wait_on(&state.seq, seq, deadline, "a condition")
        };
        state.waiters.fetch_sub(1, Ordering::SeqCst);
        // Relock even if the wait failed, so the guard is handed back in a
        // known state; a relock failure drops the (unlocked) guard.
        guard.relock()?;
        let notified = notified? || state.seq.load(Ordering::Acquire) != seq;
        Ok((guard, notified))
    }

    fn bump(&self) -> bool {
        let state = self.state();
        state.seq.fetch_add(1, Ordering::SeqCst);
        state.waiters.load(Ordering::SeqCst) > 0
    }

    /// Wakes one waiter (in any process), if there is one.
    pub fn notify_one(&self) {
        if self.bump() {
            futex::wake_one(&self.state().seq);
        }
    }

    /// Wakes every waiter, in every process.
    pub fn notify_all(&self) {
        if self.bump() {
            futex::wake_all(&self.state().seq);
        }
    }
}
