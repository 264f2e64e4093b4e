//! Shared-memory segments: the memory under `SharedMemory`, `Value`, `Array`
//! and every lock, semaphore, event, condition and barrier.
//!
//! A [`Segment`] is one OS shared-memory object (a memfd on Linux, see
//! `sys/unix/shm.rs`; a pagefile-backed file mapping on Windows, see
//! `sys/windows/shm.rs`) mapped into this process; clones share the mapping. It
//! serializes as its descriptor (through [`crate::transfer`]) plus its length,
//! so it crosses to other processes inside ordinary job arguments.
//!
//! A [`Region<S>`] is a segment laid out as a header, a state `S` (atomics, a
//! lock) and optionally an array of elements. The header records a type tag and
//! the layout, and is checked when a region arrives from another process.

use std::hash::{Hash, Hasher};
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::sys::{BorrowedHandle, OsHandle};
use crate::transfer;

use crate::sys::shm as os;

fn borrow(handle: &OsHandle) -> BorrowedHandle<'_> {
    crate::sys::borrow_handle(handle)
}

/// One mapping of a segment into this process.
struct Mapping {
    handle: OsHandle,
    ptr: NonNull<u8>,
    len: usize,
    /// Guards of this process holding the segment's lock right now (a segment
    /// has at most one lock that guards can hold). A forgotten guard
    /// (`mem::forget`) leaves it above zero; the mapping is then leaked rather
    /// than unmapped, because the C library may still link the held lock into
    /// the thread's robust list. Changed only by the thread holding the lock, so
    /// the lock orders the changes and a plain load and store suffice.
    held: AtomicUsize,
}

// SAFETY: the mapping is plain shared memory owned by this struct; every access
// through `ptr` goes through atomics, a process-shared lock, or the bounds-checked
// atomic copies below, so it may be used and dropped from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` only hands out the raw pointer and the handle.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        if *self.held.get_mut() == 0 {
            // SAFETY: `ptr`/`len` come from one successful `map`, unmapped only
            // here; every borrow of the memory is tied to an `Arc` of this mapping,
            // so none outlives it.
            unsafe { os::unmap(self.ptr, self.len) };
        }
    }
}

/// A mapped shared-memory segment; clones share one mapping.
#[derive(Clone)]
pub(crate) struct Segment {
    map: Arc<Mapping>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.map.len)
            .finish()
    }
}

impl Segment {
    /// A new segment of `len` zero bytes (`len > 0`).
    pub(crate) fn create(len: usize) -> Result<Segment> {
        let handle = os::create(len)
            .map_err(|e| Error::io("could not create a shared memory segment", e))?;
        Segment::map(handle, len)
            .map_err(|e| Error::io("could not map a new shared memory segment", e))
    }

    /// Maps the first `len` bytes of the segment behind `handle`.
    fn map(handle: OsHandle, len: usize) -> io::Result<Segment> {
        let ptr = os::map(borrow(&handle), len)?;
        Ok(Segment {
            map: Arc::new(Mapping {
                handle,
                ptr,
                len,
                held: AtomicUsize::new(0),
            }),
        })
    }

    /// Maps a segment that came from elsewhere, checking it has `len` bytes.
    fn map_received(handle: OsHandle, len: usize) -> io::Result<Segment> {
        let size = os::size(borrow(&handle))?;
        if size < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a shared memory segment announced {len} bytes but has {size}"),
            ));
        }
        Segment::map(handle, len)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len
    }

    pub(crate) fn handle(&self) -> BorrowedHandle<'_> {
        borrow(&self.map.handle)
    }

    /// Records that a guard of this process took the segment's lock. Call with
    /// the lock held.
    #[inline]
    pub(crate) fn hold(&self) {
        let held = &self.map.held;
        held.store(held.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Records that a guard is about to release the segment's lock. Call with
    /// the lock still held.
    #[inline]
    pub(crate) fn release(&self) {
        let held = &self.map.held;
        held.store(held.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }
}

impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let index = transfer::attach(self.handle()).map_err(serde::ser::Error::custom)?;
        (index, self.len() as u64).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Segment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (index, len) = <(u32, u64)>::deserialize(d)?;
        let handle = transfer::detach(index).map_err(serde::de::Error::custom)?;
        let len = usize::try_from(len).map_err(serde::de::Error::custom)?;
        Segment::map_received(handle, len).map_err(|e| {
            serde::de::Error::custom(transfer::remember(format!(
                "could not map a received shared memory segment: {e}"
            )))
        })
    }
}

