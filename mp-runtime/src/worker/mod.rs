//! Both sides of a worker: the loop a re-executed binary runs (`serve`), the
//! parent's connection to one worker (`conn`), and the shim every job call goes
//! through (`invoke`).

pub(crate) mod conn;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::process::Identity;
use crate::registry;
use crate::sys::{self, OsHandle};
use crate::transfer::{self, Encoded};
use crate::wire::{
    self, FailureKind, FrameReader, Hello, HelloAck, JobFailure, RecvHalf, Reply, Request, SendHalf,
};

/// The arguments of one job call, as received. Built only by the runtime.
#[doc(hidden)]
#[derive(Debug)]
pub struct Invocation<'a> {
    payload: &'a [u8],
    batch: bool,
    handles: Vec<OsHandle>,
}

/// The encoded result of one job call. Built only by the runtime.
#[doc(hidden)]
#[derive(Debug)]
pub struct Outcome(std::result::Result<Encoded, JobFailure>);

/// Jobs running in this process right now (on any thread).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs a job: decodes its arguments (one tuple, or a sequence of them for a
/// batch), calls it with panics caught, encodes the result. Called by the code
/// `#[mp::job]` generates, monomorphised per job.
#[doc(hidden)]
pub fn invoke<Args, R, F>(call: Invocation<'_>, job: F) -> Outcome
where
    Args: DeserializeOwned,
    R: Serialize,
    F: Fn(Args) -> R,
{
    let Invocation {
        payload,
        batch,
        handles,
    } = call;
    let encoded = if batch {
        let items: Vec<Args> = match transfer::decode(payload, handles) {
            Ok(items) => items,
            Err(e) => return Outcome::codec(e.message()),
        };
        catch_job(|| items.into_iter().map(&job).collect::<Vec<R>>())
            .and_then(|results| transfer::encode(&results).map_err(|e| codec_failure(e.message())))
    } else {
        let args: Args = match transfer::decode(payload, handles) {
            Ok(args) => args,
            Err(e) => return Outcome::codec(e.message()),
        };
        catch_job(|| job(args))
            .and_then(|r| transfer::encode(&r).map_err(|e| codec_failure(e.message())))
    };
    Outcome(encoded)
}

impl Outcome {
    fn codec(message: &str) -> Outcome {
        Outcome(Err(codec_failure(message)))
    }
}

fn codec_failure(message: &str) -> JobFailure {
    JobFailure {
        kind: FailureKind::Codec,
        message: message.to_string(),
        location: None,
    }
}

/// Calls `f`, turning a panic into a `JobFailure` with its message and location.
fn catch_job<T>(f: impl FnOnce() -> T) -> std::result::Result<T, JobFailure> {
    IN_JOB.with(|flag| flag.set(true));
    RUNNING.fetch_add(1, Ordering::AcqRel);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    RUNNING.fetch_sub(1, Ordering::AcqRel);
    IN_JOB.with(|flag| flag.set(false));
    result.map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_string()
        };
        let location = PANIC_LOCATION.with(|l| l.borrow_mut().take());
        JobFailure {
            kind: FailureKind::Panic,
            message,
            location,
        }
    })
}

/// A job's panic is reported to the parent as an error, so the worker stays
/// quiet about it; any other panic is printed as usual.
fn install_panic_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !note_job_panic(info) {
            previous(info);
        }
    }));
}

/// For a panic hook: true (and the location noted for the report) if the panic
/// happened in a job on this thread, which `catch_job` turns into a failed task.
pub(crate) fn note_job_panic(info: &panic::PanicHookInfo<'_>) -> bool {
    if IN_JOB.with(|flag| flag.get()) {
        let location = info.location().map(|l| l.to_string());
        PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
        true
    } else {
        false
    }
}

/// Whether a job is running in this process (on any thread).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn job_running() -> bool {
    RUNNING.load(Ordering::Acquire) > 0
}

