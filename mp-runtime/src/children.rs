//! Every child process this process started, for `active_children`, for
//! signalling without pid-reuse races, and for Python's exit semantics (daemon
//! children are terminated, the others joined, when the program ends).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::error::ExitStatus;
use crate::sys::{self, Signal};

/// One child process. The thread that owns the child reaps it through
/// [`ChildHandle::reap`]; everyone else only reads the state or signals it.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pid: u32,
    name: String,
    daemon: bool,
    state: Mutex<ChildState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ChildState {
    exit: Option<ExitStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our locks cannot leave the state torn (every
    // critical section is a few assignments), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static TABLE: Mutex<Vec<Arc<ChildHandle>>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);

impl ChildHandle {
    /// Records a freshly spawned child.
    pub(crate) fn register(pid: u32, name: String, daemon: bool) -> Arc<ChildHandle> {
        install_exit_hook();
        let handle = Arc::new(ChildHandle {
            pid,
            name,
            daemon,
            state: Mutex::new(ChildState::default()),
            changed: Condvar::new(),
        });
        lock(&TABLE).push(Arc::clone(&handle));
        handle
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// How the child ended, once it has been reaped.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.state).exit
    }

    /// Sends a signal unless the child is already reaped (so never to a recycled pid).
    pub(crate) fn signal(&self, signal: Signal) -> std::io::Result<()> {
        let state = lock(&self.state);
        if state.exit.is_some() {
            return Ok(());
        }
        let result = sys::send_signal(self.pid, signal);
        drop(state);
        result
    }

    /// Waits for the child to exit, then reaps it. Only the owning thread calls this.
    pub(crate) fn reap(&self) -> ExitStatus {
        // Wait without reaping first: until we hold the lock the pid stays ours.
        let _ = sys::wait_exit_keep(self.pid);
        self.finish_reap(sys::wait_exit)
    }

    /// Reaps a child that is expected to exit soon, killing it after `grace`.
    pub(crate) fn reap_with_grace(&self, grace: Duration) -> ExitStatus {
        self.finish_reap(|pid| sys::reap_with_grace(pid, grace))
    }

    fn finish_reap(&self, wait: impl FnOnce(u32) -> std::io::Result<ExitStatus>) -> ExitStatus {
        let mut state = lock(&self.state);
        if let Some(exit) = state.exit {
            return exit;
        }
        // ECHILD means someone else reaped it; report it as killed.
        let exit = wait(self.pid).unwrap_or(ExitStatus::Signal(9));
        state.exit = Some(exit);
        drop(state);
        lock(&TABLE).retain(|c| c.pid != self.pid);
        self.changed.notify_all();
        exit
    }

    /// Blocks until the child is reaped, or `timeout` passes; true if reaped.
    pub(crate) fn wait_reaped(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.state);
        while state.exit.is_none() {
            match deadline {
                None => state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    state = self
                        .changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }
}

/// Live children, oldest first.
pub(crate) fn live() -> Vec<Arc<ChildHandle>> {
    lock(&TABLE)
        .iter()
        .filter(|c| c.exit_status().is_none())
        .cloned()
        .collect()
}

/// True once the program has begun to exit: pools stop replacing workers.
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Python's exit semantics: terminate daemon children, join the others.
/// Runs at the end of `mp::main!` and, for programs without it, at process exit.
pub(crate) fn shutdown_children() {
    EXITING.store(true, Ordering::Release);
    let children = live();
    for child in children.iter().filter(|c| c.daemon) {
        let _ = child.signal(Signal::Terminate);
    }
    for child in &children {
        // Daemons were just terminated; give them a moment, then insist.
        if child.daemon && !child.wait_reaped(Some(Duration::from_secs(1))) {
            let _ = child.signal(Signal::Kill);
        }
        child.wait_reaped(None);
    }
}

/// Runs `shutdown_children` when the program exits, for programs that do not
/// use `mp::main!`: when `main` returns, and on Unix also at
/// `std::process::exit`. On Windows `std::process::exit` is `ExitProcess`,
/// which skips the C runtime's `atexit` handlers: whoever ends a process that
/// way must call `shutdown_children` first.
fn install_exit_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        {
            // SAFETY: registers a plain extern "C" fn with no captured state.
            unsafe {
                libc::atexit(at_exit);
            }
        }
        #[cfg(windows)]
        {
            // SAFETY: as above, with the C runtime's `atexit`, whose handlers
            // `exit` runs before `ExitProcess` ends the other threads.
            unsafe {
                atexit(at_exit);
            }
        }
    });
}

#[cfg(windows)]
unsafe extern "C" {
    fn atexit(hook: extern "C" fn()) -> std::ffi::c_int;
}

#[cfg(any(unix, windows))]
extern "C" fn at_exit() {
    // A panic must not cross this extern "C" boundary.
    let _ = std::panic::catch_unwind(shutdown_children);
}
