#!/usr/bin/python3
"""Runs ReluServe's benchmarks side by side and writes docs/benchmarks.md.

1. Core: reluserve-core-bench (Google Benchmark): the raw oneDNN primitive vs
   LinearLayer, and a raw 3-layer stack vs SequentialModel, forward and
   forward+backward, N in {1, 32, 100, 256, 1024}, 1 and 2 OpenMP threads.
2. Transport floors, ReluServe and the peer: the bare echo floor (replies
   prebuilt, requests never parsed), the parse floor (each request parsed
   and validated, its reply built), reluserve-server, and the Python peer
   (bench/peer: grpcio + PyTorch, on a thread pool and on grpc.aio), all
   driven by the same reluserve-load command in turn, per shape at
   concurrency 1 and at 8 in flight over 8 channels.
3. Round trips through reluserve-client, one call in flight.
4. Dynamic batching: N=1 requests at concurrency 32 on a K=M=2048 model,
   with batching off and on, and on below saturation (open loop).
5. The serving path without the weights' footprint (K=37, M=13), and BF16
   on the wire (N=100 forward at concurrency 8, FP32 vs BF16).
6. Monitoring: reluserve-monitor-bench (Forward vs Forward + the dead-ReLU
   monitor's Observe), and a server with /metrics scraped every second and
   the monitor on vs one with both off, driven alternately in one run.
7. A deep stack, the MLP 3072 -> 1024 -> 256 -> 10 with ReLUs: serving vs
   the bare floor with the same weights, dynamic batching on vs off, BF16
   vs FP32 on the wire, per shape.
8. The latency vs throughput plot (N=100 forward, concurrency 1-16).
9. REST against gRPC and JSON against binary tensors: one server driven
   over gRPC, over HTTP with the binary tensor extension and over HTTP in
   JSON, per shape at 1 and 8 in flight (`--only rest` runs just this and
   replaces its section in --out).

Where two or more servers are compared, all of them run at once and each
cell loads them in turn, the order reversed from one cell to the next, so
that the machine's drift hits every side alike. Usage: scripts/bench.sh
[--quick]
"""
import argparse
import contextlib
import functools
import os
import re
import subprocess
import sys
import tempfile
import time

from bench_monitoring import monitoring
from bench_report import write_markdown
from bench_report_rest import rest_section, splice
from bench_rest import rest
from bench_servers import (SHAPES, Binaries, Server, core_bench, load_args,
                           measure, run_load, write_mlp)

IN_FLIGHT = (1, 8)  # concurrency of the comparisons, a channel per request


def start(stack, commands):
    """{name: Server} for {name: command}, stopped when the stack closes."""
    return {name: stack.enter_context(Server(command))
            for name, command in commands.items()}


def interleaved(load, servers, runs, duration, warmup):
    """{(*key, name): measure()} for runs [(key, {name: load args})]: each
    key's names in turn, the order reversed from one key to the next."""
    results = {}
    for index, (key, args_by_name) in enumerate(runs):
        names = list(args_by_name)
        for name in names if index % 2 == 0 else reversed(names):
            results[(*key, name)] = measure(load, servers[name],
                                            args_by_name[name], duration, warmup)
    return results


def shape_runs(names, duration, warmup, levels=IN_FLIGHT, **extra):
    """Runs of every shape at each concurrency level, the same load for
    every name; extra: load_args' keywords."""
    return [((label, level), {name: load_args(n, grad, level, duration,
                                              warmup, **extra)
                              for name in names})
            for label, n, grad in SHAPES for level in levels]


def transport(binaries, duration, warmup):
    """Section 2, on the default single layer (K=3072, M=100): {"runs":
    {(shape, in flight, server): measure()}, "peer_blas": what the peer
    computes with}."""
    commands = {"bare": binaries.floor("bare"),
                "parse": binaries.floor("parse"),
                "reluserve": binaries.reluserve(),
                "peer": binaries.peer(),
                "peer-aio": binaries.peer("--aio")}
    with contextlib.ExitStack() as stack:
        servers = start(stack, commands)
        results = interleaved(binaries.load, servers,
                              shape_runs(commands, duration, warmup),
                              duration, warmup)
        blas = re.search(r"torch thread\(s\), (.*)", servers["peer"].output())
    return {"runs": results, "peer_blas": blas.group(1) if blas else "unknown"}


def round_trips(binaries, quick):
    """Section 3: median, p90, min, max ms of `reluserve-client infer
    --repeat R` per shape."""
    results = {}
    with Server(binaries.reluserve()) as server:
        for label, n, grad in SHAPES:
            output = subprocess.run(
                [binaries.client, "infer", "--target", server.target,
                 "--batch", str(n), "--repeat", "100" if quick else "300"]
                + (["--grad"] if grad else []),
                check=True, capture_output=True, text=True).stdout
            match = re.search(r"median ([0-9.]+) +p90 ([0-9.]+) +min ([0-9.]+)"
                              r" +max ([0-9.]+)", output)
            results[label] = [float(v) for v in match.groups()]
    return results


BATCHING = ["--max-batch-delay-us", "2000", "--preferred-batch-size", "32"]


