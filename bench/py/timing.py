"""timing.py - the timed round trip the Python benchmarks share."""
import statistics
import time


def round_trip_us(ctx, echo, args, step, n):
    """Start ctx.Process(echo, args), which answers n times; the median,
    in microseconds, of n calls of step() (one message there and back)."""
    p = ctx.Process(target=echo, args=args)
    p.start()
    v = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        v.append((time.perf_counter() - t0) * 1e6)
    p.join()
    return statistics.median(v)
