//! Windows: the same names as `unix/`, built on Win32.
//!
//! Spawn: the current executable is started again with `CreateProcessW` and an
//! explicit handle list (`STARTUPINFOEXW` + `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`),
//! so a worker inherits its two channel pipes, a handle to its parent and its
//! stdio, and nothing else of ours. The handle values and the parent's pid travel
//! in the worker marker. Channel: two anonymous pipes, one per direction.
//! No orphans: every worker is put, while still suspended, in a job object with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` that only this process holds, so the
//! kernel kills the workers when this process ends, however it ends; and each
//! worker also waits on its parent's process handle and exits when it signals.
//! The rest of the runtime names children by pid: the process handles live in a
//! private table, pid → handle, from spawn until reap. Pipes cannot time out a
//! read, so the handshake timeout is a watchdog thread that cancels the read.
//!
//! The listed handles must be inheritable; they are private duplicates, made so
//! only for the spawn. A `std::process::Command` started by another thread at
//! that moment inherits every inheritable handle and could take them along.
//!
//! Windows has no signals. `terminate` and `kill` both end the process with
//! `TerminateProcess` and a reserved exit code (0x1000F and 0x10009), reported as
//! `ExitStatus::Signal(15)` and `ExitStatus::Signal(9)`, so `exitcode()` is -15
//! and -9 as on Unix; Python's own marker 0x10000 also reads as -15 (SIGTERM).

pub(crate) mod futex;
mod handles;
pub(crate) mod shm;
pub(crate) use handles::*;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString, c_void};
use std::fs::File;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, ERROR_INVALID_PARAMETER, GENERIC_READ, HANDLE,
    HANDLE_FLAG_INHERIT, INVALID_HANDLE_VALUE, SetHandleInformation, WAIT_FAILED, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::IO::CancelSynchronousIo;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject,
};
use windows_sys::Win32::System::Pipes::CreatePipe;
use windows_sys::Win32::System::Threading::{
    CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT, CreateProcessW, DeleteProcThreadAttributeList,
    EXTENDED_STARTUPINFO_PRESENT, ExitProcess, GetCurrentProcess, GetCurrentThread,
    GetExitCodeProcess, GetProcessAffinityMask, INFINITE, InitializeProcThreadAttributeList,
    LPPROC_THREAD_ATTRIBUTE_LIST, OpenProcess, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
    PROCESS_DUP_HANDLE, PROCESS_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE, ResumeThread, STARTF_USESTDHANDLES, STARTUPINFOEXW, THREAD_TERMINATE,
    TerminateProcess, UpdateProcThreadAttribute, WaitForSingleObject,
};

use crate::error::ExitStatus;
use crate::sys::{Channel, EXIT_PARENT_DIED, Signal, WORKER_MARKER, WorkerBoot};

/// Python's `multiprocessing` ends a process with this exit code on Windows and
/// reports it as `-SIGTERM`; mp adds the signal number it stands for.
const TERMINATE_BASE: u32 = 0x1_0000;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// Size of each pipe's buffer: one frame of typical size fits without a stall.
const PIPE_BUFFER: u32 = 64 * 1024;

/// The reading half of a channel: an anonymous pipe.
pub(crate) type ChannelRead = File;

/// Turns a Win32 `BOOL` into a result.
fn cvt(ok: i32) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_inheritable(handle: HANDLE, on: bool) -> io::Result<()> {
    let flags = if on { HANDLE_FLAG_INHERIT } else { 0 };
    // SAFETY: changes only the inheritance flag of a handle value; an invalid
    // value yields ERROR_INVALID_HANDLE, never UB.
    cvt(unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, flags) })
}

/// Takes ownership of a handle a Win32 call just returned, if it is valid.
fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the caller passes a fresh handle that nothing else owns.
        Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
    }
}

/// An anonymous pipe, both ends not inheritable: (read end, write end).
fn pipe() -> io::Result<(OwnedHandle, OwnedHandle)> {
    let mut read: HANDLE = ptr::null_mut();
    let mut write: HANDLE = ptr::null_mut();
    // SAFETY: CreatePipe writes two fresh handles into `read` and `write`; null
    // security attributes make them non-inheritable.
    cvt(unsafe { CreatePipe(&mut read, &mut write, ptr::null(), PIPE_BUFFER) })?;
    // SAFETY: both handles were just created and are owned by no one else.
    Ok(unsafe {
        (
            OwnedHandle::from_raw_handle(read),
            OwnedHandle::from_raw_handle(write),
        )
    })
}

