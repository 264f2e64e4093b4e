//! `Value<T>` and `Array<T>`: plain old data in shared memory, each with its
//! own process-shared, robust lock (Python's `multiprocessing.Value` / `Array`).

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::pod::Pod;
use crate::shm::{Region, SharedState};
use crate::sync::{Deadline, Held, LockKind, RawLock, Sealed, Waitable};

#[repr(C)]
pub(crate) struct ValueState<T> {
    lock: RawLock,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a guard of `lock`, a process-shared
// lock, so sharing the state between threads (and processes) is sound for
// `T: Send` (every `Pod` is).
unsafe impl<T: Pod> Sync for ValueState<T> {}

// SAFETY: all zeroes is a valid `T` (`Pod`) and a valid lock before `init`; `T`
// holds no pointers; `value` is an `UnsafeCell` behind the lock.
unsafe impl<T: Pod> SharedState for ValueState<T> {
    type Elem = ();
    const WHAT: &'static str = "a Value of this type";
}

/// One value of plain old data shared between processes, with its own lock,
/// like Python's `multiprocessing.Value`.
///
/// `T` is any [`Pod`] type: integers, floats, `bool`, `char`, arrays of them,
/// and `#[repr(C)]` structs with `#[derive(mp::Pod)]`. Pass a `Value` to jobs as
/// an ordinary argument; clones share the same memory. [`lock`](Value::lock)
/// gives a guard that derefs to `T`; [`get`](Value::get) and
/// [`set`](Value::set) each take the lock once.
///
/// If a process dies holding the lock, the next [`lock`](Value::lock) still
/// succeeds and its guard's [`holder_died`](ValueGuard::holder_died) warns
/// that the value may be half-written.
///
/// ```
/// # use mp_runtime as mp;
/// let counter = mp::Value::new(0i64)?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let c = counter.clone();
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 *c.lock().unwrap() += 1;
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(counter.get()?, 4000);
/// counter.set(5)?;
/// assert_eq!(*counter.lock()?, 5);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Value<T: Pod> {
    region: Region<ValueState<T>>,
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            region: self.region.clone(),
        }
    }
}

impl<T: Pod> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Value<T> {
    /// A new shared value holding `value`.
    pub fn new(value: T) -> Result<Value<T>> {
        let region = Region::create(0, |state: *mut ValueState<T>| {
            // SAFETY: `create` gives zeroed, aligned memory for the state that nobody
            // sees yet; the field pointers are made without references.
            unsafe {
                UnsafeCell::raw_get(&raw const (*state).value).write(value);
                RawLock::init(&raw mut (*state).lock, LockKind::Plain)
            }
        })?;
        Ok(Value { region })
    }

    fn guard<'a>(&'a self, held: Held<'a>) -> ValueGuard<'a, T> {
        ValueGuard {
            held,
            value: self.region.state().value.get(),
            _value: PhantomData,
        }
    }

    /// Waits for the value's lock; the guard derefs to the value.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>> {
        let state = self.region.state();
        match Held::acquire(&state.lock, self.region.segment(), Deadline::NEVER)? {
            Some(held) => Ok(self.guard(held)),
            // A wait without deadline only ends with the lock or an error.
            None => Err(Error::Timeout {
                after: Duration::MAX,
            }),
        }
    }

    /// Takes the lock if it is free right now; `Ok(None)` if not.
    pub fn try_lock(&self) -> Result<Option<ValueGuard<'_, T>>> {
        let state = self.region.state();
        Ok(Held::try_acquire(&state.lock, self.region.segment())?.map(|h| self.guard(h)))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed taken.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<ValueGuard<'_, T>>> {
        let state = self.region.state();
        Ok(
            Held::acquire(&state.lock, self.region.segment(), Deadline::after(timeout))?
                .map(|h| self.guard(h)),
        )
    }

    /// A copy of the value (takes the lock).
    pub fn get(&self) -> Result<T> {
        Ok(*self.lock()?)
    }

    /// Replaces the value (takes the lock).
    pub fn set(&self, value: T) -> Result<()> {
        *self.lock()? = value;
        Ok(())
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Value {
            region: Region::deserialize(d)?,
        })
    }
}

/// The lock of a [`Value`], held; derefs to the value. Not `Send`: it must be
/// dropped by the thread that locked.
///
/// ```compile_fail
/// # use mp_runtime as mp;
/// fn needs_send<T: Send>(_: T) {}
/// let v = mp::Value::new(1u8).unwrap();
/// needs_send(v.lock().unwrap());        // error: the guard is not `Send`
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    held: Held<'a>,
    value: *mut T,
    _value: PhantomData<&'a mut T>,
}

// SAFETY: a shared reference to the guard only gives `&T`, and `T: Sync`.
unsafe impl<T: Pod> Sync for ValueGuard<'_, T> {}

impl<T: Pod> ValueGuard<'_, T> {
    /// True if the previous holder died while holding the lock, so the value
    /// may be half-written.
    pub fn holder_died(&self) -> bool {
        self.held.holder_died()
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the value's lock, so no other thread or process
        // accesses the value; the mapping outlives the guard's borrow.
        unsafe { &*self.value }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.value }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Pod> Sealed for ValueGuard<'_, T> {
    fn unlock_for_wait(&mut self) {
        self.held.unlock_for_wait();
    }
    fn relock(&mut self) -> Result<()> {
        self.held.relock()
    }
}

impl<T: Pod> Waitable for ValueGuard<'_, T> {}

// ---------------------------------------------------------------------------

#[repr(C)]
pub(crate) struct ArrayState<T> {
    lock: RawLock,
    _elems: PhantomData<T>,
}

