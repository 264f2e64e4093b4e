//! Rank 0's side. The pool's threads append frames to a per-rank message and
//! read the replies filed per rank. MPI calls are serialized by one lock
//! (`Hub::io`): the thread that submits a task for an idle rank sends it, a
//! reader owed a reply polls for it, and the hub thread polls when no reader
//! does, watches the ranks' liveness and stops them at the end. Each hand-off
//! between threads is a switch on rank 0's one CPU, so the common paths avoid
//! them (docs/cluster.md, "Rank 0's hand-offs").
//!
//! Each pool's use of a rank is a session, named by the MPI tag of its messages;
//! replies of an earlier session (after `terminate`) are dropped by tag. A
//! message is a kind byte then bytes; frames form a byte stream per session, and
//! all frames waiting for a rank leave in one message (batching).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::mpi::point_to_point::{MatchedReceiveVec, Source};
use ::mpi::topology::{Communicator, SimpleCommunicator};
use serde::Serialize;

use super::{Chunk, ffi};
use crate::error::{Error, ExitStatus, Result};
use crate::pool::link::{Link, LinkReader, LinkWriter, Peer};
use crate::sys::OsHandle;
use crate::wire::{self, Frame, FrameReader, Hello, HelloAck, Mismatch, RecvHalf, Request};

/// Message kinds, the first byte of every message.
pub(super) const KIND_FRAMES: u8 = 0;
/// Rank to rank 0: still working on the session's requests.
pub(super) const KIND_HEARTBEAT: u8 = 1;
/// Rank to rank 0: the session is over (it read `Shutdown`).
pub(super) const KIND_ENDED: u8 = 2;
/// Rank 0 to rank: finalize and exit.
pub(super) const KIND_STOP: u8 = 3;

/// The tag of messages outside any session (`KIND_STOP`).
pub(super) const TAG_CONTROL: i32 = 0;
/// Session tags cycle through 1..=MAX_SESSION_TAG (MPI guarantees tags up to 32767).
const MAX_SESSION_TAG: i32 = 32767;

/// How often a busy rank says it is alive.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(200);

/// Silence after which a rank with unanswered requests is presumed dead.
fn liveness_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("MP_MPI_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms >= 2 * HEARTBEAT.as_millis() as u64)
            .map_or(Duration::from_secs(2), Duration::from_millis)
    })
}

/// How long the hub polls MPI without sleeping after the last message: replies
/// to short tasks then arrive with no wake-up in between.
const SPIN: Duration = Duration::from_millis(2);
/// The longest nap between polls while replies are awaited.
const MAX_NAP: Duration = Duration::from_millis(1);
/// A thread that queues a request for an idle rank, or the `SEND_BATCH`th one
/// waiting for a rank, sends what waits itself (when no other thread is
/// calling MPI): the rank starts at once, and a stream of small tasks leaves
/// in batches.
const SEND_BATCH: usize = 8;
/// How long rank 0's pool threads poll before they sleep at a hand-off (a
/// reader waiting for a reply, or for the next one of a busy pool; a caller
/// for its result): a kernel wake-up costs tens of microseconds, a round trip
/// to a polling rank a few.
pub(crate) const HANDOFF_SPIN: Duration = Duration::from_micros(200);

#[derive(Default)]
struct RankState {
    /// Tag of the open session; 0 when none.
    session: i32,
    /// The message waiting to be sent: `KIND_FRAMES`, then frames.
    out: Vec<u8>,
    /// How many.
    out_frames: usize,
    /// Messages of an earlier session still to be sent (its `Shutdown`), with
    /// their tag: they go first, so the rank ends that session before the next.
    stale: Vec<(i32, Vec<u8>)>,
    /// Received bytes of the session, in order.
    inbox: VecDeque<Vec<u8>>,
    /// The session's reader sees the end of the stream once the inbox is empty.
    ended: bool,
    /// Presumed dead: never used again.
    dead: bool,
    /// The pool ended the session (terminate): its reader sees the end at
    /// once, and whatever the rank still sends for it is dropped.
    killed: bool,
    /// Requests sent and not answered yet (each request gets one reply frame).
    expected: usize,
    /// Last time the rank was heard from, or a request was sent to a quiet rank.
    last_heard: Option<Instant>,
    /// Finds frame boundaries in the incoming stream, to count replies.
    scan: FrameScan,
    /// Process id, from the session's handshake.
    pid: u32,
}

