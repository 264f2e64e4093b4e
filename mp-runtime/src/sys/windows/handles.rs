//! Windows: handles travelling inside frames, and the byte streams of `pipe()`.
//!
//! Windows has no `SCM_RIGHTS`: a handle value means something only in the
//! process that owns it. So the frame carries, for each handle, a fixed-size
//! *record* (after the header, before the payload), in one of two forms:
//!
//! - **pushed** (the worker channel): the sender holds a handle to the receiving
//!   process (the parent has each child's process handle, a worker has its
//!   parent's, with `PROCESS_DUP_HANDLE`), duplicates the handle straight into it
//!   and sends the new value. The receiver only checks that the value names a
//!   handle of its own and wraps it.
//! - **pulled** (`pipe()` connections, whose peer may be any process): the sender
//!   keeps a private duplicate open and sends its pid, its creation time and the
//!   duplicate's value; the receiver opens the sender with `PROCESS_DUP_HANDLE`
//!   and moves the handle into itself (`DUPLICATE_CLOSE_SOURCE`), as Python's
//!   `multiprocessing.reduction.DupHandle` does. The sender must still run when
//!   the receiver reads the message; if it has exited, the receiver gets a clear
//!   error (the creation time also catches a pid that was reused meanwhile).
//!
//! A record of the wrong form for its channel, or one that names no handle, is
//! an error; the handles of the other records of that frame are closed.
//!
//! Record: `[u32 LE form][u32 LE sender pid][u64 LE handle value][u64 LE sender
//! creation time]`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle as WinBorrowed, FromRawHandle, IntoRawHandle, OwnedHandle,
};
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    DUPLICATE_CLOSE_SOURCE, DUPLICATE_SAME_ACCESS, DuplicateHandle, ERROR_BROKEN_PIPE, FILETIME,
    GetHandleInformation, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::System::Pipes::PeekNamedPipe;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetProcessTimes, OpenProcess, PROCESS_DUP_HANDLE,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, WaitForSingleObject,
};

use super::{ChannelRead, cvt};

/// An OS handle owned by this process.
pub(crate) type OsHandle = OwnedHandle;
/// An OS handle borrowed for the length of a call.
pub(crate) type BorrowedHandle<'a> = WinBorrowed<'a>;

/// Most handles one message may carry.
pub(crate) const MAX_HANDLES_PER_MESSAGE: usize = 64;

/// Bytes of one handle record in a frame.
pub(crate) const HANDLE_RECORD_SIZE: usize = 24;

const PUSHED: u32 = 1;
const PULLED: u32 = 2;

/// Messages up to this size (header and payload together) are copied into one
/// buffer and written with one `WriteFile`: a pipe has no vectored write, and
/// each write costs a round through the kernel (under Wine, through its server).
/// Larger ones go out slice by slice, uncopied.
const COALESCE_MAX: usize = 64 * 1024;

/// The writing half of a worker channel: an anonymous pipe, and the process at
/// its other end (handles sent on it are pushed into that process).
#[derive(Debug)]
pub(crate) struct ChannelWrite {
    pub(crate) file: File,
    /// A handle to the peer process with `PROCESS_DUP_HANDLE`.
    pub(crate) peer: Arc<OwnedHandle>,
}

/// Writes some of `bufs` (handles travel inside the bytes on Windows, as records
/// the wire layer made with `export_pushed`/`export_pulled`).
pub(crate) fn send_with_handles(
    out: &ChannelWrite,
    bufs: &[IoSlice<'_>],
    handles: &[BorrowedHandle<'_>],
) -> io::Result<usize> {
    if !handles.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "on Windows, handles travel as records inside the frame",
        ));
    }
    write_coalesced(&out.file, bufs)
}

fn write_coalesced(out: &File, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut out = out;
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if bufs.len() > 1 && total <= COALESCE_MAX {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        return SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            for buf in bufs {
                scratch.extend_from_slice(buf);
            }
            // A short write is fine: the caller advances by what was written.
            out.write(scratch)
        });
    }
    // `File` writes only the first non-empty slice; the caller comes back for the rest.
    out.write_vectored(bufs)
}

