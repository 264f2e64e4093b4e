//! Framing and the messages between a parent and its workers.
//!
//! A frame is `[u32 LE length][u32 LE header length][u32 LE handle count][header][payload]`,
//! where `length` counts everything after itself. On Unix the handles travel
//! beside the bytes (`SCM_RIGHTS`); on Windows they travel inside the frame, as
//! one fixed-size record each between the header and the payload (see
//! `sys/windows/handles.rs`). The header is a small serde enum;
//! the payload is already-encoded user data, written with one vectored write and
//! never copied into the header, and read straight into a buffer of its own. A
//! length above the configured maximum is a `Codec` error before anything is
//! allocated. Below it, the payload's buffer is reserved at its full length
//! (address space only), and its pages are touched only as bytes actually
//! arrive, so a corrupt length costs no memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::buffer;
use crate::codec;
use crate::error::{CodecError, Error, Result};
use crate::sys::{self, BorrowedHandle, OsHandle};

pub(crate) const MAGIC: u32 = 0x6d70_5f31; // "mp_1"
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Default maximum frame size: 1 GiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 1 << 30;
const ABSOLUTE_MAX_FRAME: usize = u32::MAX as usize;

static MAX_FRAME: AtomicUsize = AtomicUsize::new(0);

/// The largest message (frame) mp sends or accepts, in bytes.
///
/// Defaults to 1 GiB, or the `MP_MAX_FRAME_SIZE` environment variable when set.
pub fn max_frame_size() -> usize {
    match MAX_FRAME.load(Ordering::Relaxed) {
        0 => {
            let from_env = std::env::var("MP_MAX_FRAME_SIZE")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&v| v >= 1024)
                .map(|v| v.min(ABSOLUTE_MAX_FRAME))
                .unwrap_or(DEFAULT_MAX_FRAME);
            MAX_FRAME.store(from_env, Ordering::Relaxed);
            from_env
        }
        n => n,
    }
}

/// Sets the largest message mp sends or accepts (at least 1 KiB, at most 4 GiB - 1).
///
/// Workers started afterwards use the same limit.
pub fn set_max_frame_size(bytes: usize) -> Result<()> {
    if !(1024..=ABSOLUTE_MAX_FRAME).contains(&bytes) {
        return Err(Error::invalid(format!(
            "max frame size must be between 1024 and {ABSOLUTE_MAX_FRAME} bytes, got {bytes}"
        )));
    }
    MAX_FRAME.store(bytes, Ordering::Relaxed);
    Ok(())
}

/// Refuses, before anything is sent, arguments that cannot fit in one frame.
pub(crate) fn check_payload_size(job: &str, len: usize) -> Result<()> {
    let max = max_frame_size();
    // Room for the header: a task header is the job name plus a few integers.
    if len + job.len() + 64 > max {
        return Err(Error::Codec(CodecError::new(format!(
            "the arguments of `{job}` encode to {len} bytes, over the maximum frame size of \
             {max} bytes; raise it with mp::set_max_frame_size or MP_MAX_FRAME_SIZE, or pass \
             the data through shared memory"
        ))));
    }
    Ok(())
}

/// First message, parent to worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello<'a> {
    pub(crate) magic: u32,
    pub(crate) protocol: u32,
    pub(crate) fingerprint: u64,
    pub(crate) max_frame: u64,
    pub(crate) name: &'a str,
    pub(crate) parent_name: &'a str,
}

/// Worker's answer to `Hello`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HelloAck {
    pub(crate) magic: u32,
    pub(crate) protocol: u32,
    pub(crate) fingerprint: u64,
    pub(crate) pid: u32,
    pub(crate) jobs: u32,
}

impl<'a> Hello<'a> {
    /// This process's greeting to a worker called `name`.
    pub(crate) fn ours(name: &'a str, parent_name: &'a str) -> Self {
        Hello {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            fingerprint: crate::registry::fingerprint(),
            max_frame: max_frame_size() as u64,
            name,
            parent_name,
        }
    }
}