def batching(binaries, duration, warmup):
    """Section 4: N=1 forward at 32 in flight over 4 channels on K=M=2048,
    one compute thread, batching off and on; then on, open loop at half
    the closed-loop rate (a request waits at most the delay, then its
    batch's compute)."""
    model = ["--in-features", "2048", "--out-features", "2048",
             "--compute-threads", "1"]
    steps = {}
    for name, extra in (("off", []), ("on", BATCHING)):
        with Server(binaries.reluserve(*model, *extra)) as server:
            steps[name] = run_load(binaries.load, server, load_args(
                1, False, 32, duration, warmup, channels=4))[0][0]
    rate = max(1.0, steps["on"]["requests_per_second"] / 2)
    with Server(binaries.reluserve(*model, *BATCHING)) as server:
        steps["open"] = run_load(binaries.load, server, [
            "--batch", "1", "--rate", f"{rate:.0f}", "--channels", "4",
            "--duration", duration, "--warmup", warmup])[0][0]
    return steps


def tiny(binaries, duration, warmup):
    """Section 5a: N=1 forward req/s at 8 in flight of the bare floor and
    reluserve-server on a K=37, M=13 model (weights far inside L2)."""
    model = ["--in-features", "37", "--out-features", "13"]
    rps = {}
    for name, command in (("echo", binaries.floor("bare", *model)),
                          ("reluserve", binaries.reluserve(*model))):
        with Server(command) as server:
            rps[name] = measure(binaries.load, server, load_args(
                1, False, 8, duration, warmup), duration, warmup)["rps"]
    return rps


def bf16_wire(binaries, duration, warmup):
    """Section 5b: N=100 forward at 8 in flight, FP32 then BF16 on the wire."""
    steps = {}
    with Server(binaries.reluserve()) as server:
        for dtype in ("fp32", "bf16"):
            steps[dtype] = run_load(binaries.load, server, load_args(
                100, False, 8, duration, warmup) + ["--dtype", dtype])[0][0]
    return steps


def deep_stack(binaries, duration, warmup, directory):
    """Section 7: the MLP 3072 -> 1024 -> 256 -> 10 (ReLU after each
    Linear) per shape: the bare floor with the same --weights vs
    reluserve-server at 1 and 8 in flight; one compute thread with
    batching off vs on at 32 in flight over 4 channels; FP32 vs BF16 on
    the wire at 8 in flight."""
    weights = ["--weights", write_mlp(directory)]
    scheduled = [*weights, "--compute-threads", "1"]
    commands = {"bare": binaries.floor("bare", *weights),
                "reluserve": binaries.reluserve(*weights),
                "off": binaries.reluserve(*scheduled),
                "on": binaries.reluserve(*scheduled, *BATCHING)}
    wire = [((label,), {dtype: load_args(n, grad, 8, duration, warmup)
                        + ["--dtype", dtype] for dtype in ("fp32", "bf16")})
            for label, n, grad in SHAPES]
    with contextlib.ExitStack() as stack:
        servers = start(stack, commands)
        servers.update(fp32=servers["reluserve"], bf16=servers["reluserve"])
        run = functools.partial(interleaved, binaries.load, servers,
                                duration=duration, warmup=warmup)
        return {
            "floor": run(shape_runs(["bare", "reluserve"], duration, warmup)),
            "batching": run(shape_runs(["off", "on"], duration, warmup,
                                       levels=(32,), channels=4)),
            "bf16": run(wire),
        }


def sweep_plot(binaries, duration, warmup, path):
    """Section 8: N=100 forward at concurrency 1, 2, 4, 8, 16 over 8
    channels, drawn by reluserve-load --plot."""
    with Server(binaries.reluserve()) as server:
        run_load(binaries.load, server, [
            "--batch", "100", "--concurrency", "1,2,4,8,16", "--channels", "8",
            "--duration", duration, "--warmup", warmup], plot=path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build/release")
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true",
                        help="short runs, for trying the script")
    parser.add_argument("--only", choices=["rest"],
                        help="run one section and replace it in --out")
    options = parser.parse_args()
    binaries = Binaries(options.build)
    duration = "1" if options.quick else "5"
    warmup = "0.5" if options.quick else "1"
    docs = os.path.dirname(options.out) or "."
    os.makedirs(docs, exist_ok=True)
    report = {"duration": duration}
    began = time.monotonic()

    def section(name, key, function, *args):
        print(f"{name} ... ({time.monotonic() - began:.0f} s)", file=sys.stderr)
        report[key] = function(*args)

    if options.only == "rest":
        section("REST against gRPC", "rest", rest, binaries, duration, warmup)
        with open(options.out) as document:
            text = splice(document.read(), rest_section(report))
        with open(options.out, "w") as document:
            document.write(text)
        print(f"replaced the REST section of {options.out}", file=sys.stderr)
        return

    section("core benchmark", "core", core_bench, binaries.core, options.quick)
    section("transport floors, ReluServe and the peer", "transport",
            transport, binaries, duration, warmup)
    section("round trips through reluserve-client", "round_trips",
            round_trips, binaries, options.quick)
    section("dynamic batching", "batching", batching, binaries, duration, warmup)
    section("serving path without the weights' footprint", "tiny", tiny,
            binaries, duration, warmup)
    section("BF16 on the wire", "bf16", bf16_wire, binaries, duration, warmup)
    section("monitoring on vs off", "monitoring", monitoring, binaries,
            options.quick, duration, warmup)
    report["deep_duration"] = "1" if options.quick else "3"  # for ~15 min in all
    with tempfile.TemporaryDirectory(prefix="bench-deep-") as directory:
        section("deep stack", "deep", deep_stack, binaries,
                report["deep_duration"], warmup, directory)
    section("concurrency sweep plot", "sweep", sweep_plot, binaries, duration,
            warmup, os.path.join(docs, "latency_vs_throughput_n100_forward.png"))
    section("REST against gRPC", "rest", rest, binaries, duration, warmup)

    write_markdown(report, options.out, " ".join(sys.argv[1:]))
    print(f"wrote {options.out} ({time.monotonic() - began:.0f} s)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
