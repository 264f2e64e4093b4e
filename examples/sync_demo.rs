//! `Lock`, `Event` and `Semaphore` across processes: workers wait for a start
//! signal (`Event`), at most two work at once (`Semaphore`), and their reports
//! never interleave (`Lock` around the print).
//!
//! ```python
//! from multiprocessing import Process, Lock, Event, Semaphore, Value
//!
//! def worker(i, lock, start, slots, busy, peak):
//!     start.wait()
//!     with slots:
//!         with busy.get_lock():
//!             busy.value += 1
//!             peak.value = max(peak.value, busy.value)
//!         time.sleep(0.05)
//!         with lock:
//!             print(f"worker {i} done")
//!         with busy.get_lock():
//!             busy.value -= 1
//! ```

use std::time::Duration;

#[mp::job]
fn worker(
    i: u32,
    print_lock: mp::Lock,
    start: mp::Event,
    slots: mp::Semaphore,
    busy: mp::Value<u32>,
    peak: mp::Value<u32>,
) {
    assert!(
        start.wait_timeout(Duration::from_secs(60)).unwrap(),
        "no start signal"
    );
    slots.acquire().unwrap();
    {
        let mut now = busy.lock().unwrap();
        *now += 1;
        let mut most = peak.lock().unwrap();
        *most = (*most).max(*now);
    }
    std::thread::sleep(Duration::from_millis(50));
    {
        let _print = print_lock.lock().unwrap();
        println!("worker {i} done (pid {})", std::process::id());
    }
    *busy.lock().unwrap() -= 1;
    slots.release().unwrap();
}

mp::main! {
    fn main() -> mp::Result<()> {
        let print_lock = mp::Lock::new()?;
        let start = mp::Event::new()?;
        let slots = mp::Semaphore::new(2)?;
        let busy = mp::Value::new(0u32)?;
        let peak = mp::Value::new(0u32)?;

        let procs = (0..6)
            .map(|i| {
                mp::Process::spawn(
                    worker,
                    (i, print_lock.clone(), start.clone(), slots.clone(), busy.clone(), peak.clone()),
                )
            })
            .collect::<mp::Result<Vec<_>>>()?;
        {
            let _print = print_lock.lock()?;
            println!("6 workers started; releasing them");
        }
        start.set()?;
        for p in procs {
            p.join()?;
        }
        let peak = peak.get()?;
        println!("at most {peak} workers ran at once");
        assert!((1..=2).contains(&peak), "the semaphore allows two at a time");
        assert_eq!(busy.get()?, 0);
        assert_eq!(slots.value(), 2);
        Ok(())
    }
}
