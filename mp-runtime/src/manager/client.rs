//! The client side: authenticated connections to one manager, pooled per process.
//!
//! A call takes an idle connection from the pool (or opens and authenticates
//! a new one), sends one request, reads its response and gives the connection
//! back. So threads never queue behind each other's blocking calls, and a lock
//! guard simply keeps the connection it acquired through until it releases.
//! Every read has a timeout; while a blocking operation waits, the server
//! sends heartbeats, so a silent server is a dead one and never a hang.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::auth::{self, ClientFailure};
use super::protocol::{
    self, FrameError, Owner, PENDING, Request, Response, encode_frame, read_frame,
};
use super::server::HEARTBEAT;
use crate::error::{CodecError, Error, Result};
use crate::wire::max_frame_size;

/// How long connecting to a manager may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may stay silent before it counts as gone: several
/// heartbeats' worth.
const REPLY_TIMEOUT: Duration = Duration::from_secs(6 * HEARTBEAT.as_secs());
/// Idle connections kept per manager and process.
const MAX_IDLE: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One manager as seen from this process.
pub(crate) struct Client {
    addr: SocketAddr,
    authkey: Vec<u8>,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("idle", &lock(&self.idle).len())
            .finish_non_exhaustive()
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    scratch: Vec<u8>,
}

/// Every manager this process talks to, so proxies that arrive in a message
/// share the connections of those already here.
static CLIENTS: Mutex<Vec<Arc<Client>>> = Mutex::new(Vec::new());

impl Client {
    /// The client for `addr` and `authkey` in this process (made on first use).
    pub(crate) fn shared(addr: SocketAddr, authkey: &[u8]) -> Arc<Client> {
        let mut clients = lock(&CLIENTS);
        if let Some(client) = clients
            .iter()
            .find(|c| c.addr == addr && c.authkey == authkey)
        {
            return Arc::clone(client);
        }
        let client = Arc::new(Client {
            addr,
            authkey: authkey.to_vec(),
            idle: Mutex::new(Vec::new()),
        });
        clients.push(Arc::clone(&client));
        client
    }

    /// Forgets this manager: idle connections close, and a proxy that arrives
    /// later starts afresh.
    pub(crate) fn forget(self: &Arc<Self>) {
        lock(&CLIENTS).retain(|c| !Arc::ptr_eq(c, self));
        lock(&self.idle).clear();
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    /// An authenticated connection for exclusive use until the lease drops.
    pub(crate) fn lease(self: &Arc<Self>) -> Result<Lease> {
        let idle = lock(&self.idle).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        Ok(Lease {
            client: Arc::clone(self),
            conn: Some(conn),
        })
    }

    /// One request and its response, on a leased connection.
    pub(crate) fn call(self: &Arc<Self>, request: &Request<'_>) -> Result<Reply> {
        self.lease()?.call(request)
    }

    fn connect(&self) -> Result<Conn> {
        let context = || format!("connecting to the mp manager at {}", self.addr);
        let stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).map_err(|e| {
            Error::io(
                &format!("{} (is it running, and is the address right?)", context()),
                e,
            )
        })?;
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(REPLY_TIMEOUT)))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)));
        setup.map_err(|e| Error::io(&context(), e))?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(16 * 1024, stream),
            scratch: Vec::with_capacity(256),
        };
        match auth::client_side(&mut conn.reader, &self.authkey, &mut conn.scratch) {
            Ok(()) => Ok(conn),
            Err(ClientFailure::WrongKey) => Err(Error::AuthenticationFailed),
            Err(ClientFailure::NotAManager(why)) => Err(Error::io(
                &context(),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the server there is not an mp manager: {why}"),
                ),
            )),
            Err(ClientFailure::Frame(e)) => Err(self.frame_error(e)),
        }
    }

    fn frame_error(&self, e: FrameError) -> Error {
        match e {
            FrameError::Eof => Error::Disconnected,
            FrameError::TooLarge { len, max } => Error::Codec(CodecError::new(format!(
                "the manager at {} sent a frame of {len} bytes, over the maximum frame size of \
                 {max} bytes; raise it with mp::set_max_frame_size or MP_MAX_FRAME_SIZE",
                self.addr
            ))),
            FrameError::Codec(e) => Error::Codec(e),
            FrameError::Io(e) => self.io_error(e),
        }
    }

    fn io_error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Error::Disconnected,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::io(
                &format!(
                    "the mp manager at {} was silent for {} s (its process hangs, its machine \
                     is down, or the network is cut)",
                    self.addr,
                    REPLY_TIMEOUT.as_secs()
                ),
                e,
            ),
            _ => Error::io(&format!("talking to the mp manager at {}", self.addr), e),
        }
    }
}

