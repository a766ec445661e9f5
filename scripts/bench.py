#!/usr/bin/python3
"""Runs ReluServe's benchmarks side by side and writes docs/benchmarks.md.

1. Core: reluserve-core-bench (Google Benchmark): the raw oneDNN primitive vs
   LinearLayer, and a raw 3-layer stack vs SequentialModel, forward and
   forward+backward, N in {1, 32, 100, 256, 1024},
   1 and 2 OpenMP threads.
2. Transport floor: reluserve-echo-server (same bytes, no compute, same
   allocator settings) vs reluserve-server, both driven by reluserve-load in
   the same run: concurrency 1, and 8 in flight over 8 channels.
3. Dynamic batching: N=1 requests at concurrency 32 on a K=M=2048 model, with
   batching off and on.
4. BF16 on the wire: N=100 forward at concurrency 8, FP32 vs BF16.
5. Monitoring: reluserve-monitor-bench (Forward vs Forward + the dead-ReLU
   monitor's Observe), and a server with /metrics scraped every second and
   the monitor on vs one with both off, driven alternately in one run.

Every server runs on 127.0.0.1 on a free port and is stopped at the end.
CPU time per request comes from /proc (servers) and wait4 (the load
generator). Usage: scripts/bench.sh [--quick]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHAPES = [  # (label, N, grad)
    ("N=1 forward", 1, False),
    ("N=1 forward+backward", 1, True),
    ("N=100 forward", 100, False),
    ("N=100 forward+backward", 100, True),
]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Server:
    """A server binary on 127.0.0.1:<free port>, stopped with SIGTERM."""

    def __init__(self, binary, args):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-server-")
        if "reluserve-server" in binary and "--metrics-port" not in args:
            args = ["--metrics-port", "0", *args]  # off, unless asked for
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        self.port = None
        while self.port is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{binary} did not start:\n{self.log.read()}")
            time.sleep(0.05)
            self.log.seek(0)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log.read())
            if match:
                self.port = int(match.group(1))

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def cpu(self):
        return cpu_seconds(self.process.pid)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_load(load, server, args, plot=None):
    """One reluserve-load run; returns (steps, load CPU s, server CPU s)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [load, "--target", server.target, "--quiet", "--json",
                   out.name, *args]
        if plot:
            command += ["--plot", plot]
        server_cpu = server.cpu()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        server_cpu = server.cpu() - server_cpu
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(command)} failed")
        steps = json.load(open(out.name))["steps"]
        return steps, usage.ru_utime + usage.ru_stime, server_cpu


