//! Unix: portable POSIX mechanisms here, Linux-only ones in `linux.rs`.
//!
//! Channel: a `socketpair(AF_UNIX, SOCK_STREAM)`; the worker's end is the only
//! descriptor whose close-on-exec flag is cleared in the child (between fork and
//! exec), so a worker inherits its own channel and the lifeline, nothing else of
//! ours. Lifeline: a pipe whose write end only the parent holds; every worker
//! blocks a thread reading it and exits at EOF, which the kernel delivers when
//! the parent dies, however it dies. On Linux `PR_SET_PDEATHSIG` adds a second,
//! faster guard.

mod fdpass;
pub(crate) mod futex;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
mod posix;
pub(crate) mod shm;

pub(crate) use fdpass::*;
pub(crate) use posix::*;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use linux::{program_path, set_parent_death_signal};

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn program_path() -> std::io::Result<std::path::PathBuf> {
    std::env::current_exe()
}

/// Without `PR_SET_PDEATHSIG` the lifeline pipe is the guard.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_parent_death_signal() -> std::io::Result<()> {
    Ok(())
}
