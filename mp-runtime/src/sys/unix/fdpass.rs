//! Descriptors travelling with bytes: `SCM_RIGHTS` over the worker's socket.
//!
//! Every `sendmsg`/`recvmsg` of mp goes through these two functions. Received
//! descriptors are close-on-exec at once (`MSG_CMSG_CLOEXEC` where it exists) and
//! owned (`OwnedFd`) from the moment they arrive, so none can leak.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// An OS handle owned by this process.
pub(crate) type OsHandle = OwnedFd;
/// An OS handle borrowed for the length of a call.
pub(crate) type BorrowedHandle<'a> = BorrowedFd<'a>;

/// Most descriptors one message may carry.
pub(crate) const MAX_HANDLES_PER_MESSAGE: usize = 64;

const FD_SIZE: usize = std::mem::size_of::<RawFd>();

/// A control-message buffer aligned for `cmsghdr`.
struct CmsgBuffer {
    words: [u64; cmsg_words()],
}

const fn cmsg_words() -> usize {
    // CMSG_SPACE(64 * 4) is 272 on every supported platform; leave room.
    (MAX_HANDLES_PER_MESSAGE * FD_SIZE + 64) / 8
}

impl CmsgBuffer {
    fn new() -> Self {
        CmsgBuffer {
            words: [0; cmsg_words()],
        }
    }
    fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.words.as_mut_ptr().cast()
    }
    fn len(&self) -> usize {
        std::mem::size_of_val(&self.words)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const RECV_FLAGS: libc::c_int = 0;
/// How long a `Connection` read polls before it blocks: data that comes within
/// it arrives without a kernel wake-up (tens of microseconds across CPUs here).
pub(crate) const RECV_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Writes some of `bufs`; the descriptors (if any) travel with the first byte.
pub(crate) fn send_with_handles(
    sock: &UnixStream,
    bufs: &[IoSlice<'_>],
    handles: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if handles.is_empty() {
        let mut sock = sock;
        return sock.write_vectored(bufs);
    }
    if handles.len() > MAX_HANDLES_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message may carry at most {MAX_HANDLES_PER_MESSAGE} handles"),
        ));
    }
    let mut cmsg = CmsgBuffer::new();
    let payload_len = handles.len() * FD_SIZE;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload_len as u32) } as usize;
    debug_assert!(space <= cmsg.len());
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    msg.msg_control = cmsg.as_mut_ptr();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` writable, aligned bytes, so the first
    // header exists and its data area holds `payload_len` bytes.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(payload_len as u32) as _;
        let data = libc::CMSG_DATA(header).cast::<RawFd>();
        for (i, fd) in handles.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg` is fully initialised and its buffers are live.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, SEND_FLAGS) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads into `buf`, blocking; descriptors that arrive are appended to `handles`.
pub(crate) fn recv_with_handles(
    sock: &UnixStream,
    buf: &mut [u8],
    handles: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    recv_with_handles_polling(sock, buf, handles, std::time::Duration::ZERO)
}

/// [`recv_with_handles`], polling for up to `spin` before it blocks (zero:
/// block at once).
pub(crate) fn recv_with_handles_polling(
    sock: &UnixStream,
    buf: &mut [u8],
    handles: &mut VecDeque<OwnedFd>,
    spin: std::time::Duration,
) -> io::Result<usize> {
    let mut cmsg = CmsgBuffer::new();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr();
    msg.msg_controllen = cmsg.len() as _;
    // Poll before blocking: data that comes within the spin arrives without a
    // kernel wake-up, which costs more than the whole wait across CPUs.
    let mut polling_until = (!spin.is_zero()).then(|| std::time::Instant::now() + spin);
    let n = loop {
        let flags = match polling_until {
            Some(_) => RECV_FLAGS | libc::MSG_DONTWAIT,
            None => RECV_FLAGS,
        };
        // SAFETY: `msg` describes live, writable buffers of the stated sizes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        match (err.kind(), polling_until) {
            (io::ErrorKind::Interrupted, _) => {}
            (io::ErrorKind::WouldBlock, Some(until)) => {
                if std::time::Instant::now() >= until {
                    polling_until = None;
                } else {
                    // Yield: a thread that has work may be waiting for this CPU.
                    std::thread::yield_now();
                }
            }
            _ => return Err(err),
        }
    };
    // SAFETY: the kernel filled msg_control with well-formed headers, which the
    // CMSG_* macros walk within msg_controllen; each SCM_RIGHTS descriptor is new
    // and owned by us from here on.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / FD_SIZE {
                    let fd = OwnedFd::from_raw_fd(data.add(i).read_unaligned());
                    if RECV_FLAGS == 0 {
                        let _ = set_cloexec(fd.as_raw_fd());
                    }
                    handles.push_back(fd);
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handles were dropped in transit (too many in one message)",
        ));
    }
    Ok(n)
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own only changes its flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A second owned handle for the same object.
pub(crate) fn duplicate_handle(handle: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    handle.try_clone_to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_travel_with_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (p, mut q) = UnixStream::pair().unwrap();
        let n = send_with_handles(&a, &[IoSlice::new(b"hello")], &[p.as_fd()]).unwrap();
        assert_eq!(n, 5);
        drop(p);
        let mut buf = [0u8; 16];
        let mut handles = VecDeque::new();
        let n = recv_with_handles(&b, &mut buf, &mut handles).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(handles.len(), 1);
        // The received descriptor is the same socket: write through it, read at q.
        let received = UnixStream::from(handles.pop_front().unwrap());
        (&received).write_all(b"via fd").unwrap();
        let mut got = [0u8; 6];
        q.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"via fd");
    }
}
