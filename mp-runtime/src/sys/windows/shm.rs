//! Shared-memory segments on Windows: pagefile-backed file mappings.
//!
//! Every segment is `CreateFileMappingW(INVALID_HANDLE_VALUE, ...)`: memory
//! backed by the paging file, zero-filled, that lives while some handle or view
//! of it is open, in any process. An ordinary segment has no name (it reaches
//! other processes as a duplicated handle); a `SharedMemory` gets a name,
//! `Local\mp-<pid>-<16 hex digits>`, that [`open_named`] opens with
//! `OpenFileMappingW`. As with Python's `SharedMemory` on Windows, a named
//! segment lives exactly while some process holds it: [`release_name`] has
//! nothing to remove, and a name stops working once every holder has dropped it.
//!
//! Each mapping starts with one private page, the [`SegmentHeader`]: a magic
//! number, the length the user asked for, and the wait table of the futex
//! emulation (`futex.rs`). [`map`] returns the address
//! just past it, so the layer above sees exactly the bytes it asked for, and
//! [`size`] (read from the header) is exact, not rounded to pages.
//!
//! [`map`] records every mapping in a process-wide registry that `futex.rs`
//! consults to find the header of the segment a word lives in; [`unmap`]
//! removes it.

use std::collections::BTreeMap;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, HANDLE, INVALID_HANDLE_VALUE, SetLastError,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_MAPPED_VIEW_ADDRESS, MapViewOfFile,
    OpenFileMappingW, PAGE_READWRITE, UnmapViewOfFile,
};

use super::wide_nul;

/// Bytes reserved at the start of every mapping for the [`SegmentHeader`]: one
/// page, so the user's part stays page-aligned.
pub(crate) const HEADER_PAGE: usize = 4096;

/// Buckets of a segment's wait table (see `futex.rs`).
pub(crate) const BUCKETS: usize = 256;
/// Sleeper slots of a segment's wait table (see `futex.rs`).
pub(crate) const SLOTS: usize = 376;

const MAGIC: u64 = u64::from_le_bytes(*b"mp-wseg\x01");

/// The private page at the start of every segment.
#[repr(C)]
pub(crate) struct SegmentHeader {
    magic: AtomicU64,
    /// The length the user asked for (the mapping is `HEADER_PAGE` longer).
    len: AtomicU64,
    /// Per bucket: how many threads (of any process) are waiting, or about to
    /// wait, on a word of that bucket.
    pub(crate) waiters: [AtomicU32; BUCKETS],
    /// Who sleeps on which bucket: 0 (free) or a sleeping thread's pid, thread
    /// number and bucket packed in one word.
    pub(crate) sleepers: [AtomicU64; SLOTS],
}

const _: () = assert!(std::mem::size_of::<SegmentHeader>() <= HEADER_PAGE);

/// Takes ownership of a handle a Win32 call just returned, if it is valid.
fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the caller passes a fresh handle that nothing else owns.
        Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
    }
}

/// A view of `len` bytes of the mapping from its start, unmapped on drop.
struct View {
    base: NonNull<u8>,
}

impl View {
    fn new(handle: BorrowedHandle<'_>, len: usize) -> io::Result<View> {
        // SAFETY: maps a view of a live mapping handle; the kernel picks the
        // address, so it overlaps nothing Rust knows about.
        let view = unsafe {
            MapViewOfFile(
                handle.as_raw_handle(),
                FILE_MAP_READ | FILE_MAP_WRITE,
                0,
                0,
                len,
            )
        };
        NonNull::new(view.Value.cast::<u8>())
            .map(|base| View { base })
            .ok_or_else(io::Error::last_os_error)
    }

    fn header(&self) -> &SegmentHeader {
        // SAFETY: every view spans at least the header page (allocation-granularity
        // aligned, so aligned for the header); all its fields are atomics, so other
        // processes' writes may alias; the reference lives no longer than the view.
        unsafe { &*self.base.as_ptr().cast::<SegmentHeader>() }
    }

    /// The user length of a segment made by [`create`], or an error if the
    /// mapping is not one.
    fn checked_len(&self) -> io::Result<usize> {
        let header = self.header();
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file mapping is not an mp shared memory segment",
            ));
        }
        usize::try_from(header.len.load(Ordering::Relaxed))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment too large"))
    }

    /// Keeps the view mapped beyond this value.
    fn into_raw(self) -> NonNull<u8> {
        let base = self.base;
        std::mem::forget(self);
        base
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: `base` is a view mapped by `View::new`, unmapped only here; no
        // reference into it outlives `self`.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.base.as_ptr().cast(),
            })
        };
    }
}