/// Why a worker's answer shows it is not running this process's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// It speaks another protocol version.
    Protocol { theirs: u32 },
    /// Its job registry differs: another build.
    Registry {
        theirs: u64,
        their_jobs: u32,
        ours: u64,
        our_jobs: usize,
    },
}

impl HelloAck {
    /// `None` when the worker runs the same build as this process.
    pub(crate) fn mismatch(&self) -> Option<Mismatch> {
        if self.magic != MAGIC || self.protocol != PROTOCOL_VERSION {
            return Some(Mismatch::Protocol {
                theirs: self.protocol,
            });
        }
        let ours = crate::registry::fingerprint();
        (self.fingerprint != ours).then(|| Mismatch::Registry {
            theirs: self.fingerprint,
            their_jobs: self.jobs,
            ours,
            our_jobs: crate::registry::len(),
        })
    }
}

/// Parent to worker, after the handshake.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<'a> {
    /// Run a job; payload holds the encoded argument tuple, or a sequence of them
    /// when `batch` is set.
    Task { id: u64, job: &'a str, batch: bool },
    /// Run the pool initializer before any task.
    Init { job: &'a str },
    /// Finish and exit; with `report_last`, exit with code 1 if the last task
    /// failed (a `Process` whose job panicked exits like a Python process
    /// whose target raised).
    Shutdown { report_last: bool },
}

/// Why a job did not produce a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum FailureKind {
    Panic,
    Codec,
    UnknownJob,
}

/// A job that did not produce a value, as it crosses the process boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobFailure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

impl JobFailure {
    pub(crate) fn into_error(self, job: &str, pid: u32) -> Error {
        match self.kind {
            FailureKind::Panic => Error::JobPanicked {
                job: job.to_string(),
                message: self.message,
                location: self.location,
                pid,
            },
            FailureKind::Codec => Error::Codec(CodecError::new(format!(
                "in worker {pid}, job `{job}`: {}",
                self.message
            ))),
            FailureKind::UnknownJob => Error::WorkerStart {
                message: self.message,
            },
        }
    }
}

/// Worker to parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The payload holds the encoded result (a sequence for batches).
    Done {
        id: u64,
    },
    Failed {
        id: u64,
        failure: JobFailure,
    },
    InitDone,
    InitFailed {
        failure: JobFailure,
    },
}

/// One received frame.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The encoded header.
    header: Vec<u8>,
    payload: Vec<u8>,
    handles: Vec<OsHandle>,
}

impl Frame {
    pub(crate) fn header<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        Ok(codec::decode_borrowed(&self.header)?)
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, without copying it (the frame's handles are closed).
    pub(crate) fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The handles that came with the frame (once; later calls get none).
    pub(crate) fn take_handles(&mut self) -> Vec<OsHandle> {
        std::mem::take(&mut self.handles)
    }
}

/// Bytes after the length field: header length and handle count.
const PREFIX: usize = 12;

/// Where frames are written: a worker channel, or a buffer in tests.
pub(crate) trait SendHalf {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize>;

    /// Appends one record per handle to `out`, for the receiver to take them by.
    #[cfg(windows)]
    fn export(&mut self, _handles: &[BorrowedHandle<'_>], _out: &mut Vec<u8>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this stream cannot carry handles",
        ))
    }

    /// Undoes `export` for a frame that was not sent whole.
    #[cfg(windows)]
    fn retract(&mut self, _records: &[u8]) {}
}

/// Where frames are read from.
pub(crate) trait RecvHalf {
    fn recv(&mut self, buf: &mut [u8], handles: &mut VecDeque<OsHandle>) -> io::Result<usize>;

    /// Takes the handles a frame's records name.
    #[cfg(windows)]
    fn import(&mut self, _records: &[u8]) -> io::Result<Vec<OsHandle>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this stream cannot carry handles",
        ))
    }
}

