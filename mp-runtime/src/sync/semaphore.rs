//! `Semaphore` and `BoundedSemaphore`: a counter word and a waiter count in
//! shared memory; waiters sleep on the counter word with the futex shim.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Deadline, futex, spin_until, wait_on};
use crate::error::{Error, Result};
use crate::shm::{Region, SharedState};

/// The words of one semaphore.
#[repr(C)]
pub(crate) struct Words {
    /// Permits available now; waiters sleep while it is 0.
    value: AtomicU32,
    /// Processes/threads asleep (or about to sleep) on `value`.
    waiters: AtomicU32,
    /// Most permits `release` may lead to; `u32::MAX` when unbounded.
    bound: AtomicU32,
}

impl Words {
    fn init(&self, value: u32, bound: u32) {
        self.value.store(value, Ordering::Relaxed);
        self.bound.store(bound, Ordering::Relaxed);
    }

    fn try_take(&self) -> bool {
        let mut value = self.value.load(Ordering::Relaxed);
        while value > 0 {
            match self.value.compare_exchange_weak(
                value,
                value - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => value = now,
            }
        }
        false
    }

    fn acquire(&self, deadline: Deadline) -> Result<bool> {
        if self.try_take() || spin_until(|| self.try_take()) {
            return Ok(true);
        }
        loop {
            // Announce the sleeper before the kernel re-checks the word, so a
            // `release` either sees it or changed the word first.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let slept = wait_on(&self.value, 0, deadline, "a semaphore");
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if self.try_take() {
                return Ok(true);
            }
            if !slept? && deadline.remaining().is_none() {
                return Ok(false);
            }
        }
    }

    fn release(&self) -> Result<()> {
        let bound = self.bound.load(Ordering::Relaxed);
        let mut value = self.value.load(Ordering::Relaxed);
        loop {
            if value >= bound {
                return Err(if bound == u32::MAX {
                    Error::invalid("semaphore value would overflow (more than 4294967294)")
                } else {
                    Error::Bounded
                });
            }
            match self.value.compare_exchange_weak(
                value,
                value + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => value = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            futex::wake_one(&self.value);
        }
        Ok(())
    }
}

#[repr(C)]
pub(crate) struct SemaphoreState<const BOUNDED: bool> {
    words: Words,
}

// SAFETY: only atomics; all zeroes is a valid (empty) semaphore.
unsafe impl SharedState for SemaphoreState<false> {
    type Elem = ();
    const WHAT: &'static str = "a Semaphore";
}

// SAFETY: as above.
unsafe impl SharedState for SemaphoreState<true> {
    type Elem = ();
    const WHAT: &'static str = "a BoundedSemaphore";
}

fn initial(value: usize) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v < u32::MAX)
        .ok_or_else(|| {
            Error::invalid(format!(
                "a semaphore's value must be below {}, got {value}",
                u32::MAX
            ))
        })
}

macro_rules! semaphore_methods {
    () => {
        /// Takes a permit, waiting while there is none.
        pub fn acquire(&self) -> Result<()> {
            self.words().acquire(Deadline::NEVER).map(|_| ())
        }

        /// Takes a permit if one is free right now; `Ok(false)` if not.
        pub fn try_acquire(&self) -> Result<bool> {
            Ok(self.words().try_take())
        }

        /// Waits at most `timeout` for a permit; `Ok(false)` if none came.
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
            self.words().acquire(Deadline::after(timeout))
        }

        /// Permits available right now (another process may change it at once).
        pub fn value(&self) -> usize {
            self.words().value.load(Ordering::Relaxed) as usize
        }

        fn words(&self) -> &Words {
            &self.region.state().words
        }
    };
}

/// A counting semaphore shared between processes, like Python's
/// `multiprocessing.Semaphore`: [`acquire`](Semaphore::acquire) takes a permit
/// (sleeping while there is none), [`release`](Semaphore::release) gives one back.
///
/// A process that dies holding permits does not give them back; use
/// [`acquire_timeout`](Semaphore::acquire_timeout) where that matters.
///
/// ```
/// # use mp_runtime as mp;
/// use std::time::Duration;
///
/// let s = mp::Semaphore::new(2)?;
/// s.acquire()?;
/// assert!(s.try_acquire()?);
/// assert!(!s.try_acquire()?);                                   // none left
/// assert!(!s.acquire_timeout(Duration::from_millis(10))?);
/// s.release()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Semaphore {
    region: Region<SemaphoreState<false>>,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Result<Semaphore> {
        let value = initial(value)?;
        let region = Region::create(0, |state: *mut SemaphoreState<false>| {
            // SAFETY: `create` gives zeroed, aligned memory for the state that nobody
            // sees yet; zeroed atomics are valid, so a shared reference is fine.
            unsafe { &(*state).words }.init(value, u32::MAX);
            Ok(())
        })?;
        Ok(Semaphore { region })
    }

    /// Gives a permit back, waking one waiter.
    pub fn release(&self) -> Result<()> {
        self.words().release()
    }

    semaphore_methods!();
}

/// A [`Semaphore`] that refuses to go above its initial value, like Python's
/// `multiprocessing.BoundedSemaphore`: a [`release`](BoundedSemaphore::release)
/// without a matching acquire is an [`Error::Bounded`].
///
/// ```
/// # use mp_runtime as mp;
/// let s = mp::BoundedSemaphore::new(1)?;
/// s.acquire()?;
/// s.release()?;
/// assert!(matches!(s.release(), Err(mp::Error::Bounded { .. })));
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundedSemaphore {
    region: Region<SemaphoreState<true>>,
}

impl std::fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits that never holds more.
    pub fn new(value: usize) -> Result<BoundedSemaphore> {
        let value = initial(value)?;
        let region = Region::create(0, |state: *mut SemaphoreState<true>| {
            // SAFETY: as in `Semaphore::new`.
            unsafe { &(*state).words }.init(value, value);
            Ok(())
        })?;
        Ok(BoundedSemaphore { region })
    }

    /// Gives a permit back, waking one waiter; [`Error::Bounded`] if that would
    /// exceed the initial value.
    pub fn release(&self) -> Result<()> {
        self.words().release()
    }

    semaphore_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn words(value: u32, bound: u32) -> Arc<Words> {
        let w = Words {
            value: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(0),
        };
        w.init(value, bound);
        Arc::new(w)
    }

    #[test]
    fn permits_are_never_exceeded() {
        let s = words(2, u32::MAX);
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert!(s.acquire(Deadline::NEVER).unwrap());
                        assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        s.release().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.value.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn bound_and_timeout() {
        let s = words(1, 1);
        assert!(matches!(s.release(), Err(Error::Bounded)));
        assert!(s.try_take());
        assert!(
            !s.acquire(Deadline::after(Duration::from_millis(5)))
                .unwrap()
        );
        s.release().unwrap();
        let full = words(u32::MAX - 1, u32::MAX);
        full.release().unwrap();
        assert!(matches!(full.release(), Err(Error::InvalidArgument { .. })));
    }
}
