"""bench_pool.py - Python's multiprocessing.Pool (2 workers) and
concurrent.futures.ProcessPoolExecutor: the figures of bench_pool.c.
Lines named *.executor are ProcessPoolExecutor's.
Usage: python3 bench_pool.py [scale]"""
import concurrent.futures as cf
import multiprocessing as mp
import statistics
import sys
import time


def twice(x):
    return x * 2


def echo(x):
    return x


def rev(s):
    return s[::-1]


def strings(n):
    """n byte strings of 10 to 100 bytes (as bench_pool.c makes them)."""
    return [bytes((97 + (i + k) % 26) for k in range(10 + i % 91))
            for i in range(n)]


def burn(x):
    for _ in range(200000):  # about as long as bench_pool.c's burn
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
    return x


def report(name, value, unit):
    print(f"bench={name} impl=python value={value:.6g} unit={unit}",
          flush=True)


def med(f, k=5):
    return statistics.median(f() for _ in range(k))


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    ctx = mp.get_context("fork")
    # First, from a small parent (as bench_pool.c does).
    def create():
        t0 = time.perf_counter()
        p = ctx.Pool(2)
        p.close()
        p.join()
        return (time.perf_counter() - t0) * 1e3
    report("pool.create_close_join", med(create), "ms")
    n = int(1_000_000 * scale)
    data = list(range(n))
    with ctx.Pool(2) as pool:
        n1 = int(20_000 * scale)

        def chunk1():
            t0 = time.perf_counter()
            pool.map(twice, data[:n1], chunksize=1)
            return (time.perf_counter() - t0) / n1 * 1e6
        report("pool.map_chunksize1", med(chunk1, 3), "us/task")

        def apply10k():
            t0 = time.perf_counter()
            rs = [pool.apply_async(echo, (k,)) for k in range(10000)]
            for r in rs:
                r.get()
            return (time.perf_counter() - t0) / 10000 * 1e6
        report("pool.apply_async", med(apply10k, 3), "us/task")

        def default_map():
            t0 = time.perf_counter()
            pool.map(twice, data)
            return n / (time.perf_counter() - t0) / 1e6
        report("pool.map_default_1M", med(default_map, 3), "Mitems/s")

        ss = strings(n)

        def bytes_map():
            t0 = time.perf_counter()
            pool.map(rev, ss)
            return n / (time.perf_counter() - t0) / 1e6
        report("pool.map_bytes_1M", med(bytes_map, 3), "Mitems/s")

    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        def submit10k():
            t0 = time.perf_counter()
            fs = [ex.submit(echo, k) for k in range(10000)]
            for f in fs:
                f.result()
            return (time.perf_counter() - t0) / 10000 * 1e6
        report("pool.apply_async.executor", med(submit10k, 3), "us/task")

    nc = int(40 * scale) + 2
    t = []
    for w in (1, 2):
        with ctx.Pool(w) as p:
            def cpu():
                t0 = time.perf_counter()
                p.map(burn, range(nc))
                return time.perf_counter() - t0
            t.append(med(cpu, 3))
    report("pool.cpu_speedup_1to2", t[0] / t[1], "x")



if __name__ == "__main__":
    main()
