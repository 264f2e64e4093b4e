//! A worker rank's side: the worker loop of `worker::serve_session`, once per
//! pool, over MPI messages to and from rank 0, until rank 0 says stop.
//!
//! The main thread runs jobs and makes the MPI calls; a heartbeat thread tells
//! rank 0 the rank is alive while a job runs. The two take turns through one
//! mutex (the library runs at MPI_THREAD_SERIALIZED).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::mpi::environment::Universe;
use ::mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use ::mpi::topology::{Communicator, SimpleCommunicator};

use super::Chunk;
use super::hub::{HEARTBEAT, KIND_ENDED, KIND_FRAMES, KIND_HEARTBEAT, KIND_STOP};
use crate::sys::{BorrowedHandle, OsHandle};
use crate::wire::{FrameReader, RecvHalf, SendHalf};

/// How long an idle rank polls without sleeping after its last message.
const SPIN: Duration = Duration::from_millis(2);
/// The longest nap between polls of a rank that was busy less than a second ago.
const MAX_NAP: Duration = Duration::from_millis(1);
/// The longest nap of a rank idle for longer: an idle rank costs next to no CPU.
const MAX_IDLE_NAP: Duration = Duration::from_millis(5);
/// Replies wait to leave together at most this long, or this many bytes.
const BATCH_AGE: Duration = Duration::from_micros(500);
const BATCH_BYTES: usize = 64 * 1024;

/// What the main and heartbeat threads share.
struct Shared {
    /// Held around every MPI call.
    mpi: Mutex<()>,
    /// Tag of the session being served; 0 between sessions.
    session: AtomicI32,
    /// Working (not waiting for a message): heartbeats are due.
    busy: AtomicBool,
    done: AtomicBool,
}

impl Shared {
    fn mpi(&self) -> MutexGuard<'_, ()> {
        self.mpi.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Replies not yet sent, and since when.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    since: Option<Instant>,
}

/// The rank's incoming stream of frames.
struct Incoming {
    shared: Arc<Shared>,
    outbox: Rc<RefCell<Outbox>>,
    chunk: Chunk,
    /// Tag of the last session that ended: its leftovers are dropped.
    finished: i32,
    /// The first message of the next session, which arrived while the current
    /// one was still open: it ends the current one (rank 0 left it).
    next: Option<(i32, Vec<u8>)>,
    stopped: bool,
}

/// The rank's outgoing stream of frames.
struct Outgoing {
    outbox: Rc<RefCell<Outbox>>,
}

impl SendHalf for Outgoing {
    fn send(&mut self, bufs: &[IoSlice<'_>], handles: &[BorrowedHandle<'_>]) -> io::Result<usize> {
        if !handles.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "handles cannot be sent to MPI rank 0",
            ));
        }
        let mut outbox = self.outbox.borrow_mut();
        outbox.since.get_or_insert_with(Instant::now);
        outbox.bytes.write_vectored(bufs)
    }
}

fn send(shared: &Shared, kind: u8, tag: i32, payload: &[u8]) {
    let world = SimpleCommunicator::world();
    let mut message = Vec::with_capacity(payload.len() + 1);
    message.push(kind);
    message.extend_from_slice(payload);
    let _mpi = shared.mpi();
    // A batch over MPI's int count leaves in pieces: rank 0 reads a byte stream.
    let limit = (i32::MAX as usize) - 1;
    if message.len() <= limit {
        world.process_at_rank(0).send_with_tag(&message[..], tag);
        return;
    }
    for piece in payload.chunks(limit - 1) {
        let mut part = Vec::with_capacity(piece.len() + 1);
        part.push(kind);
        part.extend_from_slice(piece);
        world.process_at_rank(0).send_with_tag(&part[..], tag);
    }
}

impl Incoming {
    fn flush(&mut self) {
        let bytes = {
            let mut outbox = self.outbox.borrow_mut();
            outbox.since = None;
            std::mem::take(&mut outbox.bytes)
        };
        if !bytes.is_empty() {
            let tag = self.shared.session.load(Ordering::Acquire);
            send(&self.shared, KIND_FRAMES, tag, &bytes);
        }
    }

    /// Replies leave when no request is waiting, or when they are old or big.
    fn flush_unless_more_waiting(&mut self, world: &SimpleCommunicator) {
        let (len, since) = {
            let outbox = self.outbox.borrow();
            (outbox.bytes.len(), outbox.since)
        };
        if len == 0 {
            return;
        }
        let young = since.is_some_and(|t| t.elapsed() < BATCH_AGE);
        if young && len < BATCH_BYTES {
            let waiting = {
                let _mpi = self.shared.mpi();
                world.process_at_rank(0).immediate_probe().is_some()
            };
            if waiting {
                return;
            }
        }
        self.flush();
    }