/// `Local\<name>`, NUL-terminated, unless the name already has a namespace.
fn kernel_name(name: &str) -> Vec<u16> {
    let full = if name.contains('\\') {
        name.to_string()
    } else {
        format!("Local\\{name}")
    };
    wide_nul(std::ffi::OsStr::new(&full))
}

fn random_u64() -> io::Result<u64> {
    getrandom::u64().map_err(|e| io::Error::other(format!("no random numbers: {e}")))
}

/// The size of a segment of `len` user bytes with its header page; `verb`
/// (create, map) names the refused operation.
fn with_header(len: usize, verb: &str) -> io::Result<usize> {
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot {verb} an empty segment"),
        ));
    }
    len.checked_add(HEADER_PAGE)
        .filter(|&t| t <= isize::MAX as usize)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))
}

/// A new mapping of `len` user bytes (plus the header page), named or not,
/// with its header written.
fn create_mapping(len: usize, name: Option<&str>) -> io::Result<OwnedHandle> {
    let total = with_header(len, "create")? as u64;
    let wide = name.map(kernel_name);
    let name_ptr = wide.as_ref().map_or(ptr::null(), |w| w.as_ptr());
    // So that ERROR_ALREADY_EXISTS below can only come from this call.
    // SAFETY: sets this thread's last-error value; no memory is involved.
    unsafe { SetLastError(0) };
    // SAFETY: a pagefile-backed mapping (INVALID_HANDLE_VALUE) with default,
    // non-inheritable security; the name (if any) is NUL-terminated and
    // outlives the call.
    let handle = owned(unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            ptr::null(),
            PAGE_READWRITE,
            (total >> 32) as u32,
            total as u32,
            name_ptr,
        )
    })?;
    // A name already in use opens the existing mapping and says so afterwards.
    if name.is_some()
        && io::Error::last_os_error().raw_os_error() == Some(ERROR_ALREADY_EXISTS as i32)
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a shared memory segment of that name exists already",
        ));
    }
    let view = View::new(handle_ref(&handle), HEADER_PAGE)?;
    let header = view.header();
    header.len.store(len as u64, Ordering::Relaxed);
    // Last, with release: a process that sees the magic sees the rest.
    header.magic.store(MAGIC, Ordering::Release);
    Ok(handle)
}

fn handle_ref(handle: &OwnedHandle) -> BorrowedHandle<'_> {
    use std::os::windows::io::AsHandle;
    handle.as_handle()
}

/// A new anonymous segment of `len` zero bytes.
pub(crate) fn create(len: usize) -> io::Result<OwnedHandle> {
    create_mapping(len, None)
}

/// A new segment that [`open_named`] finds by the returned name while some
/// process holds it.
pub(crate) fn create_named(len: usize) -> io::Result<(OwnedHandle, String)> {
    for _ in 0..16 {
        let name = format!("mp-{}-{:016x}", std::process::id(), random_u64()?);
        match create_mapping(len, Some(&name)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|handle| (handle, name)),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not find a free shared memory name",
    ))
}

/// A segment's name is global on Windows; `SharedMemory` carries its own.
pub(crate) fn local_name(_handle: BorrowedHandle<'_>) -> io::Result<String> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this segment has no per-process name",
    ))
}

/// Opens a segment made by [`create_named`] (of any process) by its name.
pub(crate) fn open_named(name: &str) -> io::Result<OwnedHandle> {
    if name.is_empty() || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a valid shared memory name"),
        ));
    }
    let wide = kernel_name(name);
    // SAFETY: `wide` is NUL-terminated and outlives the call; the handle is not
    // inheritable.
    let raw = unsafe { OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, 0, wide.as_ptr()) };
    let handle = owned(raw).map_err(|e| {
        if e.raw_os_error() == Some(ERROR_FILE_NOT_FOUND as i32) {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no shared memory named `{name}`: every process that held it has dropped \
                     it (on Windows a segment lives only while some process holds it)"
                ),
            )
        } else {
            e
        }
    })?;
    // Refuse a foreign mapping that happens to have this name.
    View::new(handle_ref(&handle), HEADER_PAGE)?.checked_len()?;
    Ok(handle)
}

/// Nothing to release: a named mapping vanishes with its last handle (as
/// Python's `SharedMemory.unlink` does nothing on Windows).
pub(crate) fn release_name(_name: &str) {}

/// The size in bytes of the segment behind `handle`, as asked at creation.
pub(crate) fn size(handle: BorrowedHandle<'_>) -> io::Result<usize> {
    View::new(handle, HEADER_PAGE)?.checked_len()
}

