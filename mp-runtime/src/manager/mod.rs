//! Managers: objects that live in a server process and are used through
//! proxies, like `multiprocessing.Manager`. See `README.md` beside this file
//! for the design.

mod auth;
mod client;
mod protocol;
mod proxy;
mod server;
mod store;

use std::any::TypeId;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::codec;
use crate::error::{Error, Result};
use crate::pipe::{Connection, pipe};
use crate::process::Process;
use crate::registry::JobEntry;
use crate::worker::{Invocation, Outcome};

use client::Client;
use protocol::{ByteBuf, Bytes, Init, Kind, Request, Response};
use proxy::Handle;
use server::{Config, Report};

pub use proxy::{
    BarrierProxy, ConditionProxy, ConditionProxyGuard, DictProxy, EventProxy, ListProxy, LockProxy,
    LockProxyGuard, NamespaceProxy, QueueProxy, RLockProxy, RLockProxyGuard, SemaphoreProxy,
    ValueProxy,
};

/// How long a new server process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A manager: a server process holding shared objects, and the handle to
/// create them. Like Python's `multiprocessing.Manager()` and `BaseManager`.
///
/// Each object lives in the server; a proxy (`DictProxy`, `QueueProxy`,
/// `LockProxy`, ...) is a small handle to it. Proxies are
/// `Clone + Serialize + Deserialize + Send + Sync`: pass them to
/// `Process::spawn`, to pool tasks, or inside your own structs, and every
/// copy, in every process, reaches the same object. Each proxy call is one
/// atomic operation on the server.
///
/// ```
/// # use mp_runtime as mp;
/// let m = mp::Manager::start()?;
/// let d: mp::DictProxy<String, i32> = m.dict()?;
/// d.insert("a".into(), 1)?;
/// assert_eq!(d.get(&"a".into())?, Some(1));
/// let l: mp::ListProxy<i32> = m.list_from(0..3)?;
/// l.push(3)?;
/// assert_eq!(l.to_vec()?, vec![0, 1, 2, 3]);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// - [`Manager::start`] runs the server as a child process on a loopback port
///   with a random authkey; it dies with this process (even if this one is
///   killed) and is stopped when the `Manager` is dropped or
///   [`shutdown`](Manager::shutdown).
/// - [`Manager::serve`] does the same on an address of your choice, with your
///   authkey, so that other programs can [`Manager::connect`] to it, from
///   this machine or another one.
/// - A proxy whose server is gone returns an error (`Disconnected`, or `Io`
///   when it cannot connect), never hangs.
/// - Objects live as long as their server: dropping every proxy of an object
///   does not free it.
pub struct Manager {
    client: Arc<Client>,
    address: SocketAddr,
    server: Option<ServerProcess>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.address)
            .field("pid", &self.pid())
            .finish()
    }
}

/// The server process a `Manager` started.
struct ServerProcess {
    pid: u32,
    process: Mutex<Option<Process<()>>>,
}

impl ServerProcess {
    fn stop(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(process) = process {
            // The server holds nothing but memory: ending it at once is safe.
            let _ = process.kill();
            let _ = process.join();
        }
    }
}

static NEXT_MANAGER: AtomicUsize = AtomicUsize::new(1);

impl Manager {
    /// Starts a manager server as a child process (spawn mode: this binary,
    /// re-executed) listening on a loopback port with a random authkey.
    ///
    /// The server is a daemon child: it is stopped when this `Manager` is
    /// dropped or shut down, and it exits with this process however that
    /// ends.
    pub fn start() -> Result<Manager> {
        let authkey: [u8; 32] = auth::random_bytes()
            .map_err(|e| Error::io("making a random authkey for the manager", e))?;
        Manager::spawn_server(
            vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            authkey.to_vec(),
        )
    }

