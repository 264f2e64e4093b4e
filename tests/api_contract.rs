//! The listings of the API contract, compiled and run as written (with values
//! filled in), so a rename or a changed signature fails here first.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::job]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mp::job]
fn greet(name: String) {
    println!("hello {name} from {}", mp::current_process().name());
}

#[mp::job]
fn init_job(cfg: String) {
    assert_eq!(cfg, "cfg");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    text: String,
}

#[test]
fn section_2_processes() -> mp::Result<()> {
    let p: mp::Process<u64> = mp::Process::spawn(square, (7,))?;
    assert_ne!(p.pid(), std::process::id());
    let r: u64 = p.join()?;
    assert_eq!(r, 49);

    let mut p = mp::Process::builder()
        .name("worker-1")
        .daemon(true)
        .spawn(greet, ("ann".to_string(),))?;
    let _: bool = p.is_alive();
    assert_eq!(p.name(), "worker-1");
    assert!(p.is_daemon());
    let _: Option<()> = p.join_timeout(Duration::from_millis(100))?;
    p.terminate()?;
    p.kill()?;
    let _: Option<i32> = p.exitcode();

    let me = mp::current_process();
    let _: (&str, u32, bool) = (me.name(), me.pid(), me.is_worker());
    let _: Option<u32> = mp::parent_process().map(|p| p.pid());
    let _: Vec<(u32, String)> = mp::active_children()
        .iter()
        .map(|c| (c.pid(), c.name().to_string()))
        .collect();
    let _: usize = mp::cpu_count();
    Ok(())
}

#[test]
fn section_3_pools() -> mp::Result<()> {
    let pool = mp::pool(2);
    let pool2 = mp::Pool::new(2)?;
    let pool3 = mp::Pool::builder()
        .processes(2)
        .initializer(init_job, ("cfg".to_string(),))
        .max_tasks_per_child(1000)
        .build()?;
    let v: Vec<u64> = pool.map(square, 0..10)?;
    assert_eq!(v[9], 81);
    let v: Vec<u64> = pool.map_chunked(square, 0..1_000, 64)?;
    assert_eq!(v.len(), 1_000);
    let v: Vec<i64> = pool.starmap(add, vec![(1, 2), (3, 4)])?;
    assert_eq!(v, vec![3, 7]);
    let r: i64 = pool.apply(add, (1, 2))?;
    assert_eq!(r, 3);
    let a: mp::AsyncResult<i64> = pool.apply_async(add, (1, 2));
    let m: mp::AsyncResult<Vec<u64>> = pool.map_async(square, 0..10);
    let s: mp::AsyncResult<Vec<i64>> = pool.starmap_async(add, vec![(1, 2)]);
    a.ready();
    a.wait();
    let _: bool = a.wait_timeout(Duration::from_secs(30));
    let r = a.get_timeout(Duration::from_secs(30))?;
    assert_eq!(r, 3);
    assert_eq!(m.get()?.len(), 10);
    assert_eq!(s.get()?, vec![3]);
    for r in pool.imap(square, 0..10) {
        let _r: u64 = r?;
    }
    for r in pool.imap_unordered(square, 0..10) {
        let _r: u64 = r?;
    }
    pool.apply_async(add, (1, 2))
        .then(|r: mp::Result<i64>| println!("{r:?}"));
    let _: usize = pool.processes();
    pool.close();
    pool.join()?;
    pool2.terminate()?;
    drop(pool3);
    Ok(())
}

#[test]
fn section_4_queues_and_pipes() -> mp::Result<()> {
    let q: mp::Queue<String> = mp::Queue::new()?;
    let d = Duration::from_millis(10);
    q.put("x".to_string())?;
    q.put_timeout("y".to_string(), d)?;
    q.try_put("z".to_string())?;
    let _x = q.get()?;
    let _y = q.get_timeout(d)?;
    let _z = q.try_get()?;
    let bq: mp::Queue<u32> = mp::Queue::bounded(16)?;
    let _: (usize, bool, bool) = (bq.len(), bq.is_empty(), bq.is_full());
    bq.close();
    let jq: mp::JoinableQueue<u32> = mp::JoinableQueue::new()?;
    jq.put(1)?;
    let _ = jq.get()?;
    jq.task_done()?;
    jq.join()?;
    let sq: mp::SimpleQueue<u32> = mp::SimpleQueue::new()?;
    sq.put(1)?;
    assert_eq!(sq.get()?, 1);
    let _: bool = sq.is_empty();
    sq.close();

    let (a, b) = mp::pipe::<Msg>()?;
    let msg = Msg { text: "hi".into() };
    a.send(&msg)?;
    let m: Msg = b.recv()?;
    assert_eq!(m, msg);
    let _: bool = b.poll(Some(d))?;
    a.send_bytes(&[1, 2, 3])?;
    let v: Vec<u8> = b.recv_bytes()?;
    assert_eq!(v, vec![1, 2, 3]);
    Ok(())
}

