"""bench_process.py - Python's multiprocessing: start+join of a no-op
Process under each start method, and forkserver from a 1 GiB parent.
Prints the lines of bench/run.py.
Usage: python3 bench_process.py [runs [figure-prefix]]"""
import multiprocessing as mp
import statistics
import sys
import time


def noop():
    pass


def median_ms(ctx, runs):
    for _ in range(3):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    v = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        v.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(v)


def report(name, value, unit="ms"):
    print(f"bench={name} impl=python value={value:.6g} unit={unit}", flush=True)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    few = max(5, runs // 5)
    big = None
    for name, method, n, in_big in (
            ("process.start_join.fork", "fork", runs, False),
            ("process.start_join.spawn", "spawn", few, False),
            ("process.start_join.forkserver", "forkserver", runs, False),
            ("process.start_join.forkserver_1g", "forkserver", runs, True),
            ("process.start_join.fork_1g", "fork", few, True)):
        if not name.startswith(only):
            continue
        if in_big and big is None:
            big = bytearray(1 << 30)  # zero-filled by Python: pages touched
            big[::4096] = b"\1" * len(big[::4096])
        report(name, median_ms(mp.get_context(method), n))
    del big


if __name__ == "__main__":
    main()
