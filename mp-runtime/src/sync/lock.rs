//! `Lock`, and the raw process-shared lock under every lock of mp (`Lock`,
//! `RLock`, `Value`, `Array`, `Condition`, `Barrier`).
//!
//! Linux: a robust, process-shared pthread mutex (`PTHREAD_PROCESS_SHARED`,
//! `PTHREAD_MUTEX_ROBUST`; error-checking, or recursive for `RLock`). When its
//! holder dies the kernel marks it through the holder's robust list and the next
//! locker gets `EOWNERDEAD`: we make it consistent and report `holder_died()`.
//!
//! Elsewhere (macOS and Windows have no robust mutexes): a lock word holding the
//! holder's pid plus a "contended" bit, waited on with the futex shim. A waiter
//! that has slept 100 ms checks whether the holder process still exists
//! (`kill(pid, 0)`; on Windows `OpenProcess` and a zero wait on its handle, so a
//! holder ended by `TerminateProcess` is noticed); if not, it takes the lock over
//! and reports `holder_died()`. (Why not a Windows named mutex: see `README.md`.) A recycled pid can hide a
//! death until that process exits; a thread (not process) that exits holding the
//! lock is not detected.

use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Deadline;
use crate::error::{Error, Result};
use crate::shm::{Region, Segment, SharedState};

/// Which flavour of lock to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// Locking it again from the holding thread is an error, not a deadlock.
    Plain,
    /// Re-entrant per thread (`RLock`).
    Recursive,
}

/// What one attempt to lock ended with.
#[derive(Debug)]
enum Outcome {
    /// Locked; `died` when the previous holder died holding it.
    Acquired { died: bool },
    /// Held by someone else (or the deadline passed).
    Busy,
    /// A plain lock already held by this thread.
    SelfHeld,
    /// The OS refused.
    Failed(std::io::Error),
}

/// A process-shared lock placed in shared memory.
#[repr(C)]
pub(crate) struct RawLock(imp::Raw);

impl RawLock {
    /// Initializes a lock in place.
    ///
    /// # Safety
    /// `ptr` points to zeroed, writable memory for a `RawLock` that no other
    /// thread or process uses yet.
    pub(crate) unsafe fn init(ptr: *mut RawLock, kind: LockKind) -> Result<()> {
        // SAFETY: forwarded from the caller; `RawLock` is a `repr(C)` wrapper.
        unsafe { imp::Raw::init(ptr.cast(), kind) }
            .map_err(|e| Error::io("could not initialize a process-shared lock", e))
    }

    /// Locks, waiting until `deadline`. `Ok(None)`: timed out; `Ok(Some(died))`:
    /// locked, `died` when the previous holder died holding it.
    #[inline]
    pub(crate) fn lock(&self, deadline: Deadline) -> Result<Option<bool>> {
        match self.0.fast_try() {
            Outcome::Acquired { died: false } => Ok(Some(false)),
            first => self.lock_slow(first, deadline),
        }
    }

    #[cold]
    fn lock_slow(&self, first: Outcome, deadline: Deadline) -> Result<Option<bool>> {
        let outcome = match first {
            Outcome::Busy => self.0.lock(deadline),
            other => other,
        };
        match outcome {
            Outcome::Acquired { died } => Ok(Some(died)),
            Outcome::Busy => Ok(None),
            Outcome::SelfHeld => Err(Error::invalid(
                "this thread already holds this lock; locking it again would deadlock \
                 (use mp::RLock to lock re-entrantly)",
            )),
            Outcome::Failed(e) => Err(Error::io("could not acquire a lock", e)),
        }
    }

    /// Locks if free right now (a plain lock held by this thread is not free).
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Option<bool>> {
        match self.0.try_lock() {
            Outcome::Acquired { died } => Ok(Some(died)),
            Outcome::Busy | Outcome::SelfHeld => Ok(None),
            Outcome::Failed(e) => Err(Error::io("could not acquire a lock", e)),
        }
    }

    /// Unlocks (one level, for a recursive lock).
    ///
    /// # Safety
    /// The calling thread holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.unlock() }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::cell::UnsafeCell;
    use std::io;
    use std::mem::MaybeUninit;
    use std::time::SystemTime;

    use super::{LockKind, Outcome};
    use crate::sync::{Deadline, spin_until};

