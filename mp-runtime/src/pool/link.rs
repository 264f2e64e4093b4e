//! The seam between the pool and its workers: one worker slot's link.
//!
//! The pool's logic (task FIFO, pipelining, chunking, result sinks, imap,
//! close/join/terminate) knows a worker only through a [`Link`]: send a request
//! frame, read reply frames until the link ends, stop the worker at once, and
//! learn how it ended. [`Backend`] starts links: local worker processes (a
//! framed channel to a re-executed child) or, with the `mpi` feature, the ranks
//! of an MPI job.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::children::ChildHandle;
use crate::error::{Error, ExitStatus, Result};
use crate::sys::{OsHandle, Signal};
use crate::wire::{Frame, Request};
use crate::worker::conn::{self, Reader, Writer};

/// The worker at the other end of a link.
pub(crate) trait Peer: Send + Sync + Debug {
    /// Process id of the worker (on its own machine, for an MPI rank).
    fn pid(&self) -> u32;
    /// Stops the worker at once; its link then ends.
    fn kill(&self);
    /// After the link ended: how the worker ended, waiting briefly for it.
    fn reap(&self) -> ExitStatus;
    /// The error for a task the worker held when its link ended.
    fn died(&self, exit: ExitStatus, job: Option<String>) -> Error {
        Error::WorkerDied {
            pid: self.pid(),
            exit,
            job,
            rank: None,
        }
    }
}

/// Reads reply frames from one worker.
pub(crate) trait LinkReader: Send {
    /// The next frame; `Ok(None)` once the worker is gone or done.
    fn next(&mut self) -> Result<Option<Frame>>;
}

/// Sends request frames to one worker.
pub(crate) trait LinkWriter: Send {
    fn send(&mut self, request: &Request<'_>, payload: &[u8], handles: &[OsHandle]) -> Result<()>;

    /// A second writer to the same worker whose `send` never blocks (it only
    /// queues), so the pool may call it with its state locked. `None` when
    /// sending may block, as on a pipe to a busy worker.
    fn nonblocking_clone(&self) -> Option<Box<dyn LinkWriter>> {
        None
    }
}

/// A started, handshaken worker.
pub(crate) struct Link {
    pub(crate) peer: Arc<dyn Peer>,
    pub(crate) reader: Box<dyn LinkReader>,
    pub(crate) writer: Box<dyn LinkWriter>,
}

/// Where a pool's workers come from.
#[derive(Debug)]
pub(crate) enum Backend {
    /// Worker processes re-executed from this binary.
    Local,
    /// The ranks 1..N of the MPI job this process is rank 0 of.
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi::Ranks),
}

impl Backend {
    /// Starts (or, for an MPI rank, opens a new session with) the worker of `slot`.
    pub(crate) fn start(&self, slot: usize, name: &str) -> Result<Link> {
        match self {
            Backend::Local => {
                let _ = slot;
                let conn = conn::launch(name, true)?;
                Ok(Link {
                    peer: conn.child,
                    reader: Box::new(conn.reader),
                    writer: Box::new(conn.writer),
                })
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(ranks) => ranks.open(slot, name),
        }
    }

    /// Whether a worker that ended can be replaced by a new one.
    pub(crate) fn replaceable(&self, slot: usize) -> bool {
        match self {
            Backend::Local => {
                let _ = slot;
                true
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(ranks) => ranks.alive(slot),
        }
    }

    /// Tasks sent ahead to one worker: (at most, at most while its tasks are
    /// short). An MPI rank gets more: its round trip is longer, and the tasks
    /// waiting for it leave in one message.
    pub(crate) fn pipeline_depth(&self) -> (usize, usize) {
        match self {
            Backend::Local => (super::PIPELINE_DEPTH, super::SHORT_PIPELINE_DEPTH),
            #[cfg(feature = "mpi")]
            Backend::Mpi(_) => (16, 16),
        }
    }

    /// Whether its links have a non-blocking writer (`LinkWriter::nonblocking_clone`):
    /// tasks then leave from the thread that queues them or frees a worker,
    /// not from the slot's writer thread.
    pub(crate) fn sends_inline(&self) -> bool {
        match self {
            Backend::Local => false,
            #[cfg(feature = "mpi")]
            Backend::Mpi(_) => true,
        }
    }

    /// How long a caller waiting for a result polls before it sleeps. A short
    /// job's reply often comes within a kernel wake-up's time (40-55 us
    /// across CPUs here): a local `apply` went from 1.3-1.4x to 0.96-1.14x
    /// a raw socketpair round trip. An MPI rank polls for its messages anyway,
    /// and rank 0's threads answer sooner by polling than by a wake-up.
    pub(crate) fn spin(&self) -> Duration {
        match self {
            Backend::Local => Duration::from_micros(100),
            #[cfg(feature = "mpi")]
            Backend::Mpi(_) => crate::mpi::HANDOFF_SPIN,
        }
    }

    /// Refuses, before anything is sent, payloads this backend cannot carry.
    pub(crate) fn check_handles(&self, job: &str, handles: &[OsHandle]) -> Result<()> {
        match self {
            Backend::Local => {
                let _ = (job, handles);
                Ok(())
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(_) => crate::mpi::check_no_handles(job, handles),
        }
    }
}

impl Peer for ChildHandle {
    fn pid(&self) -> u32 {
        ChildHandle::pid(self)
    }

    fn kill(&self) {
        let _ = self.signal(Signal::Kill);
    }

    fn reap(&self) -> ExitStatus {
        self.reap_with_grace(Duration::from_secs(1))
    }
}

impl LinkReader for Reader {
    fn next(&mut self) -> Result<Option<Frame>> {
        Reader::next(self)
    }
}

impl LinkWriter for Writer {
    fn send(&mut self, request: &Request<'_>, payload: &[u8], handles: &[OsHandle]) -> Result<()> {
        self.send_with_handles(request, payload, handles)
    }
}
