#!/usr/bin/env python3
"""mpi4py.futures side of the cluster scenarios of the mp benchmark report.

Run under MPI, rank 0 as the client and every other rank as a worker:

    mpirun --allow-run-as-root --oversubscribe -np 3 \\
        python3 -m mpi4py.futures benches/python/cluster_bench.py --json

`mp-bench` runs it that way, beside the mp side (`mp-bench-cluster`, the same
scenarios on `mp::mpi::pool()`), with the same ranks and the same sizes, and
puts both in docs/benchmarks.md. Usable alone too (without --json it prints a
table). Each scenario is one function below, taking the executor and `n` and
returning one sample in its unit; the ids, units and sizes are those of
`mp-bench/src/cluster.rs`.

--json prints one line: {"side", "python", "mpi4py", "mpi", "workers",
"scenarios": [{"scenario", "n", "unit", "samples", "median"}]}.
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time

MASK = (1 << 64) - 1


# ---------------------------------------------------------------------------
# Jobs (module level: worker ranks import this file as `__worker__` to find them).


def add(a, b):
    return a + b


def square(x):
    return (x * x) & MASK


# ---------------------------------------------------------------------------
# Scenarios: (executor, n) -> one sample in the scenario's unit.


def cluster_submit(ex, n):
    """k tasks/s: n tasks submitted one by one, then every result collected."""
    t0 = time.perf_counter()
    futures = [ex.submit(square, i) for i in range(n)]
    out = [f.result() for f in futures]
    elapsed = time.perf_counter() - t0
    assert out[-1] == square(n - 1)
    return n / elapsed / 1e3


def cluster_apply(ex, n):
    """µs: one submit(add, 1, 2).result() round trip, averaged over n."""
    for _ in range(20):
        ex.submit(add, 1, 2).result()
    t0 = time.perf_counter()
    for _ in range(n):
        ex.submit(add, 1, 2).result()
    return (time.perf_counter() - t0) / n * 1e6


def _map(ex, n, chunksize):
    t0 = time.perf_counter()
    out = list(ex.map(square, range(n), chunksize=chunksize))
    elapsed = time.perf_counter() - t0
    assert len(out) == n and out[-1] == square(n - 1)
    return elapsed


def cluster_map_chunk1(ex, n):
    """k items/s: map over range(n), chunksize 1."""
    return n / _map(ex, n, 1) / 1e3


def cluster_map_chunk100(ex, n):
    """M items/s: map over range(n), chunksize 100."""
    return n / _map(ex, n, 100) / 1e6


def cluster_map(ex, n):
    """M items/s: map over range(n), chunk size by multiprocessing.Pool's rule.

    mpi4py.futures has no automatic chunking (its default is 1); this gives it
    the chunk size multiprocessing.Pool.map would pick, n / (4 × workers).
    """
    return n / _map(ex, n, max(1, math.ceil(n / (4 * ex.num_workers)))) / 1e6


# id -> (function, unit, full size, quick size)
SCENARIOS = {
    "cluster_submit": (cluster_submit, "k tasks/s", 1_000, 200),
    "cluster_apply": (cluster_apply, "µs", 2_000, 100),
    "cluster_apply_pair": (cluster_apply, "µs", 5_000, 100),
    "cluster_map_chunk1": (cluster_map_chunk1, "k items/s", 10_000, 1_000),
    "cluster_map_chunk100": (cluster_map_chunk100, "M items/s", 200_000, 20_000),
    "cluster_map": (cluster_map, "M items/s", 1_000_000, 50_000),
}


def parse_sizes(text):
    sizes = {}
    for item in filter(None, text.split(",")):
        name, _, n = item.partition("=")
        if name not in SCENARIOS or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"cluster_bench.py: bad --sizes item {item!r}")
        sizes[name] = int(n)
    return sizes


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--only", default="", help="comma-separated scenario ids")
    p.add_argument("--sizes", default="", help="id=n,... sizes to use")
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    if args.list:
        for name, (f, unit, full, _) in SCENARIOS.items():
            print(f"{name:<22} {unit:<10} n={full}  {f.__doc__.splitlines()[0]}")
        return 0
    only = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    for s in only:
        if s not in SCENARIOS:
            raise SystemExit(f"cluster_bench.py: unknown scenario {s!r}; see --list")
    sizes = parse_sizes(args.sizes)

    from mpi4py import MPI
    import mpi4py
    from mpi4py.futures import MPIPoolExecutor

    results = []
    with MPIPoolExecutor() as ex:
        workers = ex.num_workers
        if workers < 1:
            raise SystemExit("cluster_bench.py: no worker ranks; run under mpirun -np 3")
        ex.submit(add, 1, 2).result()
        for name in only:
            f, unit, full, quick = SCENARIOS[name]
            n = sizes.get(name, quick if args.quick else full)
            samples = []
            for i in range(args.warmup + max(1, args.reps)):
                x = f(ex, n)
                if i >= args.warmup:
                    samples.append(x)
            results.append(
                {
                    "scenario": name,
                    "n": n,
                    "unit": unit,
                    "samples": samples,
                    "median": statistics.median(samples),
                }
            )
            if not args.json:
                print(f"{name:<22} n={n:<8} {statistics.median(samples):10.3f} {unit}",
                      flush=True)
    if args.json:
        print(
            json.dumps(
                {
                    "side": "mpi4py.futures",
                    "python": platform.python_version(),
                    "mpi4py": mpi4py.__version__,
                    "mpi": MPI.Get_library_version().splitlines()[0].strip(),
                    "workers": workers,
                    "scenarios": results,
                },
                ensure_ascii=False,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