/// Reads into `buf`; no handle ever arrives beside the bytes on Windows.
pub(crate) fn recv_with_handles(
    input: &ChannelRead,
    buf: &mut [u8],
    _handles: &mut VecDeque<OwnedHandle>,
) -> io::Result<usize> {
    let mut input = input;
    input.read(buf)
}

/// A second owned handle for the same object.
pub(crate) fn duplicate_handle(handle: BorrowedHandle<'_>) -> io::Result<OwnedHandle> {
    handle.try_clone_to_owned()
}

fn current_process() -> HANDLE {
    // SAFETY: returns a pseudo handle, valid for this process, never closed.
    unsafe { GetCurrentProcess() }
}

fn record(out: &mut Vec<u8>, form: u32, pid: u32, value: HANDLE, created: u64) {
    out.extend_from_slice(&form.to_le_bytes());
    out.extend_from_slice(&pid.to_le_bytes());
    out.extend_from_slice(&(value as usize as u64).to_le_bytes());
    out.extend_from_slice(&created.to_le_bytes());
}

/// One parsed record.
#[derive(Debug, Clone, Copy)]
struct Record {
    form: u32,
    pid: u32,
    value: u64,
    created: u64,
}

fn records(bytes: &[u8]) -> io::Result<Vec<Record>> {
    if !bytes.len().is_multiple_of(HANDLE_RECORD_SIZE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("handle records of {} bytes", bytes.len()),
        ));
    }
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at =
        |b: &[u8], at: usize| u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32);
    Ok(bytes
        .chunks_exact(HANDLE_RECORD_SIZE)
        .map(|b| Record {
            form: u32_at(b, 0),
            pid: u32_at(b, 4),
            value: u64_at(b, 8),
            created: u64_at(b, 16),
        })
        .collect())
}

/// A handle value from a record: kernel handle values are small positive
/// multiples of 4; anything else is a forged or garbled record.
fn handle_value(record: &Record) -> io::Result<HANDLE> {
    let value = usize::try_from(record.value)
        .ok()
        .filter(|&v| v != 0 && v.is_multiple_of(4) && v <= isize::MAX as usize);
    value.map(ptr::without_provenance_mut).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a handle record holds {:#x}, which is no handle value",
                record.value
            ),
        )
    })
}

