//! `NamespaceProxy`: named attributes of any type (Python's `manager.Namespace()`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Handle, encode, impl_proxy};
use crate::error::{Error, Result};
use crate::manager::protocol::{Bytes, Kind, Op};

/// A namespace on a manager's server: attributes by name, each of its own
/// serde type; made by [`Manager::namespace`](crate::Manager::namespace) or
/// [`Manager::namespace_named`](crate::Manager::namespace_named).
///
/// Python's `ns.x = 5` is `ns.set("x", 5)?`; `ns.x` is `ns.get::<i32>("x")?`,
/// which is `Err(InvalidArgument)` when there is no `x` (Python's
/// `AttributeError`); [`get_opt`](NamespaceProxy::get_opt) gives `None` instead.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let ns = m.namespace()?;
/// ns.set("x", 5)?;
/// ns.set("name", "ann")?;
/// let x: i32 = ns.get("x")?;
/// assert_eq!(x, 5);
/// assert_eq!(ns.get::<String>("name")?, "ann");
/// # Ok::<(), mp::Error>(())
/// ```
pub struct NamespaceProxy {
    handle: Handle,
}

impl_proxy!(NamespaceProxy, Kind::Namespace);

impl NamespaceProxy {
    pub(crate) fn from_handle(handle: Handle) -> Self {
        NamespaceProxy { handle }
    }

    /// Sets attribute `name` (Python's `ns.name = value`).
    pub fn set<T: Serialize>(&self, name: &str, value: T) -> Result<()> {
        let key = encode(name)?;
        let value = encode(&value)?;
        self.handle
            .call(Op::Insert {
                key: Bytes(&key),
                value: Bytes(&value),
            })?
            .present()
            .map(drop)
    }

    /// Attribute `name`; `Err(InvalidArgument)` when it is not set.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.get_opt(name)?
            .ok_or_else(|| Error::invalid(format!("the namespace has no attribute `{name}`")))
    }

    /// Attribute `name`, or `None` when it is not set.
    pub fn get_opt<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let key = encode(name)?;
        self.handle.call(Op::Get { key: Bytes(&key) })?.value()
    }

    /// True when attribute `name` is set (Python's `hasattr`).
    pub fn contains(&self, name: &str) -> Result<bool> {
        let key = encode(name)?;
        self.handle
            .call(Op::ContainsKey { key: Bytes(&key) })?
            .boolean()
    }

    /// Removes attribute `name`; false if it was not set (Python's `del ns.name`).
    pub fn remove(&self, name: &str) -> Result<bool> {
        let key = encode(name)?;
        self.handle.call(Op::Remove { key: Bytes(&key) })?.present()
    }

    /// The names of the attributes, in the order they were first set.
    pub fn names(&self) -> Result<Vec<String>> {
        self.handle.call(Op::Keys)?.values()
    }
}