impl SendHalf for sys::ChannelWrite {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize> {
        sys::send_with_handles(self, bufs, handles)
    }

    // The peer process is known: push the handles into it.
    #[cfg(windows)]
    fn export(&mut self, handles: &[BorrowedHandle<'_>], out: &mut Vec<u8>) -> io::Result<()> {
        sys::export_pushed(&self.peer, handles, out)
    }

    #[cfg(windows)]
    fn retract(&mut self, records: &[u8]) {
        sys::retract(&self.peer, records)
    }
}

impl SendHalf for &sys::ChannelWrite {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize> {
        sys::send_with_handles(self, bufs, handles)
    }

    #[cfg(windows)]
    fn export(&mut self, handles: &[BorrowedHandle<'_>], out: &mut Vec<u8>) -> io::Result<()> {
        sys::export_pushed(&self.peer, handles, out)
    }

    #[cfg(windows)]
    fn retract(&mut self, records: &[u8]) {
        sys::retract(&self.peer, records)
    }
}

impl RecvHalf for sys::ChannelRead {
    fn recv(&mut self, buf: &mut [u8], handles: &mut VecDeque<OsHandle>) -> io::Result<usize> {
        sys::recv_with_handles(self, buf, handles)
    }

    #[cfg(windows)]
    fn import(&mut self, records: &[u8]) -> io::Result<Vec<OsHandle>> {
        sys::import_pushed(records)
    }
}

// On Unix a pipe's stream is a socket like the worker channel (the impls above).
// On Windows its peer may be any process: handles are pulled by the receiver.
#[cfg(windows)]
impl SendHalf for sys::Stream {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize> {
        if !handles.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "on Windows, handles travel as records inside the frame",
            ));
        }
        sys::Stream::send(self, bufs)
    }

    fn export(&mut self, handles: &[BorrowedHandle<'_>], out: &mut Vec<u8>) -> io::Result<()> {
        sys::export_pulled(handles, out)
    }

    fn retract(&mut self, records: &[u8]) {
        sys::retract_pulled(records)
    }
}

#[cfg(windows)]
impl RecvHalf for sys::Stream {
    fn recv(&mut self, buf: &mut [u8], _handles: &mut VecDeque<OsHandle>) -> io::Result<usize> {
        sys::Stream::recv(self, buf)
    }

    fn import(&mut self, records: &[u8]) -> io::Result<Vec<OsHandle>> {
        sys::import_pulled(records)
    }
}

impl SendHalf for Vec<u8> {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize> {
        if !handles.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a buffer cannot carry handles",
            ));
        }
        self.write_vectored(bufs)
    }
}

impl RecvHalf for &[u8] {
    fn recv(&mut self, buf: &mut [u8], _handles: &mut VecDeque<OsHandle>) -> io::Result<usize> {
        self.read(buf)
    }
}

