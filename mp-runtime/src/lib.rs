//! Runtime of [mp](https://docs.rs/mp): spawn-mode worker processes, pools,
//! queues, shared memory and locks. Use it through the `mp` crate, which
//! re-exports everything here together with the `#[mp::job]` macro.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod bootstrap;
mod children;
mod codec;
mod error;
mod job;
mod manager;
#[cfg(feature = "mpi")]
pub mod mpi;
mod pipe;
mod pod;
mod pool;
mod process;
mod queue;
mod registry;
mod shm;
mod sync;
mod sys;
mod transfer;
mod value;
mod wire;
mod worker;

pub use bootstrap::init;
pub use error::{CodecError, Error, ExitStatus, Result};
pub use job::Job;
pub use manager::{
    BarrierProxy, ConditionProxy, ConditionProxyGuard, DictProxy, EventProxy, ListProxy, LockProxy,
    LockProxyGuard, Manager, NamespaceProxy, QueueProxy, RLockProxy, RLockProxyGuard,
    SemaphoreProxy, ValueProxy,
};
pub use pipe::{Connection, pipe};
pub use pod::Pod;
pub use pool::{AsyncResult, Imap, Pool, PoolBuilder, pool};
pub use process::{
    Process, ProcessBuilder, ProcessInfo, active_children, cpu_count, current_process,
    parent_process,
};
pub use queue::{JoinableQueue, Queue, SimpleQueue};
pub use shm::SharedMemory;
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    Waitable,
};
pub use value::{Array, ArrayGuard, Value, ValueGuard};
pub use wire::{max_frame_size, set_max_frame_size};

/// What `#[mp::job]` and `mp::main!` expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bootstrap::MainGuard;
    pub use crate::registry::{JOBS, JobEntry, type_id_of_val};
    pub use crate::worker::{Invocation, Outcome, invoke};
    pub use core::any::TypeId;
    pub use core::hint::black_box;
    pub use linkme;
    pub use serde;
}