// ---------------------------------------------------------------------------
// Typed regions: header + state + elements.

/// The state at the start of a region.
///
/// # Safety
/// All bytes zero is a valid value of `Self` and of `Elem`; the type holds no
/// pointers; every field another process may change is an atomic, an
/// `UnsafeCell` or a process-shared lock (so `&Self` may alias other processes'
/// writes).
pub(crate) unsafe trait SharedState: Sync + 'static {
    /// Element type of the trailing array (`()` for none).
    type Elem: Copy + 'static;
    /// What the region is, for error messages ("a Lock").
    const WHAT: &'static str;
}

const MAGIC: u64 = u64::from_le_bytes(*b"mp-shm\x00\x01");
const HEADER_SPACE: usize = 64;
/// Largest alignment a state or element may need (one page).
const MAX_ALIGN: usize = 4096;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    magic: u64,
    type_tag: u64,
    state_size: u64,
    elem_size: u64,
    count: u64,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SPACE);

/// Where things are in a region of `count` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    state: usize,
    elems: usize,
    total: usize,
}

fn round_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

fn layout<S, E>(count: usize) -> Option<Layout> {
    let state = round_up(HEADER_SPACE, std::mem::align_of::<S>())?;
    let elems = round_up(
        state.checked_add(std::mem::size_of::<S>())?,
        std::mem::align_of::<E>(),
    )?;
    let total = elems.checked_add(std::mem::size_of::<E>().checked_mul(count)?)?;
    // mmap lengths and offsets are bounded by isize.
    (total <= isize::MAX as usize).then_some(Layout {
        state,
        elems,
        total,
    })
}

/// A tag for `S` that is the same in every process of this program.
fn type_tag<S: 'static>() -> u64 {
    // `DefaultHasher::new()` has fixed keys: the same in every process of one binary.
    let mut hasher = std::hash::DefaultHasher::new();
    std::any::TypeId::of::<S>().hash(&mut hasher);
    hasher.finish()
}

fn header<S: SharedState>(count: usize) -> Header {
    Header {
        magic: MAGIC,
        type_tag: type_tag::<S>(),
        state_size: std::mem::size_of::<S>() as u64,
        elem_size: std::mem::size_of::<S::Elem>() as u64,
        count: count as u64,
    }
}

/// A segment holding one `S` followed by `count` elements of `S::Elem`.
pub(crate) struct Region<S> {
    segment: Segment,
    layout: Layout,
    count: usize,
    _state: PhantomData<fn() -> S>,
}

impl<S> Clone for Region<S> {
    fn clone(&self) -> Self {
        Region {
            segment: self.segment.clone(),
            layout: self.layout,
            count: self.count,
            _state: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for Region<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("segment", &self.segment)
            .field("count", &self.count)
            .finish()
    }
}

impl<S: SharedState> Region<S> {
    /// A new region of `count` zeroed elements whose state `init` sets up.
    ///
    /// `init` gets a pointer to zeroed, writable memory for an `S` that no
    /// other thread or process can see yet.
    pub(crate) fn create(
        count: usize,
        init: impl FnOnce(*mut S) -> Result<()>,
    ) -> Result<Region<S>> {
        if std::mem::align_of::<S>() > MAX_ALIGN || std::mem::align_of::<S::Elem>() > MAX_ALIGN {
            return Err(Error::invalid(format!(
                "types aligned to more than {MAX_ALIGN} bytes cannot live in shared memory"
            )));
        }
        let layout = layout::<S, S::Elem>(count).ok_or_else(|| {
            Error::invalid(format!(
                "{count} elements of {} bytes do not fit in a shared memory segment",
                std::mem::size_of::<S::Elem>()
            ))
        })?;
        let segment = Segment::create(layout.total)?;
        let base = segment.as_ptr();
        // SAFETY: the segment is `layout.total >= HEADER_SPACE` bytes, page-aligned
        // (so aligned for `Header`), and not shared with anyone yet.
        unsafe { base.cast::<Header>().write(header::<S>(count)) };
        // SAFETY: `layout.state` is inside the segment and aligned for `S`
        // (page-aligned base, offset rounded up to `align_of::<S>()`).
        let state = unsafe { base.add(layout.state) }.cast::<S>();
        init(state)?;
        Ok(Region {
            segment,
            layout,
            count,
            _state: PhantomData,
        })
    }

