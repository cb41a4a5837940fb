#!/usr/bin/env python3
"""run.py - the benchmark driver of `make bench`.

Runs every benchmark program for multiproc, Python's multiprocessing and
raw Linux (the kernel channels and start calls) in the same session,
interleaved A B C A B C for several rounds, takes the median of each
figure over the rounds, prints the figures and the ratios, and writes all
samples to a CSV file.

With --shared, a second pass follows for the round trips and the contended
lock, with the machine shared: every benchmark process is pinned to the
first CPU this script may use (so both ends of a round trip take turns on
it), while a busy loop (python3 -c "while True: pass") pinned to each other
CPU keeps those busy. Those figures are named *.shared. The busy loops are
always killed at the end, on Ctrl-C and on SIGTERM too. The same by hand
on two CPUs:  taskset -c 1 sh -c 'while :; do :; done' &  then
taskset -c 0 build-bench/bench/bench_queue multiproc 1 queue.round_trip

Usage: run.py BUILD_DIR [--rounds N] [--only SUITE] [--shared | --shared-only]
              [--csv FILE]
"""
import argparse
import csv
import ctypes
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def suites(build):
    """[(suite, normal-pass commands, shared-pass commands or None)]; each
    command prints lines "bench=<name> impl=<impl> value=<v> unit=<u>".
    The programs take [scale-or-count [figure-prefix]]: the shared pass
    picks its figures by prefix, at the scale of the normal pass."""
    c = lambda prog, *a: [os.path.join(build, "bench", prog), *a]
    py = lambda script, *a: [sys.executable, os.path.join(HERE, "py", script),
                             *a]
    rt, crt, lck = "queue.round_trip", "conn.round_trip", "lock.contended"
    return [
        ("process", [
            ("multiproc", c("bench_process", "multiproc")),
            ("multiproc", c("bench_process", "warm")),
            ("python", py("bench_process.py")),
            ("raw", c("bench_process", "raw")),
        ], None),
        ("queue", [
            ("multiproc", c("bench_queue", "multiproc")),
            ("python", py("bench_queue.py")),
            ("raw", c("bench_queue", "raw")),
        ], [
            ("multiproc", c("bench_queue", "multiproc", "1", rt)),
            ("python", py("bench_queue.py", "1", rt)),
            ("raw", c("bench_queue", "raw", "1", rt)),
        ]),
        ("conn", [
            ("multiproc", c("bench_conn", "multiproc", "0.5")),
            ("python", py("bench_conn.py", "0.5")),
            ("raw", c("bench_conn", "raw", "0.5")),
        ], [
            ("multiproc", c("bench_conn", "multiproc", "0.5", crt)),
            ("python", py("bench_conn.py", "0.5", crt)),
            ("raw", c("bench_conn", "raw", "0.5", crt)),
        ]),
        ("lock", [
            ("multiproc", c("bench_lock", "multiproc")),
            ("python", py("bench_lock.py")),
            ("raw", c("bench_lock", "raw")),
        ], [
            ("multiproc", c("bench_lock", "multiproc", "20", lck)),
            ("python", py("bench_lock.py", "2", lck)),
            ("raw", c("bench_lock", "raw", "20", lck)),
        ]),
        ("pool", [
            ("multiproc", c("bench_pool")),
            ("python", py("bench_pool.py")),
        ], None),
    ]


# The table's columns after multiproc, in order: impl -> (heading, short
# heading for its ratio). A raw program prints one impl per kernel
# channel; "raw" is the first.
COLUMNS = {"python": ("python", "py"), "raw": ("raw", "raw"),
           "raw_socketpair": ("socketpair", "sock"), "raw_mq": ("mq", "mq")}
LEGEND = """\
# raw: process: fork, posix_spawn, vfork (each + waitpid); queue, conn: two
#   pipes for round trips, one pipe for throughput, one write and read per
#   message; lock: a robust process-shared pthread mutex
# socketpair: AF_UNIX SOCK_STREAM; mq: two POSIX message queues (mq_send,
#   mq_receive)
# vs X: how many times better multiproc is than X (>1: multiproc faster);
#   py: python, sock: socketpair"""

