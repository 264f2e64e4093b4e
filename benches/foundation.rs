//! Benchmarks of the foundation: pool start, `apply` round trip, `map`
//! throughput, CPU speedup and bulk payloads, each beside a baseline measured in
//! the same run (re-exec of this binary, a raw socketpair ping-pong with a
//! forked child, in-process loops, `memcpy`).
//!
//! Run with `cargo bench --bench foundation` (a filter such as `-- roundtrip`
//! runs one group). Figures vary from run to run on a shared machine: compare
//! the ratios printed at the end, which come from one run.
//!
//! This binary is also the workers' binary: a worker re-executes it and is
//! turned into a worker before `main` runs.

// The baselines use Unix sockets and fork: on other hosts this bench only says so.
#[cfg(not(unix))]
fn main() {
    eprintln!(
        "the foundation benchmarks need a Unix host (their baselines fork and use socketpairs)"
    );
}

#[cfg(unix)]
fn main() {
    unix::main()
}

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod unix {
    use crate::common::{SAMPLES, Suite, benchmarking, median_ns, memcpy_baseline};
    use std::hint::black_box;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode, Throughput};
    use serde::{Deserialize, Serialize};

    /// When set, `main` exits at once: the re-exec baseline of `pool_start`.
    const EXIT_AT_ONCE: &str = "MP_BENCH_EXIT_AT_ONCE";

    const MAP_ITEMS: u64 = 200_000;
    const CHUNK1_ITEMS: u64 = 20_000;
    const CPU_TASKS: usize = 8;
    const CPU_TASK_TIME: Duration = Duration::from_millis(20);
    const PAYLOAD: usize = 64 << 20;
    /// Payload of a test-mode run (`cargo test --benches`), which runs each benchmark
    /// once, unoptimized, only to check that it works.
    const PAYLOAD_TEST: usize = 1 << 20;

    #[mp::job]
    fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    #[mp::job]
    fn square(x: u64) -> u64 {
        x.wrapping_mul(x)
    }

    /// CPU-bound work: `rounds` steps of xorshift, each depending on the last.
    #[mp::job]
    fn burn(rounds: u64) -> u64 {
        let mut x = rounds | 1;
        for _ in 0..rounds {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x
    }

    /// A `Vec<u8>` as serde sees it by default: a sequence of `u8` elements.
    #[mp::job]
    fn echo_vec(data: Vec<u8>) -> Vec<u8> {
        data
    }

    /// A `Vec<u8>` serialized as one byte string.
    #[derive(Serialize, Deserialize)]
    struct Bytes(#[serde(with = "serde_bytes")] Vec<u8>);

    #[mp::job]
    fn echo_bytes(data: Bytes) -> Bytes {
        data
    }

    pub(crate) fn main() {
        if std::env::var_os(EXIT_AT_ONCE).is_some() {
            std::process::exit(0);
        }
        let mut c = Criterion::default().configure_from_args();
        pool_start(&mut c);
        roundtrip(&mut c);
        map(&mut c);
        cpu(&mut c);
        payload(&mut c);
        c.final_summary();
        if benchmarking() {
            print_summary();
        }
    }

    // ---------------------------------------------------------------------------
    // 1. pool_start

    fn pool_start(c: &mut Criterion) {
        let exe = std::env::current_exe().expect("current_exe");
        let mut suite = Suite::new(c, "pool_start", SamplingMode::Flat);
        suite.run("reexec_exit_x1", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                spawn_and_reap(&exe, 1);
            }
            start.elapsed()
        });
        suite.run("reexec_exit_x2", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                spawn_and_reap(&exe, 2);
            }
            start.elapsed()
        });
        suite.run("pool2_start_task_stop", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let pool = mp::Pool::new(2).expect("pool");
                assert_eq!(pool.apply(add, (1, 2)).expect("apply"), 3);
                drop(pool);
            }
            start.elapsed()
        });
        suite.finish();
    }

    /// Starts `n` copies of this binary that exit at once, and reaps them.
    fn spawn_and_reap(exe: &Path, n: usize) {
        let children: Vec<_> = (0..n)
            .map(|_| {
                Command::new(exe)
                    .env(EXIT_AT_ONCE, "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().expect("wait").success());
        }
    }

    // ---------------------------------------------------------------------------
    // 2. roundtrip

    fn roundtrip(c: &mut Criterion) {
        let mut suite = Suite::new(c, "roundtrip", SamplingMode::Auto);

        let mut echo: Option<EchoChild> = None;
        suite.run("raw_socketpair", |iters| {
            let echo = echo.get_or_insert_with(|| EchoChild::start(8));
            let mut back = [0u8; 8];
            let start = Instant::now();
            for i in 0..iters {
                echo.round_trip(&i.to_le_bytes(), &mut back);
            }
            let elapsed = start.elapsed();
            assert_eq!(back, (iters - 1).to_le_bytes());
            elapsed
        });
        // Fork before any pool exists, and reap the child before pools start.
        drop(echo);

        for n in [1, 2] {
            let mut pool: Option<mp::Pool> = None;
            suite.run(&format!("apply/pool{n}"), |iters| {
                let pool = pool.get_or_insert_with(|| mp::Pool::new(n).expect("pool"));
                let start = Instant::now();
                for _ in 0..iters {
                    let r = pool.apply(add, black_box((1, 2))).expect("apply");
                    black_box(r);
                }
                start.elapsed()
            });
        }
        suite.finish();
    }

    /// A forked child that echoes fixed-size messages over a socketpair: the raw
    /// floor of a cross-process round trip, with no library in between.
    struct EchoChild {
        sock: Option<UnixStream>,
        pid: libc::pid_t,
    }

    impl EchoChild {
        fn start(message: usize) -> EchoChild {
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            // Allocated before the fork: the child must not allocate.
            let mut buf = vec![0u8; message];
            // SAFETY: the child runs only `echo_loop` (read, write, close, _exit:
            // async-signal-safe) and never returns into Rust code.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
            if pid == 0 {
                // SAFETY: both descriptors are open; `buf` holds `message` bytes.
                unsafe {
                    echo_loop(
                        theirs.as_raw_fd(),
                        ours.as_raw_fd(),
                        buf.as_mut_ptr(),
                        message,
                    )
                }
            }
            drop(theirs);
            EchoChild {
                sock: Some(ours),
                pid,
            }
        }

        /// Sends `out` and reads the echo into `back` (same length).
        fn round_trip(&mut self, out: &[u8], back: &mut [u8]) {
            let sock = self.sock.as_mut().expect("open");
            sock.write_all(out).expect("write to echo child");
            sock.read_exact(back).expect("read from echo child");
        }
    }

    impl Drop for EchoChild {
        fn drop(&mut self) {
            // EOF makes the child exit.
            drop(self.sock.take());
            let mut status = 0;
            // SAFETY: `pid` is our unreaped child; waitpid writes only `status`.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }

    /// Child side of `EchoChild`: reads `len` bytes, writes them back, until EOF.
    ///
    /// # Safety
    /// Call only in the child of `fork`; `buf` must be valid for `len` bytes.
    unsafe fn echo_loop(fd: libc::c_int, other: libc::c_int, buf: *mut u8, len: usize) -> ! {
        // SAFETY: (whole body) plain system calls on descriptors this process owns,
        // reading into and writing from `buf`, valid for `len` bytes.
        unsafe {
            libc::close(other);
            loop {
                let mut got = 0;
                while got < len {
                    let r = libc::read(fd, buf.add(got).cast(), len - got);
                    if r <= 0 {
                        libc::_exit(0);
                    }
                    got += r as usize;
                }
                let mut put = 0;
                while put < len {
                    let w = libc::write(fd, buf.add(put).cast(), len - put);
                    if w <= 0 {
                        libc::_exit(1);
                    }
                    put += w as usize;
                }
            }
        }
    }

    // ---------------------------------------------------------------------------
    // 3 and 4. map

    fn map(c: &mut Criterion) {
        let mut suite = Suite::new(c, "map", SamplingMode::Flat);
        suite.throughput(Throughput::Elements(MAP_ITEMS));

        suite.run("sequential_200k", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let v: Vec<u64> = (0..black_box(MAP_ITEMS)).map(square).collect();
                black_box(v);
            }
            start.elapsed()
        });

        let src: Vec<u64> = (0..MAP_ITEMS).collect();
        let mut dst = vec![0u64; src.len()];
        suite.run("memcpy_200k", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                dst.copy_from_slice(black_box(&src));
                black_box(&mut dst);
            }
            start.elapsed()
        });

        let mut pool: Option<mp::Pool> = None;
        suite.run("trivial_200k", |iters| {
            let pool = pool.get_or_insert_with(|| mp::Pool::new(2).expect("pool"));
            let start = Instant::now();
            for _ in 0..iters {
                let v = pool.map(square, 0..MAP_ITEMS).expect("map");
                black_box(&v);
                assert_eq!(v.len() as u64, MAP_ITEMS);
            }
            start.elapsed()
        });

        suite.throughput(Throughput::Elements(CHUNK1_ITEMS));
        suite.run("chunksize1_20k", |iters| {
            let pool = pool.get_or_insert_with(|| mp::Pool::new(2).expect("pool"));
            let start = Instant::now();
            for _ in 0..iters {
                let v = pool.map_chunked(square, 0..CHUNK1_ITEMS, 1).expect("map");
                black_box(&v);
                assert_eq!(v.len() as u64, CHUNK1_ITEMS);
            }
            start.elapsed()
        });
        suite.finish();
    }

    // ---------------------------------------------------------------------------
    // 5. cpu

    fn cpu(c: &mut Criterion) {
        let mut rounds: Option<(u64, u64)> = None;
        let mut calibrated = || *rounds.get_or_insert_with(calibrate_burn);

        let mut suite = Suite::new(c, "cpu", SamplingMode::Flat);
        suite.run("speedup/sequential", |iters| {
            let (rounds, expected) = calibrated();
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..CPU_TASKS {
                    assert_eq!(burn(black_box(rounds)), expected);
                }
            }
            start.elapsed()
        });
        let mut pool: Option<mp::Pool> = None;
        suite.run("speedup/pool", |iters| {
            let (rounds, expected) = calibrated();
            let pool = pool.get_or_insert_with(|| mp::Pool::new(mp::cpu_count()).expect("pool"));
            let start = Instant::now();
            for _ in 0..iters {
                let v = pool
                    .map_chunked(burn, vec![rounds; CPU_TASKS], 1)
                    .expect("map");
                assert!(v.iter().all(|&x| x == expected));
            }
            start.elapsed()
        });
        suite.finish();
    }

    /// Rounds of `burn` that take about `CPU_TASK_TIME` here, and their result.
    fn calibrate_burn() -> (u64, u64) {
        const PROBE: u64 = 1 << 20;
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                black_box(burn(black_box(PROBE)));
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_millis(1))
            .max(Duration::from_micros(1));
        let rounds = (PROBE as f64 * CPU_TASK_TIME.as_secs_f64() / best.as_secs_f64()) as u64;
        (rounds, burn(rounds))
    }

    // ---------------------------------------------------------------------------
    // 6. payload

    fn payload(c: &mut Criterion) {
        let len = if benchmarking() {
            PAYLOAD
        } else {
            PAYLOAD_TEST
        };
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut suite = Suite::new(c, "payload", SamplingMode::Flat);
        suite.throughput(Throughput::Bytes(len as u64));

        memcpy_baseline(&mut suite, &data);

        let mut dst = vec![0u8; len];

        let mut echo: Option<EchoChild> = None;
        suite.run("raw_socketpair_64MiB_roundtrip", |iters| {
            let echo = echo.get_or_insert_with(|| EchoChild::start(len));
            let start = Instant::now();
            for _ in 0..iters {
                echo.round_trip(&data, &mut dst);
            }
            let elapsed = start.elapsed();
            assert!(dst == data);
            elapsed
        });
        drop(echo);
        drop(dst);

        let mut pool: Option<mp::Pool> = None;
        suite.run("64MiB_roundtrip/vec_u8", |iters| {
            let pool = pool.get_or_insert_with(|| mp::Pool::new(1).expect("pool"));
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let arg = data.clone();
                let start = Instant::now();
                let back = pool.apply(echo_vec, (arg,)).expect("apply");
                total += start.elapsed();
                assert_eq!(back.len(), len);
            }
            total
        });
        suite.run("64MiB_roundtrip/serde_bytes", |iters| {
            let pool = pool.get_or_insert_with(|| mp::Pool::new(1).expect("pool"));
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let arg = Bytes(data.clone());
                let start = Instant::now();
                let back = pool.apply(echo_bytes, (arg,)).expect("apply");
                total += start.elapsed();
                assert_eq!(back.0.len(), len);
            }
            total
        });
        suite.finish();
    }

    // ---------------------------------------------------------------------------
    // Summary: ratios against the baselines, from this run's samples.

    fn print_summary() {
        let ms = |key: &str| median_ns(key).map(|ns| ns / 1e6);
        let us = |key: &str| median_ns(key).map(|ns| ns / 1e3);
        let per_sec = |key: &str, n: u64| median_ns(key).map(|ns| n as f64 / (ns / 1e9));
        let mb_per_sec = |key: &str| median_ns(key).map(|ns| PAYLOAD as f64 / 1e6 / (ns / 1e9));
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let show = |x: Option<f64>, decimals: usize| match x {
            Some(x) => format!("{x:.decimals$}"),
            None => "-".to_string(),
        };

        println!();
        println!("foundation summary (median of {SAMPLES} samples per benchmark, this run)");
        println!("{:-<100}", "");

        let start = ms("pool_start/pool2_start_task_stop");
        let x1 = ms("pool_start/reexec_exit_x1");
        let x2 = ms("pool_start/reexec_exit_x2");
        println!(
            "pool_start   Pool(2)+apply+drop {} ms | re-exec+reap x1 {} ms, x2 {} ms | ratio to x2 {}",
            show(start, 2),
            show(x1, 2),
            show(x2, 2),
            show(ratio(start, x2), 2),
        );

        let raw = us("roundtrip/raw_socketpair");
        let p1 = us("roundtrip/apply/pool1");
        let p2 = us("roundtrip/apply/pool2");
        println!(
            "roundtrip    apply Pool(1) {} µs, Pool(2) {} µs | raw socketpair {} µs | ratios {} / {}",
            show(p1, 1),
            show(p2, 1),
            show(raw, 1),
            show(ratio(p1, raw), 2),
            show(ratio(p2, raw), 2),
        );

        let m = |x: Option<f64>| x.map(|x| x / 1e6);
        println!(
            "map 200k     Pool(2) {} M items/s | sequential in-process {} M/s | memcpy {} M/s",
            show(m(per_sec("map/trivial_200k", MAP_ITEMS)), 2),
            show(m(per_sec("map/sequential_200k", MAP_ITEMS)), 1),
            show(m(per_sec("map/memcpy_200k", MAP_ITEMS)), 0),
        );

        let chunk1 = per_sec("map/chunksize1_20k", CHUNK1_ITEMS);
        let per_task = median_ns("map/chunksize1_20k").map(|ns| ns / 1e3 / CHUNK1_ITEMS as f64);
        println!(
            "map chunk 1  Pool(2) {} k tasks/s ({} µs per task = {} raw round trips)",
            show(chunk1.map(|x| x / 1e3), 1),
            show(per_task, 2),
            show(ratio(per_task, raw), 3),
        );

        let seq = ms("cpu/speedup/sequential");
        let par = ms("cpu/speedup/pool");
        println!(
            "cpu          {CPU_TASKS} tasks of ~{} ms: sequential {} ms | Pool({}) {} ms | speedup {}x",
            CPU_TASK_TIME.as_millis(),
            show(seq, 1),
            mp::cpu_count(),
            show(par, 1),
            show(ratio(seq, par), 2),
        );

        let raw64 = ms("payload/raw_socketpair_64MiB_roundtrip");
        for variant in ["vec_u8", "serde_bytes"] {
            let key = format!("payload/64MiB_roundtrip/{variant}");
            println!(
                "payload      {variant:<11} {} ms ({} MB/s) | raw socketpair {} ms ({} MB/s) | ratio {}",
                show(ms(&key), 1),
                show(mb_per_sec(&key), 0),
                show(raw64, 1),
                show(mb_per_sec("payload/raw_socketpair_64MiB_roundtrip"), 0),
                show(ratio(ms(&key), raw64), 2),
            );
        }
        println!(
            "payload      memcpy 64 MiB {} ms ({} MB/s)",
            show(ms("payload/memcpy_64MiB"), 2),
            show(mb_per_sec("payload/memcpy_64MiB"), 0),
        );
        println!("{:-<100}", "");
        println!("(MB/s = 64 MiB of argument / round-trip time; the data crosses twice)");
    }
}
