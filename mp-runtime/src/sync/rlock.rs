//! `RLock`: a re-entrant process-shared lock (a recursive robust mutex on Linux).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Deadline, Held, LockKind, RawLock};
use crate::error::{Error, Result};
use crate::shm::{Region, SharedState};

#[repr(C)]
pub(crate) struct RLockState {
    raw: RawLock,
}

// SAFETY: zeroed memory is valid before `init`; no pointers; the lock is
// process-shared.
unsafe impl SharedState for RLockState {
    type Elem = ();
    const WHAT: &'static str = "an RLock";
}

/// A re-entrant lock shared between processes, like Python's
/// `multiprocessing.RLock`: the thread that holds it may lock it again; it is
/// free when every guard is dropped. Its owner is one thread of one process.
///
/// Like [`Lock`](crate::Lock), a holder that dies does not deadlock the others:
/// the next guard reports [`holder_died`](RLockGuard::holder_died).
///
/// ```
/// # use mp_runtime as mp;
/// let r = mp::RLock::new()?;
/// let outer = r.lock()?;
/// let inner = r.lock()?;                 // the same thread: fine
/// let other = r.clone();
/// std::thread::spawn(move || assert!(other.try_lock().unwrap().is_none()))
///     .join()
///     .unwrap();                         // another thread: held
/// drop(inner);
/// drop(outer);
/// assert!(r.try_lock()?.is_some());
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RLock {
    region: Region<RLockState>,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock").finish_non_exhaustive()
    }
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> Result<RLock> {
        let region = Region::create(0, |state: *mut RLockState| {
            // SAFETY: `create` gives zeroed memory for the state that nobody sees yet.
            unsafe { RawLock::init(&raw mut (*state).raw, LockKind::Recursive) }
        })?;
        Ok(RLock { region })
    }

    #[inline]
    fn raw(&self) -> &RawLock {
        &self.region.state().raw
    }

    /// Waits for the lock and takes it (at once if this thread holds it).
    #[inline]
    pub fn lock(&self) -> Result<RLockGuard<'_>> {
        match Held::acquire(self.raw(), self.region.segment(), Deadline::NEVER)? {
            Some(held) => Ok(RLockGuard { held }),
            // A wait without deadline only ends with the lock or an error.
            None => Err(Error::Timeout {
                after: Duration::MAX,
            }),
        }
    }

    /// Takes the lock if it is free or held by this thread; `Ok(None)` if not.
    #[inline]
    pub fn try_lock(&self) -> Result<Option<RLockGuard<'_>>> {
        Ok(Held::try_acquire(self.raw(), self.region.segment())?.map(|held| RLockGuard { held }))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed taken.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<RLockGuard<'_>>> {
        Ok(
            Held::acquire(self.raw(), self.region.segment(), Deadline::after(timeout))?
                .map(|held| RLockGuard { held }),
        )
    }
}

/// One level of holding an [`RLock`]; releases that level when dropped. Not
/// `Send`: it must be dropped by the thread that locked.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    held: Held<'a>,
}

impl RLockGuard<'_> {
    /// True if the previous holder died while holding the lock.
    #[inline]
    pub fn holder_died(&self) -> bool {
        self.held.holder_died()
    }
}
