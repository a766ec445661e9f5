"""docs/benchmarks.md from scripts/bench.py's measurements: one function per
section, each returning its markdown lines. The serving comparisons (floors,
peer, deep stack) are in bench_report_serving.py.
"""
import os
import re
import subprocess
import time

from bench_report_rest import rest_section
from bench_report_serving import deep_section, peer_section, transport_section
from bench_tables import header, row

def machine_line():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fam = re.search(r"CPU family:\s+(\d+)", lscpu)
    mod = re.search(r"Model:\s+(\d+)", lscpu)
    return (f"{os.cpu_count()} vCPUs, {model}"
            + (f" (family {fam.group(1)}, model {mod.group(1)})" if fam and mod else "")
            + f", {time.strftime('%Y-%m-%d')}")


def round_trip_section(report):
    lines = [
        "## Round trip through `reluserve-client`", "",
        "What a person sees from the CLI: `reluserve-client infer --repeat R` "
        "against a local `reluserve-server` (defaults), one call in flight; "
        "the RPC alone is timed. The first call of each row builds that batch "
        "size's primitives and shows up in max.", "",
        *header("call", "median ms", "p90 ms", "min ms", "max ms")]
    for label, (median, p90, low, high) in report["round_trips"].items():
        lines.append(row(label, f"{median:.3f}", f"{p90:.3f}", f"{low:.3f}",
                         f"{high:.3f}"))
    return lines


def core_section(core):
    lines = [
        "## Core: LinearLayer vs the raw oneDNN primitive", "",
        "Median µs per call (`reluserve-core-bench`, K=3072, M=100). Raw: a "
        "hand-written oneDNN program (fused ReLU post-op, memory objects made "
        "once). LinearLayer: our wrapper (per-call memory wrapping, user "
        "scratchpad, NaN-preserving ReLU pass). Target: ratio ≥ 0.95.", "",
        *header("pass", "N", "omp", "raw µs", "LinearLayer µs",
                "GFLOP/s (ours)", "ratio raw/ours")]
    for key, raw, ours in core_pairs(core, "Raw", "LinearLayer"):
        flops = 2 * key[1] * 3072 * 100 * (3 if key[0] != "Forward" else 1)
        lines.append(row(*key, f"{raw:.1f}", f"{ours:.1f}",
                         f"{flops / ours / 1e3:.1f}", f"{raw / ours:.3f}"))
    lines += [
        "", "## Core: a 3-layer Sequential vs the same stack of raw primitives",
        "",
        "Median µs per call (`reluserve-core-bench`), nn.Sequential(Linear(3072, "
        "256), ReLU, Linear(256, 128), ReLU, Linear(128, 10)). RawStack: a "
        "hand-written oneDNN program, layer by layer (fused ReLU post-ops, "
        "forward_training, ReLU backward from each layer's output, backward "
        "data and weights, memory objects made once). Sequential: "
        "SequentialModel::Run (per-thread workspaces between layers, "
        "NaN-preserving ReLU, every gradient). Target: ratio ≥ 0.95.", "",
        *header("pass", "N", "omp", "raw µs", "Sequential µs", "ratio raw/ours")]
    for key, raw, ours in core_pairs(core, "RawStack", "Sequential"):
        lines.append(row(*key, f"{raw:.1f}", f"{ours:.1f}", f"{raw / ours:.3f}"))
    return lines


def core_pairs(core, raw_kind, our_kind):
    """[((pass, N, omp), raw µs, ours µs)] of the rows both sides have."""
    pairs = []
    for pass_name in ("Forward", "ForwardBackward"):
        for omp in (1, 2):
            for n in (1, 32, 100, 256, 1024):
                raw = core.get((raw_kind, pass_name, n, omp))
                ours = core.get((our_kind, pass_name, n, omp))
                if raw is not None and ours is not None:
                    pairs.append(((pass_name, n, omp), raw, ours))
    return pairs


def batching_section(report):
    lines = [
        "## Dynamic batching", "",
        "N=1 forward requests, 32 in flight over 4 channels, on a K=M=2048 "
        "model; `--compute-threads 1`, batching `--max-batch-delay-us 2000 "
        "--preferred-batch-size 32` vs off. Target: ≥ 2× the rows/s, p99 ≤ "
        "delay + one batch compute.", "",
        *header("batching", "load", "rows/s", "p50 ms", "p99 ms",
                "requests per execution", "compute per execution µs")]
    for name in ("off", "on", "open"):
        step = report["batching"][name]
        server = step.get("server", {})
        load = (f"open loop, {step.get('rate', 0):.0f} req/s" if name == "open"
                else "32 in flight")
        lines.append(row(
            "on" if name == "open" else name, load,
            f"{step['rows_per_second']:.0f}", f"{step['latency_ms']['p50']:.2f}",
            f"{step['latency_ms']['p99']:.2f}",
            f"{server.get('requests_per_execution', 0):.1f}",
            f"{server.get('compute_infer_us', 0):.0f}"))
    off, on = report["batching"]["off"], report["batching"]["on"]
    opened = report["batching"]["open"]
    gain = on["rows_per_second"] / max(1e-9, off["rows_per_second"])
    bound = 2.0 + on.get("server", {}).get("compute_infer_us", 0) / 1e3
    open_bound = 2.0 + opened.get("server", {}).get("compute_infer_us", 0) / 1e3
    lines += [
        "",
        f"Rows/s with batching: {gain:.2f}× ({'met' if gain >= 2 else 'missed'}, ≥ 2×). "
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
        "the second core."]
    return lines