/// Writes one frame; `handles` travel with its first byte. `scratch` is reused
/// for the header to spare an allocation.
pub(crate) fn write_frame<H: Serialize, W: SendHalf>(
    out: &mut W,
    header: &H,
    payload: &[u8],
    handles: &[BorrowedHandle<'_>],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 4 + PREFIX - 4]);
    codec::encode_into(header, scratch)?;
    let header_len = scratch.len() - PREFIX;
    #[cfg(unix)]
    let records_len = 0;
    #[cfg(windows)]
    let records_len = handles.len() * sys::HANDLE_RECORD_SIZE;
    let total = PREFIX - 4 + header_len + records_len + payload.len();
    let max = max_frame_size();
    if total > max {
        return Err(Error::Codec(CodecError::new(format!(
            "a message of {total} bytes exceeds the maximum frame size of {max} bytes; \
             raise it with mp::set_max_frame_size or MP_MAX_FRAME_SIZE, or send the data \
             through shared memory"
        ))));
    }
    if handles.len() > sys::MAX_HANDLES_PER_MESSAGE {
        return Err(Error::Codec(CodecError::new(format!(
            "a message may carry at most {} handles, this one has {}",
            sys::MAX_HANDLES_PER_MESSAGE,
            handles.len()
        ))));
    }
    scratch[0..4].copy_from_slice(&(total as u32).to_le_bytes());
    scratch[4..8].copy_from_slice(&(header_len as u32).to_le_bytes());
    scratch[8..12].copy_from_slice(&(handles.len() as u32).to_le_bytes());
    // Windows: the handles become records after the header, and the frame
    // itself carries them.
    #[cfg(windows)]
    let handles: &[BorrowedHandle<'_>] = if handles.is_empty() {
        handles
    } else {
        // A Codec error, so a worker reports it as its job's failure (see
        // `send_outcome`) instead of stopping.
        out.export(handles, scratch).map_err(|e| {
            Error::Codec(CodecError::new(format!(
                "could not pass a handle to the other process: {e}"
            )))
        })?;
        &[]
    };
    let result = send_all(out, scratch, payload, handles);
    #[cfg(windows)]
    if result.is_err() && records_len > 0 {
        // Not sent whole: the receiver will never take these handles.
        out.retract(&scratch[PREFIX + header_len..]);
    }
    result
}

fn send_all<W: SendHalf>(
    out: &mut W,
    head: &[u8],
    payload: &[u8],
    handles: &[BorrowedHandle<'_>],
) -> Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(payload)];
    let mut bufs: &mut [IoSlice<'_>] = &mut bufs;
    let mut handles = handles;
    while !bufs.is_empty() {
        match out.send(bufs, handles) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => {
                handles = &[];
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(map_write_error(e)),
        }
    }
    Ok(())
}

fn map_write_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Error::Disconnected,
        _ => Error::io("writing to a worker channel", e),
    }
}

fn map_read_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Error::Disconnected,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
            after: std::time::Duration::ZERO,
        },
        _ => Error::io("reading from a worker channel", e),
    }
}

/// Reads frames, buffering small ones and reading large ones straight into place.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    handles: VecDeque<OsHandle>,
}

