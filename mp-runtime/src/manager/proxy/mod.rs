//! Proxies: typed handles to objects on a manager's server.
//!
//! A proxy is a manager's address, its authkey and an object id. It
//! serializes as exactly that, so it can be sent to another process (as a job
//! argument, inside your structs) and connects lazily there, sharing that
//! process's pooled connections to the manager.

mod dict;
mod list;
mod namespace;
mod queue;
mod sync;
mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client::{Client, Lease, Reply};
use super::protocol::{ByteBuf, Bytes, Failure, Kind, Op, Request, Response};
use crate::codec;
use crate::error::{CodecError, Error, Result};

pub use dict::DictProxy;
pub use list::ListProxy;
pub use namespace::NamespaceProxy;
pub use queue::QueueProxy;
pub use sync::{
    BarrierProxy, ConditionProxy, ConditionProxyGuard, EventProxy, LockProxy, LockProxyGuard,
    RLockProxy, RLockProxyGuard, SemaphoreProxy,
};
pub use value::ValueProxy;

/// The untyped part of every proxy.
#[derive(Clone)]
pub(crate) struct Handle {
    client: Arc<Client>,
    id: u64,
}

/// A proxy as it travels.
#[derive(Serialize, Deserialize)]
struct WireProxy {
    addr: SocketAddr,
    authkey: ByteBuf,
    id: u64,
    kind: Kind,
}

impl Handle {
    pub(crate) fn new(client: Arc<Client>, id: u64) -> Handle {
        Handle { client, id }
    }

    /// One operation, on a pooled connection.
    pub(crate) fn call(&self, op: Op<'_>) -> Result<Reply> {
        self.client.call(&Request::Call { id: self.id, op })
    }

    /// A connection for exclusive use (a lock guard keeps it).
    pub(crate) fn lease(&self) -> Result<Lease> {
        self.client.lease()
    }

    /// One operation on a leased connection.
    pub(crate) fn call_on(&self, lease: &mut Lease, op: Op<'_>) -> Result<Reply> {
        lease.call(&Request::Call { id: self.id, op })
    }

    fn fmt(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
            .field("manager", &self.client.addr())
            .field("id", &self.id)
            .finish()
    }

    fn serialize<S: Serializer>(
        &self,
        kind: Kind,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        WireProxy {
            addr: self.client.addr(),
            authkey: ByteBuf(self.client.authkey().to_vec()),
            id: self.id,
            kind,
        }
        .serialize(serializer)
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        kind: Kind,
        deserializer: D,
    ) -> std::result::Result<Handle, D::Error> {
        let wire = WireProxy::deserialize(deserializer)?;
        if wire.kind != kind {
            return Err(serde::de::Error::custom(format!(
                "a proxy of a managed {} cannot be read as a proxy of a {}",
                wire.kind.name(),
                kind.name()
            )));
        }
        Ok(Handle {
            client: Client::shared(wire.addr, &wire.authkey.0),
            id: wire.id,
        })
    }
}

/// `Clone`, `Debug`, `Serialize` and `Deserialize` for a proxy type with a
/// `handle` field and a `from_handle` constructor.
macro_rules! impl_proxy {
    ($name:ident, $kind:expr $(, $param:ident)*) => {
        impl<$($param),*> Clone for $name<$($param),*> {
            fn clone(&self) -> Self {
                Self::from_handle(self.handle.clone())
            }
        }

        impl<$($param),*> std::fmt::Debug for $name<$($param),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.handle.fmt(stringify!($name), f)
            }
        }

        impl<$($param),*> serde::Serialize for $name<$($param),*> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.handle.serialize($kind, serializer)
            }
        }

        impl<'de, $($param),*> serde::Deserialize<'de> for $name<$($param),*> {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                super::Handle::deserialize($kind, deserializer).map(Self::from_handle)
            }
        }
    };
}
pub(crate) use impl_proxy;

/// The error a failed operation reports.
pub(crate) fn failure_error(failure: Failure) -> Error {
    match failure {
        Failure::Empty => Error::Empty,
        Failure::Full => Error::Full,
        Failure::Closed => Error::Closed,
        Failure::Timeout => Error::Timeout {
            after: std::time::Duration::ZERO,
        },
        Failure::BrokenBarrier => Error::BrokenBarrier,
        Failure::Bounded => Error::Bounded,
        Failure::NotHeld => Error::invalid(
            "released a managed lock that this guard does not hold (its connection was lost)",
        ),
        Failure::Invalid(message) => Error::InvalidArgument { message },
    }
}

/// A response that does not fit the request.
pub(crate) fn unexpected(response: &Response<'_>) -> Error {
    let what = format!("{response:?}");
    let what = what.split([' ', '(', '{']).next().unwrap_or("?");
    Error::Codec(CodecError::new(format!(
        "the manager answered `{what}`, which does not fit the request; the proxy and the \
         server disagree (are both built from the same version of mp?)"
    )))
}

fn decode<T: DeserializeOwned>(bytes: Bytes<'_>) -> Result<T> {
    Ok(codec::decode(bytes.0)?)
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    Ok(codec::encode(value)?)
}

/// Decoders for the usual shapes of a response.
impl Reply {
    pub(crate) fn done(&self) -> Result<()> {
        match self.response()? {
            Response::Done => Ok(()),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn value<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.response()? {
            Response::Value(v) => v.map(decode).transpose(),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether a value came back, without decoding it.
    pub(crate) fn present(&self) -> Result<bool> {
        match self.response()? {
            Response::Value(v) => Ok(v.is_some()),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn values<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        match self.response()? {
            Response::Values(v) => v.into_iter().map(decode).collect(),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn pairs<K: DeserializeOwned, V: DeserializeOwned>(&self) -> Result<Vec<(K, V)>> {
        match self.response()? {
            Response::Pairs(v) => v
                .into_iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn boolean(&self) -> Result<bool> {
        match self.response()? {
            Response::Bool(b) => Ok(b),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn count(&self) -> Result<u64> {
        match self.response()? {
            Response::Count(n) => Ok(n),
            Response::Failed(f) => Err(failure_error(f)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn size(&self) -> Result<usize> {
        let n = self.count()?;
        usize::try_from(n).map_err(|_| {
            Error::Codec(CodecError::new(format!(
                "the manager reported a size of {n}, too large for this platform"
            )))
        })
    }
}