/// Duplicates `handles` into the process `peer` names; writes one pushed record
/// each to `out`. On failure, the handles already pushed are closed again.
pub(crate) fn export_pushed(
    peer: &OwnedHandle,
    handles: &[BorrowedHandle<'_>],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let start = out.len();
    for handle in handles {
        let mut value: HANDLE = ptr::null_mut();
        // SAFETY: duplicates a valid handle of ours into the peer process, whose
        // handle has PROCESS_DUP_HANDLE; `value` outlives the call. The new value
        // means nothing here and is never used as a handle of this process.
        let pushed = cvt(unsafe {
            DuplicateHandle(
                current_process(),
                handle.as_raw_handle(),
                peer.as_raw_handle(),
                &mut value,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        });
        if let Err(e) = pushed {
            retract(peer, &out[start..]);
            out.truncate(start);
            return Err(e);
        }
        record(out, PUSHED, std::process::id(), value, 0);
    }
    Ok(())
}

/// Makes a private duplicate of each of `handles`, kept open for the receiver to
/// pull; writes one pulled record each to `out`.
pub(crate) fn export_pulled(handles: &[BorrowedHandle<'_>], out: &mut Vec<u8>) -> io::Result<()> {
    let created = own_creation_time()?;
    let start = out.len();
    for handle in handles {
        match handle.try_clone_to_owned() {
            // The receiver takes it over (DUPLICATE_CLOSE_SOURCE closes it here).
            Ok(dup) => record(
                out,
                PULLED,
                std::process::id(),
                dup.into_raw_handle(),
                created,
            ),
            Err(e) => {
                retract_pulled(&out[start..]);
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Closes the handles of pushed records in `peer` (a frame that was not sent
/// whole, so the peer never sees them).
pub(crate) fn retract(peer: &OwnedHandle, bytes: &[u8]) {
    for record in records(bytes).unwrap_or_default() {
        if record.form != PUSHED {
            continue;
        }
        let Ok(value) = handle_value(&record) else {
            continue;
        };
        // SAFETY: closes, in the peer, a handle this process duplicated into it
        // and that the peer has not received; no handle is created.
        unsafe {
            DuplicateHandle(
                peer.as_raw_handle(),
                value,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                0,
                DUPLICATE_CLOSE_SOURCE,
            )
        };
    }
}

/// Closes the private duplicates of pulled records (a frame that was not sent whole).
pub(crate) fn retract_pulled(bytes: &[u8]) {
    for record in records(bytes).unwrap_or_default() {
        if record.form != PULLED || record.pid != std::process::id() {
            continue;
        }
        if let Ok(value) = handle_value(&record) {
            // SAFETY: `export_pulled` made this duplicate and gave up ownership
            // of it to a receiver that will never see it: it is ours again.
            drop(unsafe { OwnedHandle::from_raw_handle(value) });
        }
    }
}

/// Takes the handles of pushed records (they are already this process's).
/// Checks each value names an open handle; a frame with a bad record is an error
/// and its other handles are closed.
pub(crate) fn import_pushed(bytes: &[u8]) -> io::Result<Vec<OwnedHandle>> {
    import(bytes, PUSHED, |record| {
        let value = handle_value(record)?;
        let mut flags = 0u32;
        // SAFETY: only queries the flags of a handle value; a value naming no
        // handle yields ERROR_INVALID_HANDLE.
        cvt(unsafe { GetHandleInformation(value, &mut flags) }).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a handle record names no handle of this process ({e})"),
            )
        })?;
        // SAFETY: the sender duplicated this handle into this process for this
        // frame alone; nothing else here owns it.
        Ok(unsafe { OwnedHandle::from_raw_handle(value) })
    })
}

/// Pulls the handles of pulled records out of their senders into this process.
pub(crate) fn import_pulled(bytes: &[u8]) -> io::Result<Vec<OwnedHandle>> {
    // Each sender is opened once per frame (a pipe end is two handles).
    let mut senders: Vec<(u32, u64, io::Result<OwnedHandle>)> = Vec::new();
    import(bytes, PULLED, |record| {
        let at = match senders
            .iter()
            .position(|(pid, created, _)| (*pid, *created) == (record.pid, record.created))
        {
            Some(at) => at,
            None => {
                senders.push((record.pid, record.created, open_sender(record)));
                senders.len() - 1
            }
        };
        match &senders[at].2 {
            Ok(sender) => pull(sender, record),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    })
}

fn import(
    bytes: &[u8],
    form: u32,
    mut take: impl FnMut(&Record) -> io::Result<OwnedHandle>,
) -> io::Result<Vec<OwnedHandle>> {
    let mut handles = Vec::new();
    let mut first_error = None;
    // Every record is taken, even after an error: pulled handles left in their
    // sender would stay open there until it exits.
    for record in records(bytes)? {
        let result = if record.form == form {
            take(&record)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a handle record of form {} where form {form} was expected",
                    record.form
                ),
            ))
        };
        match result {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        // Dropping `handles` closes what did arrive.
        Some(e) => Err(e),
        None => Ok(handles),
    }
}

fn sender_gone(pid: u32, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "the process {pid} that sent a handle through this pipe {why}; on Windows a \
             handle sent through a pipe can be received only while its sender still runs"
        ),
    )
}

/// Opens the sender of a pulled record, checking it is the process that sent it.
fn open_sender(record: &Record) -> io::Result<OwnedHandle> {
    let pid = record.pid;
    // SAFETY: opens a process by pid; the result is checked below.
    let sender = unsafe {
        OpenProcess(
            PROCESS_DUP_HANDLE | PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
            0,
            pid,
        )
    };
    if sender.is_null() {
        let e = io::Error::last_os_error();
        return Err(sender_gone(pid, &format!("has exited ({e})")));
    }
    // SAFETY: OpenProcess returned a fresh handle that we own.
    let sender = unsafe { OwnedHandle::from_raw_handle(sender) };
    // A recycled pid names another process: never take a handle from it.
    if creation_time(sender.as_raw_handle())? != record.created {
        return Err(sender_gone(
            pid,
            "has exited (its pid now names another process)",
        ));
    }
    Ok(sender)
}

/// Moves the handle of `record` out of `sender` into this process.
fn pull(sender: &OwnedHandle, record: &Record) -> io::Result<OwnedHandle> {
    let value = handle_value(record)?;
    let pid = record.pid;
    let mut pulled: HANDLE = ptr::null_mut();
    // SAFETY: moves the handle `value` of the sender into this process (closing
    // it in the sender); `pulled` outlives the call. A value naming no handle
    // fails with ERROR_INVALID_HANDLE.
    let result = cvt(unsafe {
        DuplicateHandle(
            sender.as_raw_handle(),
            value,
            current_process(),
            &mut pulled,
            0,
            0,
            DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE,
        )
    });
    match result {
        // SAFETY: DuplicateHandle created this handle for us alone.
        Ok(()) => Ok(unsafe { OwnedHandle::from_raw_handle(pulled) }),
        // SAFETY: waits (not at all) on a valid process handle.
        Err(_) if unsafe { WaitForSingleObject(sender.as_raw_handle(), 0) } == WAIT_OBJECT_0 => {
            Err(sender_gone(pid, "has exited"))
        }
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a handle record names no handle of process {pid} ({e})"),
        )),
    }
}