#[derive(Clone, Copy, mp::Pod)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[test]
fn section_5_shared_memory_and_sync() -> mp::Result<()> {
    let d = Duration::from_millis(10);
    let v = mp::Value::new(0i64)?;
    *v.lock()? += 1;
    v.get()?;
    v.set(5)?;
    let arr = mp::Array::<f64>::new(10)?;
    let _ = mp::Array::from_slice(&[1, 2, 3])?;
    arr.lock()?[3] = 1.5;
    arr.get(3)?;
    arr.set(3, 2.0)?;
    let _: Vec<f64> = arr.to_vec()?;
    let _: usize = arr.len();
    let _p = mp::Value::new(Point { x: 1.0, y: 2.0 })?;

    let shm = mp::SharedMemory::create(1 << 20)?;
    let _: &str = shm.name();
    let _: usize = shm.len();
    let _other = mp::SharedMemory::open(shm.name())?;
    shm.write(0, &[1, 2, 3])?;
    let v: Vec<u8> = shm.read(0, 3)?;
    assert_eq!(v, vec![1, 2, 3]);
    let _ = shm.as_ptr();

    let l = mp::Lock::new()?;
    {
        let _g = l.lock()?;
    }
    assert!(l.try_lock()?.is_some());
    assert!(l.lock_timeout(d)?.is_some());
    let _r = mp::RLock::new()?;
    let s = mp::Semaphore::new(3)?;
    s.acquire()?;
    let _: bool = s.try_acquire()?;
    let _: bool = s.acquire_timeout(d)?;
    s.release()?;
    let _ = s.value();
    let bs = mp::BoundedSemaphore::new(3)?;
    assert!(matches!(bs.release(), Err(mp::Error::Bounded)));
    let e = mp::Event::new()?;
    e.set()?;
    e.clear()?;
    let _: bool = e.is_set();
    e.set()?;
    e.wait()?;
    let _: bool = e.wait_timeout(d)?;
    let c = mp::Condition::new()?;
    let g = c.lock()?;
    c.notify_one();
    c.notify_all();
    let (g, notified): (_, bool) = c.wait_timeout(g, d)?;
    assert!(!notified);
    drop(g);
    let b = mp::Barrier::new(1)?;
    let _i: usize = b.wait()?;
    let _i: usize = b.wait_timeout(d)?;
    let _ = (b.parties(), b.n_waiting(), b.is_broken());
    b.abort();
    b.reset();
    Ok(())
}

#[test]
fn section_6_managers() -> mp::Result<()> {
    let m = mp::Manager::start()?;
    let d: mp::DictProxy<String, i32> = m.dict()?;
    d.insert("a".into(), 1)?;
    let _: Option<i32> = d.get(&"a".into())?;
    let k = "a".to_string();
    d.remove(&k)?;
    d.len()?;
    d.contains_key(&k)?;
    d.keys()?;
    let _: std::collections::HashMap<String, i32> = d.to_map()?;
    let l: mp::ListProxy<i32> = m.list()?;
    l.push(1)?;
    l.get(0)?;
    l.set(0, 2)?;
    l.len()?;
    l.to_vec()?;
    let ns: mp::NamespaceProxy = m.namespace()?;
    ns.set("x", 5)?;
    let x: i32 = ns.get("x")?;
    assert_eq!(x, 5);
    let _q: mp::QueueProxy<u32> = m.queue()?;
    let _lk: mp::LockProxy = m.lock()?;
    let _ev: mp::EventProxy = m.event()?;
    let _v: mp::ValueProxy<i64> = m.value(0)?;
    d.clear()?;
    l.pop()?;
    l.extend(vec![1, 2])?;
    let _d = m.dict_named::<String, i32>("jobs")?;
    let server = mp::Manager::serve("127.0.0.1:0", b"secret")?;
    let addr: std::net::SocketAddr = server.address();
    let remote = mp::Manager::connect(addr, b"secret")?;
    let _ = remote.dict_named::<String, i32>("jobs")?;
    assert!(matches!(
        mp::Manager::connect(addr, b"wrong"),
        Err(mp::Error::AuthenticationFailed)
    ));
    server.shutdown()?;
    Ok(())
}

#[test]
fn section_7_errors() {
    fn describe(e: &mp::Error) -> &'static str {
        #[allow(clippy::unneeded_struct_pattern)] // the contract's own spelling
        match e {
            mp::Error::JobPanicked { .. } => "panicked",
            mp::Error::WorkerDied { .. } => "died",
            mp::Error::NotAJob { .. } => "not a job",
            mp::Error::Timeout { .. } => "timeout",
            mp::Error::Empty { .. } => "empty",
            mp::Error::Full { .. } => "full",
            mp::Error::Closed { .. } => "closed",
            mp::Error::Disconnected { .. } => "disconnected",
            mp::Error::Terminated { .. } => "terminated",
            mp::Error::BrokenBarrier { .. } => "broken",
            mp::Error::Bounded { .. } => "bounded",
            mp::Error::AuthenticationFailed { .. } => "auth",
            mp::Error::InvalidArgument { .. } => "invalid",
            mp::Error::Codec(..) => "codec",
            mp::Error::Io(..) => "io",
            _ => "other",
        }
    }
    assert_eq!(describe(&mp::Error::Closed), "closed");
    let e: Box<dyn std::error::Error> = Box::new(mp::Error::Empty);
    assert!(!e.to_string().is_empty());
}
