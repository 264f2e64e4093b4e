//! `ValueProxy`: one shared value (Python's `manager.Value`).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Handle, decode, encode, failure_error, impl_proxy, unexpected};
use crate::error::Result;
use crate::manager::protocol::{Bytes, Kind, Op, Response};

/// One value of any serde type on a manager's server; made by
/// [`Manager::value`](crate::Manager::value) or
/// [`Manager::value_named`](crate::Manager::value_named).
///
/// `get` and `set` are each atomic; [`update`](ValueProxy::update) makes a
/// read-modify-write atomic.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let v: mp::ValueProxy<i64> = m.value(0)?;
/// v.set(5)?;
/// assert_eq!(v.update(|x| x + 1)?, 6);
/// assert_eq!(v.get()?, 6);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct ValueProxy<T> {
    handle: Handle,
    _value: PhantomData<fn(T) -> T>,
}

impl_proxy!(ValueProxy, Kind::Value, T);

impl<T> ValueProxy<T> {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        ValueProxy {
            handle,
            _value: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The current value (Python's `v.value`).
    pub fn get(&self) -> Result<T> {
        let value = self.handle.call(Op::Load)?.value()?;
        value.ok_or_else(|| unexpected(&Response::Value(None)))
    }

    /// Replaces the value (Python's `v.value = x`).
    pub fn set(&self, value: T) -> Result<()> {
        let value = encode(&value)?;
        self.handle
            .call(Op::Store {
                value: Bytes(&value),
            })?
            .done()
    }

    /// Replaces the value and returns the old one.
    pub fn swap(&self, value: T) -> Result<T> {
        let value = encode(&value)?;
        let old = self
            .handle
            .call(Op::Swap {
                value: Bytes(&value),
            })?
            .value()?;
        old.ok_or_else(|| unexpected(&Response::Value(None)))
    }

    /// Atomically replaces the value with `f(current)` and returns the new
    /// value: `v.update(|x| x + 1)` is an increment no other process can
    /// interleave with. `f` may run more than once, when another client
    /// changed the value between the read and the write.
    pub fn update(&self, mut f: impl FnMut(T) -> T) -> Result<T> {
        let reply = self.handle.call(Op::Load)?;
        let mut current: Vec<u8> = match reply.response()? {
            Response::Value(Some(b)) => b.0.to_vec(),
            Response::Failed(failure) => return Err(failure_error(failure)),
            other => return Err(unexpected(&other)),
        };
        loop {
            let new = f(decode(Bytes(&current))?);
            let new_bytes = encode(&new)?;
            let reply = self.handle.call(Op::CompareAndSwap {
                expected: Bytes(&current),
                new: Bytes(&new_bytes),
            })?;
            match reply.response()? {
                Response::Done => return Ok(new),
                Response::Stale(Some(now)) => current = now.0.to_vec(),
                Response::Failed(failure) => return Err(failure_error(failure)),
                other => return Err(unexpected(&other)),
            }
        }
    }
}
