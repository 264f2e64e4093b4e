//! The same jobs and the same `Pool`, over the ranks of an MPI job.
//!
//! ```text
//! cargo build --release --features mpi --example cluster_map
//! mpirun -np 3 target/release/examples/cluster_map          # one machine
//! mpirun --hostfile hosts -np 16 target/release/examples/cluster_map
//! srun -n 16 --mpi=pmix target/release/examples/cluster_map  # under Slurm
//! ```
//!
//! Rank 0 runs `main`; ranks 1..N serve jobs and never run its body.

use std::time::Instant;

#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

/// Where a job ran: rank and host.
#[mp::job]
fn where_am_i(_i: u32) -> (usize, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".to_string());
    (mp::mpi::rank(), host)
}

mp::main! {
    fn main() {
        if !mp::mpi::is_launched() {
            eprintln!("run me under MPI: mpirun -np 3 {}", std::env::args().next().unwrap_or_default());
            std::process::exit(2);
        }
        let pool = mp::mpi::pool().expect("an MPI pool on rank 0");
        assert_eq!(pool.processes(), mp::mpi::world_size() - 1);
        println!("rank {} of {}: a pool of {} ranks", mp::mpi::rank(), mp::mpi::world_size(), pool.processes());

        let mut seen: Vec<(usize, String)> = pool.map_chunked(where_am_i, 0..(4 * pool.processes() as u32), 1).unwrap();
        seen.sort();
        seen.dedup();
        for (rank, host) in &seen {
            println!("  rank {rank} serves on {host}");
        }

        let n = 1_000_000u64;
        let started = Instant::now();
        let squares: Vec<u64> = pool.map(square, 0..n).unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(squares[12_345], 12_345 * 12_345);
        let total: u128 = squares.iter().map(|&s| s as u128).sum();
        println!("map(square, 0..{n}) on {} ranks: {:.1} M items/s, sum {total}", pool.processes(), n as f64 / secs / 1e6);

        let rounds = 1000u64;
        let started = Instant::now();
        for i in 0..rounds {
            assert_eq!(pool.apply(square, (i,)).unwrap(), i * i);
        }
        let secs = started.elapsed().as_secs_f64();
        println!("apply one by one: {:.0} round trips/s ({:.1} us each)", rounds as f64 / secs, secs / rounds as f64 * 1e6);

        let started = Instant::now();
        let pending: Vec<_> = (0..rounds).map(|i| pool.apply_async(square, (i,))).collect();
        for (i, a) in pending.into_iter().enumerate() {
            assert_eq!(a.get().unwrap(), (i * i) as u64);
        }
        let secs = started.elapsed().as_secs_f64();
        println!("{rounds} apply_async submitted one by one, then collected: {:.0} tasks/s", rounds as f64 / secs);

        let started = Instant::now();
        let n = 20_000u64;
        let v = pool.map_chunked(square, 0..n, 1).unwrap();
        assert_eq!(v.len() as u64, n);
        println!("map chunksize 1 over {n}: {:.0} tasks/s", n as f64 / started.elapsed().as_secs_f64());
    }
}
