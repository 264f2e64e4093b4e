//! The manager server: a TCP listener and one thread per client connection.
//!
//! It runs as the job of a child process (see `mod.rs`): it binds, reports
//! the bound address through a pipe, then accepts until the process is
//! stopped. A connection is served only after the client proved the authkey;
//! a connection that breaks the protocol (garbage, an oversized frame, a wrong
//! key) is closed with one log line on stderr, and nothing else is affected.

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::auth::{self, Refusal};
use super::protocol::{
    self, ByteBuf, Failure, FrameError, HANDSHAKE_MAX, Request, Response, encode_frame, read_frame,
    write_frame,
};
use super::store::{self, ConnId, Flow, Object, Shared, Step, Table, Waiter};
use crate::pipe::Connection;
use crate::wire::max_frame_size;

/// How long an unauthenticated peer may take over the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a client may block (a client that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a blocked operation checks that its client is still there.
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// How often a blocked operation tells its client the server still lives.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
/// Most connections served at once; more are closed at once, with a log line.
const MAX_CONNECTIONS: usize = 1024;

/// What the server process is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Config {
    /// Addresses to try, in order; the first that binds is used.
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) authkey: ByteBuf,
}

/// The server's first and only message to its owner.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    Listening(SocketAddr),
    BindFailed {
        kind: BindErrorKind,
        message: String,
    },
}

/// The few bind errors worth telling apart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum BindErrorKind {
    InUse,
    NotAvailable,
    PermissionDenied,
    Other,
}

impl BindErrorKind {
    fn of(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::AddrInUse => BindErrorKind::InUse,
            io::ErrorKind::AddrNotAvailable => BindErrorKind::NotAvailable,
            io::ErrorKind::PermissionDenied => BindErrorKind::PermissionDenied,
            _ => BindErrorKind::Other,
        }
    }

    pub(crate) fn io_kind(self) -> io::ErrorKind {
        match self {
            BindErrorKind::InUse => io::ErrorKind::AddrInUse,
            BindErrorKind::NotAvailable => io::ErrorKind::AddrNotAvailable,
            BindErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            BindErrorKind::Other => io::ErrorKind::Other,
        }
    }
}

struct Server {
    table: Mutex<Table>,
    authkey: Vec<u8>,
    next_conn: AtomicU64,
    active: AtomicUsize,
}

/// One line on stderr, written at once so lines of several processes never mix.
fn log(message: std::fmt::Arguments<'_>) {
    let line = format!("mp manager (pid {}): {message}\n", std::process::id());
    let _ = io::Write::write_all(&mut io::stderr().lock(), line.as_bytes());
}

/// Binds, reports, and serves until the process is stopped.
pub(crate) fn run(config: Config, report: Connection<Report>) {
    let listener = match TcpListener::bind(&config.addrs[..]) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = report.send(&Report::BindFailed {
                kind: BindErrorKind::of(e.kind()),
                message: e.to_string(),
            });
            return;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            let _ = report.send(&Report::BindFailed {
                kind: BindErrorKind::Other,
                message: format!("the listening socket has no address: {e}"),
            });
            return;
        }
    };
    if report.send(&Report::Listening(addr)).is_err() {
        // The owner is gone already; so is the reason to serve.
        return;
    }
    drop(report);
    let server = Arc::new(Server {
        table: Mutex::new(Table::default()),
        authkey: config.authkey.0,
        next_conn: AtomicU64::new(1),
        active: AtomicUsize::new(0),
    });
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept:
                // pause a little and go on serving the others.
                log(format_args!("accepting a connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if server.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            log(format_args!(
                "refused a connection: {MAX_CONNECTIONS} connections are open already"
            ));
            continue;
        }
        server.active.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&server);
        let spawned = std::thread::Builder::new()
            .name("mp-manager-conn".into())
            .stack_size(512 * 1024)
            .spawn(move || {
                serve_connection(&shared, stream);
                shared.active.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            server.active.fetch_sub(1, Ordering::Relaxed);
            log(format_args!("no thread for a new connection: {e}"));
        }
    }
}

