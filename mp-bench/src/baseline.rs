//! Machine baselines, measured in the same run with no library in between: a
//! raw round trip between two processes (socketpair, and TCP over loopback), a
//! raw 64 MiB echo, `memcpy`, and the re-exec of this binary (the floor of a
//! spawn-mode pool start).
//!
//! The peer of the raw measurements is this binary re-executed with
//! [`CHILD_ENV`] set: it echoes fixed-size messages on its standard input and
//! output, which are the two ends of one socketpair on Unix (pipes elsewhere),
//! or on a TCP connection it opens to the address it is given.

use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::Sample;
use crate::scenarios::{CPU_TASKS, POOL_PROCESSES, Size, Unit, bytes_text, pattern};

/// Set in a re-executed copy of this binary: `exit` (exit at once), `echo:LEN`
/// (echo LEN-byte messages until end of input) or `tcp-echo:LEN:ADDR` (connect
/// to ADDR and echo LEN-byte messages until the connection ends).
pub(crate) const CHILD_ENV: &str = "MP_BENCH_CHILD";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Baseline {
    /// Start two copies of this binary that exit at once, and reap them (ms).
    ReexecTwo,
    /// 8 bytes to a raw echo process and back (µs).
    RawRoundTrip,
    /// 8 bytes to a raw echo process and back over TCP on loopback (µs).
    RawTcpRoundTrip,
    /// `n` bytes to a raw echo process and back (MB/s, `n` / round trip).
    RawPayload,
    /// `memcpy` of `n` bytes in this process (MB/s).
    Memcpy,
    /// The best speedup 8 equal tasks can have on a pool of 2 here (×).
    IdealSpeedup,
}

impl Baseline {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Baseline::ReexecTwo => "re-exec this binary ×2 + reap",
            Baseline::RawRoundTrip => "raw socketpair round trip (8 bytes)",
            Baseline::RawTcpRoundTrip => "raw TCP loopback round trip (8 bytes)",
            Baseline::RawPayload => "raw socketpair round trip (payload)",
            Baseline::Memcpy => "memcpy (payload)",
            Baseline::IdealSpeedup => "ideal speedup (min(cores, workers))",
        }
    }

    pub(crate) fn unit(self) -> Unit {
        match self {
            Baseline::ReexecTwo => Unit::MS,
            Baseline::RawRoundTrip | Baseline::RawTcpRoundTrip => Unit::US,
            Baseline::RawPayload | Baseline::Memcpy => Unit::MB_S,
            Baseline::IdealSpeedup => Unit::TIMES,
        }
    }

    /// The size it is measured at, given the size of the scenario it serves.
    pub(crate) fn size(self, scenario_n: u64, quick: bool) -> u64 {
        match self {
            Baseline::ReexecTwo => Size { full: 10, quick: 2 }.get(quick),
            Baseline::RawRoundTrip | Baseline::RawTcpRoundTrip => Size {
                full: 20_000,
                quick: 1_000,
            }
            .get(quick),
            Baseline::RawPayload | Baseline::Memcpy => scenario_n,
            Baseline::IdealSpeedup => CPU_TASKS as u64,
        }
    }

    /// The size it was measured at, in words.
    pub(crate) fn size_text(self, n: u64) -> String {
        match self {
            Baseline::ReexecTwo => format!("{n} pairs"),
            Baseline::RawRoundTrip | Baseline::RawTcpRoundTrip => format!("{n} round trips"),
            Baseline::RawPayload | Baseline::Memcpy => bytes_text(n),
            Baseline::IdealSpeedup => format!("{n} tasks"),
        }
    }

    /// One repetition.
    pub(crate) fn measure(self, n: u64) -> Sample {
        match self {
            Baseline::ReexecTwo => reexec_two(n),
            Baseline::RawRoundTrip => raw_round_trip(EchoChild::start(8)?, n),
            Baseline::RawTcpRoundTrip => raw_round_trip(EchoChild::start_tcp(8)?, n),
            Baseline::RawPayload => raw_payload(n),
            Baseline::Memcpy => memcpy(n),
            Baseline::IdealSpeedup => {
                let lanes = mp::cpu_count().clamp(1, POOL_PROCESSES);
                // `n` equal tasks on `lanes` workers take ceil(n / lanes) rounds.
                Ok(n as f64 / n.div_ceil(lanes as u64) as f64)
            }
        }
    }
}

/// In a re-executed copy of this binary, does what [`CHILD_ENV`] asks.
pub(crate) fn run_child_if_asked() -> Option<ExitCode> {
    let what = std::env::var(CHILD_ENV).ok()?;
    if what == "exit" {
        return Some(ExitCode::SUCCESS);
    }
    let result = if let Some(len) = what.strip_prefix("echo:") {
        let len = len.parse::<usize>().ok()?;
        raw_stdio().and_then(|(input, output)| echo(len, input, output))
    } else {
        let (len, addr) = what.strip_prefix("tcp-echo:")?.split_once(':')?;
        let len = len.parse::<usize>().ok()?;
        tcp_echo(len, addr)
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mp-bench echo child: {e}");
            ExitCode::FAILURE
        }
    })
}

fn this_binary() -> io::Result<Command> {
    Ok(Command::new(std::env::current_exe()?))
}

