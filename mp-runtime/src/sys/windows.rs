//! Windows: the same names as `unix/`, not yet filled in.
//!
//! Everything here returns a clear "not supported yet" error until the Windows
//! backend lands (see `docs/platforms.md` for the plan: `CreateProcessW` with an
//! explicit handle list, anonymous pipes, a kill-on-close job object).

use std::fs::File;
use std::io;
use std::time::Duration;

use crate::error::ExitStatus;
use crate::sys::{Channel, Signal, WorkerBoot};

/// The reading half of a channel.
pub(crate) type ChannelRead = File;
/// The writing half of a channel.
pub(crate) type ChannelWrite = File;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "worker processes are not supported on Windows yet in this version of mp",
    )
}

pub(crate) fn spawn_worker() -> io::Result<(u32, Channel)> {
    Err(unsupported())
}

pub(crate) fn wait_exit(_pid: u32) -> io::Result<ExitStatus> {
    Err(unsupported())
}

pub(crate) fn wait_exit_keep(_pid: u32) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn try_wait(_pid: u32) -> io::Result<Option<ExitStatus>> {
    Err(unsupported())
}

pub(crate) fn reap_with_grace(_pid: u32, _grace: Duration) -> io::Result<ExitStatus> {
    Err(unsupported())
}

pub(crate) fn send_signal(_pid: u32, _signal: Signal) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn set_read_timeout(_read: &ChannelRead, _timeout: Option<Duration>) -> io::Result<()> {
    Ok(())
}

pub(crate) fn worker_boot(_marker: &str) -> io::Result<WorkerBoot> {
    Err(unsupported())
}

pub(crate) fn ignore_sigpipe() {}

pub(crate) fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}