/// Entry of a re-executed worker: never returns.
pub(crate) fn run(marker: &str) -> ! {
    sys::ignore_sigpipe();
    let boot = match sys::worker_boot(marker) {
        Ok(boot) => boot,
        Err(e) => {
            eprintln!("mp: worker process could not start: {e}");
            sys::exit_now(sys::EXIT_BOOTSTRAP_FAILED);
        }
    };
    install_panic_hook();
    let code = match panic::catch_unwind(AssertUnwindSafe(|| serve(boot))) {
        Ok(Ok(code)) => code,
        Ok(Err(Error::Disconnected)) => sys::EXIT_PARENT_DIED,
        Ok(Err(e)) => {
            eprintln!("mp: worker process {} stops: {e}", std::process::id());
            1
        }
        Err(_) => 1,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Python's exit rule for this worker's own children: join the non-daemon
    // ones. Done here because on Windows `exit` skips the C runtime's atexit hooks.
    crate::children::shutdown_children();
    std::process::exit(code)
}

fn serve(boot: sys::WorkerBoot) -> Result<i32> {
    let sys::WorkerBoot {
        channel,
        parent_pid,
    } = boot;
    let mut reader = FrameReader::new(channel.read);
    let mut writer = channel.write;
    serve_session(&mut reader, &mut writer, parent_pid)
}

/// One worker's life with one parent: the handshake, then requests until
/// `Shutdown` or the end of the stream. Returns the exit code the worker should
/// use. An MPI rank runs one session per pool, over its MPI transport.
pub(crate) fn serve_session<R: RecvHalf, W: SendHalf>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    parent_pid: u32,
) -> Result<i32> {
    let mut scratch = Vec::with_capacity(256);

    let Some(frame) = reader.read_frame(64 * 1024)? else {
        return Ok(0);
    };
    let hello: Hello<'_> = frame.header()?;
    let fingerprint = registry::fingerprint() ^ fingerprint_salt();
    let ack = HelloAck {
        magic: wire::MAGIC,
        protocol: wire::PROTOCOL_VERSION,
        fingerprint,
        pid: std::process::id(),
        jobs: registry::len() as u32,
    };
    wire::write_frame(writer, &ack, &[], &[], &mut scratch)?;
    if hello.magic != wire::MAGIC
        || hello.protocol != wire::PROTOCOL_VERSION
        || hello.fingerprint != fingerprint
    {
        return Ok(sys::EXIT_BOOTSTRAP_FAILED);
    }
    let max_frame = usize::try_from(hello.max_frame).unwrap_or(usize::MAX);
    let _ = wire::set_max_frame_size(max_frame);
    crate::process::set_identity(Identity::worker(hello.name, hello.parent_name, parent_pid));
    drop(frame);

    let mut last_failed = false;
    loop {
        let Some(mut frame) = reader.read_frame(max_frame)? else {
            return Ok(0);
        };
        let handles = frame.take_handles();
        match frame.header::<Request<'_>>()? {
            Request::Task { id, job, batch } => {
                let outcome = run_job(job, frame.payload(), batch, handles);
                let _ = std::io::stdout().flush();
                last_failed = outcome.is_err();
                send_outcome(writer, &mut scratch, outcome, |failure| match failure {
                    Some(failure) => Reply::Failed { id, failure },
                    None => Reply::Done { id },
                })?;
            }
            Request::Init { job } => {
                let outcome = run_job(job, frame.payload(), false, handles);
                let _ = std::io::stdout().flush();
                send_outcome(writer, &mut scratch, outcome, |failure| match failure {
                    Some(failure) => Reply::InitFailed { failure },
                    None => Reply::InitDone,
                })?;
            }
            Request::Shutdown { report_last } => {
                return Ok(if report_last && last_failed { 1 } else { 0 });
            }
        }
    }
}

fn send_outcome<W: SendHalf>(
    writer: &mut W,
    scratch: &mut Vec<u8>,
    outcome: std::result::Result<Encoded, JobFailure>,
    reply: impl Fn(Option<JobFailure>) -> Reply,
) -> Result<()> {
    match outcome {
        Ok(encoded) => {
            let handles: Vec<_> = encoded.handles.iter().map(sys::borrow_handle).collect();
            match wire::write_frame(writer, &reply(None), &encoded.bytes, &handles, scratch) {
                // The result itself is too large: say so instead of the result.
                Err(Error::Codec(e)) => wire::write_frame(
                    writer,
                    &reply(Some(codec_failure(e.message()))),
                    &[],
                    &[],
                    scratch,
                ),
                other => other,
            }
        }
        Err(failure) => wire::write_frame(writer, &reply(Some(failure)), &[], &[], scratch),
    }
}

fn run_job(
    name: &str,
    payload: &[u8],
    batch: bool,
    handles: Vec<OsHandle>,
) -> std::result::Result<Encoded, JobFailure> {
    match registry::job_named(name) {
        Some(entry) => {
            (entry.invoke)(Invocation {
                payload,
                batch,
                handles,
            })
            .0
        }
        None => Err(JobFailure {
            kind: FailureKind::UnknownJob,
            message: format!(
                "job `{name}` is not registered in the worker binary (the worker was built from other code)"
            ),
            location: None,
        }),
    }
}

/// Tests can make a worker's fingerprint differ from its parent's, to prove the
/// handshake rejects a worker built from other code.
fn fingerprint_salt() -> u64 {
    std::env::var("MP_TEST_FINGERPRINT_SALT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}
