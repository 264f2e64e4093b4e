//! Bounded waiting without sleeping, for hand-offs between threads where a
//! kernel wake-up (tens of microseconds on a busy virtual machine) costs more
//! than the wait itself.

use std::time::{Duration, Instant};

/// Polls `ready` for at most `limit`, first with CPU pause hints, then
/// yielding the CPU between polls (other threads of the process, or the
/// process that owes the answer, may need it). True once `ready` held.
pub(crate) fn spin_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if limit.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        if round < 32 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        round = round.saturating_add(1);
        if ready() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spin_until;
    use std::time::{Duration, Instant};

    #[test]
    fn spin_until_stops_at_its_limit_or_when_ready() {
        let started = Instant::now();
        assert!(!spin_until(Duration::from_millis(5), || false));
        assert!(started.elapsed() >= Duration::from_millis(5));
        let mut polls = 0;
        assert!(spin_until(Duration::from_secs(10), || {
            polls += 1;
            polls == 3
        }));
        assert!(!spin_until(Duration::ZERO, || false));
    }
}