    #[repr(C)]
    pub(super) struct Raw {
        mutex: UnsafeCell<libc::pthread_mutex_t>,
    }

    // SAFETY: a process-shared pthread mutex is made to be used from any thread
    // of any process; all access goes through the pthread functions.
    unsafe impl Sync for Raw {}
    // SAFETY: as above; it holds no thread-bound state of this process.
    unsafe impl Send for Raw {}

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    /// Destroys the attribute object on every path.
    struct Attr(MaybeUninit<libc::pthread_mutexattr_t>);

    impl Attr {
        fn new() -> io::Result<Attr> {
            let mut attr = Attr(MaybeUninit::uninit());
            // SAFETY: pthread_mutexattr_init initializes the storage it is given.
            check(unsafe { libc::pthread_mutexattr_init(attr.0.as_mut_ptr()) })?;
            Ok(attr)
        }
        fn ptr(&mut self) -> *mut libc::pthread_mutexattr_t {
            self.0.as_mut_ptr()
        }
    }

    impl Drop for Attr {
        fn drop(&mut self) {
            // SAFETY: `new` initialized it; destroyed exactly once, here.
            unsafe { libc::pthread_mutexattr_destroy(self.0.as_mut_ptr()) };
        }
    }

    impl Raw {
        /// # Safety
        /// As `RawLock::init`.
        pub(super) unsafe fn init(ptr: *mut Raw, kind: LockKind) -> io::Result<()> {
            let mut attr = Attr::new()?;
            let kind = match kind {
                LockKind::Plain => libc::PTHREAD_MUTEX_ERRORCHECK,
                LockKind::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
            };
            let attr_ptr = attr.ptr();
            // SAFETY: `attr_ptr` is an initialized attribute object.
            check(unsafe { libc::pthread_mutexattr_settype(attr_ptr, kind) })?;
            // SAFETY: as above.
            let rc = unsafe {
                libc::pthread_mutexattr_setpshared(attr_ptr, libc::PTHREAD_PROCESS_SHARED)
            };
            check(rc)?;
            // SAFETY: as above.
            let rc =
                unsafe { libc::pthread_mutexattr_setrobust(attr_ptr, libc::PTHREAD_MUTEX_ROBUST) };
            check(rc)?;
            // SAFETY: the caller gives writable memory for a `Raw` nobody uses yet;
            // `raw_get` makes the field pointer without creating a reference.
            let mutex = unsafe { UnsafeCell::raw_get(&raw const (*ptr).mutex) };
            // SAFETY: `mutex` is valid for writes of a pthread_mutex_t; `attr` is initialized.
            check(unsafe { libc::pthread_mutex_init(mutex, attr.ptr()) })
        }

        fn ptr(&self) -> *mut libc::pthread_mutex_t {
            self.mutex.get()
        }

        #[inline]
        fn outcome(&self, rc: libc::c_int) -> Outcome {
            if rc == 0 {
                return Outcome::Acquired { died: false };
            }
            self.failure(rc)
        }

        #[cold]
        fn failure(&self, rc: libc::c_int) -> Outcome {
            match rc {
                0 => Outcome::Acquired { died: false },
                libc::EOWNERDEAD => {
                    // SAFETY: we hold the mutex (EOWNERDEAD hands it over).
                    match check(unsafe { libc::pthread_mutex_consistent(self.ptr()) }) {
                        Ok(()) => Outcome::Acquired { died: true },
                        Err(e) => Outcome::Failed(e),
                    }
                }
                libc::EBUSY | libc::ETIMEDOUT => Outcome::Busy,
                libc::EDEADLK => Outcome::SelfHeld,
                libc::ENOTRECOVERABLE => Outcome::Failed(io::Error::other(
                    "the lock is unrecoverable: a holder died and the lock was released \
                     without being made consistent",
                )),
                e => Outcome::Failed(io::Error::from_raw_os_error(e)),
            }
        }

        #[inline]
        pub(super) fn try_lock(&self) -> Outcome {
            // SAFETY: the mutex was initialized by `init` before anyone could reach it.
            self.outcome(unsafe { libc::pthread_mutex_trylock(self.ptr()) })
        }

        /// The uncontended path of `lock`: one `trylock`.
        #[inline]
        pub(super) fn fast_try(&self) -> Outcome {
            self.try_lock()
        }