/// A duplicate of `handle` in this process, with `access` (or the same access).
fn duplicate(handle: HANDLE, access: Option<u32>) -> io::Result<OwnedHandle> {
    let mut dup: HANDLE = ptr::null_mut();
    let (access, options) = match access {
        Some(access) => (access, 0),
        None => (0, DUPLICATE_SAME_ACCESS),
    };
    // SAFETY: duplicates within this process into `dup`, which outlives the call;
    // a bad source handle yields an error.
    cvt(unsafe {
        let me = GetCurrentProcess();
        DuplicateHandle(me, handle, me, &mut dup, access, 0, options)
    })?;
    owned(dup)
}

/// A duplicate of this process's standard output or error, or `None` if it has
/// none (or one that cannot be duplicated): the worker then has none either.
fn std_handle(which: u32) -> Option<OwnedHandle> {
    // SAFETY: GetStdHandle takes a constant and returns a handle value (or none).
    let handle = unsafe { GetStdHandle(which) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return None;
    }
    duplicate(handle, None).ok()
}

/// The `NUL` device, opened for reading: a worker's standard input.
fn null_input() -> io::Result<OwnedHandle> {
    let name = wide_nul(OsStr::new("NUL"));
    // SAFETY: `name` is NUL-terminated and outlives the call; no template handle.
    owned(unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            ptr::null(),
            OPEN_EXISTING,
            FILE_ATTRIBUTE_NORMAL,
            ptr::null_mut(),
        )
    })
}

fn wide_nul(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// The job object all our workers join, created once, never inheritable: when
/// this process ends its last handle closes and the kernel kills every worker.
/// `None` if it cannot be had (then the lifeline alone stops orphans).
fn kill_on_close_job() -> Option<HANDLE> {
    static JOB: OnceLock<Option<OwnedHandle>> = OnceLock::new();
    JOB.get_or_init(|| create_job().ok())
        .as_ref()
        .map(|job| job.as_raw_handle())
}

fn create_job() -> io::Result<OwnedHandle> {
    // SAFETY: an anonymous job with default (non-inheritable) security.
    let job = owned(unsafe { CreateJobObjectW(ptr::null(), ptr::null()) })?;
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: `info` is the structure this information class expects, with its size.
    cvt(unsafe {
        SetInformationJobObject(
            job.as_raw_handle(),
            JobObjectExtendedLimitInformation,
            (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast::<c_void>(),
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    })?;
    Ok(job)
}

/// Process handles of the children we started and have not reaped, by pid.
static PROCESSES: Mutex<BTreeMap<u32, Arc<OwnedHandle>>> = Mutex::new(BTreeMap::new());

fn processes() -> MutexGuard<'static, BTreeMap<u32, Arc<OwnedHandle>>> {
    // Every critical section is one map operation: poisoning cannot tear it.
    PROCESSES.lock().unwrap_or_else(|e| e.into_inner())
}

fn process(pid: u32) -> io::Result<Arc<OwnedHandle>> {
    processes().get(&pid).cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {pid} is not an unreaped child of this process"),
        )
    })
}

/// A `CreateProcessW` attribute list holding a `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`,
/// deleted on drop.
struct AttributeList {
    buffer: Vec<usize>,
    initialized: bool,
}

impl AttributeList {
    /// A list with one attribute: inherit exactly `handles`, which must stay
    /// alive and unmoved until the process is created.
    fn inherit_only(handles: &[HANDLE]) -> io::Result<AttributeList> {
        let mut size = 0usize;
        // SAFETY: the sizing call writes only `size`; it fails by design.
        unsafe { InitializeProcThreadAttributeList(ptr::null_mut(), 1, 0, &mut size) };
        if size == 0 {
            return Err(io::Error::last_os_error());
        }
        let words = size.div_ceil(std::mem::size_of::<usize>());
        let mut list = AttributeList {
            buffer: vec![0usize; words],
            initialized: false,
        };
        // SAFETY: the buffer holds at least `size` bytes, pointer-aligned.
        cvt(unsafe { InitializeProcThreadAttributeList(list.as_ptr(), 1, 0, &mut size) })?;
        list.initialized = true;
        // SAFETY: the list is initialised; `handles` outlives the list's use (the
        // caller's contract), and its byte size is passed exactly.
        let result = cvt(unsafe {
            UpdateProcThreadAttribute(
                list.as_ptr(),
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                handles.as_ptr().cast::<c_void>(),
                std::mem::size_of_val(handles),
                ptr::null_mut(),
                ptr::null(),
            )
        });
        result.map(|()| list)
    }

