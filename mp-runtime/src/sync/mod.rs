//! Locks, semaphores, events, conditions and barriers that work across
//! processes, living in shared memory with no server process.
//!
//! The protocols (lock word layouts, futex use, what happens when a
//! participant dies) are described in `README.md` beside this file.

mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, Waitable};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

pub(crate) use condition::Sealed;
pub(crate) use lock::{Held, LockKind, RawLock};

use std::hint::spin_loop;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub(crate) use crate::sys::futex;

/// When a wait gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// Wait forever.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// `timeout` from now (forever if that overflows the clock).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// `None` once the deadline has passed; otherwise the time left (`Some(None)`
    /// when there is no deadline).
    pub(crate) fn remaining(self) -> Option<Option<Duration>> {
        match self.0 {
            None => Some(None),
            Some(at) => {
                let now = Instant::now();
                (now < at).then(|| Some(at - now))
            }
        }
    }
}

/// Spins briefly (bounded, with pause hints, about a few microseconds) until
/// `ready()`; returns whether it became true. Used before sleeping in the kernel,
/// where a wake-up across CPUs costs tens of microseconds.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    for round in 0..10u32 {
        if ready() {
            return true;
        }
        for _ in 0..(1u32 << round.min(6)) {
            spin_loop();
        }
    }
    ready()
}

/// Sleeps while `*word == expected`, until woken or `deadline`. Returns false
/// if the deadline had passed (without sleeping) or passed while asleep.
pub(crate) fn wait_on(
    word: &AtomicU32,
    expected: u32,
    deadline: Deadline,
    what: &str,
) -> Result<bool> {
    let Some(timeout) = deadline.remaining() else {
        return Ok(false);
    };
    match futex::wait(word, expected, timeout) {
        Ok(futex::Wake::Woken) => Ok(true),
        Ok(futex::Wake::TimedOut) => Ok(false),
        Err(e) => Err(Error::io(&format!("could not wait on {what}"), e)),
    }
}
