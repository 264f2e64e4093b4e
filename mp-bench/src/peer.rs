//! The Rust peer: `procspawn` (a pool of re-executed copies of this binary; a
//! call is a function pointer plus its arguments, sent over `ipc-channel`),
//! measured on the scenarios it has an equivalent for, in the same run as mp.
//!
//! Both sides do the same work as mp's: a warm pool of
//! [`POOL_PROCESSES`](crate::scenarios::POOL_PROCESSES) processes built outside
//! the timed part, `add(1, 2)` per call or `x * x` per item, every result
//! checked. procspawn has no `map`: its chunk-size-1 map is one `spawn` per
//! item, all submitted, then all joined in order.

use crate::Sample;

/// The peer's name in the report.
pub(crate) const NAME: &str = "procspawn";

/// The peer's side of scenario `id`, if it has one (none off Unix, where
/// procspawn does not run).
pub(crate) fn for_scenario(id: &str) -> Option<fn(u64) -> Sample> {
    #[cfg(unix)]
    match id {
        "apply" => Some(imp::apply),
        "map_chunksize1" => Some(imp::map_chunksize1),
        _ => None,
    }
    #[cfg(not(unix))]
    {
        let _ = id;
        None
    }
}

/// To be called first in `main`: turns a copy of this binary started by
/// procspawn into its worker (it never returns there).
pub(crate) fn init() {
    #[cfg(unix)]
    procspawn::init();
}

#[cfg(unix)]
mod imp {
    use std::hint::black_box;
    use std::time::Instant;

    use crate::Sample;
    use crate::scenarios::POOL_PROCESSES;

    fn pool2() -> Result<procspawn::Pool, crate::BoxError> {
        Ok(procspawn::Pool::new(POOL_PROCESSES)?)
    }

    fn add((a, b): (i64, i64)) -> i64 {
        a + b
    }

    fn square(x: u64) -> u64 {
        x.wrapping_mul(x)
    }

    pub(super) fn apply(n: u64) -> Sample {
        let pool = pool2()?;
        for _ in 0..50 {
            pool.spawn((1i64, 2i64), add).join()?;
        }
        let start = Instant::now();
        for _ in 0..n {
            let r = pool.spawn(black_box((1i64, 2i64)), add).join()?;
            if black_box(r) != 3 {
                return Err(format!("wrong result: add(1, 2) = {r}").into());
            }
        }
        let elapsed = start.elapsed();
        pool.shutdown();
        Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
    }

    fn procspawn_join(h: procspawn::JoinHandle<u64>) -> Result<u64, String> {
        h.join().map_err(|e| e.to_string())
    }

    pub(super) fn map_chunksize1(n: u64) -> Sample {
        let pool = pool2()?;
        let warm: Vec<_> = (0..100u64).map(|x| pool.spawn(x, square)).collect();
        for h in warm {
            h.join()?;
        }
        // Each pending procspawn task holds its own channels (descriptors):
        // keep at most `WINDOW` in flight, as a bounded `imap` would.
        const WINDOW: usize = 256;
        let start = Instant::now();
        let mut pending = std::collections::VecDeque::with_capacity(WINDOW);
        let mut out = Vec::with_capacity(n as usize);
        for x in 0..n {
            if pending.len() == WINDOW
                && let Some(h) = pending.pop_front()
            {
                out.push(procspawn_join(h)?);
            }
            pending.push_back(pool.spawn(x, square));
        }
        for h in pending {
            out.push(procspawn_join(h)?);
        }
        let elapsed = start.elapsed();
        pool.shutdown();
        if out.len() as u64 != n || out.last() != Some(&square(n - 1)) {
            return Err("wrong result: spawn(square) per item".into());
        }
        Ok(n as f64 / elapsed.as_secs_f64() / 1e3)
    }
}
