//! `Barrier`: a robust lock guarding the bookkeeping, and a generation word that
//! waiters sleep on with the futex shim. See `README.md` for the protocol.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Deadline, LockKind, RawLock, futex, spin_until, wait_on};
use crate::error::{Error, Result};
use crate::shm::{Region, SharedState};

/// Generation numbers use the top 31 bits of the word; bit 0 is "broken".
const BROKEN: u32 = 1;
const GEN_MASK: u32 = u32::MAX >> 1;

fn generation(word: u32) -> u32 {
    word >> 1
}

fn bit(generation: u32) -> u64 {
    1u64 << (generation % 64)
}

#[repr(C)]
pub(crate) struct BarrierState {
    /// Guards `count`, `outcomes` and changes of `word`.
    lock: RawLock,
    /// `generation << 1 | broken`; waiters of a generation sleep while it is
    /// unchanged.
    word: AtomicU32,
    /// Parties waiting in the current generation.
    count: AtomicU32,
    /// How many parties trip the barrier.
    parties: AtomicU32,
    /// Bit `g % 64` is set when generation `g` ended broken (for waiters that
    /// look after the generation has moved on).
    outcomes: AtomicU64,
}

// SAFETY: atomics and a process-shared lock (initialized in `new`); no pointers.
unsafe impl SharedState for BarrierState {
    type Elem = ();
    const WHAT: &'static str = "a Barrier";
}

/// The internal lock, held for a few loads and stores.
struct Inner<'a> {
    state: &'a BarrierState,
}

impl<'a> Inner<'a> {
    fn lock(state: &'a BarrierState) -> Result<Inner<'a>> {
        let died = state.lock.lock(Deadline::NEVER)?.unwrap_or(false);
        let inner = Inner { state };
        if died {
            // A party died in the middle of updating the bookkeeping: it cannot be
            // trusted, so the barrier breaks (waiters learn it; `reset` repairs).
            inner.break_current();
        }
        Ok(inner)
    }

    /// Marks the current generation broken and wakes its waiters.
    fn break_current(&self) {
        let state = self.state;
        let word = state.word.load(Ordering::Relaxed);
        if word & BROKEN == 0 {
            state
                .outcomes
                .fetch_or(bit(generation(word)), Ordering::Relaxed);
            state.count.store(0, Ordering::Relaxed);
            state.word.store(word | BROKEN, Ordering::SeqCst);
            futex::wake_all(&state.word);
        }
    }

    /// Starts the next generation (not broken) and wakes the waiters of this one.
    fn next_generation(&self) {
        let state = self.state;
        let next = (generation(state.word.load(Ordering::Relaxed)) + 1) & GEN_MASK;
        state.outcomes.fetch_and(!bit(next), Ordering::Relaxed);
        state.count.store(0, Ordering::Relaxed);
        state.word.store(next << 1, Ordering::SeqCst);
        futex::wake_all(&state.word);
    }
}

impl Drop for Inner<'_> {
    fn drop(&mut self) {
        // SAFETY: an `Inner` exists only while this thread holds the lock, and is
        // never sent to another thread (it borrows a local state reference).
        unsafe { self.state.lock.unlock() };
    }
}

