#!/usr/bin/python3
"""The soak: one real reluserve-server on 127.0.0.1 under a closed-loop
mixed load for SECONDS (tests/interop/mixed_load.py: gRPC ModelInfer forward,
forward + backward and BF16, ModelStreamInfer, REST binary forward, backward
and BF16; every `--bad-every`-th request of a worker malformed on purpose),
the server's RSS sampled each second into rss.csv. Every OK answer is checked
against a numpy reference.

Verdict (exit 0 only if both hold):
- no unexpected outcome: every request got the code its kind should get
  (OK, or INVALID_ARGUMENT / 400 for the malformed ones), with right numbers;
- RSS growth after warm-up at most --max-growth: (peak RSS in the last
  --window seconds - peak RSS in the first --window seconds after warm-up)
  / the latter. Warm-up is the first --warmup seconds (default 60): oneDNN
  primitives for each batch size, allocator pools and gRPC's buffers settle
  there. Peaks of windows rather than single samples, because the server
  returns free heap pages every 10 s (PeriodicHeapTrim) and its RSS is a
  sawtooth: one sample against another measures where in a tooth each fell.
  The least-squares slope after warm-up and the single-sample figure (max
  after warm-up against the sample at its end) are printed too.

    /usr/bin/python3 -B scripts/soak.py --server PATH --stubs DIR [--seconds 600]
        [--concurrency 16] [--warmup 60] [--window 60] [--out DIR]

scripts/soak.sh builds the release preset and runs this. Bounded: the load
stops after --seconds, every call after 20 s.
"""

import argparse
import csv
import os
import pathlib
import sys
import tempfile
import time

sys.dont_write_bytecode = True
INTEROP = pathlib.Path(__file__).resolve().parent.parent / "tests" / "interop"
sys.path.insert(0, str(INTEROP))
import server_process as sp  # noqa: E402

K, M = 3072, 100


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--stubs", required=True)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=float, default=60)
    p.add_argument("--window", type=float, default=60,
                   help="seconds whose peak RSS is compared, first and last")
    p.add_argument("--bad-every", type=int, default=10)
    p.add_argument("--max-growth", type=float, default=0.05)
    p.add_argument("--out", default=None, help="where rss.csv and server.log go")
    args = p.parse_args()
    if args.seconds < args.warmup + 2 * args.window:
        p.error("--seconds must be at least --warmup + 2 * --window")
    return args


def slope_mib_per_minute(samples):
    """Least-squares slope of RSS against time, in MiB per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mean_t = sum(s[0] for s in samples) / n
    mean_r = sum(s[1] for s in samples) / n
    covariance = sum((s[0] - mean_t) * (s[1] - mean_r) for s in samples)
    variance = sum((s[0] - mean_t) ** 2 for s in samples)
    return covariance / variance * 60 / (1 << 20) if variance else float("nan")


def summarize(outcomes, seconds):
    by = {}
    for o in outcomes:
        key = (o.kind, o.code, o.expected)
        by[key] = by.get(key, 0) + 1
    print(f"\n{'kind':15} {'code':18} {'expected':18} {'requests':>9}")
    for (kind, code, expected), n in sorted(by.items()):
        print(f"{kind:15} {code:18} {expected:18} {n:9}")
    print(f"{len(outcomes)} requests in {seconds:.0f} s: {len(outcomes) / seconds:.1f} req/s")


def main():
    args = parse_args()
    sys.path.insert(0, os.path.abspath(args.stubs))
    import mixed_load as ml

    out = args.out or tempfile.mkdtemp(prefix="reluserve-soak-")
    os.makedirs(out, exist_ok=True)
    w, b = ml.weights(K, M)
    weights = sp.write_linear_weights(os.path.join(out, "w.safetensors"), w, b,
                                      decoys=False)
    server, http_port = ml.start_server(args.server, ["--weights", weights,
                                                      "--max-batch", 64])
    samples = []  # (elapsed s, rss bytes, requests so far, threads)
    csv_file = open(os.path.join(out, "rss.csv"), "w", newline="")
    writer = csv.writer(csv_file)
    writer.writerow(["elapsed_s", "rss_bytes", "requests", "threads"])
    try:
        load = ml.MixedLoad(server.target, http_port, w, b, workers=args.concurrency,
                            bad_every=args.bad_every, duration_s=args.seconds,
                            backoff_s=0.05)
        start = time.monotonic()
        load.start()
        next_sample = start
        while time.monotonic() - start < args.seconds:
            if server.wait_exit(0) is not None:
                break
            status = sp.proc_status(server.pid)
            rss, threads = int(status["VmRSS"][0]) * 1024, int(status["Threads"][0])
            samples.append((time.monotonic() - start, rss, len(load.outcomes()), threads))
            writer.writerow((f"{samples[-1][0]:.1f}", rss, samples[-1][2], threads))
            csv_file.flush()
            next_sample += 1.0
            time.sleep(max(0.0, next_sample - time.monotonic()))
        alive = load.stop()
        elapsed = time.monotonic() - start
        exited = server.wait_exit(0)
    finally:
        csv_file.close()
        code = server.stop(expect_code=None)
        with open(os.path.join(out, "server.log"), "w") as f:
            f.write(server.log())

    outcomes = load.outcomes()
    summarize(outcomes, elapsed)
    unexpected = [o for o in outcomes if o.code != o.expected or o.wrong]
    for o in unexpected[:20]:
        print(f"unexpected: {o}")
    warm = [s for s in samples if s[0] >= args.warmup]
    rss = [s[1] for s in samples]
    mib = 1 << 20
    nan = float("nan")
    end = samples[-1][0]
    first = [s[1] for s in warm if s[0] < args.warmup + args.window]
    last = [s[1] for s in warm if s[0] >= end - args.window]
    growth = (max(last) - max(first)) / max(first) if first and last else nan
    baseline = warm[0][1] if warm else nan
    point = (max(s[1] for s in warm) - baseline) / baseline if warm else nan
    print(f"RSS MiB: start {rss[0] / mib:.1f}, max {max(rss) / mib:.1f}, "
          f"end {rss[-1] / mib:.1f}; after warm-up ({args.warmup:g} s): "
          f"min {min((s[1] for s in warm), default=nan) / mib:.1f}, slope "
          f"{slope_mib_per_minute(warm):+.3f} MiB/min")
    if first and last:
        print(f"peak RSS MiB: first {args.window:g} s after warm-up "
              f"{max(first) / mib:.1f}, last {args.window:g} s "
              f"{max(last) / mib:.1f}; growth after warm-up {100 * growth:.2f} %")
    print(f"(single samples: max after warm-up against the sample at "
          f"{args.warmup:g} s: {100 * point:+.2f} %)")
    print(f"server threads: after warm-up {warm[0][3] if warm else '-'}, "
          f"max {max(s[3] for s in samples)}, end {samples[-1][3]}")
    print(f"samples: {out}/rss.csv ({len(samples)}); server exit {code}")
    failures = []
    if exited is not None:
        failures.append(f"the server exited during the soak ({exited})")
    if alive:
        failures.append(f"workers still running: {alive}")
    if unexpected:
        failures.append(f"{len(unexpected)} unexpected outcomes")
    if not growth <= args.max_growth:
        failures.append(f"RSS growth {100 * growth:.2f} % > {100 * args.max_growth:g} %")
    if code != 0:
        failures.append(f"the server exited {code} after SIGTERM")
    print("verdict: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
