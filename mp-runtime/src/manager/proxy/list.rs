//! `ListProxy`: a shared list (Python's `manager.list()`).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Handle, encode, failure_error, impl_proxy, unexpected};
use crate::error::Result;
use crate::manager::protocol::{Bytes, Kind, Op, Response};

/// A list on a manager's server; made by [`Manager::list`](crate::Manager::list),
/// [`Manager::list_from`](crate::Manager::list_from) or
/// [`Manager::list_named`](crate::Manager::list_named).
///
/// Each method is one atomic operation on the server. Items are compared by
/// their encoding (`contains`, `index_of`, `count`, `remove_item`). An index
/// out of range is `Err(InvalidArgument)` for `set`, `insert` and `remove`,
/// and `None` for `get`.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let l: mp::ListProxy<i32> = m.list_from(0..5)?;
/// l.push(5)?;
/// l.set(0, 10)?;
/// assert_eq!(l.get(0)?, Some(10));
/// assert_eq!(l.pop()?, Some(5));
/// assert_eq!(l.to_vec()?, vec![10, 1, 2, 3, 4]);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct ListProxy<T> {
    handle: Handle,
    _item: PhantomData<fn(T) -> T>,
}

impl_proxy!(ListProxy, Kind::List, T);

impl<T> ListProxy<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        ListProxy {
            handle,
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Appends `value` (Python's `append`).
    pub fn push(&self, value: T) -> Result<()> {
        let value = encode(&value)?;
        self.handle
            .call(Op::Push {
                value: Bytes(&value),
            })?
            .done()
    }

    /// The item at `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Result<Option<T>> {
        self.handle
            .call(Op::At {
                index: index as u64,
            })?
            .value()
    }

    /// Replaces the item at `index` (`l[index] = value`).
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let value = encode(&value)?;
        self.handle
            .call(Op::SetAt {
                index: index as u64,
                value: Bytes(&value),
            })?
            .done()
    }

    /// The number of items.
    pub fn len(&self) -> Result<usize> {
        self.handle.call(Op::Len)?.size()
    }

    /// True when the list has no items.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A snapshot of every item (Python's `list(l)` or `l[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.handle.call(Op::Values)?.values()
    }

    /// Removes and returns the last item, `None` when empty.
    pub fn pop(&self) -> Result<Option<T>> {
        self.handle.call(Op::Pop)?.value()
    }

    /// Appends every item, in one atomic operation.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let encoded = items
            .into_iter()
            .map(|item| encode(&item))
            .collect::<Result<Vec<_>>>()?;
        let items = encoded.iter().map(|b| Bytes(b)).collect();
        self.handle.call(Op::Extend { items })?.done()
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<()> {
        self.handle.call(Op::Clear)?.done()
    }

    /// Inserts `value` before `index` (`index == len` appends).
    pub fn insert(&self, index: usize, value: T) -> Result<()> {
        let value = encode(&value)?;
        self.handle
            .call(Op::InsertAt {
                index: index as u64,
                value: Bytes(&value),
            })?
            .done()
    }

    /// Removes and returns the item at `index` (Python's `pop(index)`).
    pub fn remove(&self, index: usize) -> Result<T> {
        let removed = self
            .handle
            .call(Op::RemoveAt {
                index: index as u64,
            })?
            .value()?;
        removed.ok_or_else(|| unexpected(&Response::Value(None)))
    }

    /// Removes the first item equal to `value`; false if there is none
    /// (Python's `remove(value)`).
    pub fn remove_item(&self, value: &T) -> Result<bool> {
        let value = encode(value)?;
        self.handle
            .call(Op::RemoveValue {
                value: Bytes(&value),
            })?
            .boolean()
    }

    /// The index of the first item equal to `value`.
    pub fn index_of(&self, value: &T) -> Result<Option<usize>> {
        let value = encode(value)?;
        let reply = self.handle.call(Op::IndexOf {
            value: Bytes(&value),
        })?;
        match reply.response()? {
            Response::Value(None) => Ok(None),
            Response::Count(_) => reply.size().map(Some),
            Response::Failed(failure) => Err(failure_error(failure)),
            other => Err(unexpected(&other)),
        }
    }

    /// True when an item equals `value` (Python's `value in l`).
    pub fn contains(&self, value: &T) -> Result<bool> {
        Ok(self.index_of(value)?.is_some())
    }

    /// How many items equal `value`.
    pub fn count(&self, value: &T) -> Result<usize> {
        let value = encode(value)?;
        self.handle
            .call(Op::Count {
                value: Bytes(&value),
            })?
            .size()
    }

    /// Reverses the list in place.
    pub fn reverse(&self) -> Result<()> {
        self.handle.call(Op::Reverse)?.done()
    }
}
