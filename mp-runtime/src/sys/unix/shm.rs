//! Shared-memory segments: create, open by name, map, unmap.
//!
//! - Linux: `memfd_create(MFD_CLOEXEC)` + `ftruncate`. A memfd has no global
//!   name and lives exactly as long as some descriptor or mapping of it, so a
//!   segment vanishes when the last process using it exits, even if every one
//!   is SIGKILLed; nothing ever appears in `/dev/shm`. For `SharedMemory::open`
//!   a segment is named `mp-<pid>-<fd>-<inode>` and opened through
//!   `/proc/<pid>/fd/<fd>` (the inode number guards against a reused descriptor
//!   number): the named process must be alive and still hold the segment.
//! - macOS: `shm_open` with a random name. An anonymous segment is
//!   `shm_unlink`ed at once (it lives on through its descriptors); a named one
//!   (`SharedMemory::create`) stays linked until its creator drops it.
//!
//! Every descriptor is close-on-exec.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Converts a `-1` return into the OS error.
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of a `stat`; `fd` is a live descriptor.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it filled the whole structure.
    Ok(unsafe { st.assume_init() })
}

fn set_len(fd: &OwnedFd, len: usize) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    // SAFETY: ftruncate on a descriptor we own; no memory is touched.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

/// The size in bytes of the segment behind `fd`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let st = fstat(fd)?;
    usize::try_from(st.st_size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment has a negative size"))
}

/// Maps `len` bytes of the segment read-write and shared.
pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<NonNull<u8>> {
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot map an empty segment",
        ));
    }
    // SAFETY: a fresh mapping chosen by the kernel (addr = NULL) cannot overlap
    // any memory Rust knows about; `fd` is live for the call.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))
}

