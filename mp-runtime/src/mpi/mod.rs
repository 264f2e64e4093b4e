//! The same [`Pool`] over the ranks of an MPI job (feature `mpi`).
//!
//! Launch the program with `mpirun` (or `mpiexec`, or Slurm's `srun`): rank 0
//! runs `main`; ranks 1..N are caught by the entry guard before `main` and serve
//! jobs until rank 0 ends. On rank 0, [`pool()`] returns an ordinary
//! [`Pool`] whose workers are the other ranks, with every method
//! (`map` with automatic chunking, `imap`, `apply_async`, callbacks, `close`,
//! `join`, `terminate`).
//!
//! ```no_run
//! #[mp::job]
//! fn square(x: u64) -> u64 { x * x }
//!
//! mp::main! {
//!     fn main() {
//!         // mpirun -np 4 target/release/my_app   (or: srun -n 4 target/release/my_app)
//!         let pool = mp::mpi::pool().expect("run me under mpirun");
//!         assert_eq!(pool.processes(), mp::mpi::world_size() - 1);
//!         let v: Vec<u64> = pool.map(square, 0..1_000_000).unwrap();
//!         assert_eq!(v[3], 9);
//!     }
//! }
//! ```
//!
//! How it behaves:
//!
//! - A job that panics fails only its task with `JobPanicked`; the rank serves on.
//! - A panic outside a job, on any rank, prints its message and calls
//!   `MPI_Abort`: the launcher ends the whole job at once. (Unwinding into
//!   `MPI_Finalize` while other ranks wait would hang the job.)
//! - A rank that dies: by default the launcher ends the whole job at once and
//!   names the dead rank (Open MPI) or process (MPICH's Hydra, which has no
//!   mode that goes on). Where the launcher lets the job go on
//!   (`mpirun --enable-recovery`), rank 0 notices that the rank stopped
//!   answering (it sends a heartbeat every 200 ms while it runs a job; silence
//!   for `MP_MPI_TIMEOUT_MS`, default 2000, means dead): the tasks it held fail
//!   with `WorkerDied` (with `rank: Some(r)`), and the pool goes on with the other
//!   ranks.
//! - Arguments and results travel as bytes: queues, pipes, shared memory and
//!   locks (which are OS handles) cannot be sent to a rank (`InvalidArgument`);
//!   a `Manager` served on TCP (`Manager::serve`) is shared state across machines.
//! - A job on a rank may start a local pool (`mp::pool(n)`) for the cores of its
//!   machine: the MPI launcher's variables are removed from the environment of
//!   every process mp starts, so those workers do not try to join the MPI job.
//! - [`pool_with`] takes a [`PoolBuilder`] for an initializer
//!   or `max_tasks_per_child`. `terminate` fails outstanding results at once, but a
//!   rank finishes the job it is running (its result is dropped) before it serves
//!   the next pool.
//! - One MPI pool at a time: drop (or `close` and `join`) the pool before asking
//!   for another. Ranks finish and call `MPI_Finalize` when rank 0's program
//!   ends, whether or not it made a pool.

mod ffi;
mod hub;
mod rank;

use std::sync::{Mutex, OnceLock};

use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::{Error, Result};
use crate::pool::{Pool, PoolBuilder};
use crate::sys::OsHandle;

pub(crate) use hub::{HANDOFF_SPIN, Ranks};

/// Environment variables by which MPI launchers tell a process its rank.
const RANK_VARIABLES: [&str; 3] = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"];

