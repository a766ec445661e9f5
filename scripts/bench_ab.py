#!/usr/bin/python3
"""Two reluserve-server commands side by side: the same reluserve-load steps
against each in turn (the order reversed from one step to the next, ROUNDS
times over), printing req/s, p50 and p99 of each, the ratio B / A, and what
each server process cost: minor page faults per request and RSS.

Written to decide the allocator (docs/reliability.md, "Soak"): A and B are
whole commands, so one binary under two environments compares too:

    /usr/bin/python3 scripts/bench_ab.py --build build/release \\
        --a "build/release/server/reluserve-server" \\
        --b "env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
             build/release/server/reluserve-server"

Every server listens on 127.0.0.1 (scripts/bench_servers.py's Server, /metrics
and REST off). Bounded: each step runs --duration seconds after --warmup.
"""
import argparse
import shlex
import statistics
import sys

from bench_servers import Binaries, Server, load_args, measure

SHAPES = [  # (label, N, grad): bench.py's, and N=1024 where buffers are 12 MB
    ("N=1 forward", 1, False),
    ("N=100 forward", 100, False),
    ("N=100 forward+backward", 100, True),
    ("N=1024 forward+backward", 1024, True),
]
IN_FLIGHT = (1, 8)


def minor_faults(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return (int(fields["VmRSS"].split()[0]) / 1024,
            int(fields["VmHWM"].split()[0]) / 1024)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build/release",
                   help="where reluserve-load is (client/reluserve-load)")
    p.add_argument("--a", required=True, help="server command A")
    p.add_argument("--b", required=True, help="server command B")
    p.add_argument("--duration", default="4")
    p.add_argument("--warmup", default="1")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--shape", action="append", choices=[s[0] for s in SHAPES],
                   help="only these shapes (default: all)")
    return p.parse_args()


def with_bench_flags(command):
    words = shlex.split(command)
    return [*words, "--metrics-port", "0", "--http-port", "0"]


def main():
    args = parse_args()
    shapes = [s for s in SHAPES if not args.shape or s[0] in args.shape]
    load = Binaries(args.build).load
    servers = {"A": Server(with_bench_flags(args.a)),
               "B": Server(with_bench_flags(args.b))}
    results = {}  # (label, level, name) -> [(measure(), faults per request)]
    try:
        index = 0
        for _ in range(args.rounds):
            for label, n, grad in shapes:
                for level in IN_FLIGHT:
                    names = ["A", "B"] if index % 2 == 0 else ["B", "A"]
                    index += 1
                    for name in names:
                        server = servers[name]
                        before = minor_faults(server.process.pid)
                        m = measure(load, server,
                                    load_args(n, grad, level, args.duration,
                                              args.warmup),
                                    args.duration, args.warmup)
                        faults = minor_faults(server.process.pid) - before
                        total = m["rps"] * (float(args.duration) +
                                            float(args.warmup))
                        results.setdefault((label, level, name), []).append(
                            (m, faults / max(1.0, total)))
        memory = {name: rss_mib(s.process.pid) for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()

    print(f"A: {args.a}\nB: {args.b}\n{args.rounds} rounds of "
          f"{args.duration} s steps; medians over the rounds\n")
    print(f"| shape | in flight | A req/s | B req/s | B / A | A p50 / p99 ms "
          f"| B p50 / p99 ms | A faults/req | B faults/req |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, _, _ in shapes:
        for level in IN_FLIGHT:
            row = {}
            for name in ("A", "B"):
                runs = results[(label, level, name)]
                row[name] = (statistics.median(m["rps"] for m, _ in runs),
                             statistics.median(m["p50"] for m, _ in runs),
                             statistics.median(m["p99"] for m, _ in runs),
                             statistics.median(f for _, f in runs),
                             sum(m["errors"] for m, _ in runs))
            a, b = row["A"], row["B"]
            print(f"| {label} | {level} | {a[0]:.0f} | {b[0]:.0f} | "
                  f"{b[0] / a[0]:.3f} | {a[1]:.3f} / {a[2]:.3f} | "
                  f"{b[1]:.3f} / {b[2]:.3f} | {a[3]:.1f} | {b[3]:.1f} |")
            if a[4] or b[4]:
                print(f"  errors: A {a[4]}, B {b[4]}", file=sys.stderr)
    for name, (rss, peak) in memory.items():
        print(f"{name}: RSS at the end {rss:.1f} MiB, peak {peak:.1f} MiB")


if __name__ == "__main__":
    main()