        pub(super) fn lock(&self, deadline: Deadline) -> Outcome {
            // Glibc's robust mutexes sleep at once when contended; a short spin of
            // `trylock` first catches the common case of a quick hand-off.
            let mut first = None;
            spin_until(|| match self.try_lock() {
                Outcome::Busy => false,
                other => {
                    first = Some(other);
                    true
                }
            });
            if let Some(outcome) = first {
                return outcome;
            }
            if matches!(deadline.remaining(), Some(None)) {
                // SAFETY: initialized by `init`.
                return self.outcome(unsafe { libc::pthread_mutex_lock(self.ptr()) });
            }
            loop {
                // pthread_mutex_timedlock takes a CLOCK_REALTIME deadline; recompute it
                // from the monotonic one after every timeout, so a clock jump cannot
                // end the wait early.
                let Some(Some(left)) = deadline.remaining() else {
                    return Outcome::Busy;
                };
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                let abs = now + left;
                let ts = libc::timespec {
                    tv_sec: abs.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: abs.subsec_nanos() as libc::c_long,
                };
                // SAFETY: initialized by `init`; `ts` lives for the call.
                match self.outcome(unsafe { libc::pthread_mutex_timedlock(self.ptr(), &ts) }) {
                    Outcome::Busy => continue,
                    other => return other,
                }
            }
        }

        /// # Safety
        /// The calling thread holds the mutex.
        #[inline]
        pub(super) unsafe fn unlock(&self) {
            // SAFETY: initialized, and held by this thread (caller's promise), so
            // unlock cannot fail.
            let rc = unsafe { libc::pthread_mutex_unlock(self.ptr()) };
            debug_assert_eq!(rc, 0, "pthread_mutex_unlock failed");
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::cell::Cell;
    use std::io;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::time::Duration;

    use super::{LockKind, Outcome};
    use crate::sync::{Deadline, futex, spin_until};

    /// Set in the lock word when someone may be asleep on it.
    const CONTENDED: u32 = 1 << 31;
    /// How long a waiter sleeps before checking that the holder still exists.
    const LIVENESS_CHECK: Duration = Duration::from_millis(100);

    #[repr(C)]
    pub(super) struct Raw {
        /// 0 = free; else the holder's pid, plus `CONTENDED`.
        word: AtomicU32,
        /// The holding thread's token (unique in its process), 0 when free.
        owner: AtomicU64,
        /// Recursion depth of the holder.
        count: AtomicU32,
        /// 1 for a recursive lock.
        recursive: AtomicU32,
    }

    fn my_pid() -> u32 {
        std::process::id() & !CONTENDED
    }

    /// A number for this thread, unique within the process and never 0.
    fn thread_token() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static TOKEN: Cell<u64> = const { Cell::new(0) };
        }
        TOKEN.with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
    }

    #[cfg(unix)]
    fn process_alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    #[cfg(windows)]
    fn process_alive(pid: u32) -> bool {
        crate::sys::process_alive(pid)
    }

    impl Raw {
        /// # Safety
        /// As `RawLock::init`.
        pub(super) unsafe fn init(ptr: *mut Raw, kind: LockKind) -> io::Result<()> {
            let recursive = u32::from(kind == LockKind::Recursive);
            // SAFETY: the caller gives writable, aligned memory for a `Raw`.
            unsafe {
                ptr.write(Raw {
                    word: AtomicU32::new(0),
                    owner: AtomicU64::new(0),
                    count: AtomicU32::new(0),
                    recursive: AtomicU32::new(recursive),
                })
            };
            Ok(())
        }