    fn as_ptr(&mut self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.buffer.as_mut_ptr().cast::<c_void>()
    }
}

impl Drop for AttributeList {
    fn drop(&mut self) {
        if self.initialized {
            // SAFETY: the list was initialised and is deleted once.
            unsafe { DeleteProcThreadAttributeList(self.as_ptr()) };
        }
    }
}

/// The worker's environment block: ours without MPI launcher variables, plus the
/// marker; sorted case-insensitively as Windows expects.
fn environment_block(marker: &str) -> Vec<u16> {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(key, _)| {
            !crate::sys::is_launcher_variable(key)
                && !key.eq_ignore_ascii_case(WORKER_MARKER)
                && !key.is_empty()
        })
        .collect();
    vars.push((WORKER_MARKER.into(), marker.into()));
    vars.sort_by_cached_key(|(key, _)| key.to_string_lossy().to_uppercase());
    let mut block = Vec::new();
    for (key, value) in vars {
        block.extend(key.encode_wide());
        block.push(u16::from(b'='));
        block.extend(value.encode_wide());
        block.push(0);
    }
    block.push(0);
    block
}

/// Starts the current binary as a worker; returns its pid and our end of the channel.
pub(crate) fn spawn_worker() -> io::Result<(u32, Channel)> {
    let program = std::env::current_exe()?;
    // Parent → worker and worker → parent.
    let (child_read, parent_write) = pipe()?;
    let (parent_read, child_write) = pipe()?;
    // SAFETY: GetCurrentProcess returns a pseudo handle; it needs no closing.
    let me = unsafe { GetCurrentProcess() };
    // The worker waits on it, and pushes the handles of its results into us.
    let lifeline = duplicate(me, Some(PROCESS_SYNCHRONIZE | PROCESS_DUP_HANDLE))?;
    let stdin = null_input()?;
    let stdout = std_handle(STD_OUTPUT_HANDLE);
    let stderr = std_handle(STD_ERROR_HANDLE);

    let raw = |h: &OwnedHandle| h.as_raw_handle();
    let marker = format!(
        "1:{}:{}:{}:{}",
        raw(&child_read) as usize,
        raw(&child_write) as usize,
        raw(&lifeline) as usize,
        std::process::id()
    );
    let mut inherit: Vec<HANDLE> = vec![
        raw(&child_read),
        raw(&child_write),
        raw(&lifeline),
        raw(&stdin),
    ];
    inherit.extend(stdout.iter().chain(stderr.iter()).map(raw));
    // The handle list only narrows inheritance: each listed handle must also be
    // inheritable. These are private duplicates, closed right after the spawn.
    for &handle in &inherit {
        set_inheritable(handle, true)?;
    }
    let mut attributes = AttributeList::inherit_only(&inherit)?;

    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut startup: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    startup.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = raw(&stdin);
    startup.StartupInfo.hStdOutput = stdout.as_ref().map_or(ptr::null_mut(), raw);
    startup.StartupInfo.hStdError = stderr.as_ref().map_or(ptr::null_mut(), raw);
    startup.lpAttributeList = attributes.as_ptr();
    // SAFETY: as above.
    let mut info: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };

    let application = wide_nul(program.as_os_str());
    let mut command_line: Vec<u16> = Vec::new();
    command_line.push(u16::from(b'"'));
    command_line.extend(program.as_os_str().encode_wide());
    command_line.push(u16::from(b'"'));
    command_line.push(0);
    let environment = environment_block(&marker);

    // SAFETY: every pointer is valid for the call: NUL-terminated strings, a
    // mutable command line, a double-NUL-terminated UTF-16 environment block
    // (flagged as such), a STARTUPINFOEXW (flagged as such) whose attribute list
    // and handles are alive, and `info` for the results.
    cvt(unsafe {
        CreateProcessW(
            application.as_ptr(),
            command_line.as_mut_ptr(),
            ptr::null(),
            ptr::null(),
            1,
            CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED,
            environment.as_ptr().cast::<c_void>(),
            ptr::null(),
            &startup.StartupInfo,
            &mut info,
        )
    })?;
    drop(attributes);
    // SAFETY: CreateProcessW returned these two fresh handles to us.
    let (child, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(info.hProcess),
            OwnedHandle::from_raw_handle(info.hThread),
        )
    };
    // Our copies of the worker's ends: closing them lets each side see EOF when
    // the other exits.
    drop((child_read, child_write, lifeline, stdin, stdout, stderr));

    if let Some(job) = kill_on_close_job() {
        // Join while suspended, so the worker never runs outside the job. A
        // failure (a restricted environment) leaves the lifeline as the guard.
        // SAFETY: both handles are valid for the call.
        unsafe { AssignProcessToJobObject(job, child.as_raw_handle()) };
    }
    // SAFETY: the primary thread handle is valid; ResumeThread returns u32::MAX on error.
    if unsafe { ResumeThread(thread.as_raw_handle()) } == u32::MAX {
        let err = io::Error::last_os_error();
        // SAFETY: the process handle is valid; the worker never ran.
        unsafe { TerminateProcess(child.as_raw_handle(), TERMINATE_BASE | SIGKILL as u32) };
        return Err(err);
    }
    drop(thread);
    let pid = info.dwProcessId;
    let child = Arc::new(child);
    processes().insert(pid, Arc::clone(&child));
    let read = File::from(parent_read);
    let write = ChannelWrite {
        file: File::from(parent_write),
        peer: child,
    };
    Ok((pid, Channel { read, write }))
}

