//! `DictProxy`: a shared dict (Python's `manager.dict()`).

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Handle, decode, encode, failure_error, impl_proxy, unexpected};
use crate::error::Result;
use crate::manager::protocol::{Bytes, Kind, Op, Response};

/// A dict on a manager's server; made by [`Manager::dict`](crate::Manager::dict)
/// or [`Manager::dict_named`](crate::Manager::dict_named).
///
/// Each method is one atomic operation on the server. Keys are compared by
/// their encoding (two keys are the same key when they serialize to the same
/// bytes, which holds for strings, integers, tuples and plain structs), and
/// iteration follows insertion order, as in a Python dict.
///
/// A read-modify-write such as `d[k] += 1` is two operations: make it atomic
/// with [`update_with`](DictProxy::update_with), or hold a managed lock
/// around it.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let d: mp::DictProxy<String, u32> = m.dict()?;
/// d.insert("a".into(), 1)?;
/// d.update_with(&"a".into(), |n| n.unwrap_or(0) + 1)?;
/// assert_eq!(d.get(&"a".into())?, Some(2));
/// assert_eq!(d.keys()?, vec!["a".to_string()]);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct DictProxy<K, V> {
    handle: Handle,
    _types: PhantomData<fn() -> (K, V)>,
}

impl_proxy!(DictProxy, Kind::Dict, K, V);

impl<K, V> DictProxy<K, V> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        DictProxy {
            handle,
            _types: PhantomData,
        }
    }
}

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let key = encode(&key)?;
        let value = encode(&value)?;
        self.handle
            .call(Op::Insert {
                key: Bytes(&key),
                value: Bytes(&value),
            })?
            .value()
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key = encode(key)?;
        self.handle.call(Op::Get { key: Bytes(&key) })?.value()
    }

    /// Removes `key`; returns its value, if it was there (Python's `pop(key, None)`).
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        let key = encode(key)?;
        self.handle.call(Op::Remove { key: Bytes(&key) })?.value()
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize> {
        self.handle.call(Op::Len)?.size()
    }

    /// True when the dict has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        let key = encode(key)?;
        self.handle
            .call(Op::ContainsKey { key: Bytes(&key) })?
            .boolean()
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>> {
        self.handle.call(Op::Keys)?.values()
    }

    /// The values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>> {
        self.handle.call(Op::Values)?.values()
    }

    /// The entries, in insertion order (Python's `items()`).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        self.handle.call(Op::Items)?.pairs()
    }

    /// A snapshot of the whole dict (Python's `copy()`).
    pub fn to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.items()?.into_iter().collect())
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        self.handle.call(Op::Clear)?.done()
    }

    /// Inserts every pair, in one atomic operation (Python's `update`).
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<Vec<_>>>()?;
        let pairs = encoded.iter().map(|(k, v)| (Bytes(k), Bytes(v))).collect();
        self.handle.call(Op::Update { pairs })?.done()
    }

    /// The value under `key`, inserting `default` first if there is none
    /// (Python's `setdefault`).
    pub fn set_default(&self, key: K, default: V) -> Result<V> {
        let key = encode(&key)?;
        let default = encode(&default)?;
        let value = self
            .handle
            .call(Op::SetDefault {
                key: Bytes(&key),
                value: Bytes(&default),
            })?
            .value()?;
        value.ok_or_else(|| unexpected(&Response::Value(None)))
    }

    /// Removes and returns the most recently inserted entry (Python's `popitem`).
    pub fn pop_item(&self) -> Result<Option<(K, V)>> {
        Ok(self.handle.call(Op::PopItem)?.pairs()?.pop())
    }

    /// Atomically replaces the value under `key` with `f(current)` and returns
    /// the new value: `d.update_with(&k, |n| n.unwrap_or(0) + 1)` is an
    /// increment no other process can interleave with.
    ///
    /// `f` may run more than once: when another client changed the entry
    /// between the read and the write, it runs again on the newer value.
    pub fn update_with(&self, key: &K, mut f: impl FnMut(Option<V>) -> V) -> Result<V> {
        let key = encode(key)?;
        let reply = self.handle.call(Op::Get { key: Bytes(&key) })?;
        let mut current: Option<Vec<u8>> = match reply.response()? {
            Response::Value(v) => v.map(|b| b.0.to_vec()),
            Response::Failed(failure) => return Err(failure_error(failure)),
            other => return Err(unexpected(&other)),
        };
        loop {
            let old = current.as_deref().map(|b| decode(Bytes(b))).transpose()?;
            let new = f(old);
            let new_bytes = encode(&new)?;
            let reply = self.handle.call(Op::CompareAndSet {
                key: Bytes(&key),
                expected: current.as_deref().map(Bytes),
                new: Bytes(&new_bytes),
            })?;
            match reply.response()? {
                Response::Done => return Ok(new),
                Response::Stale(now) => current = now.map(|b| b.0.to_vec()),
                Response::Failed(failure) => return Err(failure_error(failure)),
                other => return Err(unexpected(&other)),
            }
        }
    }
}