    /// Starts a manager server as a child process listening on `addr` (port 0
    /// picks a free port: see [`address`](Manager::address)), for programs
    /// that [`connect`](Manager::connect) with the same `authkey`.
    ///
    /// Clients must prove they know the authkey (HMAC-SHA256 challenge and
    /// response, both ways) before anything is served. An empty authkey is a
    /// key like any other, but it is refused on an address that is not
    /// loopback (`Err(InvalidArgument)`): anyone who reaches the port could
    /// use the manager.
    ///
    /// ```no_run
    /// # use mp_runtime as mp;
    /// let server = mp::Manager::serve("0.0.0.0:50000", b"secret")?;
    /// let jobs = server.dict_named::<String, u64>("jobs")?;
    /// // ... another program: mp::Manager::connect("host:50000", b"secret")?
    /// # Ok::<(), mp::Error>(())
    /// ```
    pub fn serve(addr: impl ToSocketAddrs, authkey: impl AsRef<[u8]>) -> Result<Manager> {
        let addrs = resolve(addr, "serve")?;
        let authkey = authkey.as_ref();
        if authkey.is_empty() && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Error::invalid(format!(
                "an empty authkey on {} would let anyone who reaches that address use the \
                 manager: give an authkey, or serve on a loopback address",
                addrs[0]
            )));
        }
        Manager::spawn_server(addrs, authkey.to_vec())
    }

    /// Connects to a manager another program serves (see [`serve`](Manager::serve)).
    ///
    /// Fails with `Err(AuthenticationFailed)` if the authkeys differ, and with
    /// `Err(Io)` if nothing answers at `addr`. Every client sees the same
    /// objects under the same names (`dict_named` and friends).
    pub fn connect(addr: impl ToSocketAddrs, authkey: impl AsRef<[u8]>) -> Result<Manager> {
        let addrs = resolve(addr, "connect to")?;
        let mut last = None;
        for addr in addrs {
            let client = Client::shared(addr, authkey.as_ref());
            match client.lease() {
                Ok(lease) => {
                    drop(lease);
                    return Ok(Manager {
                        client,
                        address: addr,
                        server: None,
                    });
                }
                Err(Error::AuthenticationFailed) => return Err(Error::AuthenticationFailed),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid("no address to connect to")))
    }

    fn spawn_server(addrs: Vec<SocketAddr>, authkey: Vec<u8>) -> Result<Manager> {
        // Keep the server job in every binary that starts a manager.
        std::hint::black_box(&SERVE_JOB);
        let (ours, theirs) = pipe::<Report>()?;
        let name = format!(
            "SyncManager-{}",
            NEXT_MANAGER.fetch_add(1, Ordering::Relaxed)
        );
        let config = Config {
            addrs: addrs.clone(),
            authkey: ByteBuf(authkey.clone()),
        };
        let process = Process::builder()
            .name(name)
            .daemon(true)
            .spawn(serve_job, (config, theirs))?;
        let pid = process.pid();
        let deadline = Instant::now() + START_TIMEOUT;
        let report = loop {
            match ours.poll(Some(Duration::from_millis(50))) {
                Ok(true) => break ours.recv(),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            if !process.is_alive() {
                break Err(Error::Disconnected);
            }
            if Instant::now() >= deadline {
                break Err(Error::Timeout {
                    after: START_TIMEOUT,
                });
            }
        };
        match report {
            Ok(Report::Listening(address)) => Ok(Manager {
                client: Client::shared(connectable(address), &authkey),
                address,
                server: Some(ServerProcess {
                    pid,
                    process: Mutex::new(Some(process)),
                }),
            }),
            Ok(Report::BindFailed { kind, message }) => {
                let _ = process.join();
                Err(Error::io(
                    &format!("the manager could not listen on {}", show(&addrs)),
                    io::Error::new(kind.io_kind(), message),
                ))
            }
            Err(e) => {
                let _ = process.kill();
                let exit = match process.join() {
                    Err(Error::WorkerDied { exit, .. }) => format!(" ({exit})"),
                    _ => String::new(),
                };
                Err(Error::WorkerStart {
                    message: format!(
                        "the manager server process {pid} did not start listening{exit}: {e}"
                    ),
                })
            }
        }
    }

    /// The address the server listens on (the port actually bound when 0 was asked for),
    /// or the one this manager connected to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The authkey clients must know.
    pub fn authkey(&self) -> &[u8] {
        self.client.authkey()
    }

    /// The server's process id, for a manager this process started.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|s| s.pid)
    }

    /// Stops the server this `Manager` started; its objects are gone and their
    /// proxies return errors from then on. Calling it again does nothing.
    ///
    /// A manager made by [`connect`](Manager::connect) belongs to another
    /// program: `Err(InvalidArgument)`.
    pub fn shutdown(&self) -> Result<()> {
        match &self.server {
            Some(server) => {
                server.stop();
                self.client.forget();
                Ok(())
            }
            None => Err(Error::invalid(
                "this Manager was made by Manager::connect: its server belongs to the program \
                 that serves it, which shuts it down",
            )),
        }
    }

    fn create(&self, kind: Kind, name: Option<&str>, init: Init<'_>) -> Result<Handle> {
        let reply = self.client.call(&Request::Create { kind, name, init })?;
        match reply.response()? {
            Response::Created { id } => Ok(Handle::new(Arc::clone(&self.client), id)),
            Response::Failed(failure) => Err(proxy::failure_error(failure)),
            other => Err(proxy::unexpected(&other)),
        }
    }

    fn create_named(&self, kind: Kind, name: &str, init: Init<'_>) -> Result<Handle> {
        self.create(kind, Some(name), init)
    }

    /// A new, empty shared dict (Python's `manager.dict()`).
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>> {
        Ok(DictProxy::from_handle(self.create(
            Kind::Dict,
            None,
            Init::Empty,
        )?))
    }

    /// A new shared dict holding `pairs` (Python's `manager.dict({...})`).
    pub fn dict_from<K: Serialize, V: Serialize>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DictProxy<K, V>> {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| Ok((codec::encode(&k)?, codec::encode(&v)?)))
            .collect::<Result<Vec<_>>>()?;
        let pairs = encoded.iter().map(|(k, v)| (Bytes(k), Bytes(v))).collect();
        Ok(DictProxy::from_handle(self.create(
            Kind::Dict,
            None,
            Init::Pairs(pairs),
        )?))
    }

    /// The dict called `name`, created empty the first time any client asks.
    pub fn dict_named<K, V>(&self, name: &str) -> Result<DictProxy<K, V>> {
        Ok(DictProxy::from_handle(self.create_named(
            Kind::Dict,
            name,
            Init::Empty,
        )?))
    }

    /// A new, empty shared list (Python's `manager.list()`).
    pub fn list<T>(&self) -> Result<ListProxy<T>> {
        Ok(ListProxy::from_handle(self.create(
            Kind::List,
            None,
            Init::Empty,
        )?))
    }

    /// A new shared list holding `items` (Python's `manager.list(range(5))`).
    pub fn list_from<T: Serialize>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>> {
        let encoded = items
            .into_iter()
            .map(|item| codec::encode(&item))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let items = encoded.iter().map(|b| Bytes(b)).collect();
        Ok(ListProxy::from_handle(self.create(
            Kind::List,
            None,
            Init::Items(items),
        )?))
    }

    /// The list called `name`, created empty the first time any client asks.
    pub fn list_named<T>(&self, name: &str) -> Result<ListProxy<T>> {
        Ok(ListProxy::from_handle(self.create_named(
            Kind::List,
            name,
            Init::Empty,
        )?))
    }

    /// A new namespace: named attributes of any serde type (Python's `manager.Namespace()`).
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        Ok(NamespaceProxy::from_handle(self.create(
            Kind::Namespace,
            None,
            Init::Empty,
        )?))
    }

    /// The namespace called `name`, created empty the first time any client asks.
    pub fn namespace_named(&self, name: &str) -> Result<NamespaceProxy> {
        Ok(NamespaceProxy::from_handle(self.create_named(
            Kind::Namespace,
            name,
            Init::Empty,
        )?))
    }

    /// A new unbounded queue (Python's `manager.Queue()`).
    pub fn queue<T>(&self) -> Result<QueueProxy<T>> {
        Ok(QueueProxy::from_handle(self.create(
            Kind::Queue,
            None,
            Init::Queue { maxsize: 0 },
        )?))
    }

    /// A new queue holding at most `maxsize` items: `put` waits while it is full
    /// (Python's `manager.Queue(maxsize)`). `maxsize` 0 → `Err(InvalidArgument)`.
    pub fn queue_bounded<T>(&self, maxsize: usize) -> Result<QueueProxy<T>> {
        if maxsize == 0 {
            return Err(Error::invalid(
                "a bounded queue needs a maxsize of at least 1 (use queue() for an unbounded one)",
            ));
        }
        Ok(QueueProxy::from_handle(self.create(
            Kind::Queue,
            None,
            Init::Queue {
                maxsize: maxsize as u64,
            },
        )?))
    }

    /// The unbounded queue called `name`, created the first time any client asks.
    pub fn queue_named<T>(&self, name: &str) -> Result<QueueProxy<T>> {
        Ok(QueueProxy::from_handle(self.create_named(
            Kind::Queue,
            name,
            Init::Queue { maxsize: 0 },
        )?))
    }

    /// A new lock (Python's `manager.Lock()`).
    pub fn lock(&self) -> Result<LockProxy> {
        Ok(LockProxy::from_handle(self.create(
            Kind::Lock,
            None,
            Init::Empty,
        )?))
    }

    /// The lock called `name`, created the first time any client asks.
    pub fn lock_named(&self, name: &str) -> Result<LockProxy> {
        Ok(LockProxy::from_handle(self.create_named(
            Kind::Lock,
            name,
            Init::Empty,
        )?))
    }

    /// A new re-entrant lock: the thread that holds it may take it again
    /// (Python's `manager.RLock()`).
    pub fn rlock(&self) -> Result<RLockProxy> {
        Ok(RLockProxy::from_handle(self.create(
            Kind::RLock,
            None,
            Init::Empty,
        )?))
    }

    /// The re-entrant lock called `name`, created the first time any client asks.
    pub fn rlock_named(&self, name: &str) -> Result<RLockProxy> {
        Ok(RLockProxy::from_handle(self.create_named(
            Kind::RLock,
            name,
            Init::Empty,
        )?))
    }

    /// A new semaphore with `value` permits (Python's `manager.Semaphore(value)`).
    pub fn semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.new_semaphore(None, value, false)
    }

    /// A new semaphore that refuses to be released above `value`
    /// (`Err(Bounded)`; Python's `manager.BoundedSemaphore(value)`).
    pub fn bounded_semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.new_semaphore(None, value, true)
    }

    /// The semaphore called `name`, created with `value` permits the first time any client asks.
    pub fn semaphore_named(&self, name: &str, value: usize) -> Result<SemaphoreProxy> {
        self.new_semaphore(Some(name), value, false)
    }

    fn new_semaphore(
        &self,
        name: Option<&str>,
        value: usize,
        bounded: bool,
    ) -> Result<SemaphoreProxy> {
        Ok(SemaphoreProxy::from_handle(self.create(
            Kind::Semaphore,
            name,
            Init::Semaphore {
                value: value as u64,
                bounded,
            },
        )?))
    }

    /// A new event, initially clear (Python's `manager.Event()`).
    pub fn event(&self) -> Result<EventProxy> {
        Ok(EventProxy::from_handle(self.create(
            Kind::Event,
            None,
            Init::Empty,
        )?))
    }

    /// The event called `name`, created clear the first time any client asks.
    pub fn event_named(&self, name: &str) -> Result<EventProxy> {
        Ok(EventProxy::from_handle(self.create_named(
            Kind::Event,
            name,
            Init::Empty,
        )?))
    }

    /// A new condition variable with its own lock (Python's `manager.Condition()`).
    pub fn condition(&self) -> Result<ConditionProxy> {
        Ok(ConditionProxy::from_handle(self.create(
            Kind::Condition,
            None,
            Init::Empty,
        )?))
    }

    /// The condition called `name`, created the first time any client asks.
    pub fn condition_named(&self, name: &str) -> Result<ConditionProxy> {
        Ok(ConditionProxy::from_handle(self.create_named(
            Kind::Condition,
            name,
            Init::Empty,
        )?))
    }

    /// A new barrier for `parties` waiters (Python's `manager.Barrier(parties)`);
    /// 0 parties → `Err(InvalidArgument)`.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.new_barrier(None, parties)
    }

    /// The barrier called `name`, created for `parties` the first time any client asks.
    pub fn barrier_named(&self, name: &str, parties: usize) -> Result<BarrierProxy> {
        self.new_barrier(Some(name), parties)
    }

    fn new_barrier(&self, name: Option<&str>, parties: usize) -> Result<BarrierProxy> {
        if parties == 0 {
            return Err(Error::invalid("a barrier needs at least 1 party"));
        }
        Ok(BarrierProxy::from_handle(self.create(
            Kind::Barrier,
            name,
            Init::Barrier {
                parties: parties as u64,
            },
        )?))
    }

    /// A new shared value of any serde type (Python's `manager.Value(typecode, value)`).
    pub fn value<T: Serialize>(&self, initial: T) -> Result<ValueProxy<T>> {
        let bytes = codec::encode(&initial)?;
        Ok(ValueProxy::from_handle(self.create(
            Kind::Value,
            None,
            Init::Value(Bytes(&bytes)),
        )?))
    }

    /// The value called `name`, created holding `initial` the first time any client asks.
    pub fn value_named<T: Serialize>(&self, name: &str, initial: T) -> Result<ValueProxy<T>> {
        let bytes = codec::encode(&initial)?;
        Ok(ValueProxy::from_handle(self.create_named(
            Kind::Value,
            name,
            Init::Value(Bytes(&bytes)),
        )?))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.stop();
            self.client.forget();
        }
    }
}