impl RankState {
    /// Appends a frame to the message waiting for the rank, straight into it
    /// (one copy of the payload on rank 0, however large); on error the
    /// message is as it was.
    fn push_frame<H: Serialize>(
        &mut self,
        header: &H,
        payload: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let mark = self.out.len();
        if mark == 0 {
            self.out.push(KIND_FRAMES);
        }
        wire::write_frame(&mut self.out, header, payload, &[], scratch).inspect_err(|_| {
            self.out.truncate(mark);
        })
    }
}

struct HubState {
    ranks: Vec<RankState>,
    /// Readers asleep on `arrived`: without any, nobody needs a wake-up.
    sleepers: usize,
    /// Something waits to be sent.
    dirty: bool,
    /// The hub thread sleeps on `wake`.
    asleep: bool,
    stop: bool,
}

struct Hub {
    state: Mutex<HubState>,
    /// Wakes the hub thread.
    wake: Condvar,
    /// Wakes readers.
    arrived: Condvar,
    /// Counts what readers wait for (messages filed, sessions ended), for
    /// readers that poll before they sleep.
    filed: AtomicU64,
    /// The MPI calls' state; whoever holds it may call MPI.
    io: Mutex<Io>,
    /// Readers polling MPI themselves ([`Hub::drive_until`]).
    drivers: AtomicUsize,
    /// A reader stopped polling MPI before what it waited for came.
    handed_over: AtomicBool,
    /// When a reader last stopped polling MPI, in nanoseconds since `epoch`.
    last_drive: AtomicU64,
    epoch: Instant,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Sends under way; held by the one thread calling MPI at a time.
#[derive(Default)]
struct Io {
    sending: Vec<ffi::Send>,
}

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();
static POOL_OPEN: AtomicBool = AtomicBool::new(false);
static NEXT_TAG: AtomicI32 = AtomicI32::new(1);

fn lock(m: &Mutex<HubState>) -> MutexGuard<'_, HubState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hub(size: usize) -> Result<Arc<Hub>> {
    if let Some(hub) = HUB.get() {
        return Ok(Arc::clone(hub));
    }
    let hub = Arc::new(Hub {
        state: Mutex::new(HubState {
            ranks: (0..size).map(|_| RankState::default()).collect(),
            sleepers: 0,
            dirty: false,
            asleep: false,
            stop: false,
        }),
        wake: Condvar::new(),
        arrived: Condvar::new(),
        filed: AtomicU64::new(0),
        io: Mutex::new(Io::default()),
        drivers: AtomicUsize::new(0),
        handed_over: AtomicBool::new(false),
        last_drive: AtomicU64::new(0),
        epoch: Instant::now(),
        thread: Mutex::new(None),
    });
    // Only rank 0's main program gets here, before any pool exists; a lost race
    // just drops the spare hub before its thread starts.
    if HUB.set(Arc::clone(&hub)).is_err() {
        return HUB
            .get()
            .cloned()
            .ok_or_else(|| Error::invalid("the MPI hub vanished"));
    }
    let runner = Arc::clone(&hub);
    let handle = std::thread::Builder::new()
        .name("mp-mpi".to_string())
        .spawn(move || runner.run())
        .map_err(|e| Error::io("starting the MPI thread", e))?;
    *hub.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    Ok(hub)
}

