"""bench_lock.py - Python's multiprocessing.Lock: uncontended
acquire+release, and two processes doing lock+increment+unlock on a
shared counter. Prints the lines of bench/run.py.
Usage: python3 bench_lock.py [million-ops [figure-prefix]]"""
import multiprocessing as mp
import statistics
import sys
import time


def uncontended(lock, n):
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return n / (time.perf_counter() - t0) / 1e6


def hammer(lock, counter, n):
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        counter.value += 1
        release()


def contended(ctx, n):
    lock = ctx.Lock()
    counter = ctx.RawValue("l", 0)
    p = ctx.Process(target=hammer, args=(lock, counter, n))
    t0 = time.perf_counter()
    p.start()
    hammer(lock, counter, n)
    p.join()
    t = time.perf_counter() - t0
    assert counter.value == 2 * n, counter.value
    return 2 * n / t / 1e6


def report(name, value, unit="Mops/s"):
    print(f"bench={name} impl=python value={value:.6g} unit={unit}",
          flush=True)


def main():
    n = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 2_000_000
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    if "lock.uncontended".startswith(only):
        report("lock.uncontended",
               statistics.median(uncontended(lock, n // 5) for _ in range(5)))
    if "lock.contended_2proc".startswith(only):
        report("lock.contended_2proc",
               statistics.median(contended(ctx, n // 10) for _ in range(5)))


if __name__ == "__main__":
    main()
