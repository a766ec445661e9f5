"""The pieces scripts/bench.py measures with: servers on 127.0.0.1 (ReluServe,
its echo floors, the Python peer), one reluserve-load run against a server
with the CPU time both sides spent, and the Google Benchmark binaries.

Every server listens on 127.0.0.1 on a port of its own choosing (--port 0,
read back from its "listening on 127.0.0.1:PORT" line) and stops on SIGTERM.
CPU time per request comes from /proc (servers) and wait4 (the load
generator).
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(REPO, "bench", "peer", "peer_server.py")
SHAPES = [  # (label, N, grad)
    ("N=1 forward", 1, False),
    ("N=1 forward+backward", 1, True),
    ("N=100 forward", 100, False),
    ("N=100 forward+backward", 100, True),
]
EXIT_DEGRADED = 3  # reluserve-load: measured, but some requests failed


def cpu_seconds(pid):
    """User + system CPU seconds of a live process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Binaries:
    """Paths of the built binaries, and the command lines of each server."""

    def __init__(self, build):
        self.server = f"{build}/server/reluserve-server"
        self.echo = f"{build}/bench/reluserve-echo-server"
        self.load = f"{build}/client/reluserve-load"
        self.client = f"{build}/client/reluserve-client"
        self.core = f"{build}/bench/reluserve-core-bench"
        self.monitor = f"{build}/bench/reluserve-monitor-bench"

    def reluserve(self, *args):
        """reluserve-server; /metrics and HTTP off unless asked for."""
        metrics = [] if "--metrics-port" in args else ["--metrics-port", "0"]
        http = [] if "--http-port" in args else ["--http-port", "0"]
        return [self.server, *metrics, *http, *args]

    def floor(self, kind, *args):
        """reluserve-echo-server --floor bare|parse; the bare floor prebuilds
        the replies of the batch sizes bench.py sends."""
        batches = ["--batches", "1,100"] if kind == "bare" else []
        return [self.echo, "--floor", kind, *batches, *args]

    @staticmethod
    def peer(*args):
        """bench/peer/peer_server.py with its (tuned) defaults."""
        return ["/usr/bin/python3", PEER, *args]


class Server:
    """A server on 127.0.0.1:<free port>, stopped with SIGTERM; a context
    manager."""

    def __init__(self, command):
        self.name = os.path.basename(command[1 if "python" in command[0] else 0])
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-server-")
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", "0"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        self.port = None
        while self.port is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{' '.join(command)} did not start:\n"
                                   f"{self.output()}")
            time.sleep(0.05)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.output())
            if match:
                self.port = int(match.group(1))

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()

    def output(self):
        self.log.seek(0)
        return self.log.read()

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def cpu(self):
        return cpu_seconds(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load_args(n, grad, concurrency, duration, warmup, channels=None):
    """reluserve-load flags of one closed-loop step; channels default to
    one per request in flight."""
    return ["--batch", str(n), "--concurrency", str(concurrency),
            "--channels", str(channels or concurrency), "--duration",
            duration, "--warmup", warmup] + (["--grad"] if grad else [])


def set_affinity(pid, cpus):
    """Every thread of `pid` onto `cpus` (threads started later inherit
    their creator's)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:
            pass  # the thread ended meanwhile


def one_in_flight(args):
    return "--concurrency" in args and \
        args[args.index("--concurrency") + 1] == "1"


def run_load(load, server, args, plot=None):
    """One reluserve-load run; returns (steps, load CPU s, server CPU s).
    Failed requests are counted in the steps' errors; a run that measured
    nothing raises. With one request in flight the server runs on CPU 0
    and the load generator on CPU 1, as a remote client would leave the
    server its core and caches (on 2 shared cores the generator otherwise
    evicts the weights between calls); every server, floor and peer alike."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [load, "--target", server.target, "--quiet", "--json",
                   out.name, *args]
        if plot:
            command += ["--plot", plot]
        everywhere = os.sched_getaffinity(0)
        apart = one_in_flight(args) and len(everywhere) >= 2
        if apart:
            set_affinity(server.process.pid, {min(everywhere)})
        server_cpu = server.cpu()
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, {max(everywhere)}))
            if apart else None)
        _, status, usage = os.wait4(process.pid, 0)
        server_cpu = server.cpu() - server_cpu
        if apart:
            set_affinity(server.process.pid, everywhere)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, EXIT_DEGRADED):
            raise RuntimeError(f"{' '.join(command)} failed ({code})")
        steps = json.load(open(out.name))["steps"]
        return steps, usage.ru_utime + usage.ru_stime, server_cpu