/// Unmaps a mapping made by [`map`].
///
/// # Safety
/// `ptr` and `len` come from one successful [`map`] call, the mapping is not
/// unmapped yet, and no reference into it outlives this call.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is exactly one live mapping of ours.
    // munmap of a valid mapping cannot fail, so its result is not needed.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsFd;

    /// A new anonymous segment of `len` zero bytes.
    pub(crate) fn create(len: usize) -> io::Result<OwnedFd> {
        // SAFETY: the name is a valid C string; memfd_create returns a new descriptor.
        let fd = cvt(unsafe { libc::memfd_create(c"mp-shm".as_ptr(), libc::MFD_CLOEXEC) })?;
        // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_len(&fd, len)?;
        Ok(fd)
    }

    /// A new segment that [`open_named`] can find while this process holds it.
    pub(crate) fn create_named(len: usize) -> io::Result<(OwnedFd, String)> {
        let fd = create(len)?;
        let name = local_name(fd.as_fd())?;
        Ok((fd, name))
    }

    /// The name under which other processes can open the segment behind `fd`,
    /// valid while this process keeps `fd` open.
    pub(crate) fn local_name(fd: BorrowedFd<'_>) -> io::Result<String> {
        let st = fstat(fd)?;
        Ok(format!(
            "mp-{}-{}-{}",
            std::process::id(),
            fd.as_raw_fd(),
            st.st_ino
        ))
    }

    fn parse(name: &str) -> Option<(u32, i32, u64)> {
        let mut parts = name.strip_prefix("mp-")?.split('-');
        let pid = parts.next()?.parse().ok()?;
        let fd = parts.next()?.parse().ok()?;
        let ino = parts.next()?.parse().ok()?;
        match parts.next() {
            None => Some((pid, fd, ino)),
            Some(_) => None,
        }
    }

    /// Opens a segment by a name from [`local_name`] (of any process).
    pub(crate) fn open_named(name: &str) -> io::Result<OwnedFd> {
        let (pid, fd, ino) = parse(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{name}` is not an mp shared memory name (they look like mp-<pid>-<fd>-<inode>)"
                ),
            )
        })?;
        let gone = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no shared memory named `{name}`: process {pid}, which it belongs to, has \
                     exited or dropped it (a name stays valid only while that process holds \
                     the segment)"
                ),
            )
        };
        let path = CString::new(format!("/proc/{pid}/fd/{fd}"))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))?;
        // SAFETY: `path` is a valid C string; open returns a new descriptor or -1.
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw == -1 {
            let error = io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ESRCH) => gone(),
                _ => error,
            });
        }
        // SAFETY: open just returned this descriptor; nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // A memfd answers F_GET_SEALS; with the inode this tells a reused fd number apart.
        // SAFETY: F_GET_SEALS only reads the descriptor's seals.
        let is_memfd = unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_GET_SEALS) } != -1;
        if !is_memfd || fstat(owned.as_fd())?.st_ino != ino {
            return Err(gone());
        }
        Ok(owned)
    }

    /// Nothing to release: a memfd has no global name.
    pub(crate) fn release_name(_name: &str) {}

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_parse() {
            assert_eq!(parse("mp-12-5-77"), Some((12, 5, 77)));
            assert_eq!(parse("mp-12-5"), None);
            assert_eq!(parse("mp-12-5-77-1"), None);
            assert_eq!(parse("x-1-2-3"), None);
        }

        #[test]
        fn open_by_name_in_the_same_process() {
            let (fd, name) = create_named(4096).unwrap();
            let other = open_named(&name).unwrap();
            assert_eq!(size(other.as_fd()).unwrap(), 4096);
            drop(fd);
            assert_eq!(
                open_named(&name).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use super::*;
    use std::ffi::CString;
    use std::hash::{BuildHasher, Hasher};

    /// `/mp-<pid>-<16 random hex digits>`: 31 bytes at most, the macOS limit.
    fn random_name() -> String {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(
            std::time::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos() as u64),
        );
        format!(
            "/mp-{}-{:016x}",
            std::process::id() % 100_000,
            hasher.finish()
        )
    }

    fn shm_create(len: usize) -> io::Result<(OwnedFd, CString)> {
        for _ in 0..16 {
            let name = CString::new(random_name())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))?;
            // SAFETY: `name` is a valid C string; shm_open returns a new descriptor or -1.
            let raw = unsafe {
                libc::shm_open(
                    name.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::c_uint,
                )
            };
            if raw == -1 {
                let error = io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::EEXIST) {
                    continue;
                }
                return Err(error);
            }
            // SAFETY: shm_open just returned this descriptor; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: F_SETFD on our own descriptor.
            cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
            if let Err(e) = set_len(&fd, len) {
                // SAFETY: `name` is a valid C string.
                unsafe { libc::shm_unlink(name.as_ptr()) };
                return Err(e);
            }
            return Ok((fd, name));
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free shared memory name",
        ))
    }

    /// A new anonymous segment of `len` zero bytes: unlinked at once, so it
    /// lives exactly as long as its descriptors and mappings.
    pub(crate) fn create(len: usize) -> io::Result<OwnedFd> {
        let (fd, name) = shm_create(len)?;
        // SAFETY: `name` is a valid C string.
        unsafe { libc::shm_unlink(name.as_ptr()) };
        Ok(fd)
    }

    /// A new segment that stays linked under its name until [`release_name`].
    pub(crate) fn create_named(len: usize) -> io::Result<(OwnedFd, String)> {
        let (fd, name) = shm_create(len)?;
        Ok((fd, name.to_string_lossy().into_owned()))
    }

    /// Anonymous segments have no name here; `SharedMemory` carries its own.
    pub(crate) fn local_name(_fd: BorrowedFd<'_>) -> io::Result<String> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this segment has no name",
        ))
    }

    /// Opens a segment created by [`create_named`] that is still linked.
    pub(crate) fn open_named(name: &str) -> io::Result<OwnedFd> {
        let c_name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))?;
        // SAFETY: `c_name` is a valid C string; shm_open returns a new descriptor or -1.
        let raw = unsafe { libc::shm_open(c_name.as_ptr(), libc::O_RDWR, 0 as libc::c_uint) };
        if raw == -1 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::NotFound {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no shared memory named `{name}`: its creator has dropped it"),
                ));
            }
            return Err(error);
        }
        // SAFETY: shm_open just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: F_SETFD on our own descriptor.
        cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(fd)
    }

    /// Unlinks a name from [`create_named`]; the segment lives on while mapped.
    pub(crate) fn release_name(name: &str) {
        if let Ok(c_name) = CString::new(name) {
            // SAFETY: `c_name` is a valid C string.
            unsafe { libc::shm_unlink(c_name.as_ptr()) };
        }
    }
}

pub(crate) use imp::{create, create_named, local_name, open_named, release_name};
