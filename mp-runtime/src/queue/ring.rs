//! A byte ring of length-prefixed messages in a shared region.
//!
//! Layout: a fixed `RingHeader` followed by `capacity` bytes of data. A message
//! is a `u32` little-endian length followed by its bytes, both of which may wrap
//! around the end of the data area. The caller holds the queue's lock around
//! every call: the ring itself has no synchronization, which keeps it a plain
//! memory structure that Miri can check.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bookkeeping of a ring. Counters only grow (wrapping u64), so `tail - head`
/// is the number of used bytes. All zeroes is an empty ring.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingHeader {
    /// Bytes consumed so far.
    head: AtomicU64,
    /// Bytes produced so far.
    tail: AtomicU64,
    /// Messages in the ring, readable without the lock (for `len`).
    items: AtomicU64,
    /// Size of the data area.
    capacity: AtomicU64,
}

const LEN_PREFIX: usize = 4;

impl RingHeader {
    /// Records the data area's size once, when the queue is made (views are
    /// made on every operation and must not write the shared line).
    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity as u64, Ordering::Relaxed);
    }
}

/// A view of a ring: its header and its data area, in shared memory.
pub(crate) struct Ring<'a> {
    header: &'a RingHeader,
    data: *mut u8,
    capacity: usize,
}