impl<R: RecvHalf> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            handles: VecDeque::new(),
        }
    }

    /// True if bytes of the next frame are already buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The stream, dropping whatever is buffered.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn recv_into(
        inner: &mut R,
        target: &mut [u8],
        handles: &mut VecDeque<OsHandle>,
    ) -> Result<usize> {
        loop {
            match inner.recv(target, handles) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_read_error(e)),
            }
        }
    }

    /// Makes at least `n` bytes available in the buffer; false on a clean end
    /// of stream before any byte.
    fn fill(&mut self, n: usize) -> Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let limit = self.buf.len();
        while self.end < n {
            let got = Self::recv_into(
                &mut self.inner,
                &mut self.buf[self.end..limit],
                &mut self.handles,
            )?;
            if got == 0 {
                return if self.end == 0 {
                    Ok(false)
                } else {
                    Err(Error::Disconnected)
                };
            }
            self.end += got;
        }
        Ok(true)
    }

    /// The next frame; `Ok(None)` on a clean end of stream between frames.
    pub(crate) fn read_frame(&mut self, max: usize) -> Result<Option<Frame>> {
        if !self.fill(PREFIX)? {
            return Ok(None);
        }
        let word = |at: usize| {
            let b = &self.buf[self.start + at..self.start + at + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let total = word(0);
        let header_len = word(4);
        let handle_count = word(8);
        if total > max {
            return Err(Error::Codec(CodecError::new(format!(
                "incoming frame of {total} bytes exceeds the maximum frame size of {max} bytes \
                 (corrupt stream, or raise the limit with mp::set_max_frame_size / MP_MAX_FRAME_SIZE)"
            ))));
        }
        if total < PREFIX - 4 || header_len > total - (PREFIX - 4) {
            return Err(Error::Codec(CodecError::new(format!(
                "corrupt frame: header of {header_len} bytes in a frame of {total}"
            ))));
        }
        if handle_count > sys::MAX_HANDLES_PER_MESSAGE {
            return Err(Error::Codec(CodecError::new(format!(
                "corrupt frame: it announces {handle_count} handles"
            ))));
        }
        #[cfg(unix)]
        let records_len = 0;
        #[cfg(windows)]
        let records_len = handle_count * sys::HANDLE_RECORD_SIZE;
        if records_len > total - (PREFIX - 4) - header_len {
            return Err(Error::Codec(CodecError::new(format!(
                "corrupt frame: {handle_count} handles do not fit in a frame of {total} bytes"
            ))));
        }
        self.start += PREFIX;
        let header = self.take(header_len)?;
        #[cfg(windows)]
        let records = self.take(records_len)?;
        let payload = self.take(total - (PREFIX - 4) - header_len - records_len)?;
        #[cfg(windows)]
        let handles = if handle_count == 0 {
            Vec::new()
        } else {
            // The whole frame is read: a bad record costs this frame, not the stream.
            self.inner.import(&records).map_err(|e| {
                Error::Codec(CodecError::new(format!(
                    "a message's handles could not be received: {e}"
                )))
            })?
        };
        #[cfg(unix)]
        if self.handles.len() < handle_count {
            return Err(Error::Codec(CodecError::new(format!(
                "frame announced {handle_count} handles but {} arrived",
                self.handles.len()
            ))));
        }
        #[cfg(unix)]
        let handles = self.handles.drain(..handle_count).collect();
        Ok(Some(Frame {
            header,
            payload,
            handles,
        }))
    }

    /// The next `len` bytes of the stream, in a buffer of their own: what is
    /// buffered here, then the rest read straight into place (never past it).
    fn take(&mut self, len: usize) -> Result<Vec<u8>> {
        let buffered = (self.end - self.start).min(len);
        let mut out = Vec::new();
        // Address space only, so a lying length costs no memory; if even that
        // is refused, the buffer grows as bytes arrive.
        let _ = buffer::try_reserve_exact(&mut out, len);
        out.extend_from_slice(&self.buf[self.start..self.start + buffered]);
        self.start += buffered;
        // Zero a stretch at a time (at most 1 MiB ahead of the bytes that
        // arrived), and read into it until full.
        const STRETCH: usize = 1 << 20;
        let mut filled = out.len();
        while filled < len {
            if filled == out.len() {
                out.resize(filled + (len - filled).min(STRETCH), 0);
            }
            let got = Self::recv_into(&mut self.inner, &mut out[filled..], &mut self.handles)?;
            if got == 0 {
                return Err(Error::Disconnected);
            }
            filled += got;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_of_another_build_is_a_mismatch() {
        let same = HelloAck {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            fingerprint: crate::registry::fingerprint(),
            pid: 1,
            jobs: 0,
        };
        assert_eq!(same.mismatch(), None);
        let old = HelloAck {
            protocol: PROTOCOL_VERSION + 1,
            ..same
        };
        assert_eq!(
            old.mismatch(),
            Some(Mismatch::Protocol {
                theirs: PROTOCOL_VERSION + 1
            })
        );
        let other = HelloAck {
            fingerprint: same.fingerprint ^ 1,
            jobs: 3,
            ..same
        };
        assert!(matches!(
            other.mismatch(),
            Some(Mismatch::Registry { their_jobs: 3, .. })
        ));
    }

    fn read_one(wire: &[u8], max: usize) -> Result<Option<Frame>> {
        FrameReader::new(wire).read_frame(max)
    }

    #[test]
    fn frame_round_trip() {
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        let task = Request::Task {
            id: 9,
            job: "a::b",
            batch: false,
        };
        write_frame(&mut wire, &task, b"xyz", &[], &mut scratch).unwrap();
        write_frame(
            &mut wire,
            &Request::Shutdown { report_last: true },
            b"",
            &[],
            &mut scratch,
        )
        .unwrap();
        let mut reader = FrameReader::new(&wire[..]);
        let frame = reader.read_frame(1 << 20).unwrap().unwrap();
        match frame.header::<Request<'_>>().unwrap() {
            Request::Task { id, job, batch } => assert_eq!((id, job, batch), (9, "a::b", false)),
            other => panic!("{other:?}"),
        }
        assert_eq!(frame.payload(), b"xyz");
        let frame = reader.read_frame(1 << 20).unwrap().unwrap();
        assert!(matches!(
            frame.header::<Request<'_>>().unwrap(),
            Request::Shutdown { .. }
        ));
        assert!(reader.read_frame(1 << 20).unwrap().is_none());
    }

    #[test]
    fn large_frame_round_trip() {
        let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        write_frame(
            &mut wire,
            &Reply::Done { id: 1 },
            &payload,
            &[],
            &mut Vec::new(),
        )
        .unwrap();
        let frame = read_one(&wire, 1 << 20).unwrap().unwrap();
        assert_eq!(frame.payload(), &payload[..]);
    }

    #[test]
    fn oversized_frame_is_a_codec_error() {
        let mut wire = (u32::MAX).to_le_bytes().to_vec();
        wire.extend_from_slice(&[0; 8]);
        let err = read_one(&wire, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
    }

    #[test]
    fn truncated_frame_is_disconnected() {
        let mut wire = 100u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&[0; 20]);
        let err = read_one(&wire, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Disconnected), "{err}");
    }

    #[test]
    fn corrupt_header_length_is_a_codec_error() {
        let mut wire = 12u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&1000u32.to_le_bytes());
        wire.extend_from_slice(&[0; 8]);
        let err = read_one(&wire, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
    }

    #[test]
    fn missing_handles_are_a_codec_error() {
        let mut wire = 8u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&0u32.to_le_bytes());
        wire.extend_from_slice(&3u32.to_le_bytes());
        let err = read_one(&wire, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
    }

    /// Windows: a frame whose handle record is garbled is a `Codec` error that
    /// costs that frame only; the next frame reads normally.
    #[cfg(windows)]
    #[test]
    fn a_garbled_handle_record_costs_only_its_frame() {
        let (a, b) = sys::stream_pair().unwrap();
        let mut wire = Vec::new();
        // One handle announced, its record all 0xff, then a payload byte.
        wire.extend_from_slice(&(8 + sys::HANDLE_RECORD_SIZE as u32 + 1).to_le_bytes());
        wire.extend_from_slice(&0u32.to_le_bytes());
        wire.extend_from_slice(&1u32.to_le_bytes());
        wire.extend_from_slice(&[0xff; sys::HANDLE_RECORD_SIZE]);
        wire.push(7);
        a.send(&[IoSlice::new(&wire)]).unwrap();
        let mut writer = a.try_clone().unwrap();
        write_frame(&mut writer, &(), b"next", &[], &mut Vec::new()).unwrap();
        let mut reader = FrameReader::new(b);
        let err = reader.read_frame(1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
        assert!(err.to_string().contains("handle"), "{err}");
        let frame = reader.read_frame(1 << 20).unwrap().unwrap();
        assert_eq!(frame.payload(), b"next");
    }

    #[test]
    fn empty_stream_is_none() {
        assert!(read_one(&[], 1024).unwrap().is_none());
    }

    #[test]
    fn garbage_header_is_a_codec_error() {
        let mut wire = 12u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&4u32.to_le_bytes());
        wire.extend_from_slice(&0u32.to_le_bytes());
        wire.extend_from_slice(&[0xff; 4]);
        let frame = read_one(&wire, 1024).unwrap().unwrap();
        assert!(matches!(
            frame.header::<Request<'_>>(),
            Err(Error::Codec(_))
        ));
    }
}