def core_bench(binary, quick):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = [binary, "--benchmark_format=console",
                f"--benchmark_out={out.name}", "--benchmark_out_format=json"]
        if quick:
            args.append("--benchmark_min_time=0.05")
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        data = json.load(open(out.name))
    times = {}  # (kind, pass, N, omp) -> median microseconds
    for entry in data["benchmarks"]:
        if entry.get("run_type") == "aggregate" and \
                entry.get("aggregate_name") != "median":
            continue
        match = re.match(r"(Raw|LinearLayer|RawStack|Sequential)/(Forward|ForwardBackward)/N:(\d+)/omp:(\d+)",
                         entry["name"])
        if not match:
            continue
        key = (match.group(1), match.group(2), int(match.group(3)),
               int(match.group(4)))
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[entry.get("time_unit", "ns")]
        times.setdefault(key, []).append(entry["real_time"] * scale)
    return {key: sorted(values)[len(values) // 2] for key, values in times.items()}


def monitor_bench(binary, quick):
    """Median µs of Forward, ForwardAndObserve and Observe per (N, half_dead)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = [binary, f"--benchmark_out={out.name}", "--benchmark_out_format=json"]
        if quick:
            args.append("--benchmark_min_time=0.05")
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        data = json.load(open(out.name))
    times = {}
    for entry in data["benchmarks"]:
        if entry.get("run_type") == "aggregate":
            continue
        match = re.match(r"(\w+)/N:(\d+)/half_dead:(\d+)", entry["name"])
        if match:
            key = (match.group(1), int(match.group(2)), int(match.group(3)))
            times.setdefault(key, []).append(entry["real_time"])
    return {key: sorted(v)[len(v) // 2] for key, v in times.items()}


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def monitoring_on_off(server_bin, load_bin, duration, warmup):
    """Two servers at once, one with /metrics (scraped every second, as
    Prometheus would) and the dead-ReLU monitor, one with both off. Each
    shape runs on, off, off, on three times over (short runs: this machine's
    load drifts within seconds), and the medians are compared; server CPU
    time per request is the steadier measure of the cost."""
    import statistics
    import threading
    import urllib.request
    metrics_port = free_port()
    servers = {
        "on": Server(server_bin, ["--metrics-port", str(metrics_port)]),
        "off": Server(server_bin, ["--metrics-port", "0", "--dead-relu-window", "0"]),
    }
    stop = threading.Event()
    scrapes = [0]

    def scrape():
        while not stop.wait(1.0):
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                r.read()
            scrapes[0] += 1

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    run_seconds = str(max(1.0, float(duration) / 2.5))
    results = {}
    try:
        for label, n, grad in SHAPES:
            for concurrency in (1, 8):
                runs = {"on": [], "off": []}
                for name in ("on", "off", "off", "on") * 3:
                    args = ["--batch", str(n), "--concurrency", str(concurrency),
                            "--channels", str(concurrency), "--duration", run_seconds,
                            "--warmup", warmup] + (["--grad"] if grad else [])
                    steps, _, server_cpu = run_load(load_bin, servers[name], args)
                    step = steps[0]
                    counted = step["requests"] * (1 + float(warmup) / float(run_seconds))
                    runs[name].append((step["requests_per_second"],
                                       step["latency_ms"]["p50"],
                                       server_cpu / max(1, counted) * 1e6,
                                       step["errors"]))
                results[(label, concurrency)] = {
                    name: {
                        "rps": statistics.median(r[0] for r in rs),
                        "p50": statistics.median(r[1] for r in rs),
                        "cpu_us": statistics.median(r[2] for r in rs),
                        "errors": sum(r[3] for r in rs),
                    } for name, rs in runs.items()}
    finally:
        stop.set()
        scraper.join(timeout=10)
        for server in servers.values():
            server.stop()
    return {"shapes": results, "scrapes": scrapes[0], "run_seconds": run_seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build/release")
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true",
                        help="short runs, for trying the script")
    options = parser.parse_args()
    b = options.build
    server_bin = f"{b}/server/reluserve-server"
    echo_bin = f"{b}/bench/reluserve-echo-server"
    load_bin = f"{b}/client/reluserve-load"
    core_bin = f"{b}/bench/reluserve-core-bench"
    duration = "1" if options.quick else "5"
    warmup = "0.5" if options.quick else "1"
    docs = os.path.dirname(options.out) or "."
    os.makedirs(docs, exist_ok=True)
    report = {"duration": duration}

    print("core benchmark ...", file=sys.stderr)
    core = core_bench(core_bin, options.quick)
    report["core"] = core

    print("transport floor vs server ...", file=sys.stderr)
    transport = {}
    servers = {"echo": Server(echo_bin, []), "reluserve": Server(server_bin, [])}
    try:
        for label, n, grad in SHAPES:
            for concurrency, channels in ((1, 1), (8, 8)):
                for name, server in servers.items():
                    args = ["--batch", str(n), "--concurrency", str(concurrency),
                            "--channels", str(channels), "--duration", duration,
                            "--warmup", warmup] + (["--grad"] if grad else [])
                    steps, load_cpu, server_cpu = run_load(load_bin, server, args)
                    step = steps[0]
                    transport[(label, concurrency, name)] = {
                        "server_infer_us": step.get("server", {}).get(
                            "compute_infer_us", 0),
                        "rps": step["requests_per_second"],
                        "p50": step["latency_ms"]["p50"],
                        "p99": step["latency_ms"]["p99"],
                        "errors": step["errors"],
                        # Warm-up requests burn CPU too; count them in.
                        "cpu_per_request": (load_cpu + server_cpu) /
                        max(1, step["requests"] * (1 + float(warmup) /
                                                   float(duration))),
                    }
    finally:
        for server in servers.values():
            server.stop()
    report["transport"] = transport

    print("round trips through reluserve-client ...", file=sys.stderr)
    client_bin = f"{b}/client/reluserve-client"
    round_trips = {}
    server = Server(server_bin, [])
    try:
        for label, n, grad in SHAPES:
            output = subprocess.run(
                [client_bin, "infer", "--target", server.target, "--batch",
                 str(n), "--repeat", "100" if options.quick else "300"]
                + (["--grad"] if grad else []),
                check=True, capture_output=True, text=True).stdout
            match = re.search(r"median ([0-9.]+) +p90 ([0-9.]+) +min ([0-9.]+)"
                              r" +max ([0-9.]+)", output)
            round_trips[label] = [float(v) for v in match.groups()]
    finally:
        server.stop()
    report["round_trips"] = round_trips

    print("dynamic batching ...", file=sys.stderr)
    batching = {}
    for name, extra in (("off", ["--compute-threads", "1"]),
                        ("on", ["--compute-threads", "1",
                                "--max-batch-delay-us", "2000",
                                "--preferred-batch-size", "32"])):
        server = Server(server_bin, ["--in-features", "2048", "--out-features",
                                     "2048", *extra])
        try:
            steps, _, _ = run_load(load_bin, server, [
                "--batch", "1", "--concurrency", "32", "--channels", "4",
                "--duration", duration, "--warmup", warmup])
        finally:
            server.stop()
        batching[name] = steps[0]
    # Below saturation (open loop at half the closed-loop rate) a request
    # waits at most the delay, then its batch's compute.
    server = Server(server_bin, ["--in-features", "2048", "--out-features",
                                 "2048", "--compute-threads", "1",
                                 "--max-batch-delay-us", "2000",
                                 "--preferred-batch-size", "32"])
    try:
        rate = max(1.0, batching["on"]["requests_per_second"] / 2)
        steps, _, _ = run_load(load_bin, server, [
            "--batch", "1", "--rate", f"{rate:.0f}", "--channels", "4",
            "--duration", duration, "--warmup", warmup])
    finally:
        server.stop()
    batching["open"] = steps[0]
    report["batching"] = batching

    print("serving path without the weights' footprint ...", file=sys.stderr)
    tiny = {}
    for name, binary in (("echo", echo_bin), ("reluserve", server_bin)):
        server = Server(binary, ["--in-features", "37", "--out-features", "13"])
        try:
            steps, _, _ = run_load(load_bin, server, [
                "--batch", "1", "--concurrency", "8", "--channels", "8",
                "--duration", duration, "--warmup", warmup])
        finally:
            server.stop()
        tiny[name] = steps[0]["requests_per_second"]
    report["tiny"] = tiny

    print("BF16 on the wire ...", file=sys.stderr)
    bf16 = {}
    server = Server(server_bin, [])
    try:
        for dtype in ("fp32", "bf16"):
            steps, _, _ = run_load(load_bin, server, [
                "--batch", "100", "--concurrency", "8", "--channels", "8",
                "--duration", duration, "--warmup", warmup, "--dtype", dtype])
            bf16[dtype] = steps[0]
    finally:
        server.stop()
    report["bf16"] = bf16

    print("monitoring on vs off ...", file=sys.stderr)
    report["monitor_core"] = monitor_bench(f"{b}/bench/reluserve-monitor-bench",
                                           options.quick)
    report["monitoring"] = monitoring_on_off(server_bin, load_bin, duration, warmup)

    print("concurrency sweep plot ...", file=sys.stderr)
    server = Server(server_bin, [])
    try:
        run_load(load_bin, server, [
            "--batch", "100", "--concurrency", "1,2,4,8,16", "--channels", "8",
            "--duration", duration, "--warmup", warmup],
            plot=os.path.join(docs, "latency_vs_throughput_n100_forward.png"))
    finally:
        server.stop()

    write_markdown(report, options.out, " ".join(sys.argv[1:]))
    print(f"wrote {options.out}", file=sys.stderr)


def machine_line():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    family = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fam = re.search(r"CPU family:\s+(\d+)", family)
    mod = re.search(r"Model:\s+(\d+)", family)
    return (f"{os.cpu_count()} vCPUs, {model}"
            + (f" (family {fam.group(1)}, model {mod.group(1)})" if fam and mod else "")
            + f", {time.strftime('%Y-%m-%d')}")


def write_markdown(report, path, args):
    core = report["core"]
    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(f"Written by `scripts/bench.sh{(' ' + args) if args else ''}` "
        f"({report['duration']} s per load step) on {machine_line()}. "
        "The machine is shared and noisy; every comparison below ran side by "
        "side in one run, and the ratios are what to read.")
    add("")
    add("## Round trip through `reluserve-client`")
    add("")
    add("What a person sees from the CLI: `reluserve-client infer --repeat R` "
        "against a local `reluserve-server` (defaults), one call in flight; "
        "the RPC alone is timed. The first call of each row builds that batch "
        "size's primitives and shows up in max.")
    add("")
    add("| call | median ms | p90 ms | min ms | max ms |")
    add("|---|---|---|---|---|")
    for label, (median, p90, low, high) in report["round_trips"].items():
        add(f"| {label} | {median:.3f} | {p90:.3f} | {low:.3f} | {high:.3f} |")
    add("")
    add("## Core: LinearLayer vs the raw oneDNN primitive")
    add("")
    add("Median µs per call (`reluserve-core-bench`, K=3072, M=100). Raw: a "
        "hand-written oneDNN program (fused ReLU post-op, memory objects made "
        "once). LinearLayer: our wrapper (per-call memory wrapping, user "
        "scratchpad, NaN-preserving ReLU pass). Target: ratio ≥ 0.95.")
    add("")
    add("| pass | N | omp | raw µs | LinearLayer µs | GFLOP/s (ours) | ratio raw/ours |")
    add("|---|---|---|---|---|---|---|")
    for pass_name in ("Forward", "ForwardBackward"):
        for omp in (1, 2):
            for n in (1, 32, 100, 256, 1024):
                raw = core.get(("Raw", pass_name, n, omp))
                ours = core.get(("LinearLayer", pass_name, n, omp))
                if raw is None or ours is None:
                    continue
                flops = 2 * n * 3072 * 100 * (3 if pass_name != "Forward" else 1)
                add(f"| {pass_name} | {n} | {omp} | {raw:.1f} | {ours:.1f} | "
                    f"{flops / ours / 1e3:.1f} | {raw / ours:.3f} |")
    add("")
    add("## Core: a 3-layer Sequential vs the same stack of raw primitives")
    add("")
    add("Median µs per call (`reluserve-core-bench`), nn.Sequential(Linear(3072, "
        "256), ReLU, Linear(256, 128), ReLU, Linear(128, 10)). RawStack: a "
        "hand-written oneDNN program, layer by layer (fused ReLU post-ops, "
        "forward_training, ReLU backward from each layer's output, backward "
        "data and weights, memory objects made once). Sequential: "
        "SequentialModel::Run (per-thread workspaces between layers, "
        "NaN-preserving ReLU, every gradient). Target: ratio ≥ 0.95.")
    add("")
    add("| pass | N | omp | raw µs | Sequential µs | ratio raw/ours |")
    add("|---|---|---|---|---|---|")
    for pass_name in ("Forward", "ForwardBackward"):
        for omp in (1, 2):
            for n in (1, 32, 100, 256, 1024):
                raw = core.get(("RawStack", pass_name, n, omp))
                ours = core.get(("Sequential", pass_name, n, omp))
                if raw is None or ours is None:
                    continue
                add(f"| {pass_name} | {n} | {omp} | {raw:.1f} | {ours:.1f} | "
                    f"{raw / ours:.3f} |")
    add("")
    add("## Serving path vs the transport floor")
    add("")
    add("`reluserve-load` against `reluserve-echo-server` (answers with the "
        "same bytes, no compute, same allocator settings) and against "
        "`reluserve-server` (defaults: inline compute, 1 OpenMP thread). "
        "Compute is LinearLayer's median at 1 thread from the table above.")
    add("")
    add("Concurrency 1. Target: server p50 ≤ 1.15 × (floor p50 + compute), "
        "1.25 × for N=1 forward.")
    add("")
    add("| shape | floor p50 ms | compute ms | server p50 ms | server / (floor + compute) | target |")
    add("|---|---|---|---|---|---|")
    t = report["transport"]
    for label, n, grad in SHAPES:
        floor = t[(label, 1, "echo")]
        served = t[(label, 1, "reluserve")]
        compute = core.get(("LinearLayer", "ForwardBackward" if grad else "Forward", n, 1), 0) / 1e3
        ratio = served["p50"] / (floor["p50"] + compute)
        target = 1.25 if (n == 1 and not grad) else 1.15
        add(f"| {label} | {floor['p50']:.3f} | {compute:.3f} | {served['p50']:.3f} | "
            f"{ratio:.2f} | {'met' if ratio <= target else 'missed'} (≤ {target}) |")
    add("")
    add("Concurrency 8 over 8 channels. Ceiling = 2 cores ÷ (floor CPU time per "
        "request, client + server, + compute). Target: server req/s ≥ 0.85 × "
        "ceiling.")
    add("")
    add("| shape | floor req/s | floor CPU µs/req | compute µs alone | compute µs in server | ceiling req/s | server req/s | server p99 ms | server / ceiling | target |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for label, n, grad in SHAPES:
        floor = t[(label, 8, "echo")]
        served = t[(label, 8, "reluserve")]
        compute = core.get(("LinearLayer", "ForwardBackward" if grad else "Forward", n, 1), 0) / 1e6
        ceiling = 2.0 / (floor["cpu_per_request"] + compute)
        ratio = served["rps"] / ceiling
        add(f"| {label} | {floor['rps']:.0f} | {floor['cpu_per_request'] * 1e6:.0f} | "
            f"{compute * 1e6:.0f} | {served['server_infer_us']:.0f} | "
            f"{ceiling:.0f} | {served['rps']:.0f} | {served['p99']:.2f} | {ratio:.2f} | "
            f"{'met' if ratio >= 0.85 else 'missed'} (≥ 0.85) |")
    errors = sum(v["errors"] for v in t.values())
    add("")
    add(f"Errors across all transport runs: {errors}.")
    tiny = report["tiny"]
    add("")
    add("Where the time goes when a row misses: \"compute µs in server\" is "
        "`ModelStatistics`' compute_infer per request during the run, against "
        "the same call alone (\"compute µs alone\", from the core table): with "
        "client, gRPC and two computations sharing 2 cores, the kernels run "
        "slower than alone, and the ceiling formula does not allow for that. "
        "The weights are 1.2 MB, more than one core's 1 MB L2, so each N=1 "
        "call streams them from L3 and evicts the network stack's lines. "
        "Without that footprint the serving path sits at the floor: with a "
        f"K=37, M=13 model, N=1 forward at 8 in flight reaches {tiny['reluserve']:.0f} "
        f"req/s against the echo's {tiny['echo']:.0f} "
        f"({tiny['reluserve'] / max(1e-9, tiny['echo']):.2f}×).")
    add("")
    add("## Dynamic batching")
    add("")
    add("N=1 forward requests, 32 in flight over 4 channels, on a K=M=2048 "
        "model; `--compute-threads 1`, batching `--max-batch-delay-us 2000 "
        "--preferred-batch-size 32` vs off. Target: ≥ 2× the rows/s, p99 ≤ "
        "delay + one batch compute.")
    add("")
    add("| batching | load | rows/s | p50 ms | p99 ms | requests per execution | compute per execution µs |")
    add("|---|---|---|---|---|---|---|")
    for name in ("off", "on", "open"):
        step = report["batching"][name]
        server = step.get("server", {})
        load = (f"open loop, {step.get('rate', 0):.0f} req/s" if name == "open"
                else "32 in flight")
        add(f"| {'on' if name == 'open' else name} | {load} | "
            f"{step['rows_per_second']:.0f} | {step['latency_ms']['p50']:.2f} | "
            f"{step['latency_ms']['p99']:.2f} | {server.get('requests_per_execution', 0):.1f} | "
            f"{server.get('compute_infer_us', 0):.0f} |")
    off, on = report["batching"]["off"], report["batching"]["on"]
    opened = report["batching"]["open"]
    gain = on["rows_per_second"] / max(1e-9, off["rows_per_second"])
    bound = 2.0 + on.get("server", {}).get("compute_infer_us", 0) / 1e3
    open_bound = 2.0 + opened.get("server", {}).get("compute_infer_us", 0) / 1e3
    add("")
    add(f"Rows/s with batching: {gain:.2f}× ({'met' if gain >= 2 else 'missed'}, ≥ 2×). "
        f"Below saturation (open loop at half the closed-loop rate) p99 is "
        f"{opened['latency_ms']['p99']:.2f} ms against delay + one of its batch "
        f"computes = {open_bound:.2f} ms "
        f"({'met' if opened['latency_ms']['p99'] <= open_bound else 'missed'}). At "
        f"saturation (32 in flight, closed loop) p99 is {on['latency_ms']['p99']:.2f} ms "
        f"against {bound:.2f} ms "
        f"({'met' if on['latency_ms']['p99'] <= bound else 'missed'}). A request that "
        "arrives while a batch computes waits for that batch, then computes in "
        "the next, so p99 approaches two batch computes plus the transport "
        "of the responses (the bound leaves transport out). Two compute "
        "threads, so that one gathers while the other computes, did worse on "
        "2 cores when tried (`--compute-threads 2`): the load generator needs "
        "the second core.")
    add("")
    add("## BF16 on the wire")
    add("")
    add("N=100 forward, 8 in flight over 8 channels. Target: BF16 req/s ≥ 1.5× FP32.")
    add("")
    add("| dtype | req/s | p50 ms | p99 ms |")
    add("|---|---|---|---|")
    for dtype in ("fp32", "bf16"):
        step = report["bf16"][dtype]
        add(f"| {dtype.upper()} | {step['requests_per_second']:.0f} | "
            f"{step['latency_ms']['p50']:.2f} | {step['latency_ms']['p99']:.2f} |")
    ratio = report["bf16"]["bf16"]["requests_per_second"] / max(
        1e-9, report["bf16"]["fp32"]["requests_per_second"])
    add("")
    add(f"BF16 / FP32: {ratio:.2f}× ({'met' if ratio >= 1.5 else 'missed'}, ≥ 1.5×).")
    add("")
    add("## Metrics and the dead-ReLU monitor: on vs off")
    add("")
    add("The monitor alone (`reluserve-monitor-bench`, K=3072, M=100, 1 OpenMP "
        "thread): median µs of LinearLayer::Forward, of Forward followed by "
        "DeadReluMonitor::Observe of its output, and of Observe alone. Healthy: "
        "the default weights; half dead: a bias of -10⁶ on every second unit, "
        "so Observe reads every row of those units (its worst case).")
    add("")
    add("| layer | N | Forward µs | Forward + Observe µs | Observe µs | Observe / Forward |")
    add("|---|---|---|---|---|---|")
    mc = report["monitor_core"]
    for half_dead in (0, 1):
        for n in (1, 100):
            fwd = mc.get(("Forward", n, half_dead), 0)
            both = mc.get(("ForwardAndObserve", n, half_dead), 0)
            obs = mc.get(("Observe", n, half_dead), 0)
            add(f"| {'half dead' if half_dead else 'healthy'} | {n} | {fwd:.1f} | "
                f"{both:.1f} | {obs:.2f} | {obs / max(1e-9, fwd):.3f} |")
    add("")
    mon = report["monitoring"]
    add("The whole server: `reluserve-server` with `/metrics` on (scraped every "
        f"second, {mon['scrapes']} scrapes in all), the monitor and the gRPC "
        "call counter on (the defaults), against one with `--metrics-port 0 "
        "--dead-relu-window 0`, both running; each shape loaded on, off, off, "
        f"on, three times over, {mon['run_seconds']} s a run, medians of six "
        "runs a side. Server CPU µs per request (from /proc, warm-up "
        "included) is the steadier measure; req/s and p50 move with the "
        "machine's load. Target: on / off ≥ 0.97 in req/s, ≤ 1.03 in CPU.")
    add("")
    add("| shape | in flight | off req/s | on req/s | on / off req/s | off p50 ms | on p50 ms | off CPU µs/req | on CPU µs/req | on / off CPU | errors |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for (label, concurrency), r in mon["shapes"].items():
        ratio = r["on"]["rps"] / max(1e-9, r["off"]["rps"])
        cpu = r["on"]["cpu_us"] / max(1e-9, r["off"]["cpu_us"])
        add(f"| {label} | {concurrency} | {r['off']['rps']:.0f} | {r['on']['rps']:.0f} | "
            f"{ratio:.3f} | {r['off']['p50']:.3f} | {r['on']['p50']:.3f} | "
            f"{r['off']['cpu_us']:.1f} | {r['on']['cpu_us']:.1f} | {cpu:.3f} | "
            f"{r['on']['errors'] + r['off']['errors']} |")
    add("")
    add("## Latency vs throughput")
    add("")
    add("N=100 forward, concurrency 1–16 over 8 channels:")
    add("")
    add("![latency vs throughput](latency_vs_throughput_n100_forward.png)")
    add("")
    with open(path, "w") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    main()
