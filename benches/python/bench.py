#!/usr/bin/env python3
"""Python `multiprocessing` side of the mp benchmark report.

Run by `cargo run --release -p mp-bench`, one process per scenario and start
method; usable alone too:

    python3 benches/python/bench.py apply --n 2000 --reps 5
    python3 benches/python/bench.py --list

Prints one JSON line: {"scenario", "start_method", "n", "unit", "samples",
"median", "python"}. Each scenario is one function below, taking the
multiprocessing context and the size `n` and returning one sample in `unit`;
its twin on the Rust side is the function of the same name in
`mp-bench/src/scenarios.rs`. Both sides do the same work with the same sizes
(the Rust tool passes `n`). Every pool has 2 workers.
"""

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import time

MASK = (1 << 64) - 1
# Tasks of the CPU-bound scenario (its `n` is the length of one task in ms).
CPU_TASKS = 8
POOL_PROCESSES = 2


# ---------------------------------------------------------------------------
# Jobs (module level, so that spawn and forkserver workers find them).


def add(a, b):
    return a + b


def square(x):
    return (x * x) & MASK


def burn(rounds):
    """CPU-bound work: `rounds` steps of xorshift64, each depending on the last."""
    x = rounds | 1
    for _ in range(rounds):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def echo(data):
    return data


def pipe_echo(conn, count):
    for _ in range(count):
        conn.send(conn.recv())
    conn.close()


def queue_produce(queue, start, n):
    start.wait()
    for i in range(n):
        queue.put(i)


def value_increment(value, start, n):
    start.wait()
    for _ in range(n):
        with value.get_lock():
            value.value += 1


# ---------------------------------------------------------------------------
# Scenarios: one function each, (ctx, n) -> one sample in the scenario's unit.


def pool_start(ctx, n):
    """ms: Pool(2) start + one apply + close/join, averaged over n cycles."""
    t0 = time.perf_counter()
    for _ in range(n):
        pool = ctx.Pool(POOL_PROCESSES)
        assert pool.apply(add, (1, 2)) == 3
        pool.close()
        pool.join()
    return (time.perf_counter() - t0) / n * 1e3


def map_default(ctx, n):
    """M items/s: pool.map of a trivial function over range(n), default chunking."""
    with ctx.Pool(POOL_PROCESSES) as pool:
        pool.map(square, range(1000))
        t0 = time.perf_counter()
        out = pool.map(square, range(n))
        elapsed = time.perf_counter() - t0
        assert len(out) == n and out[-1] == square(n - 1)
    return n / elapsed / 1e6


def map_chunksize1(ctx, n):
    """k tasks/s: pool.map over range(n) with chunksize=1."""
    with ctx.Pool(POOL_PROCESSES) as pool:
        pool.map(square, range(100), chunksize=1)
        t0 = time.perf_counter()
        out = pool.map(square, range(n), chunksize=1)
        elapsed = time.perf_counter() - t0
        assert len(out) == n
    return n / elapsed / 1e3


def apply(ctx, n):
    """µs: one pool.apply round trip, averaged over n calls."""
    with ctx.Pool(POOL_PROCESSES) as pool:
        for _ in range(50):
            pool.apply(add, (1, 2))
        t0 = time.perf_counter()
        for _ in range(n):
            pool.apply(add, (1, 2))
        elapsed = time.perf_counter() - t0
    return elapsed / n * 1e6


def pipe(ctx, n):
    """µs: one send + echoed recv over a Pipe to a child process."""
    warm = 100
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=pipe_echo, args=(theirs, warm + n))
    child.start()
    theirs.close()
    for i in range(warm):
        ours.send(i)
        ours.recv()
    t0 = time.perf_counter()
    for i in range(n):
        ours.send(i)
        assert ours.recv() == i
    elapsed = time.perf_counter() - t0
    child.join()
    return elapsed / n * 1e6


def queue(ctx, n):
    """M msgs/s: one producer process puts n ints, the parent gets them."""
    q = ctx.Queue()
    start = ctx.Event()
    child = ctx.Process(target=queue_produce, args=(q, start, n))
    child.start()
    t0 = time.perf_counter()
    start.set()
    for i in range(n):
        assert q.get() == i
    elapsed = time.perf_counter() - t0
    child.join()
    return n / elapsed / 1e6