/// Ends every rank's service and stops the hub thread (rank 0's exit).
pub(super) fn stop_all(size: usize) {
    let Ok(hub) = hub(size) else { return };
    {
        let mut state = lock(&hub.state);
        state.stop = true;
        for rank in state.ranks.iter_mut() {
            rank.ended = true;
        }
    }
    hub.wake.notify_all();
    hub.filed.fetch_add(1, Ordering::Release);
    hub.arrived.notify_all();
    let handle = hub.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

impl Hub {
    /// The hub thread: drives MPI whenever no reader does (see [`Hub::drive_until`]),
    /// watches the ranks' liveness, and tells the ranks to stop at the end.
    fn run(&self) {
        let world = SimpleCommunicator::world();
        let mut last_activity = Instant::now();
        loop {
            let (active, awaiting_sends) = match self.io.try_lock() {
                Ok(mut io) => {
                    let (active, stop) = self.progress(&mut io, &world);
                    if stop {
                        let sending = std::mem::take(&mut io.sending);
                        self.stop_ranks(&world, sending);
                        return;
                    }
                    (active, !io.sending.is_empty())
                }
                // A reader is driving MPI right now.
                Err(_) => (false, false),
            };
            self.watch();
            if active {
                last_activity = Instant::now();
                continue;
            }
            let state = lock(&self.state);
            if state.stop {
                continue;
            }
            if self.handed_over.swap(false, Ordering::AcqRel) {
                // A reader stopped polling with work outstanding: poll on.
                last_activity = Instant::now();
            } else if self.drivers.load(Ordering::Acquire) > 0 || self.driven_recently() {
                // A reader polls MPI while it waits for a reply: two pollers
                // would only take turns on rank 0's CPU. It wakes us when it
                // stops; until then look in now and then (the liveness watch).
                drop(self.nap(state, MAX_NAP));
                continue;
            }
            if state.dirty {
                continue;
            }
            let awaiting = awaiting_sends || state.ranks.iter().any(|r| r.expected > 0);
            let quiet = last_activity.elapsed();
            if !awaiting && quiet >= SPIN {
                // Nothing to wait for from any rank, and no recent traffic:
                // sleep until a pool sends.
                drop(self.nap(state, Duration::from_millis(200)));
                last_activity = Instant::now();
                continue;
            }
            if quiet < SPIN {
                // Replies to short tasks, and the next request of a busy pool,
                // come soon: poll without sleeping.
                drop(state);
                std::thread::yield_now();
            } else {
                let nap = (quiet / 16).min(MAX_NAP);
                drop(self.nap(state, nap));
            }
        }
    }

    /// Sleeps until woken or for `limit`; senders wake the hub only while it
    /// sleeps (a futex wake per task would cost more than the task).
    fn nap<'a>(
        &self,
        mut state: MutexGuard<'a, HubState>,
        limit: Duration,
    ) -> MutexGuard<'a, HubState> {
        state.asleep = true;
        let mut state = self
            .wake
            .wait_timeout(state, limit)
            .map_or_else(|e| e.into_inner().0, |(s, _)| s);
        state.asleep = false;
        state
    }

    /// One round of MPI work: start the sends waiting, file what arrived,
    /// complete finished sends. Whoever holds `io` may call it: the hub thread,
    /// or a reader waiting for a reply. Returns (anything moved, stop asked).
    fn progress(&self, io: &mut Io, world: &SimpleCommunicator) -> (bool, bool) {
        let (outgoing, stop) = self.take_outgoing();
        let mut active = !outgoing.is_empty();
        for (rank, tag, bytes) in outgoing {
            io.sending.push(ffi::Send::start(bytes, rank, tag));
        }
        if stop {
            return (active, true);
        }
        while let Some((message, status)) = world.any_process().immediate_matched_probe() {
            let source = usize::try_from(status.source_rank()).unwrap_or(0);
            let tag = status.tag();
            let (bytes, _) = (message, status).matched_receive_vec::<u8>();
            self.file(source, tag, bytes);
            active = true;
        }
        io.sending.retain_mut(|send| !send.test());
        (active, false)
    }

    /// Polls MPI on the calling thread until `ready` or for at most `limit`.
    ///
    /// A reader waiting for a reply calls it: the reply then reaches it with no
    /// thread switch on rank 0, whose threads usually share one CPU (`mpirun`
    /// binds each rank to a core), where each hand-off costs a switch.
    fn drive_until(&self, limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
        self.drivers.fetch_add(1, Ordering::AcqRel);
        let world = SimpleCommunicator::world();
        let start = Instant::now();
        let done = loop {
            let mut sending = false;
            if let Ok(mut io) = self.io.try_lock() {
                // `stop` is the hub thread's to act on; it sees it too.
                let _ = self.progress(&mut io, &world);
                sending = !io.sending.is_empty();
            }
            if ready() {
                break true;
            }
            if start.elapsed() >= limit {
                break false;
            }
            // A large message leaves only as fast as MPI is polled.
            if !sending {
                std::thread::yield_now();
            }
        };
        self.last_drive.store(self.since_epoch(), Ordering::Release);
        if !done {
            // This reader goes to sleep: the hub thread polls again.
            self.handed_over.store(true, Ordering::Release);
        }
        if self.drivers.fetch_sub(1, Ordering::AcqRel) == 1 && !done {
            self.wake.notify_one();
        }
        done
    }

    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A reader polled MPI a moment ago: it is likely between two replies and
    /// about to poll again.
    fn driven_recently(&self) -> bool {
        let last = self.last_drive.load(Ordering::Acquire);
        last != 0 && self.since_epoch().saturating_sub(last) < HANDOFF_SPIN.as_nanos() as u64
    }

    fn take_outgoing(&self) -> (Vec<(usize, i32, Vec<u8>)>, bool) {
        let mut state = lock(&self.state);
        let mut outgoing = Vec::new();
        if state.dirty {
            state.dirty = false;
            for (rank, r) in state.ranks.iter_mut().enumerate() {
                if r.dead {
                    r.out.clear();
                    r.stale.clear();
                    continue;
                }
                let mut batches = std::mem::take(&mut r.stale);
                if !r.out.is_empty() {
                    batches.push((r.session, std::mem::take(&mut r.out)));
                }
                r.out_frames = 0;
                for (tag, mut bytes) in batches {
                    // One message per batch (it starts with its kind byte); a
                    // batch over MPI's int count is split (the frames form a
                    // byte stream, so any split is fine).
                    let limit = i32::MAX as usize;
                    if bytes.len() > limit {
                        let rest = bytes.split_off(limit);
                        outgoing.push((rank, tag, bytes));
                        for piece in rest.chunks(limit - 1) {
                            let mut message = Vec::with_capacity(piece.len() + 1);
                            message.push(KIND_FRAMES);
                            message.extend_from_slice(piece);
                            outgoing.push((rank, tag, message));
                        }
                    } else {
                        outgoing.push((rank, tag, bytes));
                    }
                }
            }
        }
        (outgoing, state.stop)
    }

    /// Files one message from `rank` for its session's reader.
    fn file(&self, rank: usize, tag: i32, bytes: Vec<u8>) {
        let mut state = lock(&self.state);
        let Some(r) = state.ranks.get_mut(rank) else {
            return;
        };
        if r.dead {
            return;
        }
        // Any message shows the rank alive, also one for an ended session (a
        // rank still finishing a terminated pool's jobs before a new handshake).
        r.last_heard = Some(Instant::now());
        if r.session == 0 || tag != r.session || r.killed {
            // A reply to a session that was terminated: nobody waits for it.
            return;
        }
        match bytes.first() {
            Some(&KIND_FRAMES) => {
                let mut bytes = bytes;
                bytes.remove(0);
                let replies = r.scan.feed(&bytes);
                r.expected = r.expected.saturating_sub(replies);
                r.inbox.push_back(bytes);
            }
            Some(&KIND_ENDED) => {
                r.expected = 0;
                r.ended = true;
            }
            _ => return,
        }
        let sleepers = state.sleepers;
        drop(state);
        self.filed.fetch_add(1, Ordering::Release);
        if sleepers > 0 {
            self.arrived.notify_all();
        }
    }

    /// Presumes dead the ranks that owe replies and have been silent too long.
    fn watch(&self) {
        let timeout = liveness_timeout();
        let mut state = lock(&self.state);
        let mut died = false;
        for (rank, r) in state.ranks.iter_mut().enumerate() {
            if r.dead || r.expected == 0 {
                continue;
            }
            if r.last_heard.is_some_and(|t| t.elapsed() > timeout) {
                eprintln!(
                    "mp: MPI rank {rank} (process {}) has not answered for {timeout:?}; \
                     presuming it dead",
                    r.pid
                );
                r.dead = true;
                r.ended = true;
                r.out.clear();
                died = true;
            }
        }
        drop(state);
        if died {
            self.filed.fetch_add(1, Ordering::Release);
            self.arrived.notify_all();
        }
    }

    /// Tells every live rank to finalize, and waits (briefly) for the messages to leave.
    fn stop_ranks(&self, world: &SimpleCommunicator, mut sending: Vec<ffi::Send>) {
        let live: Vec<usize> = {
            let state = lock(&self.state);
            (1..state.ranks.len())
                .filter(|&r| !state.ranks[r].dead)
                .collect()
        };
        for rank in live {
            sending.push(ffi::Send::start(vec![KIND_STOP], rank, TAG_CONTROL));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sending.is_empty() && Instant::now() < deadline {
            // Drain replies still arriving, so no rank blocks on a send to us.
            while let Some((message, status)) = world.any_process().immediate_matched_probe() {
                let _ = (message, status).matched_receive_vec::<u8>();
            }
            sending.retain_mut(|send| !send.test());
            std::thread::yield_now();
        }
    }
}

