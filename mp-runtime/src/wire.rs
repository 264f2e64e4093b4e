//! Framing and the messages between a parent and its workers.
//!
//! A frame is `[u32 LE length][u32 LE header length][header][payload]`, where
//! `length` counts everything after itself. The header is a small serde enum;
//! the payload is already-encoded user data, written with one vectored write and
//! never copied into the header. A length above the configured maximum is a
//! `Codec` error before anything is allocated, and the body buffer grows only as
//! bytes actually arrive, so a corrupt length cannot cause a giant allocation.

use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{CodecError, Error, Result};

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
    buf: Vec<u8>,
    header_end: usize,
}

impl Frame {
    pub(crate) fn header<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        Ok(codec::decode_borrowed(&self.buf[4..self.header_end])?)
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf[self.header_end..]
    }
}

/// Writes one frame. `scratch` is reused for the header to spare an allocation.
pub(crate) fn write_frame<H: Serialize, W: Write>(
    mut out: W,
    header: &H,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 8]);
    codec::encode_into(header, scratch)?;
    let header_len = scratch.len() - 8;
    let total = 4 + header_len + payload.len();
    let max = max_frame_size();
    if total > max {
        return Err(Error::Codec(CodecError::new(format!(
            "a message of {total} bytes exceeds the maximum frame size of {max} bytes; \
             raise it with mp::set_max_frame_size or MP_MAX_FRAME_SIZE, or send the data \
             through shared memory"
        ))));
    }
    scratch[0..4].copy_from_slice(&(total as u32).to_le_bytes());
    scratch[4..8].copy_from_slice(&(header_len as u32).to_le_bytes());
    write_all_vectored(
        &mut out,
        &mut [IoSlice::new(scratch), IoSlice::new(payload)],
    )
    .map_err(|e| map_write_error(e))
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

fn write_all_vectored<W: Write>(out: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub(crate) fn read_frame<R: Read>(mut input: R, max: usize) -> Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match read_exact_or_eof(&mut input, &mut len)? {
        false => return Ok(None),
        true => {}
    }
    let total = u32::from_le_bytes(len) as usize;
    if total > max {
        return Err(Error::Codec(CodecError::new(format!(
            "incoming frame of {total} bytes exceeds the maximum frame size of {max} bytes \
             (corrupt stream, or raise the limit with mp::set_max_frame_size / MP_MAX_FRAME_SIZE)"
        ))));
    }
    if total < 4 {
        return Err(Error::Codec(CodecError::new(format!(
            "corrupt frame: length {total} is shorter than its header"
        ))));
    }
    let mut buf = Vec::new();
    // Grow with the data that actually arrives: a lying length costs nothing.
    let mut filled = 0;
    while filled < total {
        let want = (total - filled).min(buf.len().max(64 * 1024));
        buf.resize(filled + want, 0);
        let n = loop {
            match input.read(&mut buf[filled..filled + want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(map_read_error(e)),
            }
        };
        if n == 0 {
            return Err(Error::Disconnected);
        }
        filled += n;
        buf.truncate(filled);
    }
    let header_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if header_len > total - 4 {
        return Err(Error::Codec(CodecError::new(format!(
            "corrupt frame: header of {header_len} bytes in a frame of {total}"
        ))));
    }
    Ok(Some(Frame {
        buf,
        header_end: 4 + header_len,
    }))
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

/// Fills `buf`; `false` if the stream ended before the first byte.
fn read_exact_or_eof<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(map_read_error(e)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        write_frame(
            &mut wire,
            &Request::Task {
                id: 9,
                job: "a::b",
                batch: false,
            },
            b"xyz",
            &mut scratch,
        )
        .unwrap();
        let frame = read_frame(&wire[..], 1 << 20).unwrap().unwrap();
        match frame.header::<Request<'_>>().unwrap() {
            Request::Task { id, job, batch } => {
                assert_eq!((id, job, batch), (9, "a::b", false));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(frame.payload(), b"xyz");
    }

    #[test]
    fn oversized_frame_is_a_codec_error() {
        let wire = (u32::MAX).to_le_bytes();
        let err = read_frame(&wire[..], 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
    }

    #[test]
    fn truncated_frame_is_disconnected() {
        let mut wire = 100u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&[0; 10]);
        let err = read_frame(&wire[..], 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Disconnected), "{err}");
    }

    #[test]
    fn corrupt_header_length_is_a_codec_error() {
        let mut wire = 8u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&1000u32.to_le_bytes());
        wire.extend_from_slice(&[0; 4]);
        let err = read_frame(&wire[..], 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err}");
    }

    #[test]
    fn empty_stream_is_none() {
        assert!(read_frame(&[][..], 1024).unwrap().is_none());
    }

    #[test]
    fn garbage_header_is_a_codec_error() {
        let mut wire = 8u32.to_le_bytes().to_vec();
        wire.extend_from_slice(&4u32.to_le_bytes());
        wire.extend_from_slice(&[0xff; 4]);
        let frame = read_frame(&wire[..], 1024).unwrap().unwrap();
        assert!(matches!(
            frame.header::<Request<'_>>(),
            Err(Error::Codec(_))
        ));
    }
}
