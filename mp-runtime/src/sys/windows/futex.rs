//! Wait on a 32-bit word in shared memory until another process changes it:
//! the Windows counterpart of `unix/futex.rs`, with the same three calls.
//!
//! `WaitOnAddress` wakes only threads of the calling process, so a word inside
//! a segment (found through the registry of mappings in `shm.rs`) is waited on
//! through its segment's header instead. The word's offset in the mapping picks
//! one of `BUCKETS` buckets; each bucket has a waiter count in the header (shared
//! by every process) and a named semaphore, `Local\mp-wait-<segment id>-<bucket>`,
//! that each process opens on first use and keeps until it unmaps the segment.
//!
//! - `wait`: open the semaphore, count += 1, re-check the word, sleep on the
//!   semaphore (with the timeout), count -= 1.
//! - `wake_one`/`wake_all`: read the count and release that many permits. Several
//!   words may share a bucket, and a permit may go to a waiter of another word
//!   of the bucket, so even `wake_one` wakes every waiter of the bucket: callers
//!   re-check their condition in a loop, so a spurious wake-up costs a little
//!   time, where a lost one would hang.
//!
//! Why no wake-up is lost: the waker changed the word before calling wake, then
//! runs a SeqCst fence and reads the count; the waiter's increment of the count
//! is followed by a SeqCst fence and then its read of the word. By the fence
//! rules of the memory model, either the waker's read sees the increment (and it
//! releases a permit for this waiter), or the waiter's read sees the new word
//! (and it does not sleep). A permit released before its waiter sleeps stays in
//! the semaphore, which the waiter already holds open (it opens it before
//! counting itself), so the later sleep returns at once. A waiter that timed out
//! just as a permit was released for it leaves that permit behind: one later
//! waiter of the bucket wakes spuriously and waits again. A process killed while
//! waiting leaves its count behind: every later wake of that bucket releases one
//! permit nobody is waiting for, and those permits pile up until waiters of the
//! bucket go through them as spurious wake-ups (one re-check each).
//!
//! A permit can also be taken by the wrong waiter: the waker counts one waiter
//! and releases one permit, and before that waiter takes it, another waiter of
//! the bucket (a thread that just handed its turn over, in a ping-pong) counts
//! itself, finds its own word unchanged, and sleeps on the semaphore, where it
//! takes the permit, wakes, re-checks and sleeps again, leaving the first
//! waiter asleep with its word changed. So no sleep on the semaphore lasts more
//! than `RECHECK_MS` (50 ms) without a re-check of the word: such a wake-up is
//! late by at most that, never lost (without it, three processes going through
//! a `Barrier` 50 times, `tests/sync.rs`, were seen to stall under load until
//! their timeout).
//!
//! A word outside every segment (an atomic on the heap, as in unit tests) can
//! only be shared by threads of this process: `WaitOnAddress` serves it.
//!
//! Timeouts: Windows waits in whole milliseconds and may end a wait slightly
//! early; the wait rounds up and sleeps again until the deadline has really
//! passed, so `TimedOut` is never reported early.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_TIMEOUT, GetLastError, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateSemaphoreW, INFINITE, ReleaseSemaphore, WaitForSingleObject, WaitOnAddress,
    WakeByAddressAll, WakeByAddressSingle,
};

use super::shm::{self, BUCKETS, Mapped};
use super::wide_nul;

/// What a `wait` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, or the word was already different (or a spurious wake-up): re-check.
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// When a wait ends: `None` is never (also for a timeout too large for the clock).
fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Milliseconds to sleep until `deadline`, rounded up; `None` once it has passed.
fn millis_left(deadline: Option<Instant>) -> Option<u32> {
    let Some(deadline) = deadline else {
        return Some(INFINITE);
    };
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    let ms = left.as_nanos().div_ceil(1_000_000);
    Some(u32::try_from(ms).unwrap_or(INFINITE - 1).min(INFINITE - 1))
}

/// The bucket of the word at `addr` inside `mapped`.
fn bucket(mapped: &Mapped, addr: usize) -> usize {
    ((addr - mapped.base) / 4) % BUCKETS
}

/// The wake-up semaphore of `bucket` of the segment, opened (or created) once
/// per mapping.
fn semaphore(mapped: &Mapped, bucket: usize) -> io::Result<Arc<OwnedHandle>> {
    // Each critical section is one map operation: poisoning cannot tear it.
    let mut cache = mapped.semaphores.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(sem) = cache.get(&bucket) {
        return Ok(sem.clone());
    }
    let id = mapped.header().id.load(Ordering::Relaxed);
    let name = wide_nul(std::ffi::OsStr::new(&format!(
        "Local\\mp-wait-{id:016x}-{bucket}"
    )));
    // SAFETY: creates, or opens if it exists, a named semaphore with default,
    // non-inheritable security; the name is NUL-terminated and outlives the call.
    let raw = unsafe { CreateSemaphoreW(std::ptr::null(), 0, i32::MAX, name.as_ptr()) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle that nothing else owns.
    let sem = Arc::new(unsafe { OwnedHandle::from_raw_handle(raw) });
    cache.insert(bucket, sem.clone());
    Ok(sem)
}

/// Sleeps while `*word == expected`, until woken or `timeout` has passed.
/// May return early (`Woken`): callers re-check their condition in a loop.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<Wake> {
    let deadline = deadline_after(timeout);
    let addr = word.as_ptr() as usize;
    match shm::mapping_of(addr) {
        Some(mapped) => wait_shared(&mapped, addr, word, expected, deadline),
        None => wait_local(word, expected, deadline),
    }
}

