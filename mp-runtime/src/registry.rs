//! The job registry: every `#[mp::job]` in the binary, by stable name and by type.
//!
//! Entries are collected at link time (a `linkme` distributed slice), so the
//! registry is complete before any code runs, including the pre-`main` worker
//! bootstrap. A job is found on the caller's side by the `TypeId` of the fn item
//! the user passed (unique per function, so closures and plain fns are rejected
//! with `Error::NotAJob`), and on the worker's side by its stable name.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::worker::{Invocation, Outcome};

/// One registered job. Built only by `#[mp::job]`.
#[doc(hidden)]
pub struct JobEntry {
    pub(crate) name: &'static str,
    pub(crate) signature: &'static str,
    pub(crate) type_id: fn() -> TypeId,
    pub(crate) invoke: fn(Invocation<'_>) -> Outcome,
}

impl JobEntry {
    /// Used by the code `#[mp::job]` generates.
    pub const fn new(
        name: &'static str,
        signature: &'static str,
        type_id: fn() -> TypeId,
        invoke: fn(Invocation<'_>) -> Outcome,
    ) -> Self {
        JobEntry {
            name,
            signature,
            type_id,
            invoke,
        }
    }

    /// The stable name (`module::path::fn_name`).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for JobEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEntry")
            .field("name", &self.name)
            .field("signature", &self.signature)
            .finish()
    }
}

#[doc(hidden)]
#[linkme::distributed_slice]
pub static JOBS: [JobEntry];

struct Index {
    by_type: HashMap<TypeId, &'static JobEntry>,
    by_name: HashMap<&'static str, &'static JobEntry>,
    fingerprint: u64,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_type = HashMap::with_capacity(JOBS.len());
        let mut by_name = HashMap::with_capacity(JOBS.len());
        let mut names: Vec<(&str, &str)> = Vec::with_capacity(JOBS.len());
        for entry in JOBS.iter() {
            by_type.insert((entry.type_id)(), entry);
            by_name.insert(entry.name, entry);
            names.push((entry.name, entry.signature));
        }
        names.sort_unstable();
        let mut hash = Fnv::new();
        hash.write(env!("CARGO_PKG_VERSION").as_bytes());
        for (name, signature) in names {
            hash.write(name.as_bytes());
            hash.write(&[0]);
            hash.write(signature.as_bytes());
            hash.write(&[0]);
        }
        Index {
            by_type,
            by_name,
            fingerprint: hash.finish(),
        }
    })
}

/// The entry of the fn item type `F`, or `NotAJob`.
pub(crate) fn job_of<F: 'static>() -> Result<&'static JobEntry> {
    index()
        .by_type
        .get(&TypeId::of::<F>())
        .copied()
        .ok_or(Error::NotAJob {
            name: std::any::type_name::<F>(),
        })
}

/// The entry registered under `name`.
pub(crate) fn job_named(name: &str) -> Option<&'static JobEntry> {
    index().by_name.get(name).copied()
}

/// A hash of every job's name and signature and of mp's version: a worker whose
/// fingerprint differs from its parent's was built from other code.
pub(crate) fn fingerprint() -> u64 {
    index().fingerprint
}

/// Number of registered jobs.
pub(crate) fn len() -> usize {
    JOBS.len()
}

/// FNV-1a: tiny, stable across builds and platforms (std's hasher is neither).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `TypeId` of the value's type; used by generated code on fn items.
#[doc(hidden)]
pub fn type_id_of_val<T: 'static>(_: &T) -> TypeId {
    TypeId::of::<T>()
}
