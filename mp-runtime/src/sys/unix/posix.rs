//! Portable POSIX mechanisms: spawn by re-exec, socketpair channels, the lifeline
//! pipe, waiting and signalling.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{program_path, set_parent_death_signal};
use crate::error::ExitStatus;
use crate::sys::{Channel, EXIT_PARENT_DIED, Signal, WORKER_MARKER, WorkerBoot};

/// The reading half of a channel.
pub(crate) type ChannelRead = UnixStream;
/// The writing half of a channel.
pub(crate) type ChannelWrite = UnixStream;

/// Converts a negative return into the OS error.
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor number only read/write its flags;
    // a bad number yields EBADF, never UB.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFD))?;
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        cvt(libc::fcntl(fd, libc::F_SETFD, flags))?;
    }
    Ok(())
}

/// The read end of this process's lifeline, created once. The write end stays
/// here, close-on-exec, so only this process keeps it open.
fn lifeline_read_fd() -> io::Result<RawFd> {
    static LIFELINE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();
    if let Some((read, _)) = LIFELINE.get() {
        return Ok(read.as_raw_fd());
    }
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe to fill.
    cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: pipe just returned these two fresh descriptors; we own them.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_cloexec(fds[0], true)?;
    set_cloexec(fds[1], true)?;
    // Another thread may have won the race; its pair is kept and ours dropped.
    let (read, _) = LIFELINE.get_or_init(|| pair);
    Ok(read.as_raw_fd())
}

/// Starts the current binary as a worker; returns its pid and our end of the channel.
pub(crate) fn spawn_worker() -> io::Result<(u32, Channel)> {
    let (ours, theirs) = UnixStream::pair()?;
    let child_fd = theirs.as_raw_fd();
    let lifeline = lifeline_read_fd()?;
    let parent_pid = std::process::id();
    let program = program_path()?;

    let mut command = Command::new(&program);
    if let Ok(exe) = std::env::current_exe() {
        command.arg0(exe);
    }
    command
        .env(
            WORKER_MARKER,
            format!("1:{child_fd}:{lifeline}:{parent_pid}"),
        )
        .stdin(Stdio::null());
    let strip: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| crate::sys::is_launcher_variable(k))
        .collect();
    for key in strip {
        command.env_remove(key);
    }
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (fcntl, prctl, getppid, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set_cloexec(child_fd, false)?;
            set_cloexec(lifeline, false)?;
            set_parent_death_signal()?;
            if libc::getppid() as u32 != parent_pid {
                libc::_exit(EXIT_PARENT_DIED);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id();
    // Dropping std's handle neither waits nor kills: we reap by pid ourselves.
    drop(child);
    drop(theirs);
    let write = ours.try_clone()?;
    Ok((pid, Channel { read: ours, write }))
}

fn decode_status(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    }
}

/// Blocks until `pid` exits and reaps it.
pub(crate) fn wait_exit(pid: u32) -> io::Result<ExitStatus> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes only to `status`, which outlives the call.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if rc >= 0 {
            return Ok(decode_status(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Blocks until `pid` has exited, without reaping it (the pid stays reserved, so
/// a signal sent before the reap cannot hit a recycled pid).
pub(crate) fn wait_exit_keep(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only to `info`, which outlives the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps `pid` if it has exited.
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<ExitStatus>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes only to `status`, which outlives the call.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    match rc {
        0 => Ok(None),
        r if r > 0 => Ok(Some(decode_status(status))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Waits up to `grace` for `pid` to exit, then kills it; reaps it either way.
pub(crate) fn reap_with_grace(pid: u32, grace: Duration) -> io::Result<ExitStatus> {
    let deadline = std::time::Instant::now() + grace;
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = try_wait(pid)? {
            return Ok(status);
        }
        if std::time::Instant::now() >= deadline {
            send_signal(pid, Signal::Kill)?;
            return wait_exit(pid);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Sends `signal` to `pid`. The caller guarantees `pid` is not reaped yet.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let sig = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill takes plain integers.
    match cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }) {
        Ok(_) => Ok(()),
        // Already gone (a zombie still accepts signals, so this is rare): fine.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets or clears a read timeout on a channel.
pub(crate) fn set_read_timeout(read: &ChannelRead, timeout: Option<Duration>) -> io::Result<()> {
    read.set_read_timeout(timeout)
}

/// Worker side: parses the marker, takes ownership of the channel and starts the
/// lifeline watch.
pub(crate) fn worker_boot(marker: &str) -> io::Result<WorkerBoot> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad worker marker {marker:?}"),
        )
    };
    let mut parts = marker.split(':');
    if parts.next() != Some("1") {
        return Err(bad());
    }
    let mut num = || {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let channel_fd = num()? as RawFd;
    let lifeline_fd = num()? as RawFd;
    let parent_pid = num()? as u32;
    // Keep our inherited descriptors out of the processes we start ourselves.
    set_cloexec(channel_fd, true)?;
    set_cloexec(lifeline_fd, true)?;
    // SAFETY: the parent handed us this descriptor for our exclusive use, and
    // nothing else in this process has taken ownership of it.
    let stream = unsafe { UnixStream::from_raw_fd(channel_fd) };
    // SAFETY: as above, for the lifeline's read end.
    let lifeline = unsafe { OwnedFd::from_raw_fd(lifeline_fd) };
    std::thread::Builder::new()
        .name("mp-lifeline".into())
        .spawn(move || watch_lifeline(lifeline))?;
    let write = stream.try_clone()?;
    Ok(WorkerBoot {
        channel: Channel {
            read: stream,
            write,
        },
        parent_pid,
    })
}

fn watch_lifeline(fd: OwnedFd) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into `byte`, which outlives the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // EOF (or any error): the parent is gone. Leave at once, without running
        // destructors or atexit handlers that could block on the dead parent.
        // SAFETY: _exit ends the process; no Rust invariants outlive it.
        unsafe { libc::_exit(EXIT_PARENT_DIED) };
    }
}

/// Rust's runtime ignores SIGPIPE before `main`; a worker bootstrapped before
/// `main` must do it itself so a vanished parent is an error, not a silent death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Ends the process at once, without unwinding or atexit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; no Rust invariants outlive it.
    unsafe { libc::_exit(code) }
}

/// The number of CPUs this process may use. The standard library already
/// respects the affinity mask and, on Linux, the cgroup CPU quota.
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A byte stream between processes, for `pipe()`.
pub(crate) type Stream = UnixStream;

/// A connected pair of streams.
pub(crate) fn stream_pair() -> io::Result<(Stream, Stream)> {
    UnixStream::pair()
}

/// How many handles a stream is made of (and travels as).
pub(crate) const STREAM_HANDLES: usize = 1;

/// Borrows a stream's handles, for sending it to another process.
pub(crate) fn stream_handles(stream: &Stream) -> [std::os::fd::BorrowedFd<'_>; STREAM_HANDLES] {
    use std::os::fd::AsFd;
    [stream.as_fd()]
}

/// A stream from received handles (as `stream_handles` lists them).
pub(crate) fn stream_from_handles([handle]: [OwnedFd; STREAM_HANDLES]) -> Stream {
    UnixStream::from(handle)
}

/// Waits up to `timeout` for `stream` to be readable (data, or the peer closed).
pub(crate) fn poll_readable(stream: &Stream, timeout: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // Round up so a short timeout still waits rather than spinning.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut fd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fd` is one valid pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