/// When `process` (a handle with query access) was created, as a FILETIME.
fn creation_time(process: HANDLE) -> io::Result<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: writes only the four FILETIMEs, which outlive the call; a bad
    // process handle yields an error.
    cvt(unsafe { GetProcessTimes(process, &mut created, &mut exited, &mut kernel, &mut user) })?;
    Ok(u64::from(created.dwLowDateTime) | (u64::from(created.dwHighDateTime) << 32))
}

fn own_creation_time() -> io::Result<u64> {
    static CREATED: OnceLock<u64> = OnceLock::new();
    if let Some(&t) = CREATED.get() {
        return Ok(t);
    }
    let t = creation_time(current_process())?;
    Ok(*CREATED.get_or_init(|| t))
}

/// A byte stream between processes, for `pipe()`: two anonymous pipes, one per
/// direction. One pipe per direction (not one duplex named pipe) because a
/// synchronous handle serializes the I/O on its file object: a `recv` blocked on
/// a duplex handle would hold up every `send` on it.
#[derive(Debug)]
pub(crate) struct Stream {
    read: File,
    write: File,
}

impl Stream {
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream {
            read: self.read.try_clone()?,
            write: self.write.try_clone()?,
        })
    }

    pub(crate) fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        write_coalesced(&self.write, bufs)
    }

    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // std reads a pipe whose writers are all gone as end of stream.
        (&self.read).read(buf)
    }
}

/// A connected pair of streams.
pub(crate) fn stream_pair() -> io::Result<(Stream, Stream)> {
    let (a_read, b_write) = super::pipe()?;
    let (b_read, a_write) = super::pipe()?;
    Ok((
        Stream {
            read: File::from(a_read),
            write: File::from(a_write),
        },
        Stream {
            read: File::from(b_read),
            write: File::from(b_write),
        },
    ))
}

/// How many handles a stream is made of (and travels as).
pub(crate) const STREAM_HANDLES: usize = 2;