# Rows whose raw columns are another figure's raw lines (one measurement
# of the raw call serves both): the forkserver starts against a raw fork
# from a small parent, the library's connections against the kernel
# channels.
RAW_OF = {
    "process.start_join.forkserver": "process.start_join.fork",
    "process.start_join.warm": "process.start_join.vfork",
    "process.start_join.forkserver_1g": "process.start_join.fork",
    "conn.round_trip_8B.duplex": "conn.round_trip_8B",
    "conn.round_trip_8B.oneway": "conn.round_trip_8B",
    "conn.throughput_64KiB.duplex": "conn.throughput_64KiB",
    "conn.throughput_64KiB.oneway": "conn.throughput_64KiB",
}
SHARED = ".shared"


def raw_of(bench):
    base = bench[:-len(SHARED)] if bench.endswith(SHARED) else bench
    src = RAW_OF.get(base)
    return None if src is None else src + bench[len(base):]


def parse(out):
    for line in out.splitlines():
        if not line.startswith("bench="):
            continue
        f = dict(kv.split("=", 1) for kv in line.split())
        yield f["bench"], f["impl"], float(f["value"]), f["unit"]


# Figures where larger is better (rates); the rest are times.
def higher_is_better(unit):
    return "/s" in unit or unit == "x"


def pin(cpus):
    """A preexec_fn: run on cpus only."""
    return lambda: os.sched_setaffinity(0, cpus)


def pin_and_die_with_us(cpus):
    """A preexec_fn for a busy loop: run on cpus only, and be killed if
    this script dies unable to kill it (PR_SET_PDEATHSIG)."""
    def fn():
        os.sched_setaffinity(0, cpus)
        try:
            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass  # then only stop_hogs kills it
    return fn


def start_hogs(cpus):
    hogs = []
    for cpu in cpus:
        hogs.append(subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            preexec_fn=pin_and_die_with_us({cpu}),
            stdin=subprocess.DEVNULL))
    time.sleep(0.2)  # spinning before the first measure
    return hogs


def stop_hogs(hogs):
    for h in hogs:
        if h.poll() is None:
            h.kill()
    for h in hogs:
        h.wait()


class Results:
    def __init__(self):
        self.samples = {}  # (bench, impl) -> [values]
        self.units = {}
        self.order = []  # benches in the order first seen
        self.rows = []  # for the CSV
        self.notes = []
        self.failed = 0

    def run(self, suite, impl, cmd, rnd, suffix="", preexec=None):
        try:
            out = subprocess.run(cmd, check=True, capture_output=True,
                                 text=True, timeout=900,
                                 preexec_fn=preexec).stdout
        except (subprocess.SubprocessError, OSError) as e:
            print(f"# {suite}/{impl}{suffix} round {rnd}: failed: {e}",
                  file=sys.stderr, flush=True)
            self.failed += 1
            return
        for line in out.splitlines():
            if line.startswith("# note:") and line not in self.notes:
                self.notes.append(line)
        for bench, im, v, u in parse(out):
            bench += suffix
            if bench not in self.units:
                self.order.append(bench)
            self.samples.setdefault((bench, im), []).append(v)
            self.units[bench] = u
            self.rows.append((bench, im, rnd, v, u))
            print(f"bench={bench} impl={im} value={v:.6g} unit={u}"
                  f" round={rnd}", flush=True)


def run_pass(res, todo, rounds, suffix="", preexec=None):
    for sname, cmds in todo:
        t0 = time.monotonic()
        for rnd in range(rounds):
            for impl, cmd in cmds:
                res.run(sname, impl, cmd, rnd, suffix, preexec)
        print(f"# {sname}{suffix}: {time.monotonic() - t0:.0f} s",
              flush=True)


