//! The one error type of mp.

use std::fmt;
use std::io;
use std::time::Duration;

/// `Result<T, mp::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mp.
///
/// Match variants with `{ .. }` (for example `mp::Error::Timeout { .. }`): that
/// compiles for every variant, whether or not it carries fields today.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job panicked in the worker; the message is the panic payload.
    #[error("job `{job}` panicked in process {pid}: {message}{}", location_suffix(.location))]
    JobPanicked {
        /// The job's stable name (`module::path::fn_name`).
        job: String,
        /// The panic payload, verbatim.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
        /// The worker process that ran the job.
        pid: u32,
    },
    /// The worker process died (killed, aborted, crashed) before it answered.
    #[error("{}", died_message(*.pid, *.exit, .job, *.rank))]
    WorkerDied {
        /// Process id of the worker.
        pid: u32,
        /// How it ended. For an MPI rank, whose end cannot be observed from rank 0,
        /// `Signal(9)`: it stopped answering and is presumed killed.
        exit: ExitStatus,
        /// The job it was running, when known.
        job: Option<String>,
        /// The MPI rank of the worker, for a pool over MPI ranks.
        rank: Option<usize>,
    },
    /// The function given to a pool or process is not an `#[mp::job]`.
    #[error(
        "`{name}` is not an mp job: add `#[mp::job]` to its definition \
         (closures and function pointers cannot run in another process)"
    )]
    NotAJob {
        /// The Rust type name of what was passed.
        name: &'static str,
    },
    /// A timed operation gave up; nothing was lost and the operation may be retried.
    #[error("timed out after {after:?}; the operation is still pending and may be retried")]
    Timeout {
        /// How long it waited.
        after: Duration,
    },
    /// `try_get`/`get_timeout` on an empty queue.
    #[error("the queue is empty")]
    Empty,
    /// `try_put`/`put_timeout` on a full queue.
    #[error("the queue is full")]
    Full,
    /// The pool, queue or channel was closed: no new work or items are accepted.
    #[error(
        "closed: it accepts no more work or items (it was closed, or all its items were taken)"
    )]
    Closed,
    /// The other end of a connection is gone.
    #[error("the other end is gone (its process exited or dropped its handle)")]
    Disconnected,
    /// The pool was terminated before this task finished.
    #[error("the pool was terminated before this task finished")]
    Terminated,
    /// A barrier was aborted or broken by a timeout.
    #[error("the barrier is broken (aborted, or a waiter timed out); call reset() to reuse it")]
    BrokenBarrier,
    /// A bounded semaphore was released more times than acquired.
    #[error("bounded semaphore released more times than it was acquired")]
    Bounded,
    /// A manager peer failed the authentication handshake.
    #[error("authentication failed: the authkeys of client and server differ")]
    AuthenticationFailed,
    /// An argument is out of range; the message says which and why.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What was wrong.
        message: String,
    },
    /// A worker process could not be started or failed its handshake.
    #[error("could not start a worker process: {message}")]
    WorkerStart {
        /// What went wrong and what to do.
        message: String,
    },
    /// A value did not serialize, or a frame was corrupt or too large.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An operating-system error; its message says what mp was doing.
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn location_suffix(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default()
}

fn died_message(pid: u32, exit: ExitStatus, job: &Option<String>, rank: Option<usize>) -> String {
    match rank {
        None => format!(
            "worker process {pid} {exit}{} before it could answer: it was stopped (terminate(), \
             kill) or crashed (a segfault, an abort)",
            job_suffix(job)
        ),
        Some(rank) => format!(
            "MPI rank {rank} (process {pid}) stopped answering{} and is presumed dead: it was \
             killed or crashed, or its machine or network failed; the pool goes on with the \
             other ranks",
            job_suffix(job)
        ),
    }
}

fn job_suffix(job: &Option<String>) -> String {
    job.as_ref()
        .map(|j| format!(" while running `{j}`"))
        .unwrap_or_default()
}

impl Error {
    /// An I/O error with what mp was doing in front of the OS's words.
    pub(crate) fn io(context: &str, source: io::Error) -> Self {
        Error::Io(io::Error::new(
            source.kind(),
            format!("{context}: {source}"),
        ))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
        }
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True when the failure came from the job itself panicking.
    pub fn is_job_panic(&self) -> bool {
        matches!(self, Error::JobPanicked { .. })
    }

    /// A copy of this error for delivery to several waiters (I/O errors keep kind and text).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::JobPanicked {
                job,
                message,
                location,
                pid,
            } => Error::JobPanicked {
                job: job.clone(),
                message: message.clone(),
                location: location.clone(),
                pid: *pid,
            },
            Error::WorkerDied {
                pid,
                exit,
                job,
                rank,
            } => Error::WorkerDied {
                pid: *pid,
                exit: *exit,
                job: job.clone(),
                rank: *rank,
            },
            Error::NotAJob { name } => Error::NotAJob { name },
            Error::Timeout { after } => Error::Timeout { after: *after },
            Error::Empty => Error::Empty,
            Error::Full => Error::Full,
            Error::Closed => Error::Closed,
            Error::Disconnected => Error::Disconnected,
            Error::Terminated => Error::Terminated,
            Error::BrokenBarrier => Error::BrokenBarrier,
            Error::Bounded => Error::Bounded,
            Error::AuthenticationFailed => Error::AuthenticationFailed,
            Error::InvalidArgument { message } => Error::InvalidArgument {
                message: message.clone(),
            },
            Error::WorkerStart { message } => Error::WorkerStart {
                message: message.clone(),
            },
            Error::Codec(c) => Error::Codec(c.clone()),
            Error::Io(source) => Error::Io(io::Error::new(source.kind(), source.to_string())),
        }
    }
}

/// A value that did not serialize or deserialize, or a frame that was corrupt or too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    message: String,
}

impl CodecError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CodecError {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "codec error: {}", self.message)
    }
}

impl std::error::Error for CodecError {}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was ended by this signal (Unix) .
    Signal(i32),
}

impl ExitStatus {
    /// Python's `exitcode` convention: the exit code, or `-N` for signal `N`.
    pub fn python_exitcode(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => -s,
        }
    }

    /// True for a clean exit with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => match signal_name(s) {
                Some(name) => write!(f, "was ended by signal {s} ({name})"),
                None => write!(f, "was ended by signal {s}"),
            },
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}