/// A connection leased from a [`Client`]; back to the pool on drop, unless it broke.
pub(crate) struct Lease {
    client: Arc<Client>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("addr", &self.client.addr)
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Lease {
    /// Sends `request` and waits for its response (skipping heartbeats).
    pub(crate) fn call(&mut self, request: &Request<'_>) -> Result<Reply> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Disconnected);
        };
        let max = max_frame_size();
        // An encoding error leaves the connection as it was.
        encode_frame(&mut conn.scratch, request, max).map_err(|e| self.client.frame_error(e))?;
        if let Err(e) = conn.reader.get_ref().write_all(&conn.scratch) {
            self.conn = None;
            return Err(self.client.io_error(e));
        }
        let mut buf = Vec::new();
        loop {
            match read_frame(&mut conn.reader, &mut buf, max) {
                Ok(true) if buf[..] == PENDING => continue,
                Ok(true) => return Ok(Reply { buf }),
                Ok(false) => {
                    self.conn = None;
                    return Err(Error::Disconnected);
                }
                Err(e) => {
                    self.conn = None;
                    return Err(self.client.frame_error(e));
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = lock(&self.client.idle);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// A response as received; [`Reply::response`] decodes it.
#[derive(Debug)]
pub(crate) struct Reply {
    buf: Vec<u8>,
}

impl Reply {
    pub(crate) fn response(&self) -> Result<Response<'_>> {
        protocol::decode(&self.buf).map_err(|e| {
            Error::Codec(CodecError::new(format!(
                "a malformed response from the manager: {}",
                e.message()
            )))
        })
    }
}

/// The owner of a re-entrant lock: this process and thread.
pub(crate) fn current_owner() -> Owner {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    }
    let process = *PROCESS.get_or_init(|| {
        auth::random_bytes::<8>()
            .map(u64::from_le_bytes)
            // Without OS randomness, the pid and the time still tell processes apart.
            .unwrap_or_else(|_| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                (u64::from(std::process::id()) << 32) ^ nanos
            })
    });
    Owner {
        process,
        thread: THREAD.with(|t| *t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::Manager;

    /// Writes `bytes` on an authenticated connection and checks the server closes it.
    fn closed_after(client: &Arc<Client>, bytes: &[u8]) {
        let mut lease = client.lease().unwrap();
        let conn = lease.conn.as_mut().unwrap();
        conn.reader.get_ref().write_all(bytes).unwrap();
        let mut buf = Vec::new();
        match read_frame(&mut conn.reader, &mut buf, 1 << 20) {
            Ok(false) => {}
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
        lease.conn = None;
    }

    #[test]
    fn garbage_after_authentication_closes_only_that_connection() {
        let m = Manager::serve("127.0.0.1:0", b"k").unwrap();
        let d = m.dict::<u8, u8>().unwrap();
        d.insert(1, 1).unwrap();
        let client = Client::shared(m.address(), b"k");
        // A frame whose body is no request.
        closed_after(&client, &[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff]);
        // A frame over the size limit.
        closed_after(&client, &u32::MAX.to_le_bytes());
        // A request for an object that does not exist is an error, not a closed connection.
        let reply = client
            .call(&Request::Call {
                id: 999_999,
                op: protocol::Op::Len,
            })
            .unwrap();
        assert!(matches!(reply.response().unwrap(), Response::Failed(_)));
        // The server goes on serving.
        d.insert(2, 2).unwrap();
        assert_eq!(d.len().unwrap(), 2);
    }

    #[test]
    fn owners_differ_by_thread() {
        let here = current_owner();
        assert_eq!(here, current_owner());
        let there = std::thread::spawn(current_owner).join().unwrap();
        assert_eq!(here.process, there.process);
        assert_ne!(here.thread, there.thread);
    }
}
