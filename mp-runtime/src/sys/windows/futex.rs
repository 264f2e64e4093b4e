//! Wait on a 32-bit word in shared memory until another process changes it:
//! the Windows counterpart of `unix/futex.rs`, with the same three calls.
//!
//! `WaitOnAddress` wakes only threads of the calling process, so a word inside
//! a segment (found through the registry of mappings in `shm.rs`) is waited on
//! through its segment's header instead. Every thread that sleeps has its own
//! auto-reset event, named `Local\mp-wake-<pid>-<thread number>`, created on its
//! first wait. The header holds, per bucket (the word's offset picks one of
//! `BUCKETS`), a count of sleepers, and a table of `SLOTS` sleeper slots, each 0
//! or one sleeping thread's pid, thread number and bucket packed in one word.
//!
//! - `wait`: count += 1, claim a free slot, re-check the word, sleep on the
//!   thread's own event (with the timeout), free the slot, count -= 1.
//! - `wake_one`/`wake_all`: if the bucket's count is not 0, set the event of
//!   every thread whose slot names the bucket. Several words may share a
//!   bucket, so even `wake_one` wakes every sleeper of the bucket: callers
//!   re-check their condition in a loop, so a spurious wake-up costs a little
//!   time, where a lost one would hang.
//!
//! Why no wake-up is lost: the waker changed the word before calling wake, then
//! runs a SeqCst fence and reads the count and the slots; the waiter's claim of
//! its slot is followed by a SeqCst fence and then its read of the word. By the
//! fence rules of the memory model, either the waker sees the slot (and sets the
//! event, which stays set until the waiter's sleep takes it), or the waiter sees
//! the new word (and does not sleep). A wake-up is for one thread only, so no
//! other thread can take it away (as a newcomer would take a permit from a
//! shared semaphore). An event set after its thread stopped waiting makes that
//! thread's next wait return at once: a spurious wake-up. A sleeper whose
//! process was killed leaves its slot and count behind; a waker that finds its
//! event gone frees both. (Each process keeps the events it has set open, up to
//! 256, so that a wake is one `SetEvent`; a killed sleeper's event, and so its
//! slot, then lasts until no process keeps it: a wasted `SetEvent` per wake of
//! its bucket meanwhile, never a lost wake-up.)
//!
//! When every slot is taken, a waiter sleeps in slices of 1 ms, re-reading the
//! word after each: correct, only slower to wake.
//!
//! A word outside every segment (an atomic on the heap, as in unit tests) can
//! only be shared by threads of this process: `WaitOnAddress` serves it.
//!
//! Timeouts: Windows waits in whole milliseconds and may end a wait slightly
//! early; the wait rounds up and sleeps again until the deadline has really
//! passed, so `TimedOut` is never reported early.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_TIMEOUT, GetLastError, HANDLE, SetLastError,
    WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, EVENT_MODIFY_STATE, INFINITE, OpenEventW, SetEvent, WaitForSingleObject,
    WaitOnAddress, WakeByAddressAll, WakeByAddressSingle,
};

use super::shm::{self, BUCKETS, Mapped, SegmentHeader};
use super::wide_nul;

/// What a `wait` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, or the word was already different (or a spurious wake-up): re-check.
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// How long a waiter without a slot sleeps before re-reading the word.
const POLL_MS: u32 = 1;

const _: () = assert!(BUCKETS == 256, "a slot packs the bucket in 8 bits");

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

/// A slot's word: pid, thread number (24 bits) and bucket (8 bits).
fn slot_value(pid: u32, thread: u32, bucket: usize) -> u64 {
    (u64::from(pid) << 32) | (u64::from(thread & 0xFF_FFFF) << 8) | bucket as u64
}

fn slot_bucket(value: u64) -> usize {
    (value & 0xFF) as usize
}

/// The name of a sleeping thread's event, from its slot's word.
fn event_name(value: u64) -> Vec<u16> {
    let (pid, thread) = (value >> 32, (value >> 8) & 0xFF_FFFF);
    wide_nul(std::ffi::OsStr::new(&format!(
        "Local\\mp-wake-{pid}-{thread}"
    )))
}

/// This thread's wake-up event and its number.
struct Sleeper {
    thread: u32,
    event: OwnedHandle,
}

impl Sleeper {
    fn new() -> io::Result<Sleeper> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let pid = std::process::id();
        loop {
            let thread = NEXT.fetch_add(1, Ordering::Relaxed) & 0xFF_FFFF;
            if thread == 0 {
                continue;
            }
            let name = event_name(slot_value(pid, thread, 0));
            // SAFETY: sets this thread's last-error value; no memory is involved.
            unsafe { SetLastError(0) };
            // SAFETY: an auto-reset, unset, named event with default,
            // non-inheritable security; the name is NUL-terminated and outlives
            // the call.
            let raw = unsafe { CreateEventW(std::ptr::null(), 0, 0, name.as_ptr()) };
            if raw.is_null() {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: reads this thread's last-error value.
            let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
            // SAFETY: a fresh handle that nothing else owns.
            let event = unsafe { OwnedHandle::from_raw_handle(raw) };
            // A number that wrapped around onto a live thread's: take the next.
            if !existed {
                return Ok(Sleeper { thread, event });
            }
        }
    }
}