/// This process's place in the MPI job, once MPI is initialized.
struct World {
    rank: usize,
    size: usize,
    /// Finalized (dropped) once, when rank 0's program ends.
    universe: Mutex<Option<Universe>>,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// True if this program was started by an MPI launcher (`mpirun`, `mpiexec`,
/// `srun --mpi=...`): one of `OMPI_COMM_WORLD_RANK`, `PMIX_RANK` or `PMI_RANK`
/// is set.
pub fn is_launched() -> bool {
    RANK_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// This process's rank in the MPI job (0 when not launched by MPI).
pub fn rank() -> usize {
    match WORLD.get() {
        Some(world) => world.rank,
        None => RANK_VARIABLES
            .iter()
            .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// Number of processes in the MPI job (1 when not launched by MPI).
pub fn world_size() -> usize {
    WORLD.get().map_or(1, |world| world.size)
}

/// On rank 0: a [`Pool`] whose workers are the ranks 1..N, started and
/// handshaken (start errors are returned here).
///
/// `Err(InvalidArgument)` when the program was not launched by MPI, when called
/// on a rank other than 0, when the job has a single process, or while another
/// MPI pool is alive.
pub fn pool() -> Result<Pool> {
    pool_with(Pool::builder())
}

/// [`pool()`] with options: an initializer, `max_tasks_per_child` (a rank runs
/// the initializer again after that many tasks; it is not restarted). The
/// number of processes is the number of ranks, so `processes` must be left
/// unset or equal `world_size() - 1`.
pub fn pool_with(builder: PoolBuilder) -> Result<Pool> {
    let world = launched_world()?;
    if world.rank != 0 {
        return Err(Error::invalid(format!(
            "mp::mpi::pool() is for rank 0, and this is rank {}: ranks 1..N are the pool's \
             workers (a job on a rank may use a local mp::pool(n))",
            world.rank
        )));
    }
    if world.size < 2 {
        return Err(Error::invalid(
            "an MPI pool needs at least two processes (rank 0 and one worker rank): launch \
             with `mpirun -np 2` or more",
        ));
    }
    if let Some(n) = builder.requested_processes()
        && n != world.size - 1
    {
        return Err(Error::invalid(format!(
            "an MPI pool's workers are the {} ranks 1..{}; processes({n}) cannot be honoured \
             (leave it unset, or change `mpirun -np`)",
            world.size - 1,
            world.size - 1
        )));
    }
    let ranks = hub::Ranks::lease(world.size)?;
    builder.build_mpi(ranks)
}

/// One received MPI message, read out as part of a byte stream.
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    at: usize,
}

impl Chunk {
    /// The bytes of `bytes` from `at` on (a leading kind byte is skipped this
    /// way, not removed).
    fn starting_at(bytes: Vec<u8>, at: usize) -> Chunk {
        Chunk { bytes, at }
    }

    /// Copies what is left, as much as fits, into `buf`; `None` once all of it
    /// was read.
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let rest = self.bytes.get(self.at..).filter(|rest| !rest.is_empty())?;
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Some(n)
    }
}

fn launched_world() -> Result<&'static World> {
    if !is_launched() {
        return Err(Error::invalid(
            "this program was not started by an MPI launcher: run it as \
             `mpirun -np 4 path/to/program` (or `srun -n 4 path/to/program` under Slurm); \
             mp::mpi::pool() then returns a pool whose workers are ranks 1..3",
        ));
    }
    WORLD.get().ok_or_else(|| {
        Error::invalid(
            "MPI was not initialized by mp: the program must link mp with the `mpi` feature \
             and must not initialize MPI itself",
        )
    })
}

/// Refuses payloads carrying OS handles: they cannot cross to another machine.
pub(crate) fn check_no_handles(job: &str, handles: &[OsHandle]) -> Result<()> {
    if handles.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the arguments of `{job}` hold queues, pipes, shared memory or locks, which are \
         handles of this machine and cannot be sent to an MPI rank; share state across \
         machines with a Manager served on TCP (mp::Manager::serve)"
    )))
}

/// Called by the entry guard (before `main`): when launched by MPI, initializes
/// it; ranks 1..N then serve jobs and exit, never returning.
pub(crate) fn enter() {
    if !is_launched() || WORLD.get().is_some() {
        return;
    }
    let Some((universe, provided)) = ::mpi::initialize_with_threading(::mpi::Threading::Serialized)
    else {
        // Someone initialized MPI before us; mp stays out of its way.
        return;
    };
    let world = SimpleCommunicator::world();
    let rank = usize::try_from(world.rank()).unwrap_or(0);
    let size = usize::try_from(world.size()).unwrap_or(1);
    if provided < ::mpi::Threading::Serialized {
        eprintln!(
            "mp: the MPI library grants thread level {provided:?}, but mp needs at least \
             Serialized (its pool threads take turns calling MPI); use an MPI built with \
             thread support"
        );
        world.abort(1);
    }
    install_panic_hook();
    if rank >= 1 {
        // A worker rank finalizes MPI itself, when rank 0 says stop.
        let _ = WORLD.set(World {
            rank,
            size,
            universe: Mutex::new(None),
        });
        rank::serve(universe, rank);
    }
    let _ = WORLD.set(World {
        rank,
        size,
        universe: Mutex::new(Some(universe)),
    });
    register_exit_hook();
}

/// Rank 0's end: stops the worker ranks and finalizes MPI. Runs at the end of
/// `mp::main!` and at process exit; later calls do nothing.
pub(crate) fn finish() {
    let Some(world) = WORLD.get() else { return };
    let universe = world
        .universe
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(universe) = universe {
        hub::stop_all(world.size);
        drop(universe);
    }
}

fn register_exit_hook() {
    extern "C" fn at_exit() {
        // A panic must not cross this extern "C" boundary.
        let _ = std::panic::catch_unwind(finish);
    }
    ffi::at_exit(at_exit);
}

/// A panic outside a job calls `MPI_Abort`: unwinding would reach
/// `MPI_Finalize` (or exit) while other ranks wait for this one, and hang the
/// job. A panic in a job is the job's failure; one on another thread while a
/// job runs is left to that job (it may join the thread and handle it).
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::worker::note_job_panic(info) {
            return;
        }
        previous(info);
        if crate::worker::job_running() {
            return;
        }
        eprintln!(
            "mp: a panic outside a job on MPI rank {}: aborting the MPI job",
            rank()
        );
        SimpleCommunicator::world().abort(101);
    }));
}

#[cfg(test)]
mod tests {
    use super::Chunk;

    #[test]
    fn a_chunk_reads_out_from_its_start_in_pieces() {
        let mut chunk = Chunk::starting_at(vec![9, 1, 2, 3, 4, 5], 1);
        let mut buf = [0u8; 2];
        assert_eq!(chunk.read(&mut buf), Some(2));
        assert_eq!(buf, [1, 2]);
        assert_eq!(chunk.read(&mut buf), Some(2));
        assert_eq!(buf, [3, 4]);
        let mut big = [0u8; 8];
        assert_eq!(chunk.read(&mut big), Some(1));
        assert_eq!(big[0], 5);
        assert_eq!(chunk.read(&mut big), None);
        assert_eq!(Chunk::default().read(&mut big), None);
    }
}
