#!/usr/bin/env python3
"""run.py - the benchmark driver of `make bench`.

Runs every benchmark program for multiproc, Python's multiprocessing and
raw Linux IPC in the same session, interleaved A B A B for several rounds,
takes the median of each figure over the rounds, prints the figures and
the ratios, and writes all samples to a CSV file.

Usage: run.py BUILD_DIR [--rounds N] [--only NAME] [--csv FILE]
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Each suite: the commands of each implementation; each prints lines
# "bench=<name> impl=<impl> value=<v> unit=<u>".
def suites(build):
    b = lambda name: os.path.join(build, "bench", name)
    py = lambda name: [sys.executable, os.path.join(HERE, "py", name)]
    return {
        "process": [
            ("multiproc", [b("bench_process"), "multiproc"]),
            ("python", py("bench_process.py")),
                        ("raw", [b("bench_process"), "raw"]),
        ],
                "queue": [
            ("multiproc", [b("bench_queue"), "multiproc"]),
            ("python", py("bench_queue.py")),
            ("raw", [b("bench_queue"), "raw"]),
        ],
                "pool": [
            ("multiproc", [b("bench_pool")]),
            ("python", py("bench_pool.py")),
        ],
        "lock": [
            ("multiproc", [b("bench_lock"), "multiproc"]),
            ("python", py("bench_lock.py")),
            ("raw", [b("bench_lock"), "raw"]),
        ],
    }


def parse(out):
    for line in out.splitlines():
        if not line.startswith("bench="):
            continue
        f = dict(kv.split("=", 1) for kv in line.split())
        yield f["bench"], f["impl"], float(f["value"]), f["unit"]


# Figures where larger is better (rates); the rest are times.
def higher_is_better(unit):
    return "/s" in unit or unit == "x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int,
                    default=int(os.environ.get("BENCH_ROUNDS", "5")))
    ap.add_argument("--only", default=None)
    ap.add_argument("--csv", default=os.path.join("bench", "results.csv"))
    a = ap.parse_args()
    samples = {}  # (bench, impl) -> [values]
    units = {}
    rows = []
    for sname, cmds in suites(a.build).items():
        if a.only and a.only != sname:
            continue
        for rnd in range(a.rounds):
            for impl, cmd in cmds:
                try:
                    out = subprocess.run(cmd, check=True, capture_output=True,
                                         text=True, timeout=900).stdout
                except (subprocess.SubprocessError, OSError) as e:
                    print(f"# {sname}/{impl} round {rnd}: failed: {e}",
                          file=sys.stderr)
                    continue
                for bench, im, v, u in parse(out):
                    samples.setdefault((bench, im), []).append(v)
                    units[bench] = u
                    rows.append((bench, im, rnd, v, u))
                    print(f"bench={bench} impl={im} value={v:.6g} unit={u}"
                          f" round={rnd}", flush=True)
    print("\n# medians over rounds, and ratios")
    print(f"{'figure':44} {'multiproc':>12} {'python':>12} {'raw':>12}"
          f"  {'vs python':>10} {'vs raw':>8}")
    benches = sorted({b for b, _ in samples})
    med = {k: statistics.median(v) for k, v in samples.items()}
    for bench in benches:
        u = units[bench]
        m = med.get((bench, "multiproc"))
        p = med.get((bench, "python"))
        r = med.get((bench, "raw"))
        fmt = lambda x: f"{x:12.4g}" if x is not None else f"{'-':>12}"
        def ratio(ours, other):
            if ours is None or other is None or ours == 0 or other == 0:
                return "-"
            x = ours / other if higher_is_better(u) else other / ours
            return f"{x:.2f}x"
        print(f"{bench + ' (' + u + ')':44} {fmt(m)} {fmt(p)} {fmt(r)}"
              f"  {ratio(m, p):>10} {ratio(m, r):>8}")
    print("# ratio: how many times better multiproc is (>1: faster)")
    os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "impl", "round", "value", "unit"])
        w.writerows(rows)
        for (bench, impl), v in sorted(med.items()):
            w.writerow([bench, impl, "median", v, units[bench]])
    print(f"# samples written to {a.csv}")


if __name__ == "__main__":
    main()