/// One live mapping of ours, as the futex emulation needs it.
pub(crate) struct Mapped {
    /// Address of the header page (the start of the view).
    pub(crate) base: usize,
    /// Length of the view, header page included.
    pub(crate) len: usize,
}

impl Mapped {
    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: the registry holds an entry only while its view is mapped (it
        // is removed before the view is unmapped), and callers reach it only for a
        // word inside the view, which the caller's borrow keeps mapped.
        unsafe { &*(self.base as *const SegmentHeader) }
    }
}

/// Every live mapping of this process, by base address.
static MAPPINGS: RwLock<BTreeMap<usize, Arc<Mapped>>> = RwLock::new(BTreeMap::new());

/// The mapping that contains `addr`, if any.
pub(crate) fn mapping_of(addr: usize) -> Option<Arc<Mapped>> {
    // Each critical section is one map operation: poisoning cannot tear it.
    let map = MAPPINGS.read().unwrap_or_else(|e| e.into_inner());
    let (_, mapped) = map.range(..=addr).next_back()?;
    (addr < mapped.base + mapped.len).then(|| mapped.clone())
}

/// Maps the segment's `len` user bytes read-write and shared; returns their
/// address (the header page sits just before it).
pub(crate) fn map(handle: BorrowedHandle<'_>, len: usize) -> io::Result<NonNull<u8>> {
    let total = with_header(len, "map")?;
    let view = View::new(handle, total)?;
    let size = view.checked_len()?;
    if size < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot map {len} bytes of a {size}-byte segment"),
        ));
    }
    let base = view.into_raw();
    let entry = Arc::new(Mapped {
        base: base.as_ptr() as usize,
        len: total,
    });
    MAPPINGS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(entry.base, entry);
    // SAFETY: the view is `HEADER_PAGE + len` bytes long.
    Ok(unsafe { base.add(HEADER_PAGE) })
}

/// Unmaps a mapping made by [`map`].
///
/// # Safety
/// `ptr` and `len` come from one successful [`map`] call, the mapping is not
/// unmapped yet, and no reference into it outlives this call.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, _len: usize) {
    // SAFETY: `map` returned `base + HEADER_PAGE` (caller's promise).
    let base = unsafe { ptr.sub(HEADER_PAGE) };
    // Forget it first: no wait or wake may reach the header after this.
    MAPPINGS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(base.as_ptr() as usize));
    drop(View { base });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reports_its_exact_size_and_maps_zeroed() {
        let handle = create(10).unwrap();
        assert_eq!(size(handle_ref(&handle)).unwrap(), 10);
        let ptr = map(handle_ref(&handle), 10).unwrap();
        assert_eq!(ptr.as_ptr() as usize % HEADER_PAGE, 0);
        // SAFETY: 10 mapped bytes, used by this thread alone.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), 10) };
        assert_eq!(bytes, &[0u8; 10]);
        bytes[9] = 7;
        let other = map(handle_ref(&handle), 10).unwrap();
        // SAFETY: as above; a second view of the same memory.
        assert_eq!(unsafe { other.as_ptr().add(9).read_volatile() }, 7);
        assert!(map(handle_ref(&handle), 11).is_err());
        let inside = mapping_of(ptr.as_ptr() as usize + 9).unwrap();
        assert_eq!(inside.base, ptr.as_ptr() as usize - HEADER_PAGE);
        drop(inside);
        // SAFETY: each from one `map`, unmapped once; the slice is dead.
        unsafe {
            unmap(ptr, 10);
            unmap(other, 10);
        }
        assert!(mapping_of(ptr.as_ptr() as usize).is_none());
        assert_eq!(create(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_named_segment_opens_while_held_and_vanishes_with_its_last_handle() {
        let (handle, name) = create_named(100).unwrap();
        assert!(name.starts_with("mp-"), "{name}");
        let other = open_named(&name).unwrap();
        assert_eq!(size(handle_ref(&other)).unwrap(), 100);
        drop(handle);
        // Still held through `other`.
        let third = open_named(&name).unwrap();
        drop((other, third));
        assert_eq!(
            open_named(&name).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            open_named("").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_foreign_mapping_is_refused() {
        let name = format!("mp-test-foreign-{}", std::process::id());
        let wide = kernel_name(&name);
        // SAFETY: as in `create_mapping`; a plain mapping without our header.
        let foreign = owned(unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE,
                0,
                8192,
                wide.as_ptr(),
            )
        })
        .unwrap();
        assert_eq!(
            open_named(&name).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        drop(foreign);
    }
}
