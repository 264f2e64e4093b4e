//! `Event`: a flag word and a waiter count in shared memory; waiters sleep on
//! the flag word with the futex shim.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Deadline, futex, spin_until, wait_on};
use crate::error::Result;
use crate::shm::{Region, SharedState};

#[repr(C)]
pub(crate) struct EventState {
    /// 0 = clear, 1 = set; waiters sleep while it is 0.
    flag: AtomicU32,
    /// Processes/threads asleep (or about to sleep) on `flag`.
    waiters: AtomicU32,
}

impl EventState {
    fn set(&self) {
        self.flag.store(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            futex::wake_all(&self.flag);
        }
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire) == 1
    }

    fn wait_until(&self, deadline: Deadline) -> Result<bool> {
        if self.is_set() || spin_until(|| self.is_set()) {
            return Ok(true);
        }
        loop {
            // Announce the sleeper before the kernel re-checks the flag, so `set`
            // either sees it or changed the flag first.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let slept = wait_on(&self.flag, 0, deadline, "an event");
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if self.is_set() {
                return Ok(true);
            }
            if !slept? && deadline.remaining().is_none() {
                return Ok(false);
            }
        }
    }
}

// SAFETY: only atomics; all zeroes is a valid, clear event.
unsafe impl SharedState for EventState {
    type Elem = ();
    const WHAT: &'static str = "an Event";
}

/// A flag shared between processes, like Python's `multiprocessing.Event`:
/// [`wait`](Event::wait) sleeps until another process [`set`](Event::set)s it.
///
/// ```
/// # use mp_runtime as mp;
/// use std::time::Duration;
///
/// let e = mp::Event::new()?;
/// assert!(!e.wait_timeout(Duration::from_millis(10))?);   // not set: times out
/// let setter = e.clone();
/// std::thread::spawn(move || setter.set().unwrap());
/// e.wait()?;
/// assert!(e.is_set());
/// e.clear()?;
/// assert!(!e.is_set());
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event {
    region: Region<EventState>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Result<Event> {
        Ok(Event {
            region: Region::create(0, |_| Ok(()))?,
        })
    }

    fn state(&self) -> &EventState {
        self.region.state()
    }

    /// Sets the flag and wakes every waiter, in every process.
    pub fn set(&self) -> Result<()> {
        self.state().set();
        Ok(())
    }

    /// Clears the flag: later waits sleep again.
    pub fn clear(&self) -> Result<()> {
        self.state().flag.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the flag is set right now.
    pub fn is_set(&self) -> bool {
        self.state().is_set()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<()> {
        self.state().wait_until(Deadline::NEVER).map(|_| ())
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.state().wait_until(Deadline::after(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn state() -> Arc<EventState> {
        Arc::new(EventState {
            flag: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        })
    }

    #[test]
    fn set_wakes_every_waiter() {
        let e = state();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || e.wait_until(Deadline::NEVER).unwrap())
            })
            .collect();
        e.set();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert_eq!(e.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn wait_times_out_when_not_set() {
        let e = state();
        assert!(
            !e.wait_until(Deadline::after(Duration::from_millis(5)))
                .unwrap()
        );
        e.set();
        assert!(e.wait_until(Deadline::after(Duration::ZERO)).unwrap());
    }
}