/// Waits for `handle` to be signalled; true if it was, false on timeout.
fn wait_handle(handle: &OwnedHandle, timeout: Option<Duration>) -> io::Result<bool> {
    let ms = match timeout {
        None => INFINITE,
        // Round up, and stay below INFINITE.
        Some(t) => u32::try_from(t.as_nanos().div_ceil(1_000_000))
            .unwrap_or(INFINITE - 1)
            .min(INFINITE - 1),
    };
    // SAFETY: waits on a valid handle.
    match unsafe { WaitForSingleObject(handle.as_raw_handle(), ms) } {
        WAIT_OBJECT_0 => Ok(true),
        WAIT_TIMEOUT => Ok(false),
        WAIT_FAILED => Err(io::Error::last_os_error()),
        other => Err(io::Error::other(format!(
            "unexpected wait result {other:#x}"
        ))),
    }
}

fn decode_exit(code: u32) -> ExitStatus {
    match code {
        TERMINATE_BASE => ExitStatus::Signal(SIGTERM),
        c if c == TERMINATE_BASE | SIGTERM as u32 => ExitStatus::Signal(SIGTERM),
        c if c == TERMINATE_BASE | SIGKILL as u32 => ExitStatus::Signal(SIGKILL),
        // NTSTATUS codes of crashes (0xC0000005, ...) come out negative.
        c => ExitStatus::Code(c as i32),
    }
}

/// Reads the exit code of a process that has exited, and forgets its handle.
fn finish(pid: u32, handle: &OwnedHandle) -> io::Result<ExitStatus> {
    let mut code: u32 = 0;
    // SAFETY: writes only to `code`, which outlives the call.
    cvt(unsafe { GetExitCodeProcess(handle.as_raw_handle(), &mut code) })?;
    processes().remove(&pid);
    Ok(decode_exit(code))
}

/// Blocks until `pid` exits and reaps it (closes our handle to it).
pub(crate) fn wait_exit(pid: u32) -> io::Result<ExitStatus> {
    let handle = process(pid)?;
    wait_handle(&handle, None)?;
    finish(pid, &handle)
}

/// Blocks until `pid` has exited, keeping its handle (so the pid stays reserved,
/// and `send_signal` cannot reach a recycled pid).
pub(crate) fn wait_exit_keep(pid: u32) -> io::Result<()> {
    let handle = process(pid)?;
    wait_handle(&handle, None).map(|_| ())
}

/// Reaps `pid` if it has exited.
#[allow(dead_code, reason = "part of the platform seam, used on Unix")]
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<ExitStatus>> {
    let handle = process(pid)?;
    if wait_handle(&handle, Some(Duration::ZERO))? {
        finish(pid, &handle).map(Some)
    } else {
        Ok(None)
    }
}

/// Waits up to `grace` for `pid` to exit, then kills it; reaps it either way.
pub(crate) fn reap_with_grace(pid: u32, grace: Duration) -> io::Result<ExitStatus> {
    let handle = process(pid)?;
    if !wait_handle(&handle, Some(grace))? {
        terminate(&handle, Signal::Kill)?;
        wait_handle(&handle, None)?;
    }
    finish(pid, &handle)
}