/// Longest sleep on a bucket's semaphore before the word is checked again.
const RECHECK_MS: u32 = 50;

fn wait_shared(
    mapped: &Mapped,
    addr: usize,
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> io::Result<Wake> {
    let bucket = bucket(mapped, addr);
    // Open before counting ourselves: a permit released for us must find the
    // semaphore alive.
    let sem = semaphore(mapped, bucket)?;
    let waiters = &mapped.header().waiters[bucket];
    waiters.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let result = if word.load(Ordering::SeqCst) != expected {
        Ok(Wake::Woken)
    } else {
        loop {
            let Some(ms) = millis_left(deadline) else {
                break Ok(Wake::TimedOut);
            };
            // SAFETY: waits on a live semaphore handle.
            match unsafe { WaitForSingleObject(sem.as_raw_handle(), ms.min(RECHECK_MS)) } {
                WAIT_OBJECT_0 => break Ok(Wake::Woken),
                // A slice passed (or the wait ended early): re-check the word,
                // whose wake-up may have been taken by another waiter (module docs).
                WAIT_TIMEOUT if word.load(Ordering::SeqCst) != expected => break Ok(Wake::Woken),
                WAIT_TIMEOUT => continue,
                WAIT_FAILED => break Err(io::Error::last_os_error()),
                other => {
                    break Err(io::Error::other(format!(
                        "unexpected wait result {other:#x}"
                    )));
                }
            }
        }
    };
    waiters.fetch_sub(1, Ordering::SeqCst);
    result
}

fn wait_local(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> io::Result<Wake> {
    loop {
        if word.load(Ordering::SeqCst) != expected {
            return Ok(Wake::Woken);
        }
        let Some(ms) = millis_left(deadline) else {
            return Ok(Wake::TimedOut);
        };
        // SAFETY: `word` is a live, aligned 4-byte atomic for the whole call;
        // `expected` lives on this stack frame; both are only read.
        let woken = unsafe {
            WaitOnAddress(
                word.as_ptr().cast_const().cast(),
                (&raw const expected).cast(),
                4,
                ms,
            )
        };
        if woken != 0 {
            return Ok(Wake::Woken);
        }
        // SAFETY: reads this thread's last-error value.
        let error = unsafe { GetLastError() };
        if error != ERROR_TIMEOUT {
            return Err(io::Error::from_raw_os_error(error as i32));
        }
        // Timed out, possibly early: loop to re-check the word and the deadline.
    }
}

fn wake(word: &AtomicU32, all: bool) {
    // Orders the caller's change of the word before the read of the count below
    // (see the module docs).
    fence(Ordering::SeqCst);
    let addr = word.as_ptr() as usize;
    let Some(mapped) = shm::mapping_of(addr) else {
        let ptr = word.as_ptr().cast_const().cast();
        // SAFETY: the address is only a key; `word` is live.
        unsafe {
            if all {
                WakeByAddressAll(ptr);
            } else {
                WakeByAddressSingle(ptr);
            }
        }
        return;
    };
    let bucket = bucket(&mapped, addr);
    let waiters = mapped.header().waiters[bucket].load(Ordering::SeqCst);
    if waiters == 0 {
        return;
    }
    // A waiter holds the semaphore open, so opening it cannot fail for lack of
    // it; should the OS refuse anyway, the waiters' own timeouts (the locks'
    // liveness checks) are all that is left, as nothing can be reported here.
    if let Ok(sem) = semaphore(&mapped, bucket) {
        let permits = i32::try_from(waiters).unwrap_or(i32::MAX);
        // SAFETY: releases permits of a live semaphore handle; the previous
        // count is not asked for. It fails only past i32::MAX permits, which
        // would take that many waiters or wake-ups nobody consumed.
        unsafe { ReleaseSemaphore(sem.as_raw_handle(), permits, std::ptr::null_mut()) };
    }
}

/// Wakes at least one thread (of any process) sleeping on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    wake(word, false);
}

/// Wakes every thread (of any process) sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    wake(word, true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::Segment;
    use std::sync::atomic::AtomicUsize;

    /// A word at `offset` of a real segment.
    fn word(segment: &Segment, offset: usize) -> &AtomicU32 {
        assert!(offset + 4 <= segment.len());
        // SAFETY: inside the mapping, 4-aligned (page-aligned base), zeroed, only
        // used through atomics; borrowed no longer than `segment`.
        unsafe { AtomicU32::from_ptr(segment.as_ptr().add(offset).cast()) }
    }

    #[test]
    fn a_segment_word_is_waited_on_through_its_bucket() {
        let segment = Segment::create(4096).unwrap();
        let addr = segment.as_ptr() as usize;
        let mapped = shm::mapping_of(addr).unwrap();
        assert_eq!(bucket(&mapped, addr), 0);
        assert_eq!(bucket(&mapped, addr + 8), 2);
        assert!(shm::mapping_of(addr + 4096).is_none());
    }

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let segment = Segment::create(64).unwrap();
        let w = word(&segment, 0);
        w.store(1, Ordering::SeqCst);
        assert_eq!(wait(w, 0, None).unwrap(), Wake::Woken);
        let heap = AtomicU32::new(1);
        assert_eq!(wait(&heap, 0, None).unwrap(), Wake::Woken);
    }

    #[test]
    fn wait_times_out_no_earlier_than_asked() {
        let segment = Segment::create(64).unwrap();
        let heap = AtomicU32::new(0);
        for w in [word(&segment, 4), &heap] {
            for ms in [1u64, 20] {
                let timeout = Duration::from_millis(ms);
                let start = Instant::now();
                assert_eq!(wait(w, 0, Some(timeout)).unwrap(), Wake::TimedOut);
                assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
            }
            assert_eq!(wait(w, 0, Some(Duration::ZERO)).unwrap(), Wake::TimedOut);
        }
        let mapped = shm::mapping_of(segment.as_ptr() as usize).unwrap();
        assert_eq!(mapped.header().waiters[1].load(Ordering::SeqCst), 0);
    }

    /// Starts `n` threads that each wait until `w` is nonzero; returns a
    /// counter of those done and their handles.
    fn sleepers(
        segment: &Segment,
        offset: usize,
        n: usize,
    ) -> (Arc<AtomicUsize>, Vec<std::thread::JoinHandle<()>>) {
        let done = Arc::new(AtomicUsize::new(0));
        let threads = (0..n)
            .map(|_| {
                let (segment, done) = (segment.clone(), done.clone());
                std::thread::spawn(move || {
                    let w = word(&segment, offset);
                    while w.load(Ordering::SeqCst) == 0 {
                        wait(w, 0, None).unwrap();
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        (done, threads)
    }

    #[test]
    fn wake_all_wakes_every_sleeper() {
        let segment = Segment::create(64).unwrap();
        let (done, threads) = sleepers(&segment, 8, 4);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(done.load(Ordering::SeqCst), 0);
        word(&segment, 8).store(1, Ordering::SeqCst);
        wake_all(word(&segment, 8));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 4);
        let mapped = shm::mapping_of(segment.as_ptr() as usize).unwrap();
        assert_eq!(mapped.header().waiters[2].load(Ordering::SeqCst), 0);
    }

    #[test]
    fn wake_one_reaches_its_sleeper_past_those_of_another_word_in_the_bucket() {
        // Offsets 0 and 4 * BUCKETS share bucket 0.
        let segment = Segment::create(8192).unwrap();
        let (other_done, others) = sleepers(&segment, 0, 2);
        let (done, mine) = sleepers(&segment, 4 * BUCKETS, 1);
        std::thread::sleep(Duration::from_millis(50));
        word(&segment, 4 * BUCKETS).store(1, Ordering::SeqCst);
        wake_one(word(&segment, 4 * BUCKETS));
        for t in mine {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 1);
        // The others woke spuriously at most, and sleep again.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(other_done.load(Ordering::SeqCst), 0);
        word(&segment, 0).store(1, Ordering::SeqCst);
        wake_all(word(&segment, 0));
        for t in others {
            t.join().unwrap();
        }
        assert_eq!(other_done.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_wake_up_is_lost_in_a_ping_pong() {
        let segment = Segment::create(64).unwrap();
        let other = segment.clone();
        const ROUNDS: u32 = 2000;
        let t = std::thread::spawn(move || {
            let w = word(&other, 0);
            for i in 0..ROUNDS {
                // Wait for our turn (odd), then hand back (even).
                while w.load(Ordering::SeqCst) != 2 * i + 1 {
                    wait(w, 2 * i, None).unwrap();
                }
                w.store(2 * i + 2, Ordering::SeqCst);
                wake_one(w);
            }
        });
        let w = word(&segment, 0);
        for i in 0..ROUNDS {
            w.store(2 * i + 1, Ordering::SeqCst);
            wake_one(w);
            while w.load(Ordering::SeqCst) != 2 * i + 2 {
                wait(w, 2 * i + 1, None).unwrap();
            }
        }
        t.join().unwrap();
    }

    #[test]
    fn a_heap_word_is_woken_by_address() {
        let w = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    while w.load(Ordering::SeqCst) == 0 {
                        wait(&w, 0, None).unwrap();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::SeqCst);
        wake_all(&w);
        for t in threads {
            t.join().unwrap();
        }
    }
}
