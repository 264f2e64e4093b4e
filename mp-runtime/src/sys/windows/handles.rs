//! Windows: handles travelling with bytes over a worker's pipes.
//!
//! Not supported yet: a message that carries handles is refused with a clear
//! error; plain messages go through unchanged.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::windows::io::{BorrowedHandle as WinBorrowed, OwnedHandle};

use super::{ChannelRead, ChannelWrite};

/// An OS handle owned by this process.
pub(crate) type OsHandle = OwnedHandle;
/// An OS handle borrowed for the length of a call.
pub(crate) type BorrowedHandle<'a> = WinBorrowed<'a>;

/// Most handles one message may carry.
pub(crate) const MAX_HANDLES_PER_MESSAGE: usize = 64;

/// Messages up to this size (header and payload together) are copied into one
/// buffer and written with one `WriteFile`: a pipe has no vectored write, and
/// each write costs a round through the kernel (under Wine, through its server).
/// Larger ones go out slice by slice, uncopied.
const COALESCE_MAX: usize = 64 * 1024;

pub(crate) fn send_with_handles(
    out: &ChannelWrite,
    bufs: &[IoSlice<'_>],
    handles: &[BorrowedHandle<'_>],
) -> io::Result<usize> {
    if !handles.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "passing queues, pipes, locks or shared memory to a job is not supported on Windows yet",
        ));
    }
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

pub(crate) fn recv_with_handles(
    input: &ChannelRead,
    buf: &mut [u8],
    _handles: &mut VecDeque<OwnedHandle>,
) -> io::Result<usize> {
    let mut input = input;
    input.read(buf)
}

pub(crate) fn duplicate_handle(handle: BorrowedHandle<'_>) -> io::Result<OwnedHandle> {
    handle.try_clone_to_owned()
}

/// A byte stream between processes, for `pipe()`.
pub(crate) type Stream = std::fs::File;

fn pipes_unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "pipes are not supported on Windows yet",
    )
}

pub(crate) fn stream_pair() -> io::Result<(Stream, Stream)> {
    Err(pipes_unsupported())
}

pub(crate) fn borrow_stream(stream: &Stream) -> BorrowedHandle<'_> {
    use std::os::windows::io::AsHandle;
    stream.as_handle()
}

pub(crate) fn stream_from_handle(handle: OwnedHandle) -> Stream {
    std::fs::File::from(handle)
}

pub(crate) fn poll_readable(_stream: &Stream, _timeout: std::time::Duration) -> io::Result<bool> {
    Err(pipes_unsupported())
}
