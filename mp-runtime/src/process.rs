//! `Process`: one job in its own process, like `multiprocessing.Process`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use serde::Serialize;

use crate::children::{self, ChildHandle};
use crate::transfer::{self, Encoded};

use crate::error::{Error, ExitStatus, Result};
use crate::job::Job;
use crate::registry::{self, JobEntry};
use crate::sys::Signal;
use crate::wire::{Frame, Reply, Request};
use crate::worker::conn::{self, WorkerConn};

/// Name, pid and role of a process (this one, its parent, or a child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pid: u32,
    name: String,
    is_worker: bool,
}

impl ProcessInfo {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name: `"MainProcess"`, `"Process-N"`, `"PoolWorker-N"` or the name given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True in a process started by mp (a `Process` or a pool worker).
    pub fn is_worker(&self) -> bool {
        self.is_worker
    }
}

#[derive(Debug)]
pub(crate) struct Identity {
    me: ProcessInfo,
    parent: Option<ProcessInfo>,
}

impl Identity {
    pub(crate) fn worker(name: &str, parent_name: &str, parent_pid: u32) -> Identity {
        Identity {
            me: ProcessInfo {
                pid: std::process::id(),
                name: name.to_string(),
                is_worker: true,
            },
            parent: Some(ProcessInfo {
                pid: parent_pid,
                name: parent_name.to_string(),
                is_worker: false,
            }),
        }
    }
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

pub(crate) fn set_identity(identity: Identity) {
    let _ = IDENTITY.set(identity);
}

fn identity() -> &'static Identity {
    IDENTITY.get_or_init(|| Identity {
        me: ProcessInfo {
            pid: std::process::id(),
            name: "MainProcess".into(),
            is_worker: false,
        },
        parent: None,
    })
}

/// This process: `"MainProcess"` in the program you started, the worker's name in a worker.
pub fn current_process() -> ProcessInfo {
    identity().me.clone()
}

/// The process that started this one, in a worker; `None` in the main process.
pub fn parent_process() -> Option<ProcessInfo> {
    identity().parent.clone()
}

/// The live children of this process (`Process`es and pool workers), oldest first.
/// Children that exited or were joined are not listed.
pub fn active_children() -> Vec<ProcessInfo> {
    children::live()
        .iter()
        .map(|c| ProcessInfo {
            pid: c.pid(),
            name: c.name().to_string(),
            is_worker: true,
        })
        .collect()
}

/// The number of CPUs this process may use: the CPU affinity mask (and on Linux
/// the cgroup CPU quota) is respected, so a container limited to 2 CPUs reports 2.
pub fn cpu_count() -> usize {
    crate::sys::cpu_count()
}

static NEXT_PROCESS: AtomicUsize = AtomicUsize::new(1);

/// A job running in its own process; `join` returns its value.
///
/// ```
/// #[mp::job]
/// fn square(x: u64) -> u64 { x * x }
///
/// let p: mp::Process<u64> = mp::Process::spawn(square, (7,))?;
/// assert_ne!(p.pid(), std::process::id());
/// assert_eq!(p.join()?, 49);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Process<R> {
    child: Arc<ChildHandle>,
    outcome: Arc<Mutex<Option<Result<Frame>>>>,
    job: &'static str,
    _result: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.child.pid())
            .field("name", &self.child.name())
            .field("daemon", &self.child.is_daemon())
            .field("job", &self.job)
            .field("exit", &self.child.exit_status())
            .finish()
    }
}

/// Options for a new [`Process`]: `mp::Process::builder().name("w").daemon(true).spawn(job, args)`.
#[derive(Debug, Clone, Default)]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
}

impl ProcessBuilder {
    /// The process's name (default `"Process-N"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A daemon process is terminated when its parent's `mp::main!` ends or the
    /// parent exits; a non-daemon one is joined then (Python's rule).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Starts `job(args...)` in a new process.
    pub fn spawn<F, Args>(self, _job: F, args: Args) -> Result<Process<F::Output>>
    where
        F: Job<Args>,
        Args: Serialize,
    {
        let entry = registry::job_of::<F>()?;
        let payload = transfer::encode(&args)?;
        crate::wire::check_payload_size(entry.name(), payload.bytes.len())?;
        let name = self
            .name
            .unwrap_or_else(|| format!("Process-{}", NEXT_PROCESS.fetch_add(1, Ordering::Relaxed)));
        spawn_entry(name, self.daemon, entry, payload)
    }
}

