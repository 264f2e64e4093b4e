//! Becoming a worker before `main` runs.
//!
//! A function in the platform's constructor section (`.init_array` on ELF,
//! `__mod_init_func` on Mach-O, `.CRT$XCU` on Windows) runs before `main` in every
//! binary that links mp: programs, examples, unit and integration test harnesses,
//! doctests. When the worker marker is in the environment it turns the process
//! into a worker and never returns, so a worker never runs the user's `main`
//! body, and a test harness never runs its tests in a worker. This is what makes
//! pools work in `cargo test` with no setup. The job registry is a link-time
//! slice, complete before any constructor runs.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

static CHECKED: AtomicBool = AtomicBool::new(false);

/// Runs the worker loop (never returning) if this process was started as a worker.
pub(crate) fn become_worker_if_marked() {
    if CHECKED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(marker) = std::env::var_os(sys::WORKER_MARKER) else {
        // Not a worker process; under an MPI launcher, ranks 1..N become
        // workers here (and rank 0 goes on to `main`).
        #[cfg(feature = "mpi")]
        crate::mpi::enter();
        return;
    };
    let marker = marker.to_string_lossy().into_owned();
    // SAFETY: called before `main` (or first thing in it, from `mp::init`), while
    // this process has a single thread, so no other thread reads the environment.
    unsafe { std::env::remove_var(sys::WORKER_MARKER) };
    crate::worker::run(&marker);
}

extern "C" fn before_main() {
    // A panic must not unwind out of a constructor: that aborts the process.
    if std::panic::catch_unwind(become_worker_if_marked).is_err() {
        sys::exit_now(sys::EXIT_BOOTSTRAP_FAILED);
    }
}

#[used]
#[cfg_attr(
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ),
    unsafe(link_section = ".init_array")
)]
#[cfg_attr(
    target_vendor = "apple",
    unsafe(link_section = "__DATA,__mod_init_func")
)]
#[cfg_attr(windows, unsafe(link_section = ".CRT$XCU"))]
static BEFORE_MAIN: extern "C" fn() = before_main;

/// Drop guard of `mp::main!`: joins non-daemon children and terminates daemon ones.
#[doc(hidden)]
#[derive(Debug)]
pub struct MainGuard(());

impl MainGuard {
    #[doc(hidden)]
    pub fn enter() -> MainGuard {
        become_worker_if_marked();
        MainGuard(())
    }
}

impl Drop for MainGuard {
    fn drop(&mut self) {
        crate::children::shutdown_children();
        #[cfg(feature = "mpi")]
        crate::mpi::finish();
    }
}

/// The entry guard as a plain call, for programs whose `main` belongs to
/// something else (`#[tokio::main]`, a CLI framework): in a worker it never
/// returns; in the program you started it returns at once.
///
/// Workers are normally caught before `main` already; this call is the guard of
/// last resort and costs nothing.
pub fn init() {
    become_worker_if_marked();
}