fn terminate(handle: &OwnedHandle, signal: Signal) -> io::Result<()> {
    let code = match signal {
        Signal::Terminate => TERMINATE_BASE | SIGTERM as u32,
        Signal::Kill => TERMINATE_BASE | SIGKILL as u32,
    };
    // SAFETY: a valid process handle with PROCESS_TERMINATE (CreateProcessW grants all).
    match cvt(unsafe { TerminateProcess(handle.as_raw_handle(), code) }) {
        Ok(()) => Ok(()),
        // A process that already exited refuses with "access denied": fine.
        Err(_) if wait_handle(handle, Some(Duration::ZERO)).unwrap_or(false) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends `pid` (there are no signals on Windows; see the module docs for the
/// exit codes). A pid that is not ours, or already reaped, is left alone.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    match process(pid) {
        Ok(handle) => terminate(&handle, signal),
        Err(_) => Ok(()),
    }
}

/// A read timeout in force: a thread that, once the time is up, cancels the
/// blocked read of the thread that set it.
struct Watchdog {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Watchdogs by the raw value of the read handle they guard.
static WATCHDOGS: Mutex<BTreeMap<usize, Watchdog>> = Mutex::new(BTreeMap::new());

fn watchdogs() -> MutexGuard<'static, BTreeMap<usize, Watchdog>> {
    // Every critical section is one map operation: poisoning cannot tear it.
    WATCHDOGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets or clears a read timeout on a channel, for reads made by the calling
/// thread until it clears it again (only the handshake uses one).
///
/// An anonymous pipe cannot time out a blocking read, so a watchdog thread
/// cancels it (`CancelSynchronousIo`): the read fails with `TimedOut`. The
/// watchdog keeps cancelling until the timeout is cleared, so a read that starts
/// after the deadline fails as well.
pub(crate) fn set_read_timeout(read: &ChannelRead, timeout: Option<Duration>) -> io::Result<()> {
    let key = read.as_raw_handle() as usize;
    let previous = watchdogs().remove(&key);
    if let Some(Watchdog { stop, thread }) = previous {
        drop(stop);
        // Once joined, no cancellation can reach the reads that follow.
        let _ = thread.join();
    }
    let Some(timeout) = timeout else {
        return Ok(());
    };
    if timeout.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a zero read timeout is not allowed",
        ));
    }
    // SAFETY: GetCurrentThread returns a pseudo handle; duplicating it gives a
    // real handle to this thread, with the right CancelSynchronousIo needs.
    let reader = duplicate(unsafe { GetCurrentThread() }, Some(THREAD_TERMINATE))?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mp-read-timeout".into())
        .spawn(move || {
            if stopped.recv_timeout(timeout) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            loop {
                // SAFETY: cancels pending synchronous I/O of the thread `reader`
                // names, which stays open until this thread ends.
                unsafe { CancelSynchronousIo(reader.as_raw_handle()) };
                if stopped.recv_timeout(Duration::from_millis(5))
                    != Err(mpsc::RecvTimeoutError::Timeout)
                {
                    return;
                }
            }
        })?;
    watchdogs().insert(key, Watchdog { stop, thread });
    Ok(())
}

/// Worker side: parses the marker, takes ownership of the inherited handles and
/// starts the lifeline watch.
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
            .and_then(|p| p.parse::<usize>().ok())
            .ok_or_else(bad)
    };
    let mut handle = || num().map(ptr::without_provenance_mut::<c_void>);
    let read = handle()?;
    let write = handle()?;
    let parent = handle()?;
    let parent_pid = u32::try_from(num()?).map_err(|_| bad())?;
    // Keep the inherited handles out of the processes we start ourselves; this
    // also proves each value names a handle of this process.
    for handle in [read, write, parent] {
        set_inheritable(handle, false)?;
    }
    // SAFETY: the parent created these handles for this process alone, and
    // nothing here has taken ownership of them.
    let (read, write, parent) = unsafe {
        (
            File::from_raw_handle(read),
            File::from_raw_handle(write),
            Arc::new(OwnedHandle::from_raw_handle(parent)),
        )
    };
    let lifeline = Arc::clone(&parent);
    std::thread::Builder::new()
        .name("mp-lifeline".into())
        .spawn(move || watch_parent(&lifeline))?;
    let write = ChannelWrite {
        file: write,
        peer: parent,
    };
    Ok(WorkerBoot {
        channel: Channel { read, write },
        parent_pid,
    })
}

fn watch_parent(parent: &OwnedHandle) {
    // Signalled when the parent exits, however it exits. Any failure to wait
    // counts as the parent's death too: a worker must not outlive it.
    let _ = wait_handle(parent, None);
    exit_now(EXIT_PARENT_DIED);
}