def measure(load, server, args, duration, warmup):
    """One step's summary: req/s, rows/s, p50/p99 ms, errors, CPU seconds
    per request (client + server, warm-up requests counted in, as they
    burn CPU too) and the server's own compute µs per request."""
    steps, load_cpu, server_cpu = run_load(load, server, args)
    step = steps[0]
    counted = max(1.0, step["requests"] * (1 + float(warmup) / float(duration)))
    if step["errors"]:
        print(f"  {server.name} {' '.join(args)}: {step['errors']} errors, "
              f"first: {step.get('first_error')}", file=sys.stderr)
    return {
        "rps": step["requests_per_second"],
        "rows": step["rows_per_second"],
        "p50": step["latency_ms"]["p50"],
        "p99": step["latency_ms"]["p99"],
        "errors": step["errors"],
        "cpu_per_request": (load_cpu + server_cpu) / counted,
        "server_infer_us": step.get("server", {}).get("compute_infer_us", 0),
        "server": step.get("server", {}),
    }


def google_benchmark(binary, quick, *flags):
    """The JSON entries of one Google Benchmark binary's run."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = [binary, f"--benchmark_out={out.name}",
                "--benchmark_out_format=json", *flags]
        if quick:
            args.append("--benchmark_min_time=0.05")
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))["benchmarks"]


def median(values):
    return sorted(values)[len(values) // 2]


def core_bench(binary, quick):
    """Median µs per (kind, pass, N, OpenMP threads) of reluserve-core-bench:
    Raw and LinearLayer (K=3072, M=100), RawStack and Sequential (the
    binary's other benchmarks are not run)."""
    times = {}
    for entry in google_benchmark(
            binary, quick,
            "--benchmark_filter=^(Raw|LinearLayer|RawStack|Sequential)/"):
        if entry.get("run_type") == "aggregate" and \
                entry.get("aggregate_name") != "median":
            continue
        match = re.match(r"(Raw|LinearLayer|RawStack|Sequential)/"
                         r"(Forward|ForwardBackward)/N:(\d+)/omp:(\d+)",
                         entry["name"])
        if not match:
            continue
        key = (match.group(1), match.group(2), int(match.group(3)),
               int(match.group(4)))
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}[entry.get("time_unit", "ns")]
        times.setdefault(key, []).append(entry["real_time"] * scale)
    return {key: median(values) for key, values in times.items()}


def monitor_bench(binary, quick):
    """Median µs of Forward, ForwardAndObserve and Observe per (N, half_dead)."""
    times = {}
    for entry in google_benchmark(binary, quick):
        if entry.get("run_type") == "aggregate":
            continue
        match = re.match(r"(\w+)/N:(\d+)/half_dead:(\d+)", entry["name"])
        if match:
            key = (match.group(1), int(match.group(2)), int(match.group(3)))
            times.setdefault(key, []).append(entry["real_time"])
    return {key: median(values) for key, values in times.items()}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_mlp(directory, sizes=(3072, 1024, 256, 10), seed=0):
    """The safetensors of nn.Sequential(Linear, ReLU, Linear, ReLU, Linear,
    ReLU) of `sizes` (keys 0.weight, 0.bias, 2.weight, ...), PyTorch's
    default initialisation after torch.manual_seed(seed), written with the
    interop tests' helpers; returns its path."""
    sys.path.insert(0, os.path.join(REPO, "tests", "interop"))
    import torch_models
    module = torch_models.mlp(seed, list(sizes))
    path = os.path.join(directory, "mlp.safetensors")
    torch_models.write_safetensors(path, {
        name: value.detach().numpy()
        for name, value in module.state_dict().items()})
    return path