/// Counts complete frames in a byte stream (`[u32 LE length][length bytes]`).
#[derive(Default)]
struct FrameScan {
    length: [u8; 4],
    have: usize,
    skip: usize,
}

impl FrameScan {
    fn feed(&mut self, mut bytes: &[u8]) -> usize {
        let mut frames = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                if self.skip == 0 {
                    frames += 1;
                }
                continue;
            }
            let n = (4 - self.have).min(bytes.len());
            self.length[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 4 {
                self.have = 0;
                self.skip = u32::from_le_bytes(self.length) as usize;
                if self.skip == 0 {
                    frames += 1;
                }
            }
        }
        frames
    }
}

/// The worker ranks, leased to one pool at a time.
#[derive(Debug)]
pub(crate) struct Ranks {
    hub: HubRef,
    size: usize,
}

struct HubRef(Arc<Hub>);

impl std::fmt::Debug for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Ranks {
    pub(super) fn lease(size: usize) -> Result<Ranks> {
        if POOL_OPEN.swap(true, Ordering::AcqRel) {
            return Err(Error::invalid(
                "an MPI pool is already alive: its ranks serve one pool at a time; drop it \
                 (or close() and join() it) before asking for another",
            ));
        }
        match hub(size) {
            Ok(hub) => Ok(Ranks {
                hub: HubRef(hub),
                size,
            }),
            Err(e) => {
                POOL_OPEN.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Worker ranks: 1..size.
    pub(crate) fn count(&self) -> usize {
        self.size - 1
    }

    pub(crate) fn alive(&self, slot: usize) -> bool {
        let state = lock(&self.hub.0.state);
        !state.stop && state.ranks.get(slot + 1).is_some_and(|r| !r.dead)
    }

    /// Opens a new session with the rank of `slot` and shakes hands.
    pub(crate) fn open(&self, slot: usize, name: &str) -> Result<Link> {
        let rank = slot + 1;
        let hub = Arc::clone(&self.hub.0);
        let tag = next_tag();
        {
            let mut state = lock(&hub.state);
            if state.stop {
                return Err(Error::Closed);
            }
            let r = &mut state.ranks[rank];
            if r.dead {
                return Err(dead_rank(rank, r.pid, None));
            }
            if !r.out.is_empty() {
                let old = std::mem::take(&mut r.out);
                r.stale.push((r.session, old));
                state.dirty = true;
            }
            let r = &mut state.ranks[rank];
            r.session = tag;
            r.inbox.clear();
            r.ended = false;
            r.killed = false;
            r.expected = 0;
            r.scan = FrameScan::default();
        }
        let mut writer = RankWriter {
            hub: Arc::clone(&hub),
            rank,
            tag,
            scratch: Vec::with_capacity(256),
        };
        let mut reader = RankReader {
            input: FrameReader::new(Inbox {
                hub: Arc::clone(&hub),
                rank,
                tag,
                chunk: Chunk::default(),
                last_data: Instant::now(),
            }),
            max_frame: wire::max_frame_size(),
        };
        let pid = handshake(&mut writer, &mut reader, rank, name)?;
        lock(&hub.state).ranks[rank].pid = pid;
        Ok(Link {
            peer: Arc::new(RankPeer {
                hub: HubRef(hub),
                rank,
                tag,
                pid,
            }),
            reader: Box::new(reader),
            writer: Box::new(writer),
        })
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        POOL_OPEN.store(false, Ordering::Release);
    }
}

fn next_tag() -> i32 {
    loop {
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        if (1..=MAX_SESSION_TAG).contains(&tag) {
            return tag;
        }
        let _ = NEXT_TAG.compare_exchange(tag + 1, 1, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn dead_rank(rank: usize, pid: u32, job: Option<String>) -> Error {
    Error::WorkerDied {
        pid,
        exit: ExitStatus::Signal(9),
        job,
        rank: Some(rank),
    }
}

fn handshake(
    writer: &mut RankWriter,
    reader: &mut RankReader,
    rank: usize,
    name: &str,
) -> Result<u32> {
    let parent_name = crate::process::current_process().name().to_string();
    let hello = Hello::ours(name, &parent_name);
    writer.send_header(&hello, &[])?;
    let frame = match reader.input.read_frame(64 * 1024)? {
        Some(frame) => frame,
        None => return Err(dead_rank(rank, 0, None)),
    };
    let ack: HelloAck = frame.header()?;
    let message = match ack.mismatch() {
        None => return Ok(ack.pid),
        Some(Mismatch::Protocol { theirs }) => format!(
            "MPI rank {rank} speaks protocol {theirs} but rank 0 speaks {}; every rank must run \
             the same build",
            wire::PROTOCOL_VERSION
        ),
        Some(Mismatch::Registry {
            theirs,
            their_jobs,
            ours,
            our_jobs,
        }) => format!(
            "MPI rank {rank} runs a binary built from different code (job registry \
             fingerprint {theirs:016x}, {their_jobs} jobs; rank 0 has {ours:016x}, {our_jobs} \
             jobs): every rank must run the same executable (copy it to every machine after \
             building)"
        ),
    };
    Err(Error::WorkerStart { message })
}

/// Rank 0's writer for one session.
#[derive(Clone)]
struct RankWriter {
    hub: Arc<Hub>,
    rank: usize,
    tag: i32,
    scratch: Vec<u8>,
}

impl RankWriter {
    fn send_header<H: Serialize>(&mut self, header: &H, payload: &[u8]) -> Result<()> {
        let mut state = lock(&self.hub.state);
        let r = &mut state.ranks[self.rank];
        if r.session != self.tag || r.ended || r.dead || r.killed {
            return Err(Error::Disconnected);
        }
        r.push_frame(header, payload, &mut self.scratch)?;
        let idle = r.expected == 0;
        if idle {
            // The rank's silence is measured from now.
            r.last_heard = Some(Instant::now());
        }
        r.expected += 1;
        r.out_frames += 1;
        let send_now = idle || r.out_frames >= SEND_BATCH;
        state.dirty = true;
        let asleep = state.asleep;
        drop(state);
        // Send it now if no other thread is calling MPI: the rank starts on it
        // while this thread goes on (submitting more, say).
        if send_now && let Ok(mut io) = self.hub.io.try_lock() {
            let _ = self.hub.progress(&mut io, &SimpleCommunicator::world());
        }
        // A reader polling MPI sends it; when the last one stops polling, it
        // wakes the hub thread, which then sees `dirty`.
        if asleep && self.hub.drivers.load(Ordering::Acquire) == 0 {
            self.hub.wake.notify_one();
        }
        Ok(())
    }
}

impl LinkWriter for RankWriter {
    fn send(&mut self, request: &Request<'_>, payload: &[u8], handles: &[OsHandle]) -> Result<()> {
        let job = match request {
            Request::Task { job, .. } | Request::Init { job } => job,
            Request::Shutdown { .. } => "",
        };
        super::check_no_handles(job, handles)?;
        self.send_header(request, payload)
    }

    fn nonblocking_clone(&self) -> Option<Box<dyn LinkWriter>> {
        Some(Box::new(self.clone()))
    }
}

/// Rank 0's reader for one session.
struct RankReader {
    input: FrameReader<Inbox>,
    max_frame: usize,
}

impl LinkReader for RankReader {
    fn next(&mut self) -> Result<Option<Frame>> {
        self.input.read_frame(self.max_frame)
    }
}

/// The session's incoming byte stream, filled by the hub thread.
struct Inbox {
    hub: Arc<Hub>,
    rank: usize,
    tag: i32,
    chunk: Chunk,
    /// When the last bytes arrived.
    last_data: Instant,
}

impl RecvHalf for Inbox {
    fn recv(
        &mut self,
        buf: &mut [u8],
        _handles: &mut VecDeque<OsHandle>,
    ) -> std::io::Result<usize> {
        loop {
            if let Some(n) = self.chunk.read(buf) {
                return Ok(n);
            }
            let mut state = lock(&self.hub.state);
            let mut spun = false;
            loop {
                let r = &mut state.ranks[self.rank];
                if r.session != self.tag || r.killed {
                    return Ok(0);
                }
                if let Some(chunk) = r.inbox.pop_front() {
                    self.chunk = Chunk::starting_at(chunk, 0);
                    self.last_data = Instant::now();
                    break;
                }
                if r.ended || r.dead {
                    return Ok(0);
                }
                if !spun && (r.expected > 0 || self.last_data.elapsed() < HANDOFF_SPIN) {
                    // A reply is owed, or the pool is busy (the next request
                    // comes soon): poll MPI for it before sleeping.
                    spun = true;
                    let seen = self.hub.filed.load(Ordering::Acquire);
                    drop(state);
                    let filed = &self.hub.filed;
                    self.hub
                        .drive_until(HANDOFF_SPIN, || filed.load(Ordering::Acquire) != seen);
                    state = lock(&self.hub.state);
                    continue;
                }
                state.sleepers += 1;
                state = self
                    .hub
                    .arrived
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                state.sleepers -= 1;
                spun = false;
            }
        }
    }
}

/// One rank, seen from the pool.
#[derive(Debug)]
struct RankPeer {
    hub: HubRef,
    rank: usize,
    tag: i32,
    pid: u32,
}

impl Peer for RankPeer {
    fn pid(&self) -> u32 {
        self.pid
    }

    /// A rank cannot be killed from here: its session ends now (the pool's
    /// reader sees the end), and the rank is told to end it too; it finishes
    /// the job it is running first.
    fn kill(&self) {
        let hub = &self.hub.0;
        let mut state = lock(&hub.state);
        let r = &mut state.ranks[self.rank];
        if r.session != self.tag || r.killed {
            return;
        }
        let was_open = !r.ended;
        r.killed = true;
        r.ended = true;
        r.expected = 0;
        r.inbox.clear();
        if was_open && !r.dead {
            let shutdown = Request::Shutdown { report_last: false };
            if r.push_frame(&shutdown, &[], &mut Vec::new()).is_ok() {
                state.dirty = true;
            }
        }
        drop(state);
        hub.wake.notify_one();
        hub.filed.fetch_add(1, Ordering::Release);
        hub.arrived.notify_all();
    }

    fn reap(&self) -> ExitStatus {
        let state = lock(&self.hub.0.state);
        if state.ranks[self.rank].dead {
            ExitStatus::Signal(9)
        } else {
            ExitStatus::Code(0)
        }
    }

    fn died(&self, _exit: ExitStatus, job: Option<String>) -> Error {
        dead_rank(self.rank, self.pid, job)
    }
}

#[cfg(test)]
mod tests {
    use super::FrameScan;
    use crate::wire::{self, Reply};

    fn frames(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for id in 0..n {
            let payload = vec![7u8; id as usize * 100];
            wire::write_frame(&mut out, &Reply::Done { id }, &payload, &[], &mut scratch).unwrap();
        }
        out
    }

    #[test]
    fn frame_scan_counts_whole_frames_whatever_the_split() {
        let stream = frames(5);
        for piece in [1, 3, 4, 5, 17, 1000, stream.len()] {
            let mut scan = FrameScan::default();
            let counted: usize = stream.chunks(piece).map(|c| scan.feed(c)).sum();
            assert_eq!(counted, 5, "pieces of {piece} bytes");
        }
        let mut scan = FrameScan::default();
        assert_eq!(scan.feed(&stream[..stream.len() - 1]), 4);
        assert_eq!(scan.feed(&stream[stream.len() - 1..]), 1);
    }
}