fn reexec_two(n: u64) -> Sample {
    let mut cmd = this_binary()?;
    cmd.env(CHILD_ENV, "exit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    for _ in 0..n {
        let a = cmd.spawn()?;
        let b = cmd.spawn()?;
        for mut child in [a, b] {
            if !child.wait()?.success() {
                return Err("a re-executed copy of mp-bench failed".into());
            }
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / n as f64)
}

fn raw_round_trip(mut echo: EchoChild, n: u64) -> Sample {
    let mut back = [0u8; 8];
    for i in 0..100u64 {
        echo.round_trip(&i.to_le_bytes(), &mut back)?;
    }
    let start = Instant::now();
    for i in 0..n {
        echo.round_trip(&i.to_le_bytes(), &mut back)?;
    }
    let elapsed = start.elapsed();
    if back != (n - 1).to_le_bytes() {
        return Err("the echo child sent back something else".into());
    }
    echo.finish()?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

fn raw_payload(n: u64) -> Sample {
    let len = usize::try_from(n)?;
    let data = pattern(n);
    let mut back = vec![0u8; len];
    let mut echo = EchoChild::start(len)?;
    echo.round_trip(&data, &mut back)?;
    back.fill(0);
    let start = Instant::now();
    echo.round_trip(&data, &mut back)?;
    let elapsed = start.elapsed();
    if back != data {
        return Err("the echo child sent back something else".into());
    }
    echo.finish()?;
    Ok(n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn memcpy(n: u64) -> Sample {
    let src = pattern(n);
    let mut dst = vec![0u8; src.len()];
    dst.copy_from_slice(&src);
    let copies = ((256u64 << 20) / n.max(1)).max(1);
    let start = Instant::now();
    for _ in 0..copies {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    let elapsed = start.elapsed();
    Ok((n * copies) as f64 / elapsed.as_secs_f64() / 1e6)
}

/// A re-executed copy of this binary echoing fixed-size messages.
struct EchoChild {
    child: Child,
    to: Option<Box<dyn Write>>,
    from: Option<Box<dyn Read>>,
}

impl EchoChild {
    fn start(len: usize) -> io::Result<EchoChild> {
        let mut cmd = this_binary()?;
        cmd.env(CHILD_ENV, format!("echo:{len}"))
            .stderr(Stdio::inherit());
        #[cfg(unix)]
        {
            use std::os::fd::OwnedFd;
            use std::os::unix::net::UnixStream;
            let (ours, theirs) = UnixStream::pair()?;
            cmd.stdin(Stdio::from(OwnedFd::from(theirs.try_clone()?)))
                .stdout(Stdio::from(OwnedFd::from(theirs)));
            let child = cmd.spawn()?;
            // `cmd` holds the child's end: close it here, or EOF never comes.
            drop(cmd);
            Ok(EchoChild {
                child,
                to: Some(Box::new(ours.try_clone()?)),
                from: Some(Box::new(ours)),
            })
        }
        #[cfg(not(unix))]
        {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            let mut child = cmd.spawn()?;
            let to = child.stdin.take().map(|s| Box::new(s) as Box<dyn Write>);
            let from = child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>);
            Ok(EchoChild { child, to, from })
        }
    }

    /// An echo child connected over TCP on loopback, with Nagle's delay off
    /// on both ends.
    fn start_tcp(len: usize) -> io::Result<EchoChild> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let child = this_binary()?
            .env(CHILD_ENV, format!("tcp-echo:{len}:{addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut echo = EchoChild {
            child,
            to: None,
            from: None,
        };
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        echo.to = Some(Box::new(stream.try_clone()?));
        echo.from = Some(Box::new(stream));
        Ok(echo)
    }

    fn round_trip(&mut self, out: &[u8], back: &mut [u8]) -> io::Result<()> {
        let (Some(to), Some(from)) = (self.to.as_mut(), self.from.as_mut()) else {
            return Err(io::Error::other("echo child already finished"));
        };
        to.write_all(out)?;
        from.read_exact(back)
    }

    /// Closes the connection and waits for the child, which exits on EOF.
    fn finish(mut self) -> io::Result<()> {
        self.to = None;
        self.from = None;
        if self.child.wait()?.success() {
            Ok(())
        } else {
            Err(io::Error::other("the echo child failed"))
        }
    }
}

impl Drop for EchoChild {
    fn drop(&mut self) {
        self.to = None;
        self.from = None;
        // Already reaped by `finish`, or reaped now (it exits on EOF).
        let _ = self.child.wait();
    }
}

/// The child side: echoes `len`-byte messages until its input ends.
fn echo(len: usize, mut input: impl Read, mut output: impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; len];
    loop {
        match input.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        output.write_all(&buf)?;
    }
}

/// The child side over TCP: connects to `addr` and echoes there.
fn tcp_echo(len: usize, addr: &str) -> io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    echo(len, stream.try_clone()?, stream)
}

/// Unbuffered standard input and output.
fn raw_stdio() -> io::Result<(File, File)> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        Ok((
            File::from(io::stdin().as_fd().try_clone_to_owned()?),
            File::from(io::stdout().as_fd().try_clone_to_owned()?),
        ))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle;
        Ok((
            File::from(io::stdin().as_handle().try_clone_to_owned()?),
            File::from(io::stdout().as_handle().try_clone_to_owned()?),
        ))
    }
}