def value(ctx, n):
    """M increments/s: 2 processes each add 1 n times under the Value's lock."""
    v = ctx.Value("q", 0)
    start = ctx.Event()
    children = [ctx.Process(target=value_increment, args=(v, start, n)) for _ in range(2)]
    for child in children:
        child.start()
    t0 = time.perf_counter()
    start.set()
    for child in children:
        child.join()
    elapsed = time.perf_counter() - t0
    assert v.value == 2 * n, (v.value, 2 * n)
    return 2 * n / elapsed / 1e6


def manager_dict(ctx, n):
    """µs: one d[i] = i on a Manager dict proxy."""
    with ctx.Manager() as manager:
        d = manager.dict()
        for i in range(100):
            d[i] = i
        t0 = time.perf_counter()
        for i in range(n):
            d[i] = i
        elapsed = time.perf_counter() - t0
        assert len(d) == max(n, 100)
    return elapsed / n * 1e6


_CALIBRATED = {}


def calibrate_burn(ms):
    """Rounds of `burn` taking about `ms` milliseconds here, and their result."""
    if ms not in _CALIBRATED:
        probe = 20_000
        best = min(_timed(burn, probe) for _ in range(5))
        rounds = max(1, int(probe * ms / 1e3 / best))
        _CALIBRATED[ms] = (rounds, burn(rounds))
    return _CALIBRATED[ms]


def _timed(f, arg):
    t0 = time.perf_counter()
    f(arg)
    return time.perf_counter() - t0


def cpu_speedup(ctx, n):
    """×: time of 8 tasks of n ms in this process / time of the same 8 on Pool(2)."""
    rounds, expected = calibrate_burn(n)
    with ctx.Pool(POOL_PROCESSES) as pool:
        pool.apply(add, (1, 2))
        t0 = time.perf_counter()
        for _ in range(CPU_TASKS):
            assert burn(rounds) == expected
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = pool.map(burn, [rounds] * CPU_TASKS, chunksize=1)
        parallel = time.perf_counter() - t0
        assert out == [expected] * CPU_TASKS
    return sequential / parallel


def payload(ctx, n):
    """MB/s: n bytes sent to a worker and echoed back (n / round-trip time)."""
    data = bytes(range(256)) * (n // 256) + bytes(n % 256)
    with ctx.Pool(POOL_PROCESSES) as pool:
        pool.apply(echo, (b"warm",))
        t0 = time.perf_counter()
        back = pool.apply(echo, (data,))
        elapsed = time.perf_counter() - t0
        assert len(back) == n
    return n / elapsed / 1e6


# Scenario id (shared with mp-bench) -> (function, unit).
SCENARIOS = {
    "pool_start": (pool_start, "ms"),
    "map": (map_default, "M items/s"),
    "map_chunksize1": (map_chunksize1, "k tasks/s"),
    "apply": (apply, "µs"),
    "pipe": (pipe, "µs"),
    "queue": (queue, "M msgs/s"),
    "value": (value, "M incr/s"),
    "manager_dict": (manager_dict, "µs"),
    "cpu": (cpu_speedup, "×"),
    "payload": (payload, "MB/s"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--n", type=int, required="--list" not in sys.argv)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--start-method", default="fork")
    parser.add_argument("--list", action="store_true", help="print the scenario ids")
    args = parser.parse_args()
    if args.list:
        print(json.dumps({sid: unit for sid, (_, unit) in SCENARIOS.items()}, ensure_ascii=False))
        return
    if args.scenario is None:
        parser.error("a scenario is required")
    run, unit = SCENARIOS[args.scenario]
    ctx = multiprocessing.get_context(args.start_method)
    for _ in range(args.warmup):
        run(ctx, args.n)
    samples = [run(ctx, args.n) for _ in range(args.reps)]
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "start_method": args.start_method,
                "n": args.n,
                "unit": unit,
                "samples": samples,
                "median": statistics.median(samples),
                "python": platform.python_version(),
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