thread_local! {
    static SLEEPER: OnceCell<Sleeper> = const { OnceCell::new() };
}

/// Runs `f` with this thread's event, creating it on first use; with `None`
/// while the thread is being torn down (its thread-locals are gone).
fn with_sleeper<R>(f: impl FnOnce(Option<&Sleeper>) -> io::Result<R>) -> io::Result<R> {
    let mut f = Some(f);
    let outcome = SLEEPER.try_with(|cell| {
        let sleeper = match cell.get() {
            Some(sleeper) => sleeper,
            None => {
                let sleeper = Sleeper::new()?;
                cell.get_or_init(|| sleeper)
            }
        };
        f.take()
            .map_or(Err(io::Error::other("wait ran twice")), |f| {
                f(Some(sleeper))
            })
    });
    match (outcome, f) {
        (Ok(result), _) => result,
        (Err(_), Some(f)) => f(None),
        (Err(_), None) => Err(io::Error::other("wait ran twice")),
    }
}

/// Sleeps while `*word == expected`, until woken or `timeout` has passed.
/// May return early (`Woken`): callers re-check their condition in a loop.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<Wake> {
    let deadline = deadline_after(timeout);
    let addr = word.as_ptr() as usize;
    match shm::mapping_of(addr) {
        Some(mapped) => {
            let bucket = bucket(&mapped, addr);
            with_sleeper(|me| match me {
                Some(me) => wait_shared(mapped.header(), bucket, me, word, expected, deadline),
                None => wait_polling(word, expected, deadline),
            })
        }
        None => wait_local(word, expected, deadline),
    }
}