    /// Checks that a received segment is a region of this `S`.
    fn from_segment(segment: Segment) -> io::Result<Region<S>> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the received shared memory is not {}: {why}", S::WHAT),
            )
        };
        if segment.len() < HEADER_SPACE {
            return Err(invalid("it is too small"));
        }
        // SAFETY: at least HEADER_SPACE bytes, page-aligned; the header is written
        // once by the creator before the segment is ever sent, never changed after.
        let found = unsafe { segment.as_ptr().cast::<Header>().read() };
        let count = usize::try_from(found.count).map_err(|_| invalid("bad length"))?;
        if found != header::<S>(count) {
            return Err(invalid("its type or layout differs"));
        }
        let layout = layout::<S, S::Elem>(count).ok_or_else(|| invalid("bad length"))?;
        if layout.total > segment.len() {
            return Err(invalid("it is shorter than its header says"));
        }
        Ok(Region {
            segment,
            layout,
            count,
            _state: PhantomData,
        })
    }

    /// The state, shared with every process that maps the region.
    pub(crate) fn state(&self) -> &S {
        // SAFETY: `layout.state` is inside the mapping and aligned for `S`; the
        // state was initialized by `create` (in this or another process) before the
        // region could be reached; `SharedState` guarantees that all mutation goes
        // through atomics, cells or the lock, so a shared reference is sound; the
        // reference lives no longer than `self`, which keeps the mapping.
        unsafe { &*self.segment.as_ptr().add(self.layout.state).cast::<S>() }
    }

    /// The first element of the trailing array.
    pub(crate) fn elems(&self) -> *mut S::Elem {
        // SAFETY: `layout.elems` is inside the mapping (or one past its used part
        // when `count == 0`) and aligned for `S::Elem`.
        unsafe { self.segment.as_ptr().add(self.layout.elems) }.cast()
    }

    /// How many trailing elements there are.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.segment
    }
}

impl<S> Serialize for Region<S> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        self.segment.serialize(s)
    }
}

impl<'de, S: SharedState> Deserialize<'de> for Region<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let segment = Segment::deserialize(d)?;
        Region::from_segment(segment)
            .map_err(|e| serde::de::Error::custom(transfer::remember(e.to_string())))
    }
}

// ---------------------------------------------------------------------------
// Copies between private and shared memory.

/// Copies `src` into shared memory at `dst` with relaxed atomic stores (bytes,
/// then aligned 8-byte words, then bytes), so a concurrent reader in another
/// thread or process sees old or new bytes, never undefined behaviour.
///
/// # Safety
/// `dst..dst + src.len()` is valid for writes and only ever accessed atomically
/// (or by other processes).
unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    let mut i = 0;
    let n = src.len();
    while i < n && !(dst as usize + i).is_multiple_of(8) {
        // SAFETY: `dst + i` is in the caller's range (here and below); 8-byte
        // accesses happen only at 8-aligned addresses.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
        i += 1;
    }
    while i + 8 <= n {
        let mut word = [0u8; 8];
        word.copy_from_slice(&src[i..i + 8]);
        // SAFETY: see above.
        unsafe { AtomicU64::from_ptr(dst.add(i).cast()) }
            .store(u64::from_ne_bytes(word), Ordering::Relaxed);
        i += 8;
    }
    while i < n {
        // SAFETY: see above.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
        i += 1;
    }
}