def table(res):
    med = {k: statistics.median(v) for k, v in res.samples.items()}
    if not med:
        print("# no figures")
        return med
    impls = {im for _, im in med}
    cols = [im for im in COLUMNS if im in impls]
    cols += sorted(impls - set(cols) - {"multiproc"})
    sources = {raw_of(b) for b in res.order} - {None}
    # Suites in the order they ran; a figure's .shared row under it.
    first = {}
    for i, b in enumerate(res.order):
        first.setdefault(b.split(".")[0], i)
    rows = sorted(res.order, key=lambda b: (first[b.split(".")[0]], b))
    shown, borrowed = [], {}
    for bench in rows:
        own = {im for (b, im) in med if b == bench}
        if bench in sources and not own & {"multiproc", "python"}:
            continue  # only the raw lines other rows show
        src = raw_of(bench)
        label = f"{bench} ({res.units[bench]})"
        if src is not None:
            label += " *"
            borrowed.setdefault(RAW_OF[bench.removesuffix(SHARED)],
                                []).append(bench)
        shown.append((bench, src, label))
    w = max([len(label) for _, _, label in shown] + [20])
    heads = [COLUMNS.get(im, (im, im)) for im in cols]
    print("\n# medians over rounds, and ratios")
    print(f"{'figure':{w}} {'multiproc':>10}"
          + "".join(f" {h:>10}" for h, _ in heads)
          + "".join(f" {'vs ' + s:>8}" for _, s in heads))
    for bench, src, label in shown:
        u = res.units[bench]

        def value(im):
            if im.startswith("raw") and src is not None:
                return med.get((src, im))
            return med.get((bench, im))
        m = value("multiproc")
        vals = [value(im) for im in cols]

        def ratio(other):
            if m is None or other is None or m == 0 or other == 0:
                return "-"
            x = m / other if higher_is_better(u) else other / m
            return f"{x:.2f}x"
        fmt = lambda x: f"{x:10.4g}" if x is not None else f"{'-':>10}"
        print(f"{label:{w}} {fmt(m)}" + "".join(f" {fmt(v)}" for v in vals)
              + "".join(f" {ratio(v):>8}" for v in vals))
    print(LEGEND)
    for src, benches in borrowed.items():
        names = ", ".join(sorted({b.removesuffix(SHARED) for b in benches}))
        print(f"# * raw columns of {names}: those of {src}")
    if any(b.endswith(SHARED) for b in res.order):
        print("# *.shared: every process of the figure on one CPU, busy"
              " loops on the others")
    for n in res.notes:
        print(n)
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int,
                    default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--only", default=None, help="one suite")
    ap.add_argument("--shared", action="store_true",
                    help="then the shared-CPU pass")
    ap.add_argument("--shared-only", action="store_true",
                    help="only the shared-CPU pass")
    ap.add_argument("--csv", default=os.path.join("bench", "results.csv"))
    a = ap.parse_args()
    # SIGTERM as Ctrl-C: the finally blocks kill what was started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    todo = [(s, n, sh) for s, n, sh in suites(a.build)
            if not a.only or a.only == s]
    res = Results()
    t0 = time.monotonic()
    try:
        if not a.shared_only:
            run_pass(res, [(s, n) for s, n, _ in todo], a.rounds)
        shared = [(s, sh) for s, _, sh in todo if sh]
        cpus = sorted(os.sched_getaffinity(0))
        if (a.shared or a.shared_only) and len(cpus) < 2:
            print("# shared pass skipped: this process may use one CPU only",
                  flush=True)
        elif (a.shared or a.shared_only) and shared:
            print(f"# shared pass: benchmarks pinned to CPU {cpus[0]}, a busy"
                  f" loop pinned to each of CPUs {cpus[1:]}", flush=True)
            hogs = []
            try:
                hogs = start_hogs(cpus[1:])
                run_pass(res, shared, a.rounds, SHARED, pin({cpus[0]}))
            finally:
                stop_hogs(hogs)
    except KeyboardInterrupt:
        print("# interrupted", file=sys.stderr)
        sys.exit(130)
    med = table(res)
    print(f"# {a.rounds} rounds, {time.monotonic() - t0:.0f} s in all")
    os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "impl", "round", "value", "unit"])
        w.writerows(res.rows)
        for (bench, impl), v in sorted(med.items()):
            w.writerow([bench, impl, "median", v, res.units[bench]])
    print(f"# samples written to {a.csv}")
    if res.failed:
        print(f"# {res.failed} runs failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