/// A barrier for a fixed number of parties across processes, like Python's
/// `multiprocessing.Barrier`: each party calls [`wait`](Barrier::wait); all
/// return together once `parties` have arrived, each with a distinct index in
/// `0..parties` (the arrival order). Then the barrier is ready for another round.
///
/// A broken barrier fails every wait with [`Error::BrokenBarrier`] until
/// [`reset`](Barrier::reset): it breaks on [`abort`](Barrier::abort), when a
/// [`wait_timeout`](Barrier::wait_timeout) runs out (as in Python), and when a
/// party dies inside the barrier's bookkeeping. A party that dies before
/// arriving leaves the others waiting: give them a timeout, or `abort` from
/// elsewhere.
///
/// ```
/// # use mp_runtime as mp;
/// let b = mp::Barrier::new(2)?;
/// let other = b.clone();
/// let t = std::thread::spawn(move || other.wait().unwrap());
/// let mine = b.wait()?;
/// let mut both = [mine, t.join().unwrap()];
/// both.sort();
/// assert_eq!(both, [0, 1]);
///
/// b.abort();
/// assert!(matches!(b.wait(), Err(mp::Error::BrokenBarrier { .. })));
/// b.reset();
/// assert!(!b.is_broken());
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Barrier {
    region: Region<BarrierState>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("is_broken", &self.is_broken())
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` parties (at least 1).
    pub fn new(parties: usize) -> Result<Barrier> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "a barrier needs between 1 and {} parties, got {parties}",
                    u32::MAX
                ))
            })?;
        let region = Region::create(0, |state: *mut BarrierState| {
            // SAFETY: `create` gives zeroed, aligned memory for the state that
            // nobody sees yet; zeroed atomics are valid.
            unsafe { (*state).parties.store(parties, Ordering::Relaxed) };
            // SAFETY: as above, for the lock.
            unsafe { RawLock::init(&raw mut (*state).lock, LockKind::Plain) }
        })?;
        Ok(Barrier { region })
    }

    fn state(&self) -> &BarrierState {
        self.region.state()
    }

    /// Waits for all parties; returns this party's index in `0..parties`.
    pub fn wait(&self) -> Result<usize> {
        self.wait_until(Deadline::NEVER)
    }

    /// Like [`wait`](Barrier::wait) for at most `timeout`; when it runs out the
    /// barrier breaks and every waiter gets [`Error::BrokenBarrier`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(&self, deadline: Deadline) -> Result<usize> {
        let state = self.state();
        let inner = Inner::lock(state)?;
        let word = state.word.load(Ordering::Relaxed);
        if word & BROKEN != 0 {
            return Err(Error::BrokenBarrier);
        }
        let index = state.count.load(Ordering::Relaxed);
        if index + 1 >= state.parties.load(Ordering::Relaxed) {
            inner.next_generation();
            return Ok(index as usize);
        }
        state.count.store(index + 1, Ordering::Relaxed);
        drop(inner);

        let mut failure = None;
        if !spin_until(|| state.word.load(Ordering::Acquire) != word) {
            while state.word.load(Ordering::Acquire) == word {
                match wait_on(&state.word, word, deadline, "a barrier") {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }

        let inner = Inner::lock(state)?;
        let now = state.word.load(Ordering::Relaxed);
        if now == word {
            // Timed out (or the wait failed) while the generation is still open.
            inner.break_current();
            return Err(failure.unwrap_or(Error::BrokenBarrier));
        }
        let passed = generation(now).wrapping_sub(generation(word)) & GEN_MASK;
        let broken = if now == word | BROKEN {
            true
        } else if passed < 64 {
            state.outcomes.load(Ordering::Relaxed) & bit(generation(word)) != 0
        } else {
            // So many rounds went by that this one's outcome is forgotten.
            true
        };
        drop(inner);
        if broken {
            Err(Error::BrokenBarrier)
        } else {
            Ok(index as usize)
        }
    }

    /// Breaks the barrier: current and future waits fail with
    /// [`Error::BrokenBarrier`] until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        match Inner::lock(self.state()) {
            Ok(inner) => inner.break_current(),
            Err(_) => {
                // The internal lock is unusable (it never is in practice): break
                // the barrier without it, which still wakes every waiter.
                let state = self.state();
                state.word.fetch_or(BROKEN, Ordering::SeqCst);
                futex::wake_all(&state.word);
            }
        }
    }

    /// Returns the barrier to its initial, unbroken state. Parties waiting right
    /// now get [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        if let Ok(inner) = Inner::lock(self.state()) {
            let state = self.state();
            let word = state.word.load(Ordering::Relaxed);
            if word & BROKEN != 0 || state.count.load(Ordering::Relaxed) > 0 {
                state
                    .outcomes
                    .fetch_or(bit(generation(word)), Ordering::Relaxed);
                inner.next_generation();
            }
        }
    }

    /// How many parties trip the barrier.
    pub fn parties(&self) -> usize {
        self.state().parties.load(Ordering::Relaxed) as usize
    }

    /// How many parties are waiting right now.
    pub fn n_waiting(&self) -> usize {
        self.state().count.load(Ordering::Relaxed) as usize
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state().word.load(Ordering::Relaxed) & BROKEN != 0
    }
}
