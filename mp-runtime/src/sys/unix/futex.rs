//! Wait on a 32-bit word in shared memory until another process changes it.
//!
//! The one primitive behind `Event`, `Semaphore`, `Condition` and `Barrier`:
//! `wait(word, expected, timeout)` sleeps in the kernel while `*word == expected`,
//! `wake_one`/`wake_all` wake sleepers on `word`. The operations are *shared*
//! (not process-private), so a process can wake another that maps the same page.
//!
//! - Linux: `futex(2)` with `FUTEX_WAIT` / `FUTEX_WAKE` (no `FUTEX_PRIVATE_FLAG`).
//! - macOS: `__ulock_wait` / `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED`, the
//!   calls libc++ and the Rust standard library use; present since macOS 10.12.
//! - Other Unix systems: a bounded sleep that re-reads the word every 50 µs to
//!   1 ms (a documented fallback: correct, never a busy loop, slower to wake).
//!
//! `wait` may return early (a signal, a spurious wake-up, the word already
//! different): callers re-check their condition in a loop.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// What a `wait` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted or the word was already different: re-check.
    Woken,
    /// The timeout passed.
    TimedOut,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::*;

    fn timespec(timeout: Duration) -> libc::timespec {
        libc::timespec {
            tv_sec: timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        }
    }

    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
    ) -> io::Result<Wake> {
        let ts = timeout.map(timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit word for the whole call; the
        // timespec (when given) lives on this stack frame; FUTEX_WAIT only reads both.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if rc == 0 {
            return Ok(Wake::Woken);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Wake::Woken),
            Some(libc::ETIMEDOUT) => Ok(Wake::TimedOut),
            _ => Err(error),
        }
    }

    fn wake(word: &AtomicU32, count: i32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key; `word` is live.
        // It cannot fail for a valid, aligned address, so the result is not needed.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count);
        }
    }

    pub(crate) fn wake_one(word: &AtomicU32) {
        wake(word, 1);
    }

    pub(crate) fn wake_all(word: &AtomicU32) {
        wake(word, i32::MAX);
    }
}

#[cfg(target_vendor = "apple")]
mod imp {
    use super::*;

    const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
    const ULF_WAKE_ALL: u32 = 0x0000_0100;
    const ULF_NO_ERRNO: u32 = 0x0100_0000;

    unsafe extern "C" {
        // From <sys/ulock.h> (xnu), exported by libSystem since macOS 10.12.
        fn __ulock_wait(
            operation: u32,
            addr: *mut libc::c_void,
            value: u64,
            timeout_us: u32,
        ) -> libc::c_int;
        fn __ulock_wake(operation: u32, addr: *mut libc::c_void, wake_value: u64) -> libc::c_int;
    }

    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
    ) -> io::Result<Wake> {
        // 0 means "forever"; a finite timeout is at least 1 µs and at most ~71 minutes
        // (the caller loops on its deadline).
        let micros = match timeout {
            None => 0,
            Some(t) => t.as_micros().clamp(1, u32::MAX as u128) as u32,
        };
        // SAFETY: `word` is a live, aligned 32-bit word for the whole call;
        // __ulock_wait compares it with `expected` and sleeps on its address.
        let rc = unsafe {
            __ulock_wait(
                UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                word.as_ptr().cast(),
                u64::from(expected),
                micros,
            )
        };
        if rc >= 0 {
            return Ok(Wake::Woken);
        }
        match -rc {
            libc::EINTR | libc::EFAULT => Ok(Wake::Woken),
            libc::ETIMEDOUT => Ok(Wake::TimedOut),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn wake(word: &AtomicU32, flags: u32) {
        // SAFETY: the address is only a key for the kernel; `word` is live.
        // ENOENT (nobody waiting) is the only expected failure.
        unsafe {
            __ulock_wake(
                UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO | flags,
                word.as_ptr().cast(),
                0,
            );
        }
    }

    pub(crate) fn wake_one(word: &AtomicU32) {
        wake(word, 0);
    }

    pub(crate) fn wake_all(word: &AtomicU32) {
        wake(word, ULF_WAKE_ALL);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
mod imp {
    //! Fallback: poll the word with a growing sleep (50 µs up to 1 ms). Never
    //! spins a core; a wake-up takes up to 1 ms to be seen.
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
    ) -> io::Result<Wake> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut nap = Duration::from_micros(50);
        while word.load(Ordering::Acquire) == expected {
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Wake::TimedOut);
                }
                nap = nap.min(deadline - now);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
        Ok(Wake::Woken)
    }

    pub(crate) fn wake_one(_word: &AtomicU32) {}

    pub(crate) fn wake_all(_word: &AtomicU32) {}
}

pub(crate) use imp::{wait, wake_all, wake_one};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = AtomicU32::new(1);
        assert_eq!(wait(&word, 0, None).unwrap(), Wake::Woken);
    }

    #[test]
    fn wait_times_out() {
        let word = AtomicU32::new(0);
        let r = wait(&word, 0, Some(Duration::from_millis(10))).unwrap();
        assert_eq!(r, Wake::TimedOut);
    }

    #[test]
    fn wake_wakes_a_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let w = word.clone();
        let t = std::thread::spawn(move || {
            while w.load(Ordering::Acquire) == 0 {
                wait(&w, 0, None).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        word.store(1, Ordering::Release);
        wake_all(&word);
        t.join().unwrap();
    }
}
