"""bench_queue.py - Python's multiprocessing Queue, SimpleQueue and Pipe:
8-byte messages 1->1 and 2->2, 64 KiB messages, and the round trip over
two queues (and over a duplex Pipe). Prints the lines of bench/run.py.
Usage: python3 bench_queue.py [scale [figure-prefix]]"""
import multiprocessing as mp
import statistics
import sys
import time

from timing import round_trip_us

MSG8 = b"\1" * 8
MSG64K = b"\1" * 65536


def producer(q, n, msg):
    put = q.put
    for _ in range(n):
        put(msg)


def consumer(q, n):
    get = q.get
    for _ in range(n):
        get()


def flow(ctx, kind, np_, nc, n, msg):
    q = ctx.Queue() if kind == "queue" else ctx.SimpleQueue()
    cs = [ctx.Process(target=consumer, args=(q, n // nc)) for _ in range(nc)]
    ps = [ctx.Process(target=producer, args=(q, n // np_, msg))
          for _ in range(np_)]
    for p in cs:
        p.start()
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps + cs:
        p.join()
    return n / (time.perf_counter() - t0)


def pipe_flow(ctx, n, msg):
    a, b = ctx.Pipe(duplex=False)
    p = ctx.Process(target=lambda: [a.recv_bytes() for _ in range(n)])
    p.start()
    t0 = time.perf_counter()
    for _ in range(n):
        b.send_bytes(msg)
    p.join()
    return n / (time.perf_counter() - t0)


def echo(q, back, n):
    for _ in range(n):
        back.put(q.get())


def round_trip(ctx, n):
    q, back = ctx.Queue(), ctx.Queue()

    def step():
        q.put(MSG8)
        back.get()

    return round_trip_us(ctx, echo, (q, back, n), step, n)


def pipe_echo(c, n):
    for _ in range(n):
        c.send_bytes(c.recv_bytes())


def pipe_round_trip(ctx, n):
    a, b = ctx.Pipe()
    p = ctx.Process(target=pipe_echo, args=(b, n))
    p.start()
    v = []
    for _ in range(n):
        t0 = time.perf_counter()
        a.send_bytes(MSG8)
        a.recv_bytes()
        v.append((time.perf_counter() - t0) * 1e6)
    p.join()
    return statistics.median(v)


def report(name, value, unit, impl="python"):
    print(f"bench={name} impl={impl} value={value:.6g} unit={unit}",
          flush=True)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    ctx = mp.get_context("fork")
    n8 = int(200_000 * scale)
    n64 = int(20_000 * scale)
    nrt = int(20_000 * scale)
    med = lambda f: statistics.median(f() for _ in range(3))
    figures = [
        ("queue.1to1_8B", "Mmsg/s",
         lambda: med(lambda: flow(ctx, "queue", 1, 1, n8, MSG8)) / 1e6),
        ("queue.2to2_8B", "Mmsg/s",
         lambda: med(lambda: flow(ctx, "queue", 2, 2, n8, MSG8)) / 1e6),
        ("queue.1to1_64KiB", "GB/s",
         lambda: med(lambda: flow(ctx, "queue", 1, 1, n64, MSG64K))
         * 65536 / 1e9),
        ("queue.round_trip", "us", lambda: round_trip(ctx, nrt)),
        # The other Python channels, as extra lines.
        ("queue.simplequeue_1to1_8B", "Mmsg/s",
         lambda: med(lambda: flow(ctx, "simple", 1, 1, n8, MSG8)) / 1e6),
        ("queue.pipe_1to1_8B", "Mmsg/s",
         lambda: med(lambda: pipe_flow(ctx, n8, MSG8)) / 1e6),
        ("queue.pipe_round_trip", "us", lambda: pipe_round_trip(ctx, nrt)),
    ]
    for name, unit, measure in figures:
        if name.startswith(only):
            report(name, measure(), unit)


if __name__ == "__main__":
    main()