/// Borrows a stream's handles, for sending it to another process.
pub(crate) fn stream_handles(stream: &Stream) -> [BorrowedHandle<'_>; STREAM_HANDLES] {
    [stream.read.as_handle(), stream.write.as_handle()]
}

/// A stream from received handles (as `stream_handles` lists them).
pub(crate) fn stream_from_handles([read, write]: [OwnedHandle; STREAM_HANDLES]) -> Stream {
    Stream {
        read: File::from(read),
        write: File::from(write),
    }
}

/// Waits up to `timeout` for `stream` to be readable (data, or the peer closed).
///
/// A synchronous pipe handle cannot be waited on for readability (it is
/// signalled by I/O completion, not by data), and overlapped handles would force
/// every process the stream is passed to into overlapped I/O. So this peeks
/// (`PeekNamedPipe`, which reads nothing) and sleeps between peeks, starting at
/// 50 µs and doubling up to 5 ms: a short wait answers fast, a long one wakes at
/// most 200 times a second.
pub(crate) fn poll_readable(stream: &Stream, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        let mut available = 0u32;
        // SAFETY: peeks at a valid pipe handle without reading; writes only
        // `available`, which outlives the call.
        let ok = unsafe {
            PeekNamedPipe(
                stream.read.as_raw_handle(),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                &mut available,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            let err = io::Error::last_os_error();
            // Every writer gone: the next read reports the end of the stream.
            if err.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) {
                return Ok(true);
            }
            return Err(err);
        }
        if available > 0 {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// The number of handles this process has open, found by asking about each
/// handle value in turn (multiples of 4, handed out lowest first; the count stops
/// after 4096 values in a row name nothing). `GetProcessHandleCount` would be
/// simpler, but Wine always answers 0.
#[cfg(test)]
pub(crate) fn handle_count() -> usize {
    let (mut count, mut misses, mut value) = (0, 0, 4usize);
    while misses < 4096 {
        let mut flags = 0u32;
        // SAFETY: only queries the flags of a handle value; a value that names
        // no handle fails with ERROR_INVALID_HANDLE.
        let ok = unsafe { GetHandleInformation(ptr::without_provenance_mut(value), &mut flags) };
        if ok != 0 {
            count += 1;
            misses = 0;
        } else {
            misses += 1;
        }
        value += 4;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multiple of 4 far above any handle table: a value no process uses, so a
    /// test that takes it can never close a handle another test owns.
    const NO_HANDLE: usize = 1 << 40;

    /// A handle to this process with the access of a peer handle.
    fn me() -> OwnedHandle {
        me_with(PROCESS_DUP_HANDLE | PROCESS_SYNCHRONIZE)
    }

    /// A handle to this process with `access`.
    fn me_with(access: u32) -> OwnedHandle {
        let mut dup: HANDLE = ptr::null_mut();
        // SAFETY: a real handle to this process, with the access asked for.
        cvt(unsafe {
            DuplicateHandle(
                current_process(),
                current_process(),
                current_process(),
                &mut dup,
                access,
                0,
                0,
            )
        })
        .unwrap();
        // SAFETY: fresh.
        unsafe { OwnedHandle::from_raw_handle(dup) }
    }

    fn round_trip(stream: &Stream, other: &Stream) {
        stream.send(&[IoSlice::new(b"abc")]).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(other.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }

    #[test]
    fn pushed_and_pulled_handles_name_the_same_pipe() {
        let (a, b) = stream_pair().unwrap();
        let [read, write] = stream_handles(&a);
        let mut pushed = Vec::new();
        export_pushed(&me(), &[read, write], &mut pushed).unwrap();
        assert_eq!(pushed.len(), 2 * HANDLE_RECORD_SIZE);
        let handles: [OwnedHandle; 2] = import_pushed(&pushed).unwrap().try_into().unwrap();
        round_trip(&stream_from_handles(handles), &b);

        let mut pulled = Vec::new();
        export_pulled(&stream_handles(&a), &mut pulled).unwrap();
        let handles: [OwnedHandle; 2] = import_pulled(&pulled).unwrap().try_into().unwrap();
        round_trip(&b, &stream_from_handles(handles));
        // (Pulling the same record again would close whatever handle of this
        // process reuses the value by then: never done, not even in a test.)
    }

    #[test]
    fn forged_and_garbled_records_are_errors() {
        let (a, _b) = stream_pair().unwrap();
        let mut good = Vec::new();
        export_pushed(&me(), &stream_handles(&a)[..1], &mut good).unwrap();
        let mut bad = Vec::new();
        record(
            &mut bad,
            PUSHED,
            1,
            ptr::without_provenance_mut(NO_HANDLE),
            0,
        );
        record(&mut bad, PUSHED, 1, ptr::without_provenance_mut(3), 0);
        record(&mut bad, 9, 1, ptr::without_provenance_mut(4), 0);
        for at in (0..bad.len()).step_by(HANDLE_RECORD_SIZE) {
            let err = import_pushed(&bad[at..at + HANDLE_RECORD_SIZE]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
        // A pushed record where pulled ones are expected, and a cut record.
        assert!(import_pulled(&good).is_err());
        assert!(import_pushed(&good[..HANDLE_RECORD_SIZE - 1]).is_err());
        // A pulled record naming no handle of a live sender, and one whose
        // creation time does not match (a recycled pid).
        let created = own_creation_time().unwrap();
        let mut forged = Vec::new();
        record(
            &mut forged,
            PULLED,
            std::process::id(),
            ptr::without_provenance_mut(NO_HANDLE),
            created,
        );
        let err = import_pulled(&forged).unwrap_err();
        assert!(err.to_string().contains("names no handle"), "{err}");
        let mut recycled = Vec::new();
        record(
            &mut recycled,
            PULLED,
            std::process::id(),
            ptr::without_provenance_mut(4),
            created + 1,
        );
        let err = import_pulled(&recycled).unwrap_err();
        assert!(err.to_string().contains("has exited"), "{err}");
    }

    #[test]
    fn a_push_the_peer_handle_does_not_allow_is_an_error_and_leaves_nothing() {
        let weak = me_with(PROCESS_SYNCHRONIZE);
        let (a, _b) = stream_pair().unwrap();
        let mut out = vec![1, 2, 3];
        assert!(export_pushed(&weak, &stream_handles(&a), &mut out).is_err());
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn a_frame_with_one_bad_record_closes_the_good_ones() {
        let (a, _b) = stream_pair().unwrap();
        let before = handle_count();
        for _ in 0..20 {
            let mut bytes = Vec::new();
            export_pushed(&me(), &stream_handles(&a), &mut bytes).unwrap();
            record(
                &mut bytes,
                PUSHED,
                1,
                ptr::without_provenance_mut(NO_HANDLE),
                0,
            );
            assert!(import_pushed(&bytes).is_err());
            let mut bytes = Vec::new();
            export_pulled(&stream_handles(&a), &mut bytes).unwrap();
            retract_pulled(&bytes);
        }
        // Allow a little slack for handles other test threads open meanwhile.
        assert!(
            handle_count() < before + 10,
            "{before} -> {}",
            handle_count()
        );
    }

    #[test]
    fn poll_waits_for_data_or_the_end() {
        let (a, b) = stream_pair().unwrap();
        let started = Instant::now();
        assert!(!poll_readable(&b, Duration::from_millis(30)).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(30));
        a.send(&[IoSlice::new(b"x")]).unwrap();
        assert!(poll_readable(&b, Duration::from_secs(5)).unwrap());
        let mut buf = [0u8; 1];
        b.recv(&mut buf).unwrap();
        drop(a);
        assert!(poll_readable(&b, Duration::from_secs(5)).unwrap());
        assert_eq!(b.recv(&mut buf).unwrap(), 0);
    }
}
