"""bench_conn.py - Python's multiprocessing Pipe and Connection: the figures
of bench_conn.c, the 8-byte round trip and the 64 KiB throughput over a
duplex Pipe() and over two one-way Pipe(duplex=False), with send_bytes and
recv_bytes. Prints the lines of bench/run.py.
Usage: python3 bench_conn.py [scale [figure-prefix]]"""
import multiprocessing as mp
import statistics
import sys
import time

from timing import round_trip_us

MSG8 = b"\1" * 8
MSG64K = b"\1" * 65536


def pipes(ctx, duplex):
    """(parent_send, parent_recv, child_recv, child_send)"""
    if duplex:
        a, b = ctx.Pipe()
        return a, a, b, b
    down_r, down_w = ctx.Pipe(duplex=False)
    up_r, up_w = ctx.Pipe(duplex=False)
    return down_w, up_r, down_r, up_w


def echo(recv, send, n):
    for _ in range(n):
        send.send_bytes(recv.recv_bytes())


def take(recv, send, n):
    for _ in range(n):
        recv.recv_bytes()
    send.send_bytes(MSG8)


def round_trip(ctx, duplex, n):
    send, recv, c_recv, c_send = pipes(ctx, duplex)

    def step():
        send.send_bytes(MSG8)
        recv.recv_bytes()

    return round_trip_us(ctx, echo, (c_recv, c_send, n), step, n)


def throughput(ctx, duplex, n):
    send, recv, c_recv, c_send = pipes(ctx, duplex)
    p = ctx.Process(target=take, args=(c_recv, c_send, n))
    p.start()
    t0 = time.perf_counter()
    for _ in range(n):
        send.send_bytes(MSG64K)
    recv.recv_bytes()
    t = time.perf_counter() - t0
    p.join()
    return n * len(MSG64K) / t / 1e9


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    ctx = mp.get_context("fork")
    for duplex, kind in ((True, "duplex"), (False, "oneway")):
        name = "conn.round_trip_8B." + kind
        if name.startswith(only):
            report(name, round_trip(ctx, duplex, int(20_000 * scale)), "us")
    for duplex, kind in ((True, "duplex"), (False, "oneway")):
        name = "conn.throughput_64KiB." + kind
        if name.startswith(only):
            n = int(20_000 * scale)
            report(name, statistics.median(
                throughput(ctx, duplex, n) for _ in range(3)), "GB/s")


def report(name, value, unit):
    print(f"bench={name} impl=python value={value:.6g} unit={unit}",
          flush=True)


if __name__ == "__main__":
    main()