/// Claims a free slot for `value`; `None` if every slot is taken.
fn claim(header: &SegmentHeader, value: u64) -> Option<&AtomicU64> {
    header.sleepers.iter().find(|slot| {
        slot.load(Ordering::Relaxed) == 0
            && slot
                .compare_exchange(0, value, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    })
}

fn wait_shared(
    header: &SegmentHeader,
    bucket: usize,
    me: &Sleeper,
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> io::Result<Wake> {
    let value = slot_value(std::process::id(), me.thread, bucket);
    let waiters = &header.waiters[bucket];
    waiters.fetch_add(1, Ordering::SeqCst);
    let slot = claim(header, value);
    fence(Ordering::SeqCst);
    let result = loop {
        if word.load(Ordering::SeqCst) != expected {
            break Ok(Wake::Woken);
        }
        let Some(ms) = millis_left(deadline) else {
            break Ok(Wake::TimedOut);
        };
        let ms = if slot.is_some() { ms } else { ms.min(POLL_MS) };
        // SAFETY: waits on this thread's live event handle.
        match unsafe { WaitForSingleObject(me.event.as_raw_handle(), ms) } {
            WAIT_OBJECT_0 => break Ok(Wake::Woken),
            // Possibly early, or a slice of a slotless wait: re-check.
            WAIT_TIMEOUT => continue,
            WAIT_FAILED => break Err(io::Error::last_os_error()),
            other => {
                break Err(io::Error::other(format!(
                    "unexpected wait result {other:#x}"
                )));
            }
        }
    };
    if let Some(slot) = slot {
        // Only this thread frees its slot while it lives (a waker frees a slot
        // only when its event is gone).
        let _ = slot.compare_exchange(value, 0, Ordering::SeqCst, Ordering::Relaxed);
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
    result
}

/// Sleeps in slices of `POLL_MS`, re-reading the word after each: for a thread
/// that has no event any more (a wait from a thread-local's destructor).
fn wait_polling(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> io::Result<Wake> {
    loop {
        if word.load(Ordering::SeqCst) != expected {
            return Ok(Wake::Woken);
        }
        let Some(ms) = millis_left(deadline) else {
            return Ok(Wake::TimedOut);
        };
        std::thread::sleep(Duration::from_millis(u64::from(ms.min(POLL_MS))));
    }
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

/// Most sleepers' events a process keeps open for its wakes.
const EVENT_CACHE: usize = 256;

/// Events of sleepers this process has woken, by pid and thread number, so a
/// wake costs one `SetEvent`. A cached handle keeps its event, and so its name,
/// alive: a thread created later whose pid and number match finds the name taken
/// (`Sleeper::new` then takes another number), so a cached event is never
/// another thread's.
static EVENTS: Mutex<BTreeMap<u64, Arc<OwnedHandle>>> = Mutex::new(BTreeMap::new());

fn set_event(event: &OwnedHandle) {
    // SAFETY: sets a live event handle opened with EVENT_MODIFY_STATE.
    unsafe { SetEvent(event.as_raw_handle()) };
}

/// Sets the event of the sleeper in `slot` (whose word was `value`); frees the
/// slot if the sleeper is gone (its process died and nobody holds its event).
fn signal(header: &SegmentHeader, slot: &AtomicU64, value: u64) {
    let key = value & !0xFF;
    // Each critical section is one map operation: poisoning cannot tear it.
    let cached = EVENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    if let Some(event) = cached {
        set_event(&event);
        return;
    }
    let name = event_name(value);
    // SAFETY: opens a named event for setting only; the name is NUL-terminated
    // and outlives the call; a missing event yields null.
    let raw: HANDLE = unsafe { OpenEventW(EVENT_MODIFY_STATE, 0, name.as_ptr()) };
    if raw.is_null() {
        // SAFETY: reads this thread's last-error value.
        if unsafe { GetLastError() } == ERROR_FILE_NOT_FOUND
            && slot
                .compare_exchange(value, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            header.waiters[slot_bucket(value)].fetch_sub(1, Ordering::SeqCst);
        }
        // Any other failure cannot be reported from a wake; the sleeper's own
        // timeout (the locks' liveness checks) is all that is left.
        return;
    }
    // SAFETY: a fresh handle that nothing else owns, closed on drop.
    let event = Arc::new(unsafe { OwnedHandle::from_raw_handle(raw) });
    set_event(&event);
    let mut events = EVENTS.lock().unwrap_or_else(|e| e.into_inner());
    if events.len() >= EVENT_CACHE {
        // Rarely more sleeping threads than that: start over.
        events.clear();
    }
    events.insert(key, event);
}

fn wake(word: &AtomicU32, all: bool) {
    // Orders the caller's change of the word before the reads of the count and
    // the slots below (see the module docs).
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
    let header = mapped.header();
    if header.waiters[bucket].load(Ordering::SeqCst) == 0 {
        return;
    }
    for slot in &header.sleepers {
        let value = slot.load(Ordering::SeqCst);
        if value != 0 && slot_bucket(value) == bucket {
            signal(header, slot, value);
        }
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
    use std::sync::Arc;
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
        assert!(
            mapped
                .header()
                .sleepers
                .iter()
                .all(|s| s.load(Ordering::SeqCst) == 0)
        );
    }

    #[test]
    fn a_waiter_without_a_slot_still_wakes() {
        let segment = Segment::create(64).unwrap();
        let mapped = shm::mapping_of(segment.as_ptr() as usize).unwrap();
        let header = mapped.header();
        // Every slot taken by a sleeper of another bucket (a live thread number
        // of no thread: waking it finds no event and frees the slot, so take
        // bucket 9, which nobody wakes here).
        for slot in &header.sleepers {
            slot.store(
                slot_value(std::process::id(), 0xFF_FFFF, 9),
                Ordering::SeqCst,
            );
        }
        let (done, threads) = sleepers(&segment, 0, 1);
        std::thread::sleep(Duration::from_millis(20));
        word(&segment, 0).store(1, Ordering::SeqCst);
        wake_one(word(&segment, 0));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 1);
        for slot in &header.sleepers {
            slot.store(0, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_slot_of_a_sleeper_that_is_gone_is_freed_by_the_next_wake() {
        let segment = Segment::create(64).unwrap();
        let mapped = shm::mapping_of(segment.as_ptr() as usize).unwrap();
        let header = mapped.header();
        // A sleeper of bucket 3 whose process has exited: no event by its name.
        let gone = slot_value(u32::MAX - 3, 7, 3);
        header.sleepers[5].store(gone, Ordering::SeqCst);
        header.waiters[3].store(1, Ordering::SeqCst);
        wake_all(word(&segment, 12));
        assert_eq!(header.sleepers[5].load(Ordering::SeqCst), 0);
        assert_eq!(header.waiters[3].load(Ordering::SeqCst), 0);
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
        // Each side's wake reaches the other while it may itself be about to
        // sleep on the same word: a shared permit could be taken by the waker,
        // a wake-up for one thread cannot.
        let segment = Segment::create(64).unwrap();
        let other = segment.clone();
        const ROUNDS: u32 = 5000;
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
    fn a_thread_without_its_event_polls_the_word() {
        let w = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let timeout = Duration::from_millis(5);
        let r = wait_polling(&w, 0, deadline_after(Some(timeout))).unwrap();
        assert_eq!(r, Wake::TimedOut);
        assert!(start.elapsed() >= timeout);
        let setter = {
            let w = w.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                w.store(1, Ordering::SeqCst);
            })
        };
        assert_eq!(wait_polling(&w, 0, None).unwrap(), Wake::Woken);
        assert_eq!(w.load(Ordering::SeqCst), 1);
        setter.join().unwrap();
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