/// Copies shared memory at `src` into `dst`; the mirror of [`copy_to_shared`].
///
/// # Safety
/// `src..src + dst.len()` is valid for reads and only ever accessed atomically
/// (or by other processes).
unsafe fn copy_from_shared(dst: &mut [u8], src: *const u8) {
    let mut i = 0;
    let n = dst.len();
    let src = src.cast_mut();
    while i < n && !(src as usize + i).is_multiple_of(8) {
        // SAFETY: `src + i` is in the caller's range (here and below); 8-byte
        // accesses happen only at 8-aligned addresses; only loads are made.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i)) }.load(Ordering::Relaxed);
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: see above.
        let word = unsafe { AtomicU64::from_ptr(src.add(i).cast()) }.load(Ordering::Relaxed);
        dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
        i += 8;
    }
    while i < n {
        // SAFETY: see above.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i)) }.load(Ordering::Relaxed);
        i += 1;
    }
}

// ---------------------------------------------------------------------------
// SharedMemory

/// The name under which a segment can be opened; the creator's copy removes it
/// (macOS) when the last clone is dropped.
#[derive(Debug)]
struct Name {
    name: String,
    owned: bool,
}

impl Drop for Name {
    fn drop(&mut self) {
        if self.owned {
            os::release_name(&self.name);
        }
    }
}

/// A block of raw bytes shared between processes, like Python's
/// `multiprocessing.shared_memory.SharedMemory`, with no server and no leaks.
///
/// Reads and writes are bounds-checked copies; two processes writing the same
/// bytes at once see torn data, so coordinate with a [`Lock`](crate::Lock).
/// Pass a `SharedMemory` to a job like any argument, or give its
/// [`name`](SharedMemory::name) to another process, which calls
/// [`SharedMemory::open`].
///
/// The memory is freed when the last process using it drops it or exits, even
/// if all of them are killed: nothing is left in `/dev/shm`. On Linux a name
/// is valid while the process it was taken from is alive and holds the segment
/// (it looks like `mp-<pid>-<fd>-<inode>`; each process gets its own name for
/// the same memory). On macOS the name is global and stays valid until the
/// creator drops the segment. On Windows the name (`mp-<pid>-<random>`, in the
/// session's `Local\` namespace) is global and stays valid while any process
/// holds the segment, as with Python's `SharedMemory` there: there is nothing to
/// unlink, and the memory goes with the last process that holds it.
///
/// ```
/// # use mp_runtime as mp;
/// let shm = mp::SharedMemory::create(1024)?;
/// shm.write(0, b"hello")?;
/// assert_eq!(shm.read(0, 5)?, b"hello");
/// assert!(shm.read(1020, 5).is_err());             // out of bounds
///
/// let same = mp::SharedMemory::open(shm.name())?;  // works from any process
/// assert_eq!(same.read(0, 5)?, b"hello");
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    segment: Segment,
    name: Arc<Name>,
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name.name)
            .field("len", &self.segment.len())
            .finish()
    }
}

impl SharedMemory {
    /// A new segment of `len` zero bytes. `len == 0` is an
    /// [`InvalidArgument`](Error::InvalidArgument) error.
    pub fn create(len: usize) -> Result<SharedMemory> {
        if len == 0 {
            return Err(Error::invalid(
                "shared memory must be at least 1 byte long (got 0)",
            ));
        }
        if len > isize::MAX as usize {
            return Err(Error::invalid(format!(
                "{len} bytes is too large for shared memory"
            )));
        }
        let (handle, name) = os::create_named(len)
            .map_err(|e| Error::io("could not create a shared memory segment", e))?;
        let segment = Segment::map(handle, len)
            .map_err(|e| Error::io("could not map a new shared memory segment", e))?;
        Ok(SharedMemory {
            segment,
            name: Arc::new(Name { name, owned: true }),
        })
    }

