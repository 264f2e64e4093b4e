//! The platform seam: one fixed set of names, filled by `unix/` or `windows.rs`.
//!
//! Every other module reaches the OS only through these names:
//! `Channel` (a duplex byte stream to one worker, split into `ChannelRead` and
//! `ChannelWrite`), `spawn_worker`, `wait_exit`, `try_wait`, `send_signal`,
//! `worker_channel` (the worker's side of the bootstrap), `ignore_sigpipe`,
//! `cpu_count`; for `pipe()`, `Stream`, `stream_pair`, `stream_handles`,
//! `stream_from_handles`, `poll_readable`; for handles inside messages,
//! `send_with_handles`/`recv_with_handles` (Unix: `SCM_RIGHTS`) and, on Windows,
//! `export_pushed`/`export_pulled`/`import_pushed`/`import_pulled`/`retract*`
//! (records inside the frame, see `windows/handles.rs`).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// Environment variable that marks a re-executed binary as an mp worker.
pub(crate) const WORKER_MARKER: &str = "__MP_WORKER";

/// Exit code of a worker that noticed its parent is gone.
pub(crate) const EXIT_PARENT_DIED: i32 = 70;
/// Exit code of a worker that could not set itself up.
pub(crate) const EXIT_BOOTSTRAP_FAILED: i32 = 71;

/// Which signal `send_signal` delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Ask politely (SIGTERM; TerminateProcess on Windows).
    Terminate,
    /// Kill at once (SIGKILL; TerminateProcess on Windows).
    Kill,
}

/// A duplex channel to the other process.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) read: ChannelRead,
    pub(crate) write: ChannelWrite,
}

/// What the parent learns from parsing the worker marker.
#[derive(Debug)]
pub(crate) struct WorkerBoot {
    pub(crate) channel: Channel,
    pub(crate) parent_pid: u32,
}

/// Environment variables that must not reach a worker: those by which an MPI
/// launcher recognises its own ranks (a worker that sees them tries to join the
/// MPI job).
pub(crate) fn is_launcher_variable(key: &std::ffi::OsStr) -> bool {
    let key = key.to_string_lossy();
    [
        "OMPI_",
        "PMIX_",
        "PMI_",
        "MPICH_",
        "HYDRA_",
        "I_MPI_",
        "SLURM_STEP_",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// Borrows an owned handle for a send.
#[cfg(unix)]
pub(crate) fn borrow_handle(handle: &OsHandle) -> BorrowedHandle<'_> {
    use std::os::fd::AsFd;
    handle.as_fd()
}

/// Borrows an owned handle for a send.
#[cfg(windows)]
pub(crate) fn borrow_handle(handle: &OsHandle) -> BorrowedHandle<'_> {
    use std::os::windows::io::AsHandle;
    handle.as_handle()
}

/// Hints that the `len` bytes at `ptr`, memory this process owns and has not
/// touched yet, be backed by huge pages: one fault then maps 2 MiB instead of
/// 4 KiB. Only the whole huge pages inside the range are advised; a no-op where
/// the system has no such hint.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize).saturating_add(len) & !(HUGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside the caller's allocation; MADV_HUGEPAGE
        // is advice about how to back the range and changes no contents. Its
        // failure (no THP in this kernel) only means the hint is not taken.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Hints that a range be backed by huge pages (not offered on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}