// SAFETY: the elements are only reached through a guard of `lock`.
unsafe impl<T: Pod> Sync for ArrayState<T> {}

// SAFETY: all zeroes is a valid `T` and a valid lock before `init`; no pointers;
// the elements are behind the lock.
unsafe impl<T: Pod> SharedState for ArrayState<T> {
    type Elem = T;
    const WHAT: &'static str = "an Array of this type";
}

/// A fixed-length array of plain old data shared between processes, with its
/// own lock, like Python's `multiprocessing.Array`.
///
/// [`lock`](Array::lock) gives a guard that derefs to `[T]`; the other methods
/// each take the lock once. An index out of bounds is an
/// [`InvalidArgument`](Error::InvalidArgument) error, not a panic.
///
/// ```
/// # use mp_runtime as mp;
/// let arr = mp::Array::from_slice(&[0, 1, 2, 3, 4])?;
/// for x in arr.lock()?.iter_mut() {
///     *x = -*x;
/// }
/// assert_eq!(arr.to_vec()?, vec![0, -1, -2, -3, -4]);
/// arr.set(0, 10)?;
/// assert_eq!(arr.get(0)?, 10);
/// assert!(arr.get(5).is_err());
/// assert_eq!(mp::Array::<f64>::new(3)?.to_vec()?, vec![0.0; 3]);   // zeroed
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Array<T: Pod> {
    region: Region<ArrayState<T>>,
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            region: self.region.clone(),
        }
    }
}

impl<T: Pod> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Pod> Array<T> {
    fn create(len: usize, init: &[T]) -> Result<Array<T>> {
        let region = Region::create(len, |state: *mut ArrayState<T>| {
            // SAFETY: `create` gives zeroed, aligned memory for the state that
            // nobody sees yet.
            unsafe { RawLock::init(&raw mut (*state).lock, LockKind::Plain) }
        })?;
        // SAFETY: the region has room for `len >= init.len()` elements; nobody
        // else can see it yet; `Pod` values are plain copies.
        unsafe {
            std::ptr::copy_nonoverlapping(init.as_ptr(), region.elems(), init.len());
        }
        Ok(Array { region })
    }

    /// A new array of `len` zeroed elements.
    pub fn new(len: usize) -> Result<Array<T>> {
        Array::create(len, &[])
    }

    /// A new array holding a copy of `values`.
    pub fn from_slice(values: &[T]) -> Result<Array<T>> {
        Array::create(values.len(), values)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.region.count()
    }

    /// True for an array of no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn guard<'a>(&'a self, held: Held<'a>) -> ArrayGuard<'a, T> {
        ArrayGuard {
            held,
            elems: self.region.elems(),
            len: self.len(),
            _elems: PhantomData,
        }
    }

    /// Waits for the array's lock; the guard derefs to `[T]`.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>> {
        let state = self.region.state();
        match Held::acquire(&state.lock, self.region.segment(), Deadline::NEVER)? {
            Some(held) => Ok(self.guard(held)),
            // A wait without deadline only ends with the lock or an error.
            None => Err(Error::Timeout {
                after: Duration::MAX,
            }),
        }
    }

    /// Takes the lock if it is free right now; `Ok(None)` if not.
    pub fn try_lock(&self) -> Result<Option<ArrayGuard<'_, T>>> {
        let state = self.region.state();
        Ok(Held::try_acquire(&state.lock, self.region.segment())?.map(|h| self.guard(h)))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed taken.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<ArrayGuard<'_, T>>> {
        let state = self.region.state();
        Ok(
            Held::acquire(&state.lock, self.region.segment(), Deadline::after(timeout))?
                .map(|h| self.guard(h)),
        )
    }

    fn out_of_bounds(&self, index: usize) -> Error {
        Error::invalid(format!(
            "index {index} is out of bounds of a shared array of length {}",
            self.len()
        ))
    }

    /// A copy of element `index` (takes the lock).
    pub fn get(&self, index: usize) -> Result<T> {
        let guard = self.lock()?;
        guard
            .get(index)
            .copied()
            .ok_or_else(|| self.out_of_bounds(index))
    }

    /// Replaces element `index` (takes the lock).
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let mut guard = self.lock()?;
        match guard.get_mut(index) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(self.out_of_bounds(index)),
        }
    }

    /// A copy of every element (takes the lock).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.lock()?.to_vec())
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Array {
            region: Region::deserialize(d)?,
        })
    }
}

/// The lock of an [`Array`], held; derefs to `[T]`. Not `Send`: it must be
/// dropped by the thread that locked.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    held: Held<'a>,
    elems: *mut T,
    len: usize,
    _elems: PhantomData<&'a mut [T]>,
}

// SAFETY: a shared reference to the guard only gives `&[T]`, and `T: Sync`.
unsafe impl<T: Pod> Sync for ArrayGuard<'_, T> {}

impl<T: Pod> ArrayGuard<'_, T> {
    /// True if the previous holder died while holding the lock, so elements
    /// may be half-written.
    pub fn holder_died(&self) -> bool {
        self.held.holder_died()
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the guard holds the array's lock, so no other thread or process
        // accesses the elements; `elems` is aligned and valid for `len` elements
        // (all initialized: zeroed or copied) while the mapping lives.
        unsafe { std::slice::from_raw_parts(self.elems, self.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.elems, self.len) }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Pod> Sealed for ArrayGuard<'_, T> {
    fn unlock_for_wait(&mut self) {
        self.held.unlock_for_wait();
    }
    fn relock(&mut self) -> Result<()> {
        self.held.relock()
    }
}

impl<T: Pod> Waitable for ArrayGuard<'_, T> {}