        fn acquired(&self, me: u64, died: bool) -> Outcome {
            self.owner.store(me, Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
            Outcome::Acquired { died }
        }

        /// The holder is this thread: recurse or refuse.
        fn reenter(&self) -> Outcome {
            if self.recursive.load(Ordering::Relaxed) == 0 {
                return Outcome::SelfHeld;
            }
            let count = self.count.load(Ordering::Relaxed);
            match count.checked_add(1) {
                Some(next) => {
                    self.count.store(next, Ordering::Relaxed);
                    Outcome::Acquired { died: false }
                }
                None => Outcome::Failed(io::Error::other("lock recursion too deep")),
            }
        }

        /// Takes the lock from a holder that no longer exists.
        fn take_over(&self, seen: u32, me: u64) -> Option<Outcome> {
            self.word
                .compare_exchange(
                    seen,
                    my_pid() | CONTENDED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .ok()
                .map(|_| self.acquired(me, true))
        }

        pub(super) fn try_lock(&self) -> Outcome {
            self.attempt(Deadline::NEVER, false)
        }

        /// The uncontended path of `lock`: one compare-and-swap of a free word.
        #[inline]
        pub(super) fn fast_try(&self) -> Outcome {
            let me = thread_token();
            match self
                .word
                .compare_exchange(0, my_pid(), Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => self.acquired(me, false),
                Err(_) => Outcome::Busy,
            }
        }

        pub(super) fn lock(&self, deadline: Deadline) -> Outcome {
            self.attempt(deadline, true)
        }

        fn attempt(&self, deadline: Deadline, block: bool) -> Outcome {
            let pid = my_pid();
            let me = thread_token();
            let mut contended = false;
            let mut spun = false;
            loop {
                let cur = self.word.load(Ordering::Relaxed);
                if cur == 0 {
                    let new = if contended { pid | CONTENDED } else { pid };
                    if self
                        .word
                        .compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return self.acquired(me, false);
                    }
                    continue;
                }
                let holder = cur & !CONTENDED;
                if holder == pid && self.owner.load(Ordering::Relaxed) == me {
                    return self.reenter();
                }
                if !block {
                    if !process_alive(holder) {
                        if let Some(outcome) = self.take_over(cur, me) {
                            return outcome;
                        }
                        continue;
                    }
                    return Outcome::Busy;
                }
                if !spun {
                    spun = true;
                    spin_until(|| self.word.load(Ordering::Relaxed) == 0);
                    continue;
                }
                if cur & CONTENDED == 0
                    && self
                        .word
                        .compare_exchange(
                            cur,
                            cur | CONTENDED,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_err()
                {
                    continue;
                }
                contended = true;
                let slice = match deadline.remaining() {
                    None => return Outcome::Busy,
                    Some(None) => LIVENESS_CHECK,
                    Some(Some(left)) => left.min(LIVENESS_CHECK),
                };
                match futex::wait(&self.word, cur | CONTENDED, Some(slice)) {
                    Err(e) => return Outcome::Failed(e),
                    Ok(futex::Wake::TimedOut) if !process_alive(holder) => {
                        if let Some(outcome) = self.take_over(cur | CONTENDED, me) {
                            return outcome;
                        }
                    }
                    Ok(_) => {}
                }
            }
        }

        /// # Safety
        /// The calling thread holds the lock.
        pub(super) unsafe fn unlock(&self) {
            let count = self.count.load(Ordering::Relaxed);
            if count > 1 {
                self.count.store(count - 1, Ordering::Relaxed);
                return;
            }
            self.count.store(0, Ordering::Relaxed);
            self.owner.store(0, Ordering::Relaxed);
            if self.word.swap(0, Ordering::Release) & CONTENDED != 0 {
                futex::wake_one(&self.word);
            }
        }
    }
}

/// A lock held through a guard of this thread: the common core of every guard.
pub(crate) struct Held<'a> {
    raw: &'a RawLock,
    segment: &'a Segment,
    died: bool,
    locked: bool,
    /// The lock must be released by the thread that took it: not `Send`.
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl<'a> Held<'a> {
    #[inline]
    fn new(raw: &'a RawLock, segment: &'a Segment, died: bool) -> Held<'a> {
        segment.hold();
        Held {
            raw,
            segment,
            died,
            locked: true,
            _not_send: PhantomData,
        }
    }

    /// Locks `raw` (which lives in `segment`), waiting until `deadline`.
    #[inline]
    pub(crate) fn acquire(
        raw: &'a RawLock,
        segment: &'a Segment,
        deadline: Deadline,
    ) -> Result<Option<Held<'a>>> {
        Ok(raw
            .lock(deadline)?
            .map(|died| Held::new(raw, segment, died)))
    }

