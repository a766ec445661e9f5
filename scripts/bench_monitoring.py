"""Section 6 of scripts/bench.py: what /metrics and the dead-ReLU monitor
cost. The monitor alone (reluserve-monitor-bench), then two servers at once,
one with /metrics (scraped every second, as Prometheus would) and the
monitor on, one with both off, loaded alternately.
"""
import statistics
import threading
import urllib.request

from bench_servers import (SHAPES, Server, free_port, load_args,
                           monitor_bench, run_load)


class Scraper:
    """GET /metrics every second on a thread, counting the scrapes."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.count = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(1.0):
            with urllib.request.urlopen(self.url, timeout=5) as response:
                response.read()
            self.count += 1

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)


def on_off_runs(servers, load, n, grad, concurrency, run_seconds, warmup):
    """{"on"/"off": [(req/s, p50 ms, server CPU µs/request, errors)]}: on,
    off, off, on three times over (short runs: this machine's load drifts
    within seconds)."""
    runs = {"on": [], "off": []}
    for name in ("on", "off", "off", "on") * 3:
        steps, _, server_cpu = run_load(load, servers[name], load_args(
            n, grad, concurrency, run_seconds, warmup))
        step = steps[0]
        counted = step["requests"] * (1 + float(warmup) / float(run_seconds))
        runs[name].append((step["requests_per_second"],
                           step["latency_ms"]["p50"],
                           server_cpu / max(1, counted) * 1e6, step["errors"]))
    return runs


def medians(runs):
    return {"rps": statistics.median(r[0] for r in runs),
            "p50": statistics.median(r[1] for r in runs),
            "cpu_us": statistics.median(r[2] for r in runs),
            "errors": sum(r[3] for r in runs)}


def monitoring(binaries, quick, duration, warmup):
    """{"core": monitor_bench(), "shapes": {(shape, in flight): {"on"/"off":
    medians}}, "scrapes", "run_seconds"}; server CPU time per request is
    the steadier measure of the cost."""
    core = monitor_bench(binaries.monitor, quick)
    metrics_port = free_port()
    servers = {
        "on": Server(binaries.reluserve("--metrics-port", str(metrics_port))),
        "off": Server(binaries.reluserve("--metrics-port", "0",
                                         "--dead-relu-window", "0")),
    }
    scraper = Scraper(metrics_port)
    run_seconds = str(max(1.0, float(duration) / 2.5))
    results = {}
    try:
        for label, n, grad in SHAPES:
            for concurrency in (1, 8):
                runs = on_off_runs(servers, binaries.load, n, grad,
                                   concurrency, run_seconds, warmup)
                results[(label, concurrency)] = {
                    name: medians(rs) for name, rs in runs.items()}
    finally:
        scraper.stop()
        for server in servers.values():
            server.stop()
    return {"core": core, "shapes": results, "scrapes": scraper.count,
            "run_seconds": run_seconds}