/// The number of CPUs this process may use: the processors in its affinity
/// mask, at most the machine's count. A process whose threads span several
/// processor groups has no single mask (Windows reports 0); it gets the
/// machine's count. Job object CPU rate limits are not taken into account.
pub(crate) fn cpu_count() -> usize {
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut process, mut system) = (0usize, 0usize);
    // SAFETY: writes only the two masks, which outlive the call; the pseudo
    // handle of the current process needs no closing.
    let ok = unsafe { GetProcessAffinityMask(GetCurrentProcess(), &mut process, &mut system) };
    affinity_count(ok != 0, process, machine)
}

/// The CPUs of an affinity mask (if it was read and is not empty), capped by the
/// machine's count.
fn affinity_count(read: bool, mask: usize, machine: usize) -> usize {
    match mask.count_ones() as usize {
        n if read && n > 0 => n.min(machine),
        _ => machine,
    }
}

/// Whether process `pid` still runs: it can be opened and its handle is not
/// signalled. A pid we may not open (another user's process) counts as alive.
pub(crate) fn process_alive(pid: u32) -> bool {
    // SAFETY: opens a process by id for waiting only; a bad id yields null.
    let raw = unsafe {
        OpenProcess(
            PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
            0,
            pid,
        )
    };
    match owned(raw) {
        // An exited process stays openable while someone holds a handle to it.
        Ok(handle) => !wait_handle(&handle, Some(Duration::ZERO)).unwrap_or(false),
        Err(e) => e.raw_os_error() != Some(ERROR_INVALID_PARAMETER as i32),
    }
}

/// There is no SIGPIPE on Windows: a write to a closed pipe is an error already.
pub(crate) fn ignore_sigpipe() {}

/// Ends the process at once, without unwinding, atexit handlers or DLL detach.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: terminating ourselves does not return; no Rust invariants outlive it.
    unsafe {
        TerminateProcess(GetCurrentProcess(), code as u32);
        ExitProcess(code as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_read_timeout_ends_a_blocked_read_and_can_be_cleared() {
        let (read, write) = pipe().unwrap();
        let (read, mut write) = (File::from(read), File::from(write));
        set_read_timeout(&read, Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 8];
        let err = (&read).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        set_read_timeout(&read, None).unwrap();
        write.write_all(b"abc").unwrap();
        assert_eq!((&read).read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        // Data that is there in time is read, timeout or not.
        set_read_timeout(&read, Some(Duration::from_secs(30))).unwrap();
        write.write_all(b"de").unwrap();
        assert_eq!((&read).read(&mut buf).unwrap(), 2);
        set_read_timeout(&read, None).unwrap();
        drop(write);
        assert_eq!((&read).read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn exit_codes_map_to_python_conventions() {
        assert_eq!(decode_exit(0), ExitStatus::Code(0));
        assert_eq!(decode_exit(3), ExitStatus::Code(3));
        assert_eq!(decode_exit(0x1_0000), ExitStatus::Signal(15));
        assert_eq!(decode_exit(0x1_000F), ExitStatus::Signal(15));
        assert_eq!(decode_exit(0x1_0009), ExitStatus::Signal(9));
        assert_eq!(
            decode_exit(0xC000_0005),
            ExitStatus::Code(0xC000_0005_u32 as i32)
        );
    }

    #[test]
    fn cpu_count_follows_the_affinity_mask() {
        assert_eq!(affinity_count(true, 0b1011, 8), 3);
        assert_eq!(affinity_count(true, usize::MAX, 8), 8);
        assert_eq!(affinity_count(true, 0, 8), 8);
        assert_eq!(affinity_count(false, 0b1, 8), 8);
        let n = cpu_count();
        assert!(n >= 1 && n <= std::thread::available_parallelism().unwrap().get());
    }

    #[test]
    fn the_environment_block_carries_the_marker_and_no_launcher_variables() {
        let block = environment_block("1:2:3:4:5");
        assert_eq!(&block[block.len() - 2..], &[0, 0]);
        let text = String::from_utf16_lossy(&block[..block.len() - 2]);
        let entries: Vec<&str> = text.split('\0').collect();
        assert!(entries.contains(&"__MP_WORKER=1:2:3:4:5"), "{entries:?}");
        assert!(
            !entries
                .iter()
                .any(|e| e.starts_with("OMPI_") || e.starts_with("PMI_"))
        );
        let keys: Vec<String> = entries
            .iter()
            .map(|e| e.split('=').next().unwrap_or("").to_uppercase())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