fn spawn_entry<R>(
    name: String,
    daemon: bool,
    entry: &'static JobEntry,
    payload: Encoded,
) -> Result<Process<R>> {
    let outcome: Arc<Mutex<Option<Result<Frame>>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&outcome);
    let (started_tx, started_rx) = mpsc::channel();
    // The thread that starts the child also owns it until it is reaped: on Linux
    // the child's parent-death signal is tied to this thread's life.
    std::thread::Builder::new()
        .name(format!("mp-{name}"))
        .spawn(move || match conn::launch(&name, daemon) {
            Ok(conn) => {
                let _ = started_tx.send(Ok(Arc::clone(&conn.child)));
                monitor(conn, entry, payload, &slot);
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .map_err(|e| Error::io("starting a process monitor thread", e))?;
    let child = started_rx.recv().map_err(|_| Error::WorkerStart {
        message: "the process monitor thread ended before the process started".into(),
    })??;
    Ok(Process {
        child,
        outcome,
        job: entry.name(),
        _result: PhantomData,
    })
}

/// Sends the one task, records the reply, reaps the child.
fn monitor(
    conn: WorkerConn,
    entry: &'static JobEntry,
    payload: Encoded,
    slot: &Mutex<Option<Result<Frame>>>,
) {
    let WorkerConn {
        child,
        mut reader,
        mut writer,
    } = conn;
    let pid = child.pid();
    let sent = writer
        .send_with_handles(
            &Request::Task {
                id: 1,
                job: entry.name(),
                batch: false,
            },
            &payload.bytes,
            &payload.handles,
        )
        .and_then(|()| writer.send(&Request::Shutdown { report_last: true }, &[]));
    // The child has its own copies of the handles now: ours must not keep, say,
    // the far end of a pipe open after the child is gone.
    drop(payload);
    let outcome = match sent {
        Err(Error::Disconnected) => None,
        Err(e) => {
            // The worker waits for a task that will never come.
            let _ = child.signal(Signal::Kill);
            Some(Err(e))
        }
        Ok(()) => match reader.next() {
            Ok(None) | Err(Error::Disconnected) => None,
            Err(e) => Some(Err(e)),
            Ok(Some(frame)) => match frame.header::<Reply>() {
                Ok(Reply::Done { .. }) => Some(Ok(frame)),
                Ok(Reply::Failed { failure, .. }) => {
                    Some(Err(failure.into_error(entry.name(), pid)))
                }
                Ok(other) => Some(Err(Error::WorkerStart {
                    message: format!("worker {pid} sent an unexpected reply: {other:?}"),
                })),
                Err(e) => Some(Err(e)),
            },
        },
    };
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
    drop(writer);
    child.reap();
}

impl Process<()> {
    /// Options for a new process (name, daemon).
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }
}

impl<R: serde::de::DeserializeOwned> Process<R> {
    /// Starts `job(args...)` in a new process; `args` is a tuple: `(7,)`.
    pub fn spawn<F, Args>(job: F, args: Args) -> Result<Process<R>>
    where
        F: Job<Args, Output = R>,
        Args: Serialize,
    {
        ProcessBuilder::default().spawn(job, args)
    }

    /// Waits for the process to end and returns the job's value.
    ///
    /// `Err(JobPanicked)` if the job panicked, `Err(WorkerDied)` if the process
    /// was killed or crashed before it answered.
    pub fn join(self) -> Result<R> {
        self.child.wait_reaped(None);
        self.result()
    }

    /// Waits up to `timeout`: `Ok(None)` while the process still runs. Callable again.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>> {
        if self.child.wait_reaped(Some(timeout)) {
            self.result().map(Some)
        } else {
            Ok(None)
        }
    }

    fn result(&self) -> Result<R> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        match outcome.as_mut() {
            Some(Ok(frame)) => {
                let handles = frame.take_handles();
                Ok(transfer::decode(frame.payload(), handles)?)
            }
            Some(Err(e)) => Err(e.duplicate()),
            None => Err(Error::WorkerDied {
                pid: self.child.pid(),
                exit: self.child.exit_status().unwrap_or(ExitStatus::Signal(9)),
                job: Some(self.job.to_string()),
                rank: None,
            }),
        }
    }
}

impl<R> Process<R> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The name given to the builder, or `"Process-N"`.
    pub fn name(&self) -> &str {
        self.child.name()
    }

    /// Whether this is a daemon process.
    pub fn is_daemon(&self) -> bool {
        self.child.is_daemon()
    }

    /// True until the process has exited.
    pub fn is_alive(&self) -> bool {
        self.child.exit_status().is_none()
    }

    /// `None` while running; then Python's convention: the exit code, or `-N`
    /// if signal `N` ended it (a job that panicked exits with 1).
    pub fn exitcode(&self) -> Option<i32> {
        self.child.exit_status().map(ExitStatus::python_exitcode)
    }

    /// How the process ended, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.exit_status()
    }

    /// Asks the process to stop (SIGTERM on Unix). A no-op once it has exited.
    pub fn terminate(&self) -> Result<()> {
        self.child
            .signal(Signal::Terminate)
            .map_err(|e| Error::io("sending SIGTERM to a process", e))
    }

    /// Kills the process at once (SIGKILL on Unix). A no-op once it has exited.
    pub fn kill(&self) -> Result<()> {
        self.child
            .signal(Signal::Kill)
            .map_err(|e| Error::io("sending SIGKILL to a process", e))
    }
}