fn lock_table(server: &Server) -> MutexGuard<'_, Table> {
    server.table.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve_connection(server: &Server, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "an unknown peer".to_string(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let mut out = Vec::with_capacity(256);
    match auth::server_side(&mut reader, &server.authkey, &mut out) {
        Ok(()) => {}
        Err(Refusal::WrongKey) => {
            log(format_args!(
                "refused a connection from {peer}: it does not know the authkey"
            ));
            return;
        }
        Err(Refusal::Broken(why)) => {
            log(format_args!(
                "closed a connection from {peer} before it authenticated: {why}"
            ));
            return;
        }
    }
    let _ = reader.get_ref().set_read_timeout(None);
    let conn = server.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut held: HashMap<u64, Object> = HashMap::new();
    let mut known: HashMap<u64, Object> = HashMap::new();
    let mut buf = Vec::with_capacity(256);
    let mut beat = Vec::new();
    let max = max_frame_size();
    let ended = loop {
        match read_frame(&mut reader, &mut buf, max) {
            Ok(true) => {}
            Ok(false) => break None,
            Err(FrameError::Io(e)) if is_disconnect(&e) => break None,
            Err(FrameError::Eof) => break None,
            Err(e) => break Some(e.to_string()),
        }
        let request: Request<'_> = match protocol::decode(&buf) {
            Ok(request) => request,
            Err(e) => break Some(format!("a malformed request ({})", e.message())),
        };
        let mut reply = |r: &Response<'_>| {
            if let Err(e) = encode_frame(&mut out, r, max) {
                let failed = Response::Failed(Failure::Invalid(e.to_string()));
                let _ = encode_frame(&mut out, &failed, max);
            }
        };
        let flow = match request {
            Request::Create { kind, name, init } => {
                let created = lock_table(server).create(kind, name, init);
                match created {
                    Ok(id) => reply(&Response::Created { id }),
                    Err(failure) => reply(&Response::Failed(failure)),
                }
                Flow::Reply
            }
            Request::Call { id, op } => {
                let object = match known.get(&id) {
                    Some(object) => Some(object.clone()),
                    None => {
                        let found = lock_table(server).get(id);
                        if let Some(object) = &found {
                            known.insert(id, object.clone());
                        }
                        found
                    }
                };
                match object {
                    Some(object) => {
                        let now = Instant::now();
                        let mut waiter = ConnWaiter {
                            conn,
                            stream: reader.get_ref(),
                            last_check: now,
                            last_beat: now,
                            beat: &mut beat,
                        };
                        store::call(id, &object, op, &mut waiter, &mut held, &mut reply)
                    }
                    None => {
                        reply(&Response::Failed(Failure::Invalid(format!(
                            "this manager has no object {id} (a proxy from another manager?)"
                        ))));
                        Flow::Reply
                    }
                }
            }
        };
        match flow {
            Flow::Gone => break None,
            Flow::Reply => {
                if let Err(e) = io::Write::write_all(&mut reader.get_ref(), &out) {
                    break (!is_disconnect(&e)).then(|| format!("writing a reply failed: {e}"));
                }
            }
        }
    };
    store::release_all(conn, held);
    if let Some(why) = ended {
        log(format_args!("closed the connection from {peer}: {why}"));
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Waits on behalf of one connection, checking now and then that its client
/// is still there and telling it the server is (heartbeats).
struct ConnWaiter<'a> {
    conn: ConnId,
    stream: &'a TcpStream,
    last_check: Instant,
    last_beat: Instant,
    beat: &'a mut Vec<u8>,
}

impl ConnWaiter<'_> {
    fn client_gone(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last_beat) >= HEARTBEAT {
            self.last_beat = now;
            if write_frame(self.stream, &Response::Pending, self.beat, HANDSHAKE_MAX).is_err() {
                return true;
            }
        }
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        // A client waits for our reply and sends nothing meanwhile: readable
        // means it closed (0 bytes) or broke the protocol.
        let gone = match self.stream.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        };
        gone || self.stream.set_nonblocking(false).is_err()
    }
}

impl Waiter for ConnWaiter<'_> {
    fn conn(&self) -> ConnId {
        self.conn
    }

    fn step<'g, S>(
        &mut self,
        shared: &'g Shared<S>,
        guard: MutexGuard<'g, S>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'g, S>, Step) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return (guard, Step::Deadline);
        }
        let check_at = self.last_check + CHECK_EVERY;
        if now >= check_at {
            // No socket calls under the object's lock.
            drop(guard);
            let gone = self.client_gone(now);
            let guard = shared.lock();
            self.last_check = Instant::now();
            return (guard, if gone { Step::Gone } else { Step::Again });
        }
        let until = deadline.map_or(check_at, |d| d.min(check_at));
        (shared.wait_timeout(guard, until - now), Step::Again)
    }
}