def bf16_section(report):
    lines = ["## BF16 on the wire", "",
             "N=100 forward, 8 in flight over 8 channels. Target: BF16 req/s "
             "≥ 1.5× FP32.", "", *header("dtype", "req/s", "p50 ms", "p99 ms")]
    for dtype in ("fp32", "bf16"):
        step = report["bf16"][dtype]
        lines.append(row(dtype.upper(), f"{step['requests_per_second']:.0f}",
                         f"{step['latency_ms']['p50']:.2f}",
                         f"{step['latency_ms']['p99']:.2f}"))
    ratio = report["bf16"]["bf16"]["requests_per_second"] / max(
        1e-9, report["bf16"]["fp32"]["requests_per_second"])
    return lines + ["", f"BF16 / FP32: {ratio:.2f}× "
                    f"({'met' if ratio >= 1.5 else 'missed'}, ≥ 1.5×)."]


def monitoring_section(report):
    mon = report["monitoring"]
    lines = [
        "## Metrics and the dead-ReLU monitor: on vs off", "",
        "The monitor alone (`reluserve-monitor-bench`, K=3072, M=100, 1 OpenMP "
        "thread): median µs of LinearLayer::Forward, of Forward followed by "
        "DeadReluMonitor::Observe of its output, and of Observe alone. Healthy: "
        "the default weights; half dead: a bias of -10⁶ on every second unit, "
        "so Observe reads every row of those units (its worst case).", "",
        *header("layer", "N", "Forward µs", "Forward + Observe µs",
                "Observe µs", "Observe / Forward")]
    for half_dead in (0, 1):
        for n in (1, 100):
            fwd = mon["core"].get(("Forward", n, half_dead), 0)
            both = mon["core"].get(("ForwardAndObserve", n, half_dead), 0)
            obs = mon["core"].get(("Observe", n, half_dead), 0)
            lines.append(row("half dead" if half_dead else "healthy", n,
                             f"{fwd:.1f}", f"{both:.1f}", f"{obs:.2f}",
                             f"{obs / max(1e-9, fwd):.3f}"))
    lines += [
        "",
        "The whole server: `reluserve-server` with `/metrics` on (scraped every "
        f"second, {mon['scrapes']} scrapes in all), the monitor and the gRPC "
        "call counter on (the defaults), against one with `--metrics-port 0 "
        "--dead-relu-window 0`, both running; each shape loaded on, off, off, "
        f"on, three times over, {mon['run_seconds']} s a run, medians of six "
        "runs a side. Server CPU µs per request (from /proc, warm-up "
        "included) is the steadier measure; req/s and p50 move with the "
        "machine's load. Target: on / off ≥ 0.97 in req/s, ≤ 1.03 in CPU.", "",
        *header("shape", "in flight", "off req/s", "on req/s", "on / off req/s",
                "off p50 ms", "on p50 ms", "off CPU µs/req", "on CPU µs/req",
                "on / off CPU", "errors")]
    for (label, concurrency), r in mon["shapes"].items():
        on, off = r["on"], r["off"]
        lines.append(row(
            label, concurrency, f"{off['rps']:.0f}", f"{on['rps']:.0f}",
            f"{on['rps'] / max(1e-9, off['rps']):.3f}", f"{off['p50']:.3f}",
            f"{on['p50']:.3f}", f"{off['cpu_us']:.1f}", f"{on['cpu_us']:.1f}",
            f"{on['cpu_us'] / max(1e-9, off['cpu_us']):.3f}",
            on["errors"] + off["errors"]))
    return lines


def write_markdown(report, path, args):
    lines = [
        "# Benchmarks", "",
        f"Written by `scripts/bench.sh{(' ' + args) if args else ''}` "
        f"({report['duration']} s per load step) on {machine_line()}. "
        "The machine is shared and noisy; every comparison below ran side by "
        "side in one run, and the ratios are what to read.", ""]
    for section in (round_trip_section(report), core_section(report["core"]),
                    transport_section(report), peer_section(report),
                    batching_section(report), bf16_section(report),
                    deep_section(report), monitoring_section(report),
                    rest_section(report)):
        lines += section + [""]
    lines += ["## Latency vs throughput", "",
              "N=100 forward, concurrency 1–16 over 8 channels:", "",
              "![latency vs throughput](latency_vs_throughput_n100_forward.png)",
              ""]
    with open(path, "w") as out:
        out.write("\n".join(lines))