impl<'a> Ring<'a> {
    /// A view of the ring whose header is `header` and whose `capacity` data
    /// bytes start at `data`. A zeroed header is an empty ring.
    ///
    /// # Safety
    /// `data` is valid for reads and writes of `capacity` bytes for `'a`, only
    /// ever accessed through views made with the same header, under the queue's
    /// lock (except the `items` counter, which is atomic).
    pub(crate) unsafe fn new(header: &'a RingHeader, data: *mut u8, capacity: usize) -> Ring<'a> {
        Ring {
            header,
            data,
            capacity,
        }
    }

    fn header(&self) -> &RingHeader {
        self.header
    }

    /// Messages currently in the ring (lock-free read).
    pub(crate) fn items(&self) -> usize {
        self.header().items.load(Ordering::Acquire) as usize
    }

    fn used(&self) -> usize {
        let h = self.header();
        h.tail
            .load(Ordering::Relaxed)
            .wrapping_sub(h.head.load(Ordering::Relaxed)) as usize
    }

    /// Bytes one message of `len` bytes occupies.
    pub(crate) fn footprint(len: usize) -> usize {
        LEN_PREFIX + len
    }

    /// True if a message of `len` bytes fits now.
    pub(crate) fn fits(&self, len: usize) -> bool {
        Self::footprint(len) <= self.capacity - self.used()
    }

    /// Appends a message. Call under the lock, after `fits` said yes.
    pub(crate) fn push(&self, message: &[u8]) {
        debug_assert!(self.fits(message.len()));
        let h = self.header();
        let tail = h.tail.load(Ordering::Relaxed);
        let len = (message.len() as u32).to_le_bytes();
        self.copy_in(tail, &len);
        self.copy_in(tail.wrapping_add(LEN_PREFIX as u64), message);
        h.tail.store(
            tail.wrapping_add(Self::footprint(message.len()) as u64),
            Ordering::Relaxed,
        );
        h.items.fetch_add(1, Ordering::Release);
    }

    /// Removes the oldest message into `out` (cleared first). Call under the lock.
    pub(crate) fn pop(&self, out: &mut Vec<u8>) -> bool {
        if self.items() == 0 {
            return false;
        }
        let h = self.header();
        let head = h.head.load(Ordering::Relaxed);
        let mut len = [0u8; LEN_PREFIX];
        self.copy_out(head, &mut len);
        // A length beyond what is stored means the region was corrupted (for
        // example by a process killed mid-write): drop everything rather than
        // read out of bounds.
        let len = u32::from_le_bytes(len) as usize;
        if Self::footprint(len) > self.used() {
            self.clear();
            return false;
        }
        out.clear();
        out.resize(len, 0);
        self.copy_out(head.wrapping_add(LEN_PREFIX as u64), out);
        h.head.store(
            head.wrapping_add(Self::footprint(len) as u64),
            Ordering::Relaxed,
        );
        h.items.fetch_sub(1, Ordering::Release);
        true
    }

    /// Recounts the messages after a process died holding the lock: walks from
    /// head to tail; if a length does not fit, drops everything. Returns how
    /// many messages remain.
    pub(crate) fn repair(&self) -> usize {
        let h = self.header();
        let head = h.head.load(Ordering::Relaxed);
        let used = self.used();
        if used > self.capacity {
            self.clear();
            return 0;
        }
        let mut offset = 0usize;
        let mut count = 0u64;
        while offset < used {
            if used - offset < LEN_PREFIX {
                self.clear();
                return 0;
            }
            let mut len = [0u8; LEN_PREFIX];
            self.copy_out(head.wrapping_add(offset as u64), &mut len);
            let step = Self::footprint(u32::from_le_bytes(len) as usize);
            if step > used - offset {
                self.clear();
                return 0;
            }
            offset += step;
            count += 1;
        }
        h.items.store(count, Ordering::Release);
        count as usize
    }

    /// Drops every message. Call under the lock.
    pub(crate) fn clear(&self) {
        let h = self.header();
        h.head
            .store(h.tail.load(Ordering::Relaxed), Ordering::Relaxed);
        h.items.store(0, Ordering::Release);
    }

    fn copy_in(&self, at: u64, bytes: &[u8]) {
        let start = (at % self.capacity as u64) as usize;
        let first = bytes.len().min(self.capacity - start);
        // SAFETY: `start + first <= capacity` and the rest wraps to offset 0 with
        // `bytes.len() - first <= capacity` (a message never exceeds capacity),
        // so both copies stay inside the data area; source and ring never overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(start), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                bytes.len() - first,
            );
        }
    }

    fn copy_out(&self, at: u64, out: &mut [u8]) {
        let start = (at % self.capacity as u64) as usize;
        let first = out.len().min(self.capacity - start);
        // SAFETY: as in `copy_in`, both ranges lie inside the data area.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap region standing in for shared memory (so Miri can run these).
    struct Mem {
        header: RingHeader,
        data: Vec<u8>,
    }

    fn mem(capacity: usize) -> Mem {
        Mem {
            header: RingHeader {
                head: AtomicU64::new(0),
                tail: AtomicU64::new(0),
                items: AtomicU64::new(0),
                capacity: AtomicU64::new(0),
            },
            data: vec![0; capacity],
        }
    }

    fn ring(m: &mut Mem) -> Ring<'_> {
        let capacity = m.data.len();
        // SAFETY: `data` lives as long as the view and is used only through it.
        unsafe { Ring::new(&m.header, m.data.as_mut_ptr(), capacity) }
    }

    #[test]
    fn fifo_with_wraparound() {
        let mut m = mem(64);
        let ring = ring(&mut m);
        let mut out = Vec::new();
        for round in 0..50u8 {
            let a = vec![round; 10];
            let b = vec![round.wrapping_add(1); 17];
            assert!(ring.fits(a.len()) && ring.fits(a.len() + b.len()));
            ring.push(&a);
            ring.push(&b);
            assert_eq!(ring.items(), 2);
            assert!(ring.pop(&mut out));
            assert_eq!(out, a);
            assert!(ring.pop(&mut out));
            assert_eq!(out, b);
            assert!(!ring.pop(&mut out));
        }
    }

    #[test]
    fn full_ring_refuses() {
        let mut m = mem(32);
        let ring = ring(&mut m);
        assert!(ring.fits(28));
        assert!(!ring.fits(29));
        ring.push(&[1; 20]);
        assert!(!ring.fits(5));
        assert!(ring.fits(4));
        ring.push(&[2; 4]);
        assert_eq!(ring.items(), 2);
    }

    #[test]
    fn empty_messages() {
        let mut m = mem(16);
        let ring = ring(&mut m);
        let mut out = vec![9];
        ring.push(&[]);
        assert!(ring.pop(&mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn repair_recounts_and_corrupt_lengths_clear() {
        let mut m = mem(32);
        let ring = ring(&mut m);
        ring.push(&[1, 2, 3]);
        ring.push(&[4]);
        // A producer died between writing the tail and counting the item.
        ring.header.items.store(1, Ordering::Relaxed);
        assert_eq!(ring.repair(), 2);
        // Scribble a huge length over the first message's prefix.
        ring.copy_in(0, &u32::MAX.to_le_bytes());
        let mut out = Vec::new();
        assert!(!ring.pop(&mut out));
        assert_eq!(ring.items(), 0);
        assert_eq!(ring.repair(), 0);
    }
}