    /// Locks `raw` if it is free right now.
    #[inline]
    pub(crate) fn try_acquire(raw: &'a RawLock, segment: &'a Segment) -> Result<Option<Held<'a>>> {
        Ok(raw.try_lock()?.map(|died| Held::new(raw, segment, died)))
    }

    pub(crate) fn holder_died(&self) -> bool {
        self.died
    }

    /// Releases the lock (for a condition wait, or on drop).
    #[inline]
    pub(crate) fn unlock_for_wait(&mut self) {
        if self.locked {
            self.segment.release();
            self.locked = false;
            // SAFETY: `locked` said this guard, owned by this thread, holds it.
            unsafe { self.raw.unlock() };
        }
    }

    /// Takes the lock again after a condition wait.
    pub(crate) fn relock(&mut self) -> Result<()> {
        if !self.locked {
            let died = self.raw.lock(Deadline::NEVER)?.unwrap_or(false);
            self.died |= died;
            self.locked = true;
            self.segment.hold();
        }
        Ok(())
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        self.unlock_for_wait();
    }
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("holder_died", &self.died)
            .finish_non_exhaustive()
    }
}

#[repr(C)]
pub(crate) struct LockState {
    raw: RawLock,
}

// SAFETY: zeroed memory is a valid (uninitialized-then-`init`ed) lock; no pointers;
// the lock is process-shared.
unsafe impl SharedState for LockState {
    type Elem = ();
    const WHAT: &'static str = "a Lock";
}

/// A lock shared between processes, like Python's `multiprocessing.Lock`.
///
/// [`lock`](Lock::lock) returns a guard that unlocks when dropped. If the
/// process holding the lock dies (a crash, `kill -9`), the lock is not lost: the
/// next locker gets it, and its guard's [`holder_died`](LockGuard::holder_died)
/// says the data the lock protects may be half-written.
///
/// Locking a `Lock` again from the thread that holds it is an error rather than
/// a deadlock; use [`RLock`](crate::RLock) to lock re-entrantly. Pass a `Lock`
/// to jobs as an ordinary argument; clones are the same lock.
///
/// ```
/// # use mp_runtime as mp;
/// use std::time::Duration;
///
/// let lock = mp::Lock::new()?;
/// {
///     let guard = lock.lock()?;
///     assert!(!guard.holder_died());
///     let other = lock.clone();
///     std::thread::spawn(move || {
///         assert!(other.try_lock().unwrap().is_none());           // held
///         assert!(other.lock_timeout(Duration::from_millis(10)).unwrap().is_none());
///     })
///     .join()
///     .unwrap();
/// }
/// assert!(lock.try_lock()?.is_some());                            // released
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lock {
    region: Region<LockState>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Result<Lock> {
        let region = Region::create(0, |state: *mut LockState| {
            // SAFETY: `create` gives zeroed memory for the state that nobody sees yet.
            unsafe { RawLock::init(&raw mut (*state).raw, LockKind::Plain) }
        })?;
        Ok(Lock { region })
    }

    #[inline]
    fn raw(&self) -> &RawLock {
        &self.region.state().raw
    }

    /// Waits for the lock and takes it.
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        match Held::acquire(self.raw(), self.region.segment(), Deadline::NEVER)? {
            Some(held) => Ok(LockGuard { held }),
            // A wait without deadline only ends with the lock or an error.
            None => Err(Error::Timeout {
                after: Duration::MAX,
            }),
        }
    }

    /// Takes the lock if it is free right now; `Ok(None)` if not.
    #[inline]
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>> {
        Ok(Held::try_acquire(self.raw(), self.region.segment())?.map(|held| LockGuard { held }))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed taken.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        Ok(
            Held::acquire(self.raw(), self.region.segment(), Deadline::after(timeout))?
                .map(|held| LockGuard { held }),
        )
    }
}

/// Holds a [`Lock`]; unlocks when dropped. Not `Send`: it must be dropped by
/// the thread that locked.
///
/// ```compile_fail
/// # use mp_runtime as mp;
/// fn needs_send<T: Send>(_: T) {}
/// let lock = mp::Lock::new().unwrap();
/// needs_send(lock.lock().unwrap());     // error: the guard is not `Send`
/// ```
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    pub(crate) held: Held<'a>,
}

impl LockGuard<'_> {
    /// True if the previous holder died while holding the lock, so whatever the
    /// lock protects may be half-written. The lock itself is fine.
    #[inline]
    pub fn holder_died(&self) -> bool {
        self.held.holder_died()
    }
}
