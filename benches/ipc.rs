//! Benchmarks of what crosses processes: `Queue` throughput, `Pipe` round trips
//! and bulk transfer, `Value` increments from two processes, uncontended lock
//! costs, and a Manager dict insert, each beside a baseline measured in the same
//! run with no library in between (a forked child on a raw socketpair or TCP
//! connection, `memcpy`, `std::sync::Mutex`).
//!
//! Run with `cargo bench --bench ipc` (a filter such as `-- pipe` runs the
//! benchmarks whose id contains it). Figures vary from run to run on a shared
//! machine: compare the ratios printed at the end, which come from one run.
//!
//! This binary is also the workers' binary: a worker re-executes it and is
//! turned into a worker before `main` runs.

// The baselines fork and use Unix sockets: on other hosts this bench only says so.
#[cfg(not(unix))]
fn main() {
    eprintln!("the ipc benchmarks need a Unix host (their baselines fork and use socketpairs)");
}

#[cfg(unix)]
fn main() {
    unix::main()
}

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod unix {
    use crate::common::{
        SAMPLES, Suite, benchmarking, median, median_ns, memcpy_baseline, recorded,
    };
    use std::collections::BTreeMap;
    use std::hint::black_box;
    use std::io::{BufReader, Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode, Throughput};

    /// The bulk transfer of a benchmark run.
    const BULK: usize = 64 << 20;
    /// The bulk transfer of a test-mode run (`cargo test --benches`), which runs
    /// each benchmark once, unoptimized, only to check that it works.
    const BULK_TEST: usize = 1 << 20;
    /// Keys the Manager dict benchmark cycles through (the dict stays this small).
    const DICT_KEYS: u64 = 1024;

    // -----------------------------------------------------------------------
    // Jobs: the child side of each mp benchmark. Each serves requests from a
    // control connection until the parent's end of it is gone (or, where the
    // requests are counts, until a count of 0).

    /// For each request `k`: puts `0..k` on the queue. Runs on `cpu` when given.
    #[mp::job]
    fn produce(queue: mp::Queue<u64>, ctl: mp::Connection<u64>, cpu: Option<usize>) -> u64 {
        if let Some(cpu) = cpu {
            affinity::pin(0, cpu);
        }
        let mut total = 0;
        while let Ok(k @ 1..) = ctl.recv() {
            for i in 0..k {
                if queue.put(i).is_err() {
                    return total;
                }
            }
            total += k;
        }
        total
    }

    /// Sends back every message until the peer is gone; returns how many.
    /// Runs on `cpu` when given.
    #[mp::job]
    fn echo(conn: mp::Connection<u64>, cpu: Option<usize>) -> u64 {
        if let Some(cpu) = cpu {
            affinity::pin(0, cpu);
        }
        let mut count = 0;
        while let Ok(m) = conn.recv() {
            if conn.send(&m).is_err() {
                break;
            }
            count += 1;
        }
        count
    }

    /// For each raw message received, answers with its length.
    #[mp::job]
    fn sink_bytes(conn: mp::Connection<u64>) -> u64 {
        let mut count = 0;
        while let Ok(bytes) = conn.recv_bytes() {
            if conn.send(&(bytes.len() as u64)).is_err() {
                break;
            }
            count += 1;
        }
        count
    }

    /// For each message received, answers with its length.
    #[mp::job]
    fn sink_buf(conn: mp::Connection<serde_bytes::ByteBuf>) -> u64 {
        let mut count = 0;
        while let Ok(bytes) = conn.recv() {
            let len = (bytes.len() as u64).to_le_bytes();
            if conn
                .send(&serde_bytes::ByteBuf::from(len.to_vec()))
                .is_err()
            {
                break;
            }
            count += 1;
        }
        count
    }

    /// For each request `k`: adds 1 to the value `k` times under its lock, then
    /// answers `k`. Runs on `cpu` when given.
    #[mp::job]
    fn increment(value: mp::Value<i64>, ctl: mp::Connection<u64>, cpu: Option<usize>) -> u64 {
        if let Some(cpu) = cpu {
            affinity::pin(0, cpu);
        }
        let mut total = 0;
        while let Ok(k @ 1..) = ctl.recv() {
            for _ in 0..k {
                match value.lock() {
                    Ok(mut v) => *v += 1,
                    Err(_) => return total,
                }
            }
            total += k;
            if ctl.send(&k).is_err() {
                break;
            }
        }
        total
    }

    pub(crate) fn main() {
        let mut c = Criterion::default().configure_from_args();
        queue(&mut c);
        pipe(&mut c);
        bulk(&mut c);
        value(&mut c);
        lock(&mut c);
        manager(&mut c);
        c.final_summary();
        if benchmarking() {
            print_summary();
        }
    }

    /// True under `cargo bench` (criterion's `--bench` without `--test`).
    fn bulk_len() -> usize {
        if benchmarking() { BULK } else { BULK_TEST }
    }

    /// A ratio measured by alternating two benchmarks in short blocks, so that
    /// both see the same machine (one after the other, minutes apart, their
    /// figures drift by 15-30 % here).
    #[derive(Debug, Clone, Copy)]
    struct Paired {
        /// Median time per iteration of the baseline and of mp (ns).
        base_ns: f64,
        mp_ns: f64,
        /// Median of the per-round ratios mp / baseline.
        ratio: f64,
    }

    /// Rounds of a paired measurement.
    const PAIRED_ROUNDS: usize = 21;

    static PAIRED: Mutex<BTreeMap<String, Paired>> = Mutex::new(BTreeMap::new());

    /// Alternates `block` iterations of `base` and of `mp`, `PAIRED_ROUNDS`
    /// times, and records the result under `key`. Only under `cargo bench`,
    /// and only when criterion ran both just before (`{group}/{base_id}` and
    /// `{group}/{mp_id}`), so that whatever they start exists already, started
    /// in the intended order.
    fn paired(
        key: &str,
        [base_id, mp_id]: [&str; 2],
        block: u64,
        mut base: impl FnMut(u64) -> Duration,
        mut mp: impl FnMut(u64) -> Duration,
    ) {
        if !benchmarking() || !recorded(base_id) || !recorded(mp_id) {
            return;
        }
        let per_iter = |d: Duration| d.as_nanos() as f64 / block as f64;
        let (mut b, mut m, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..PAIRED_ROUNDS {
            let x = per_iter(base(block));
            let y = per_iter(mp(block));
            b.push(x);
            m.push(y);
            r.push(y / x);
        }
        let p = Paired {
            base_ns: median(b),
            mp_ns: median(m),
            ratio: median(r),
        };
        PAIRED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), p);
    }

    fn paired_result(key: &str) -> Option<Paired> {
        PAIRED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// A job running in a child process, with the parent's end of its control
    /// connection; stopped and joined on drop.
    struct Child<C, R: serde::de::DeserializeOwned> {
        ctl: Option<mp::Connection<C>>,
        process: Option<mp::Process<R>>,
    }

    impl<C, R: serde::de::DeserializeOwned> Child<C, R> {
        fn ctl(&self) -> &mp::Connection<C> {
            self.ctl.as_ref().expect("open")
        }
    }

    impl<C, R: serde::de::DeserializeOwned> Drop for Child<C, R> {
        fn drop(&mut self) {
            // The end of the control connection ends the job's loop.
            drop(self.ctl.take());
            if let Some(process) = self.process.take() {
                process.join().expect("join a benchmark child");
            }
        }
    }

    /// Starts a job in a child process with `spawn`, which gets the child's end
    /// of a new control connection.
    fn spawn_child<C, R: serde::de::DeserializeOwned>(
        spawn: impl FnOnce(mp::Connection<C>) -> mp::Result<mp::Process<R>>,
    ) -> Child<C, R> {
        let (ours, theirs) = mp::pipe::<C>().expect("pipe");
        let process = spawn(theirs).expect("spawn");
        Child {
            ctl: Some(ours),
            process: Some(process),
        }
    }

    // -----------------------------------------------------------------------
    // Forked raw children: the floors, with no library in between. Each is
    // forked before the mp side of its group starts, so that it holds no copy
    // of mp's descriptors, and reaped before the mp side starts.

    /// A forked child running `serve(fd)` on its end of a connection.
    struct RawChild<S> {
        stream: Option<S>,
        pid: libc::pid_t,
    }

    impl<S: AsRawFd> RawChild<S> {
        /// Forks a child that runs `serve(their fd, our fd)`; the parent keeps `ours`.
        ///
        /// # Safety
        /// `serve` must make only async-signal-safe calls (read, write, close,
        /// _exit) and allocate nothing: the child of a multi-threaded process
        /// can do nothing else. The child exits when `serve` returns.
        unsafe fn fork(ours: S, theirs: OwnedFd, serve: impl FnOnce(RawFd, RawFd)) -> RawChild<S> {
            // SAFETY: the child runs only `serve`, whose contract the caller keeps.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
            if pid == 0 {
                serve(theirs.as_raw_fd(), ours.as_raw_fd());
                // SAFETY: ends the child without running anything of the parent's.
                unsafe { libc::_exit(0) }
            }
            drop(theirs);
            RawChild {
                stream: Some(ours),
                pid,
            }
        }

        fn stream(&mut self) -> &mut S {
            self.stream.as_mut().expect("open")
        }
    }

    impl<S> Drop for RawChild<S> {
        fn drop(&mut self) {
            // EOF makes the child exit.
            drop(self.stream.take());
            let mut status = 0;
            // SAFETY: `pid` is our unreaped child; waitpid writes only `status`.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }

    /// Reads exactly `len` bytes into `buf`; false at end of stream.
    ///
    /// # Safety
    /// `buf` is valid for writes of `len` bytes.
    unsafe fn read_exact_raw(fd: RawFd, buf: *mut u8, len: usize) -> bool {
        let mut got = 0;
        while got < len {
            // SAFETY: `buf + got` is valid for `len - got` bytes (caller's promise).
            let r = unsafe { libc::read(fd, buf.add(got).cast(), len - got) };
            if r <= 0 {
                return false;
            }
            got += r as usize;
        }
        true
    }

    /// Writes all `len` bytes of `buf`; false if the peer is gone.
    ///
    /// # Safety
    /// `buf` is valid for reads of `len` bytes.
    unsafe fn write_all_raw(fd: RawFd, buf: *const u8, len: usize) -> bool {
        let mut put = 0;
        while put < len {
            // SAFETY: `buf + put` is valid for `len - put` bytes (caller's promise).
            let w = unsafe { libc::write(fd, buf.add(put).cast(), len - put) };
            if w <= 0 {
                return false;
            }
            put += w as usize;
        }
        true
    }

    /// Child side of the echo baselines: reads 8 bytes, writes them back, until EOF.
    ///
    /// # Safety
    /// Call only in the child of `fork`, with `fd` and `other` open.
    unsafe fn echo_raw(fd: RawFd, other: RawFd) -> ! {
        let mut buf = [0u8; 8];
        // SAFETY: (whole body) plain system calls on descriptors this process
        // owns, on a buffer of this stack frame.
        unsafe {
            libc::close(other);
            while read_exact_raw(fd, buf.as_mut_ptr(), 8) {
                if !write_all_raw(fd, buf.as_ptr(), 8) {
                    libc::_exit(1);
                }
            }
            libc::_exit(0)
        }
    }

    /// Child side of the stream baseline: for each 8-byte request `k`, writes
    /// `0..k` as 8-byte messages, one `write` each.
    ///
    /// # Safety
    /// As `echo_raw`.
    unsafe fn stream_raw(fd: RawFd, other: RawFd) -> ! {
        let mut request = [0u8; 8];
        // SAFETY: as in `echo_raw`.
        unsafe {
            libc::close(other);
            while read_exact_raw(fd, request.as_mut_ptr(), 8) {
                for i in 0..u64::from_le_bytes(request) {
                    let message = i.to_le_bytes();
                    if !write_all_raw(fd, message.as_ptr(), 8) {
                        libc::_exit(1);
                    }
                }
            }
            libc::_exit(0)
        }
    }

    /// Child side of the bulk baseline: reads whole messages of `len` bytes
    /// into `buf`, answering each with one byte.
    ///
    /// # Safety
    /// As `echo_raw`; `buf` is valid for writes of `len` bytes.
    unsafe fn sink_raw(fd: RawFd, other: RawFd, buf: *mut u8, len: usize) -> ! {
        // SAFETY: as in `echo_raw`; `buf` holds `len` bytes (caller's promise).
        unsafe {
            libc::close(other);
            while read_exact_raw(fd, buf, len) {
                if !write_all_raw(fd, [1u8].as_ptr(), 1) {
                    libc::_exit(1);
                }
            }
            libc::_exit(0)
        }
    }

    /// Forks a child that runs `serve` on one end of a new socketpair.
    ///
    /// # Safety
    /// As `RawChild::fork`.
    unsafe fn socketpair_child(serve: impl FnOnce(RawFd, RawFd)) -> RawChild<UnixStream> {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        // SAFETY: forwarded from the caller.
        unsafe { RawChild::fork(ours, OwnedFd::from(theirs), serve) }
    }

    /// Sends 8 bytes and reads the 8-byte answer.
    fn round_trip(stream: &mut (impl Read + Write), i: u64) -> u64 {
        stream.write_all(&i.to_le_bytes()).expect("write");
        let mut back = [0u8; 8];
        stream.read_exact(&mut back).expect("read");
        u64::from_le_bytes(back)
    }

    // -----------------------------------------------------------------------
    // Where the two ends of a round trip run. Left to the scheduler, the two
    // processes of a ping-pong sometimes share a CPU (a round trip about 5x
    // faster here) and sometimes not, and one run mixes both: the round-trip
    // benchmarks pin each end, so that mp and its baseline are measured alike.

    /// Two CPUs this process may use: (ours, the peer's) across CPUs, or
    /// twice ours on one CPU.
    #[derive(Debug, Clone, Copy)]
    struct Placement {
        ours: usize,
        peer: usize,
    }

    #[cfg(target_os = "linux")]
    mod affinity {
        use std::mem::{size_of, zeroed};

        use super::Placement;

        fn allowed() -> Option<libc::cpu_set_t> {
            // SAFETY: an all-zero cpu_set_t is an empty set.
            let mut set: libc::cpu_set_t = unsafe { zeroed() };
            // SAFETY: `set` is a valid, writable cpu_set_t of the size given.
            let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
            (rc == 0).then_some(set)
        }

        /// The first two CPUs this thread may run on, across or on one CPU;
        /// `None` with fewer than two.
        pub(super) fn placement(across: bool) -> Option<Placement> {
            let set = allowed()?;
            let mut cpus = (0..libc::CPU_SETSIZE as usize)
                // SAFETY: `cpu` is below CPU_SETSIZE; `set` is initialized.
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) });
            let (ours, other) = (cpus.next()?, cpus.next()?);
            Some(Placement {
                ours,
                peer: if across { other } else { ours },
            })
        }

        /// Pins thread `tid` (0: the calling thread) to `cpu`. Async-signal-safe:
        /// a forked child may call it.
        pub(super) fn pin(tid: libc::pid_t, cpu: usize) -> bool {
            // SAFETY: an all-zero cpu_set_t is an empty set.
            let mut set: libc::cpu_set_t = unsafe { zeroed() };
            // SAFETY: `cpu` is a CPU number from `placement`, below CPU_SETSIZE.
            unsafe { libc::CPU_SET(cpu, &mut set) };
            // SAFETY: `set` is a valid cpu_set_t of the size given.
            unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set) == 0 }
        }

        /// Pins every thread of process `pid` to `cpu`.
        pub(super) fn pin_process(pid: u32, cpu: usize) {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return;
            };
            for task in tasks.flatten() {
                if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
                    pin(tid, cpu);
                }
            }
        }

        /// The calling thread's CPUs, restored on drop.
        pub(super) struct Saved(Option<libc::cpu_set_t>);

        pub(super) fn save() -> Saved {
            Saved(allowed())
        }

        impl Drop for Saved {
            fn drop(&mut self) {
                if let Some(set) = &self.0 {
                    // SAFETY: `set` is a valid cpu_set_t of the size given.
                    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) };
                }
            }
        }
    }

    /// Elsewhere, nothing is pinned.
    #[cfg(not(target_os = "linux"))]
    mod affinity {
        use super::Placement;

        pub(super) fn placement(_across: bool) -> Option<Placement> {
            None
        }
        pub(super) fn pin(_tid: libc::pid_t, _cpu: usize) -> bool {
            false
        }
        pub(super) fn pin_process(_pid: u32, _cpu: usize) {}
        pub(super) struct Saved;
        pub(super) fn save() -> Saved {
            Saved
        }
    }

    // -----------------------------------------------------------------------
    // 1. Queue: one producer process, one consumer process.

    fn queue(c: &mut Criterion) {
        let mut suite = Suite::new(c, "queue", SamplingMode::Auto);
        suite.throughput(Throughput::Elements(1));
        // Producer and consumer on two CPUs, as they would be on an idle machine.
        let _saved = affinity::save();
        let placement = affinity::placement(true);
        if let Some(p) = placement {
            affinity::pin(0, p.ours);
        }
        let peer = placement.map(|p| p.peer);

        let mut raw: Option<RawChild<UnixStream>> = None;
        let mut reader: Option<BufReader<UnixStream>> = None;
        suite.run("raw_socketpair_stream", |iters| {
            // SAFETY: `pin` and `stream_raw` make only sched_setaffinity, read,
            // write, close and _exit calls.
            let raw = raw.get_or_insert_with(|| unsafe {
                socketpair_child(|fd, other| {
                    if let Some(cpu) = peer {
                        affinity::pin(0, cpu);
                    }
                    stream_raw(fd, other)
                })
            });
            let reader = reader.get_or_insert_with(|| {
                BufReader::with_capacity(64 << 10, raw.stream().try_clone().expect("clone"))
            });
            let start = Instant::now();
            raw.stream()
                .write_all(&iters.to_le_bytes())
                .expect("request");
            let mut message = [0u8; 8];
            for i in 0..iters {
                reader.read_exact(&mut message).expect("read");
                assert_eq!(u64::from_le_bytes(message), i);
            }
            start.elapsed()
        });
        drop(reader);
        drop(raw);

        let q = mp::Queue::<u64>::new().expect("queue");
        let mut child: Option<Child<u64, u64>> = None;
        suite.run("mp_queue", |iters| {
            let child = child.get_or_insert_with(|| {
                spawn_child(|ctl| mp::Process::spawn(produce, (q.clone(), ctl, peer)))
            });
            let start = Instant::now();
            child.ctl().send(&iters).expect("request");
            for i in 0..iters {
                assert_eq!(q.get().expect("get"), i);
            }
            start.elapsed()
        });
        drop(child);
        suite.finish();
    }

    // -----------------------------------------------------------------------
    // 2. Pipe ping-pong.

    fn pipe(c: &mut Criterion) {
        let mut suite = Suite::new(c, "pipe", SamplingMode::Auto);
        for (across, place) in [(true, "cross_cpu"), (false, "same_cpu")] {
            let _saved = affinity::save();
            let placement = affinity::placement(across);
            if let Some(p) = placement {
                affinity::pin(0, p.ours);
            }
            let peer = placement.map(|p| p.peer);

            let mut raw: Option<RawChild<UnixStream>> = None;
            let mut raw_run = |iters| {
                // SAFETY: `pin` and `echo_raw` make only sched_setaffinity, read,
                // write, close and _exit calls.
                let raw = raw.get_or_insert_with(|| unsafe {
                    socketpair_child(|fd, other| {
                        if let Some(cpu) = peer {
                            affinity::pin(0, cpu);
                        }
                        echo_raw(fd, other)
                    })
                });
                let start = Instant::now();
                for i in 0..iters {
                    assert_eq!(round_trip(raw.stream(), i), i);
                }
                start.elapsed()
            };
            suite.run(&format!("raw_socketpair_roundtrip/{place}"), &mut raw_run);

            // Spawned after the raw child was forked, so that it holds no copy of
            // this pipe; both stay for the paired measurement.
            let mut child: Option<Child<u64, u64>> = None;
            let mut mp_run = |iters| {
                let child = child
                    .get_or_insert_with(|| spawn_child(|c| mp::Process::spawn(echo, (c, peer))));
                let ctl = child.ctl();
                let start = Instant::now();
                for i in 0..iters {
                    ctl.send(&i).expect("send");
                    assert_eq!(ctl.recv().expect("recv"), i);
                }
                start.elapsed()
            };
            suite.run(&format!("mp_pipe_roundtrip/{place}"), &mut mp_run);
            let block = if across { 200 } else { 1000 };
            paired(
                &format!("pipe/{place}"),
                [
                    &format!("pipe/raw_socketpair_roundtrip/{place}"),
                    &format!("pipe/mp_pipe_roundtrip/{place}"),
                ],
                block,
                &mut raw_run,
                &mut mp_run,
            );
        }
        suite.finish();
    }

    // -----------------------------------------------------------------------
    // 3. Bulk: 64 MiB one way, answered with a few bytes.

    fn bulk(c: &mut Criterion) {
        let len = bulk_len();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut suite = Suite::new(c, "bulk", SamplingMode::Flat);
        suite.throughput(Throughput::Bytes(len as u64));

        memcpy_baseline(&mut suite, &data);

        let mut raw: Option<RawChild<UnixStream>> = None;
        suite.run("raw_socketpair_64MiB", |iters| {
            let raw = raw.get_or_insert_with(|| {
                // Allocated before the fork: the child must not allocate. The
                // child has its own copy of it; the parent's goes at once.
                let mut buf = vec![0u8; len];
                let ptr = buf.as_mut_ptr();
                // SAFETY: `sink_raw` makes only read, write, close and _exit
                // calls, into the child's copy of `buf`.
                let child = unsafe { socketpair_child(|fd, other| sink_raw(fd, other, ptr, len)) };
                drop(buf);
                child
            });
            let start = Instant::now();
            for _ in 0..iters {
                raw.stream().write_all(&data).expect("write");
                let mut ack = [0u8; 1];
                raw.stream().read_exact(&mut ack).expect("ack");
            }
            start.elapsed()
        });
        drop(raw);

        let mut child: Option<Child<u64, u64>> = None;
        suite.run("pipe_send_bytes_64MiB", |iters| {
            let child =
                child.get_or_insert_with(|| spawn_child(|c| mp::Process::spawn(sink_bytes, (c,))));
            let ctl = child.ctl();
            let start = Instant::now();
            for _ in 0..iters {
                ctl.send_bytes(&data).expect("send_bytes");
                assert_eq!(ctl.recv().expect("ack"), len as u64);
            }
            start.elapsed()
        });
        drop(child);

        let buf = serde_bytes::ByteBuf::from(data);
        let mut child: Option<Child<serde_bytes::ByteBuf, u64>> = None;
        suite.run("pipe_send_serde_bytes_64MiB", |iters| {
            let child =
                child.get_or_insert_with(|| spawn_child(|c| mp::Process::spawn(sink_buf, (c,))));
            let ctl = child.ctl();
            let start = Instant::now();
            for _ in 0..iters {
                ctl.send(&buf).expect("send");
                let ack = ctl.recv().expect("ack");
                assert_eq!(&ack[..], &(len as u64).to_le_bytes());
            }
            start.elapsed()
        });
        drop(child);
        suite.finish();
    }

    // -----------------------------------------------------------------------
    // 4. Value: `*v.lock()? += 1` from two processes at once.

    fn value(c: &mut Criterion) {
        let mut suite = Suite::new(c, "value", SamplingMode::Auto);
        suite.throughput(Throughput::Elements(1));
        // On two CPUs the two processes really contend for the lock; on one CPU
        // they take turns, each running alone for a whole time slice.
        for (across, place) in [(true, "two_cpus"), (false, "one_cpu")] {
            let placement = affinity::placement(across);
            let cpus = [placement.map(|p| p.ours), placement.map(|p| p.peer)];
            let v = mp::Value::new(0i64).expect("value");
            let mut children: Option<[Child<u64, u64>; 2]> = None;
            suite.run(&format!("increment_2_processes/{place}"), |iters| {
                let children = children.get_or_insert_with(|| {
                    cpus.map(|cpu| {
                        spawn_child(|c| mp::Process::spawn(increment, (v.clone(), c, cpu)))
                    })
                });
                let before = v.get().expect("get");
                let half = iters / 2;
                let shares = [half, iters - half];
                let start = Instant::now();
                for (child, &k) in children.iter().zip(&shares) {
                    if k > 0 {
                        child.ctl().send(&k).expect("request");
                    }
                }
                for (child, &k) in children.iter().zip(&shares) {
                    if k > 0 {
                        assert_eq!(child.ctl().recv().expect("answer"), k);
                    }
                }
                let elapsed = start.elapsed();
                assert_eq!(
                    v.get().expect("get") - before,
                    iters as i64,
                    "lost or extra increments"
                );
                elapsed
            });
            drop(children);
        }
        suite.finish();
    }

    // -----------------------------------------------------------------------
    // 5. Uncontended lock + unlock, in this process.

    fn lock(c: &mut Criterion) {
        let mut suite = Suite::new(c, "lock", SamplingMode::Auto);

        let m = std::sync::Mutex::new(0i64);
        let mut std_incr = |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                *black_box(&m).lock().expect("lock") += 1;
            }
            start.elapsed()
        };
        suite.run("std_mutex_increment", &mut std_incr);

        let v = mp::Value::new(0i64).expect("value");
        let mut value_incr = |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                *black_box(&v).lock().expect("lock") += 1;
            }
            start.elapsed()
        };
        suite.run("value_increment", &mut value_incr);

        let unit = std::sync::Mutex::new(());
        let mut std_unit = |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                drop(black_box(black_box(&unit).lock().expect("lock")));
            }
            start.elapsed()
        };
        suite.run("std_mutex_lock_unlock", &mut std_unit);

        let l = mp::Lock::new().expect("lock");
        let mut lock_unit = |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                drop(black_box(black_box(&l).lock().expect("lock")));
            }
            start.elapsed()
        };
        suite.run("lock_lock_unlock", &mut lock_unit);
        suite.finish();

        let keys = ["lock/std_mutex_increment", "lock/value_increment"];
        paired("lock/value", keys, 100_000, &mut std_incr, &mut value_incr);
        let keys = ["lock/std_mutex_lock_unlock", "lock/lock_lock_unlock"];
        paired("lock/lock", keys, 100_000, &mut std_unit, &mut lock_unit);
    }

    // -----------------------------------------------------------------------
    // 6. Manager: a dict insert round trip against a raw TCP round trip.

    /// A connected pair of TCP sockets on loopback, Nagle's delay off on both.
    fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        for s in [&client, &server] {
            s.set_nodelay(true).expect("nodelay");
        }
        (client, server)
    }

    fn manager(c: &mut Criterion) {
        let mut suite = Suite::new(c, "manager", SamplingMode::Auto);
        let _saved = affinity::save();
        let placement = affinity::placement(true);
        if let Some(p) = placement {
            affinity::pin(0, p.ours);
        }
        let peer = placement.map(|p| p.peer);

        let mut raw: Option<RawChild<TcpStream>> = None;
        let mut raw_run = |iters| {
            let raw = raw.get_or_insert_with(|| {
                let (ours, theirs) = tcp_pair();
                // SAFETY: `pin` and `echo_raw` make only sched_setaffinity, read,
                // write, close and _exit calls.
                unsafe {
                    RawChild::fork(ours, OwnedFd::from(theirs), |fd, other| {
                        if let Some(cpu) = peer {
                            affinity::pin(0, cpu);
                        }
                        echo_raw(fd, other)
                    })
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                assert_eq!(round_trip(raw.stream(), i), i);
            }
            start.elapsed()
        };
        suite.run("raw_tcp_roundtrip", &mut raw_run);

        let mut dict: Option<(mp::Manager, mp::DictProxy<u64, u64>)> = None;
        let mut mp_run = |iters| {
            let (_, d) = dict.get_or_insert_with(|| {
                let m = mp::Manager::start().expect("manager");
                let d = m.dict().expect("dict");
                // Every thread of the server, among them the one serving this
                // process's connection, which the call above opened.
                if let (Some(cpu), Some(pid)) = (peer, m.pid()) {
                    affinity::pin_process(pid, cpu);
                }
                (m, d)
            });
            let start = Instant::now();
            for i in 0..iters {
                black_box(d.insert(i % DICT_KEYS, i).expect("insert"));
            }
            start.elapsed()
        };
        suite.run("dict_insert", &mut mp_run);
        let keys = ["manager/raw_tcp_roundtrip", "manager/dict_insert"];
        paired("manager", keys, 200, &mut raw_run, &mut mp_run);
        drop(raw);
        if let Some((m, d)) = dict {
            assert!(d.len().expect("len") as u64 <= DICT_KEYS);
            m.shutdown().expect("shutdown");
        }
        suite.finish();
    }

    // -----------------------------------------------------------------------
    // Summary: ratios against the baselines, from this run's samples.

    fn print_summary() {
        let ns = median_ns;
        let us = |key: &str| ns(key).map(|ns| ns / 1e3);
        let per_sec_m = |key: &str| ns(key).map(|ns| 1e3 / ns);
        let gb_per_sec = |key: &str| ns(key).map(|ns| BULK as f64 / ns);
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let show = |x: Option<f64>, decimals: usize| match x {
            Some(x) => format!("{x:.decimals$}"),
            None => "-".to_string(),
        };
        let verdict = |met: Option<bool>| match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        // "criterion medians a vs b | paired: a vs b, ratio r | goal: verdict"
        let paired_line = |key: &str, unit_ns: f64, decimals: usize, goal: f64| {
            let p = paired_result(key);
            format!(
                "paired {} vs {}, ratio {} | goal <= {goal}x: {}",
                show(p.map(|p| p.mp_ns / unit_ns), decimals),
                show(p.map(|p| p.base_ns / unit_ns), decimals),
                show(p.map(|p| p.ratio), 2),
                verdict(p.map(|p| p.ratio <= goal)),
            )
        };

        println!();
        println!(
            "ipc summary: criterion medians ({SAMPLES} samples each); \"paired\": the two \
             alternated in {PAIRED_ROUNDS} short blocks (medians), the ratio the goal is judged on"
        );
        println!("{:-<120}", "");

        let q = per_sec_m("queue/mp_queue");
        let raw_stream = per_sec_m("queue/raw_socketpair_stream");
        println!(
            "queue    1 -> 1, u64 messages: mp::Queue {} M msgs/s | raw socketpair stream {} M msgs/s \
             (ratio {}) | goal >= 2 M/s: {}, stretch goal 5 M/s: {}",
            show(q, 2),
            show(raw_stream, 2),
            show(ratio(q, raw_stream), 2),
            verdict(q.map(|q| q >= 2.0)),
            verdict(q.map(|q| q >= 5.0)),
        );

        for (place, what) in [("cross_cpu", "two CPUs"), ("same_cpu", "one CPU ")] {
            println!(
                "pipe     ping-pong, ends on {what}: mp::pipe {} µs vs raw socketpair {} µs | {}",
                show(us(&format!("pipe/mp_pipe_roundtrip/{place}")), 1),
                show(us(&format!("pipe/raw_socketpair_roundtrip/{place}")), 1),
                paired_line(&format!("pipe/{place}"), 1e3, 1, 1.1),
            );
        }

        let bytes = gb_per_sec("bulk/pipe_send_bytes_64MiB");
        let typed = gb_per_sec("bulk/pipe_send_serde_bytes_64MiB");
        let raw64 = gb_per_sec("bulk/raw_socketpair_64MiB");
        let memcpy = gb_per_sec("bulk/memcpy_64MiB");
        println!(
            "bulk     64 MiB one way: send_bytes {} GB/s ({} of raw), send(&ByteBuf) {} GB/s ({} of raw) \
             | raw socketpair {} GB/s | memcpy {} GB/s",
            show(bytes, 2),
            show(ratio(bytes, raw64), 2),
            show(typed, 2),
            show(ratio(typed, raw64), 2),
            show(raw64, 2),
            show(memcpy, 1),
        );
        println!(
            "         goal >= 1 GB/s: send_bytes {}, send(&ByteBuf) {}",
            verdict(bytes.map(|x| x >= 1.0)),
            verdict(typed.map(|x| x >= 1.0)),
        );

        let incr = per_sec_m("value/increment_2_processes/two_cpus");
        println!(
            "value    += under its lock, 2 processes on two CPUs: {} M incr/s (on one CPU: {} M incr/s), \
             exact counts checked | goal >= 20 M/s: {}",
            show(incr, 1),
            show(per_sec_m("value/increment_2_processes/one_cpu"), 1),
            verdict(incr.map(|x| x >= 20.0)),
        );

        println!(
            "lock     uncontended Value lock, += 1, unlock: {} ns vs std Mutex<i64> {} ns | {}",
            show(ns("lock/value_increment"), 1),
            show(ns("lock/std_mutex_increment"), 1),
            paired_line("lock/value", 1.0, 1, 2.0),
        );
        println!(
            "         uncontended Lock lock + unlock:      {} ns vs std Mutex<()>  {} ns | {}",
            show(ns("lock/lock_lock_unlock"), 1),
            show(ns("lock/std_mutex_lock_unlock"), 1),
            paired_line("lock/lock", 1.0, 1, 2.0),
        );

        println!(
            "manager  ends on two CPUs: DictProxy::insert {} µs vs raw TCP loopback round trip {} µs | {}",
            show(us("manager/dict_insert"), 1),
            show(us("manager/raw_tcp_roundtrip"), 1),
            paired_line("manager", 1e3, 1, 1.2),
        );
        println!("{:-<120}", "");
        println!(
            "(GB/s = 10^9 bytes/s; a bulk iteration is 64 MiB sent and a few bytes answered; \
             round trips pin the two ends to CPUs as named)"
        );
    }
}
