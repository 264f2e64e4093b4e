//! Big byte buffers: encoded messages and received payloads.
//!
//! A fresh multi-megabyte buffer costs more to fault in than to fill: on the
//! machines measured, copying 64 MiB into new 4 KiB pages takes 25 ms, into
//! warm memory 2.5 ms, and into new 2 MiB pages 6 ms. Buffers this runtime
//! allocates for itself at or above [`HUGE_PAGES_FROM`] therefore ask the kernel
//! for huge pages (a hint; where the system does not offer them nothing changes).
//! Buffers below it grow as `Vec` always does.

use std::collections::TryReserveError;

use crate::sys;

/// Buffers at least this large get the huge-page hint.
pub(crate) const HUGE_PAGES_FROM: usize = 4 << 20;

/// Makes room for `additional` more bytes, exactly, as `Vec::try_reserve_exact`
/// does, giving a large allocation the huge-page hint before anything touches
/// it. On failure `buf` is unchanged.
pub(crate) fn try_reserve_exact(
    buf: &mut Vec<u8>,
    additional: usize,
) -> Result<(), TryReserveError> {
    grow(buf, additional, false)
}

/// Makes room for `additional` more bytes with amortized (doubling) growth.
pub(crate) fn try_reserve(buf: &mut Vec<u8>, additional: usize) -> Result<(), TryReserveError> {
    grow(buf, additional, true)
}

fn grow(buf: &mut Vec<u8>, additional: usize, amortized: bool) -> Result<(), TryReserveError> {
    if buf.capacity() - buf.len() >= additional {
        return Ok(());
    }
    let needed = buf.len().saturating_add(additional);
    let target = if amortized {
        needed.max(buf.capacity().saturating_mul(2))
    } else {
        needed
    };
    if target < HUGE_PAGES_FROM {
        return if amortized {
            buf.try_reserve(additional)
        } else {
            buf.try_reserve_exact(additional)
        };
    }
    // A new allocation rather than `realloc`, so the hint is given before the
    // allocator or the copy below touches the pages.
    let mut bigger = Vec::new();
    bigger.try_reserve_exact(target)?;
    let spare = bigger.spare_capacity_mut();
    sys::advise_huge_pages(spare.as_mut_ptr().cast(), spare.len());
    bigger.extend_from_slice(buf);
    *buf = bigger;
    Ok(())
}

/// A postcard output that writes into a `Vec`, growing it through [`try_reserve`].
pub(crate) struct VecOutput<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl postcard::ser_flavors::Flavor for VecOutput<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.out.len() == self.out.capacity() {
            try_reserve(self.out, 1).map_err(|_| postcard::Error::SerializeBufferFull)?;
        }
        self.out.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        try_reserve(self.out, data.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_contents() {
        let mut buf = b"head".to_vec();
        try_reserve(&mut buf, HUGE_PAGES_FROM).unwrap();
        assert!(buf.capacity() >= 4 + HUGE_PAGES_FROM);
        assert_eq!(buf, b"head");
        try_reserve_exact(&mut buf, 2 * HUGE_PAGES_FROM).unwrap();
        assert!(buf.capacity() >= 4 + 2 * HUGE_PAGES_FROM);
        assert_eq!(buf, b"head");
    }

    #[test]
    fn small_growth_is_ordinary() {
        let mut buf = Vec::new();
        try_reserve_exact(&mut buf, 10).unwrap();
        assert!(buf.capacity() >= 10 && buf.capacity() < HUGE_PAGES_FROM);
    }

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let mut buf = b"x".to_vec();
        assert!(try_reserve_exact(&mut buf, usize::MAX / 2).is_err());
        assert_eq!(buf, b"x");
    }

    #[test]
    fn encoded_through_the_flavor_matches_postcard() {
        let value = (7u32, "b".repeat(HUGE_PAGES_FROM + 5), "tail");
        let mut out = vec![1u8];
        postcard::serialize_with_flavor(&value, VecOutput { out: &mut out }).unwrap();
        let mut expected = vec![1u8];
        expected.extend(postcard::to_allocvec(&value).unwrap());
        assert_eq!(out, expected);
    }
}