    /// Opens the segment another process (or this one) created, by its
    /// [`name`](SharedMemory::name).
    pub fn open(name: &str) -> Result<SharedMemory> {
        let context = format!("could not open shared memory `{name}`");
        let handle = os::open_named(name).map_err(|e| Error::io(&context, e))?;
        let len = os::size(borrow(&handle)).map_err(|e| Error::io(&context, e))?;
        let segment = Segment::map(handle, len).map_err(|e| Error::io(&context, e))?;
        let name = os::local_name(segment.handle()).unwrap_or_else(|_| name.to_string());
        Ok(SharedMemory {
            segment,
            name: Arc::new(Name { name, owned: false }),
        })
    }

    /// The name under which [`SharedMemory::open`] finds this segment.
    pub fn name(&self) -> &str {
        &self.name.name
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.segment.len()
    }

    /// Always false: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.segment.len() == 0
    }

    fn check(&self, what: &str, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::invalid(format!(
                "{what} of {len} bytes at offset {offset} is out of bounds of a {}-byte \
                 shared memory segment",
                self.len()
            ))),
        }
    }

    /// Copies `data` into the segment at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check("write", offset, data.len())?;
        // SAFETY: the range was checked to lie inside the mapping, which `self`
        // keeps alive; the segment's bytes are only accessed atomically here.
        unsafe { copy_to_shared(self.segment.as_ptr().add(offset), data) };
        Ok(())
    }

    /// Copies `len` bytes at `offset` out of the segment.
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.read_into(offset, &mut out)?;
        Ok(out)
    }

    /// Fills `buf` with the bytes at `offset`.
    pub fn read_into(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check("read", offset, buf.len())?;
        // SAFETY: as in `write`.
        unsafe { copy_from_shared(buf, self.segment.as_ptr().add(offset)) };
        Ok(())
    }

    /// The first byte of the mapping in this process, for the brave: valid for
    /// [`len`](SharedMemory::len) bytes while `self` lives. Other processes may
    /// change the bytes at any time; creating Rust references into them is
    /// only sound with your own synchronization.
    pub fn as_ptr(&self) -> *mut u8 {
        self.segment.as_ptr()
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.segment, &self.name.name).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (segment, name) = <(Segment, String)>::deserialize(d)?;
        let name = os::local_name(segment.handle()).unwrap_or(name);
        Ok(SharedMemory {
            segment,
            name: Arc::new(Name { name, owned: false }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places_state_and_elements() {
        let l = layout::<u64, u32>(10).unwrap();
        assert_eq!(l.state, 64);
        assert_eq!(l.elems, 72);
        assert_eq!(l.total, 112);
        let l = layout::<[u8; 3], u64>(2).unwrap();
        assert_eq!((l.state, l.elems, l.total), (64, 72, 88));
        assert!(layout::<u8, u64>(usize::MAX / 4).is_none());
    }

    #[test]
    fn atomic_copies_round_trip_at_every_alignment() {
        for start in 0..9 {
            for len in 0..40 {
                // A fresh buffer each time: the same bytes are never reached with
                // atomics of different sizes (Miri does not model that).
                let mut shared = vec![0u64; 8];
                let base = shared.as_mut_ptr().cast::<u8>();
                let data: Vec<u8> = (0..len as u8)
                    .map(|b| b.wrapping_mul(7) ^ start as u8)
                    .collect();
                // SAFETY: `start + len <= 64` bytes of `shared`, only used through these calls.
                unsafe { copy_to_shared(base.add(start), &data) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { copy_from_shared(&mut back, base.add(start)) };
                assert_eq!(back, data, "start {start} len {len}");
            }
        }
    }

    #[test]
    fn type_tags_differ_per_type() {
        assert_ne!(type_tag::<u32>(), type_tag::<i32>());
        assert_eq!(type_tag::<u32>(), type_tag::<u32>());
    }
}