    /// The next message from rank 0, waiting for it.
    fn wait_message(&mut self, world: &SimpleCommunicator) -> (i32, Vec<u8>) {
        self.shared.busy.store(false, Ordering::Release);
        let last = Instant::now();
        let message = loop {
            let got = {
                let _mpi = self.shared.mpi();
                world
                    .process_at_rank(0)
                    .immediate_matched_probe()
                    .map(|(message, status)| {
                        let tag = status.tag();
                        let (bytes, _) = (message, status).matched_receive_vec::<u8>();
                        (tag, bytes)
                    })
            };
            if let Some(got) = got {
                break got;
            }
            let quiet = last.elapsed();
            if quiet < SPIN {
                std::thread::yield_now();
            } else {
                let cap = if quiet > Duration::from_secs(1) {
                    MAX_IDLE_NAP
                } else {
                    MAX_NAP
                };
                std::thread::sleep((quiet / 16).min(cap));
            }
        };
        self.shared.busy.store(true, Ordering::Release);
        message
    }
}

impl RecvHalf for Incoming {
    fn recv(&mut self, buf: &mut [u8], _handles: &mut VecDeque<OsHandle>) -> io::Result<usize> {
        let world = SimpleCommunicator::world();
        loop {
            if let Some(n) = self.chunk.read(buf) {
                return Ok(n);
            }
            if self.stopped {
                return Ok(0);
            }
            let (tag, bytes) = match self.next.take() {
                Some(message) if self.shared.session.load(Ordering::Acquire) == 0 => message,
                Some(message) => {
                    self.next = Some(message);
                    return Ok(0);
                }
                None => {
                    self.flush_unless_more_waiting(&world);
                    self.wait_message(&world)
                }
            };
            match bytes.first() {
                Some(&KIND_STOP) => {
                    self.flush();
                    self.stopped = true;
                    return Ok(0);
                }
                Some(&KIND_FRAMES) => {
                    if tag == self.finished {
                        continue;
                    }
                    let session = self.shared.session.load(Ordering::Acquire);
                    if session == 0 {
                        self.shared.session.store(tag, Ordering::Release);
                    } else if tag != session {
                        // A new session while one is open: rank 0 has left the
                        // old one; end it here too, then serve the new one.
                        self.next = Some((tag, bytes));
                        return Ok(0);
                    }
                    // Past the kind byte.
                    self.chunk = Chunk::starting_at(bytes, 1);
                }
                _ => {}
            }
        }
    }
}

/// A worker rank's life: serve sessions until rank 0 says stop, finalize, exit.
pub(super) fn serve(universe: Universe, rank: usize) -> ! {
    crate::sys::ignore_sigpipe();
    let shared = Arc::new(Shared {
        mpi: Mutex::new(()),
        session: AtomicI32::new(0),
        busy: AtomicBool::new(true),
        done: AtomicBool::new(false),
    });
    let heartbeat = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("mp-mpi-heartbeat".to_string())
            .spawn(move || beat(&shared))
            .ok()
    };
    let outbox = Rc::new(RefCell::new(Outbox::default()));
    let mut reader = FrameReader::new(Incoming {
        shared: Arc::clone(&shared),
        outbox: Rc::clone(&outbox),
        chunk: Chunk::default(),
        finished: 0,
        next: None,
        stopped: false,
    });
    let mut writer = Outgoing {
        outbox: Rc::clone(&outbox),
    };
    loop {
        match crate::worker::serve_session(&mut reader, &mut writer, 0) {
            Ok(_) => {}
            // The session's stream ended inside a frame: rank 0 left it.
            Err(crate::Error::Disconnected) => {
                reader = FrameReader::new(reader.into_inner());
            }
            Err(e) => {
                eprintln!("mp: MPI rank {rank} cannot go on serving: {e}");
                SimpleCommunicator::world().abort(1);
            }
        }
        let incoming = reader.get_mut();
        incoming.flush();
        let session = shared.session.swap(0, Ordering::AcqRel);
        if session != 0 {
            incoming.finished = session;
            send(&shared, KIND_ENDED, session, &[]);
        }
        if incoming.stopped {
            break;
        }
    }
    shared.done.store(true, Ordering::Release);
    if let Some(heartbeat) = heartbeat {
        let _ = heartbeat.join();
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    crate::children::shutdown_children();
    drop(universe);
    std::process::exit(0)
}

/// While the rank works on a session's request, says so every `HEARTBEAT`.
fn beat(shared: &Shared) {
    while !shared.done.load(Ordering::Acquire) {
        std::thread::sleep(HEARTBEAT);
        let session = shared.session.load(Ordering::Acquire);
        if session != 0 && shared.busy.load(Ordering::Acquire) {
            send(shared, KIND_HEARTBEAT, session, &[]);
        }
    }
}
