//! Linux-only mechanisms.

use std::io;
use std::path::PathBuf;

/// The running binary: `/proc/self/exe` names the very inode we run from, so a
/// worker runs the same code even if the file was rebuilt in the meantime.
pub(crate) fn program_path() -> io::Result<PathBuf> {
    let path = PathBuf::from("/proc/self/exe");
    if path.exists() {
        Ok(path)
    } else {
        std::env::current_exe()
    }
}

/// Asks the kernel to SIGKILL this (child) process when the thread that forked it
/// exits. Called between fork and exec; async-signal-safe.
pub(crate) fn set_parent_death_signal() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