fn resolve(addr: impl ToSocketAddrs, what: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::io(&format!("resolving the address to {what}"), e))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::invalid(format!(
            "the address to {what} resolves to nothing"
        )));
    }
    Ok(addrs)
}

fn show(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Where a process on this machine reaches a server bound to `addr`: a
/// wildcard address (`0.0.0.0`, `[::]`) is reached through loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// The server process's job: what `#[mp::job]` would register, written out by
/// hand (the runtime cannot use its own macro crate).
fn serve_job(config: Config, report: Connection<Report>) {
    server::run(config, report);
}

fn serve_job_type_id() -> TypeId {
    crate::registry::type_id_of_val(&serve_job)
}

fn serve_job_invoke(call: Invocation<'_>) -> Outcome {
    crate::worker::invoke(call, |(config, report): (Config, Connection<Report>)| {
        serve_job(config, report)
    })
}

#[linkme::distributed_slice(crate::registry::JOBS)]
static SERVE_JOB: JobEntry = JobEntry::new(
    concat!(module_path!(), "::serve_job"),
    "fn(Config, Connection<Report>) -> ()",
    serve_job_type_id,
    serve_job_invoke,
);

// windows-gnu links with --gc-sections and keeps `.CRT$XC*` but not linkme's
// section: a constructor that touches the entry keeps it alive.
#[cfg(all(windows, target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".CRT$XCU")]
static KEEP_SERVE_JOB: extern "C" fn() = {
    extern "C" fn keep() {
        std::hint::black_box(&SERVE_JOB);
    }
    keep
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_through_loopback() {
        let v4: SocketAddr = "0.0.0.0:7".parse().unwrap();
        assert_eq!(connectable(v4), "127.0.0.1:7".parse().unwrap());
        let v6: SocketAddr = "[::]:7".parse().unwrap();
        assert_eq!(connectable(v6), "[::1]:7".parse().unwrap());
        let other: SocketAddr = "10.1.2.3:7".parse().unwrap();
        assert_eq!(connectable(other), other);
    }

    #[test]
    fn empty_authkey_is_refused_off_loopback() {
        let err = Manager::serve("0.0.0.0:0", b"").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn the_server_job_is_registered() {
        let entry = crate::registry::job_of::<fn(Config, Connection<Report>)>();
        assert!(entry.is_err(), "a fn pointer is not a job");
        let by_name = crate::registry::job_named(SERVE_JOB.name());
        assert!(by_name.is_some());
    }
}
