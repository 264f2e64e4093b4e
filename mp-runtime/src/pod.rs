//! `Pod`: the types that may live in shared memory.

/// Plain old data: a type that may live in shared memory
/// ([`Value`](crate::Value), [`Array`](crate::Array)).
///
/// Implemented for the integers, `f32`, `f64`, `bool`, `char`, `()`, and arrays
/// `[T; N]` of `Pod` types. For your own types, put `#[derive(mp::Pod)]` on a
/// `#[repr(C)]` struct (also deriving `Clone` and `Copy`) whose fields are all
/// `Pod` (the derive's documentation has an example).
///
/// ```
/// # use mp_runtime as mp;
/// let grid = mp::Value::new([[0u8; 3]; 3])?;
/// grid.lock()?[1][2] = 7;
/// assert_eq!(grid.get()?[1], [0, 0, 7]);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// A type holding a pointer (a reference, `Box`, `Vec`, `String`, ...) is not
/// `Pod`, and a struct with such a field does not compile with the derive: its
/// address would mean nothing in another process.
///
/// # Safety
///
/// Implementing `Pod` promises that the type holds no pointers or handles
/// (nothing whose meaning depends on the process), that all bytes zero is a
/// valid value, and that its layout is the same in every process of the program.
/// Use the derive, which checks all of this, rather than implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not plain old data, so it cannot live in shared memory",
    label = "not `mp::Pod`",
    note = "`mp::Pod` covers integers, floats, `bool`, `char`, arrays of these, and \
            `#[repr(C)]` structs with `#[derive(mp::Pod)]` whose fields are all `Pod`",
    note = "references, `Box`, `Vec`, `String` and other pointers mean nothing in another \
            process: store indices or fixed-size arrays instead"
)]
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive without pointers; all zeroes is a valid value.
            unsafe impl Pod for $t {}
        )*
    };
}

pod!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);

// SAFETY: an array of `Pod` holds no pointers and is valid when zeroed.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

#[cfg(test)]
mod tests {
    use super::Pod;

    fn zeroed<T: Pod>() -> T {
        // SAFETY: `Pod` promises that all bytes zero is a valid `T`.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn zero_values_are_the_defaults() {
        assert_eq!(zeroed::<u64>(), 0);
        assert!(!zeroed::<bool>());
        assert_eq!(zeroed::<char>(), '\0');
        assert_eq!(zeroed::<f64>(), 0.0);
        assert_eq!(zeroed::<[i16; 3]>(), [0; 3]);
        assert_eq!(zeroed::<[[u8; 2]; 2]>(), [[0; 2]; 2]);
    }
}
