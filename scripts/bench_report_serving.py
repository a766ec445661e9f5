"""The serving comparisons of docs/benchmarks.md: reluserve-server against
the bare and parse echo floors and the 2-core cap, against the Python peer,
and the deep stack's floor, batching and BF16 tables.
"""
from bench_servers import SHAPES
from bench_tables import div, header, judged, pass_of, plain, row

PEER_GOALS = {"N=1 forward": 6.0, "N=1 forward+backward": 6.0,
              "N=100 forward": 3.0, "N=100 forward+backward": 3.5}


def latency_rows(runs, compute_us, floors, goals):
    """1 in flight: reluserve p50 against (bare floor p50 + compute); with
    goals, judged, and against the parse floor too."""
    lines = []
    for label, n, grad in SHAPES:
        bare, served = runs[(label, 1, "bare")], runs[(label, 1, "reluserve")]
        compute = compute_us(label, n, grad) / 1e3
        ratio = div(served["p50"], bare["p50"] + compute)
        cells = [label] + [f"{runs[(label, 1, floor)]['p50']:.3f}"
                           for floor in floors]
        cells += [f"{compute:.3f}", f"{served['p50']:.3f}"]
        if goals:
            goal = 1.25 if (n == 1 and not grad) else 1.15
            parse = runs[(label, 1, "parse")]
            cells += judged(ratio, goal, False, bare["errors"] + served["errors"])
            cells.append(plain(div(served["p50"], parse["p50"] + compute)))
        else:
            cells.append(plain(ratio))
        lines.append(row(*cells))
    return lines


def throughput_rows(runs, compute_us, floors, goals):
    """8 in flight: reluserve req/s against the 2-core cap, 2 cores ÷ (bare
    floor CPU seconds per request + compute); with goals, judged."""
    lines = []
    for label, n, grad in SHAPES:
        bare, served = runs[(label, 8, "bare")], runs[(label, 8, "reluserve")]
        compute = compute_us(label, n, grad)
        cap = div(2.0, bare["cpu_per_request"] + compute / 1e6)
        cells = [label]
        for floor in floors:
            run = runs[(label, 8, floor)]
            cells += [f"{run['rps']:.0f}", f"{run['cpu_per_request'] * 1e6:.0f}"]
        cells += [f"{compute:.0f}", f"{served['server_infer_us']:.0f}",
                  f"{cap or 0:.0f}", f"{served['rps']:.0f}", f"{served['p99']:.2f}"]
        ratio = div(served["rps"], cap)
        cells += (judged(ratio, 0.85, True, bare["errors"] + served["errors"])
                  if goals else [plain(ratio)])
        lines.append(row(*cells))
    return lines


def transport_section(report):
    runs = report["transport"]["runs"]

    def raw_us(label, n, grad):
        return report["core"].get(("Raw", pass_of(grad), n, 1), 0)
    floors = ("bare", "parse")
    tiny = report["tiny"]
    errors = sum(run["errors"] for run in runs.values())
    return [
        "## Serving path vs the transport floors", "",
        "`reluserve-load` against two floors of `reluserve-echo-server`, the "
        "same allocator settings and channel arguments as the server, no "
        "compute: **bare** (`--floor bare`: the replies prebuilt at start-up "
        "at the real responses' sizes, requests never parsed: gRPC alone) "
        "and **parse** (`--floor parse`: each request parsed and validated as "
        "the server does, its reply allocated and zero-filled); and against "
        "`reluserve-server` (defaults: inline compute, 1 OpenMP thread). All "
        "of them run at once and each cell loads them in turn. Raw compute is "
        "the raw oneDNN primitive's median at 1 OpenMP thread from the core "
        "table above; the goals are against the bare floor.", "",
        "Concurrency 1, each server on CPU 0 and `reluserve-load` on CPU 1 "
        "(as a remote client would leave the server its core and caches; "
        "sharing both cores, the generator evicts the 1.2 MB of weights from "
        "the server's L2 between calls). Goal: reluserve p50 ÷ (bare p50 + "
        "raw compute) ≤ 1.15, ≤ 1.25 for N=1 forward.", "",
        *header("shape", "bare p50 ms", "parse p50 ms", "raw compute ms",
                "reluserve p50 ms", "reluserve ÷ (bare + compute)", "goal",
                "result", "reluserve ÷ (parse + compute)"),
        *latency_rows(runs, raw_us, floors, goals=True), "",
        "Concurrency 8 over 8 channels. 2-core cap = 2 cores ÷ (bare floor "
        "CPU seconds per request, client + server, + raw compute). Goal: "
        "reluserve req/s ÷ cap ≥ 0.85.", "",
        *header("shape", "bare req/s", "bare CPU µs/req", "parse req/s",
                "parse CPU µs/req", "raw compute µs", "compute µs in server",
                "cap req/s", "reluserve req/s", "reluserve p99 ms",
                "reluserve ÷ cap", "goal", "result"),
        *throughput_rows(runs, raw_us, floors, goals=True), "",
        f"Failed requests across these runs: {errors}. Ratios judged against "
        "a goal are rounded towards missing it.", "",
        "Where the time goes when a row misses: \"compute µs in server\" is "
        "`ModelStatistics`' compute_infer per request during the run, against "
        "the raw primitive alone (\"raw compute µs\"): with client, gRPC and "
        "two computations sharing 2 cores, the kernels run slower than alone, "
        "and the cap does not allow for that. The weights are 1.2 MB of a "
        "core's 2 MB L2: between two calls the request's bytes, gRPC's "
        "buffers and the load generator evict them, and each call streams "
        "them from L3 (the core bench's `LinearLayerTraffic`, the same call "
        "after 4 MB of such traffic, reproduces the server's compute_infer). "
        "The forward shapes also pay protobuf's copy of the 1.2 MB x out of "
        "gRPC's 20 slices, which the bare floor never makes (the parse "
        "floor's p50 above). Without that footprint: with a "
        f"K=37, M=13 model, N=1 forward at 8 in flight reaches "
        f"{tiny['reluserve']:.0f} req/s against the bare floor's "
        f"{tiny['echo']:.0f} ({plain(div(tiny['reluserve'], tiny['echo']))}×).",
    ]


def peer_rows(runs):
    lines = []
    for label, _, _ in SHAPES:
        for level in (1, 8):
            ours = runs[(label, level, "reluserve")]
            peers = [runs[(label, level, name)] for name in ("peer", "peer-aio")]
            best = max(peers, key=lambda run: run["rps"])
            errors = ours["errors"] + sum(run["errors"] for run in peers)
            lines.append(row(
                label, level, f"{ours['rps']:.0f}", f"{peers[0]['rps']:.0f}",
                f"{peers[1]['rps']:.0f}", f"{ours['p50']:.2f}",
                f"{best['p50']:.2f}",
                *judged(div(ours["rps"], best["rps"]), PEER_GOALS[label], True,
                        errors)))
    return lines


def peer_section(report):
    return [
        "## ReluServe vs what a user would write instead", "",
        "The peer (`bench/peer/peer_server.py`): a Python grpcio server of "
        "the same protocol around `torch.nn.Linear(3072, 100)` + ReLU, "
        "forward under `torch.inference_mode()`, gradients by "
        "`torch.autograd.grad`, Debian's PyTorch "
        f"(torch.set_num_threads(1)) on {report['transport']['peer_blas']}. "
        "Two settings, the fastest measured on this machine "
        "(`bench/peer/README.md`): a thread pool of 2 workers, and grpc.aio "
        "computing on its event loop. Both ran in the runs of the previous "
        "section: the same `reluserve-load` command and request bytes, "
        "interleaved with the floors and `reluserve-server`. The ratio is "
        "ReluServe's req/s ÷ the faster peer's, per shape and concurrency "
        "(at 8 in flight, 8 channels).", "",
        *header("shape", "in flight", "reluserve req/s", "peer (threads) req/s",
                "peer (grpc.aio) req/s", "reluserve p50 ms",
                "faster peer p50 ms", "reluserve ÷ faster peer", "goal",
                "result"),
        *peer_rows(report["transport"]["runs"]),
    ]


def deep_section(report):
    deep = report["deep"]
    floor = deep["floor"]

    def server_us(label, n, grad):  # the server's own, at 1 in flight
        return floor[(label, 1, "reluserve")]["server_infer_us"]
    errors = sum(run["errors"] for part in deep.values() for run in part.values())
    return [
        "## A deep stack: 3072 → 1024 → 256 → 10", "",
        "nn.Sequential(Linear(3072, 1024), ReLU, Linear(1024, 256), ReLU, "
        "Linear(256, 10), ReLU), PyTorch's initialisation, served from its "
        f"safetensors (`--weights`; 13 MB of weights, beyond L2), "
        f"{report['deep_duration']} s per load step. The core "
        "benchmark has no raw oneDNN program of this stack, so compute here "
        "is the server's own `ModelStatistics` compute_infer per request at 1 "
        "in flight, and no goal is judged: the issue sets the goals for the "
        "single layer.", "",
        "Against the bare floor with the same `--weights` (replies of this "
        "stack's sizes), both running, loaded in turn. Concurrency 1:", "",
        *header("shape", "bare p50 ms", "compute ms", "reluserve p50 ms",
                "reluserve ÷ (bare + compute)"),
        *latency_rows(floor, server_us, ("bare",), goals=False), "",
        "Concurrency 8 over 8 channels; cap = 2 cores ÷ (bare CPU per "
        "request + compute at 1 in flight):", "",
        *header("shape", "bare req/s", "bare CPU µs/req", "compute µs",
                "compute µs in server", "cap req/s", "reluserve req/s",
                "reluserve p99 ms", "reluserve ÷ cap"),
        *throughput_rows(floor, server_us, ("bare",), goals=False), "",
        "Dynamic batching: 32 in flight over 4 channels, `--compute-threads "
        "1`, batching off vs on (`--max-batch-delay-us 2000 "
        "--preferred-batch-size 32`; forward requests only are batched, and "
        "N=100 is already past the preferred size), both servers running:", "",
        *header("shape", "off rows/s", "on rows/s", "on ÷ off", "off p99 ms",
                "on p99 ms", "on: requests per execution"),
        *deep_batching_rows(deep["batching"]), "",
        "BF16 against FP32 on the wire, 8 in flight over 8 channels, one "
        "server, loaded in turn:", "",
        *header("shape", "FP32 req/s", "BF16 req/s", "BF16 ÷ FP32",
                "FP32 p50 ms", "BF16 p50 ms"),
        *deep_bf16_rows(deep["bf16"]), "",
        f"Failed requests across the deep-stack runs: {errors}.",
    ]


def deep_batching_rows(runs):
    lines = []
    for label, _, _ in SHAPES:
        off, on = runs[(label, 32, "off")], runs[(label, 32, "on")]
        lines.append(row(label, f"{off['rows']:.0f}", f"{on['rows']:.0f}",
                         plain(div(on["rows"], off["rows"])),
                         f"{off['p99']:.2f}", f"{on['p99']:.2f}",
                         f"{on['server'].get('requests_per_execution', 0):.1f}"))
    return lines


def deep_bf16_rows(runs):
    lines = []
    for label, _, _ in SHAPES:
        fp32, bf16 = runs[(label, "fp32")], runs[(label, "bf16")]
        lines.append(row(label, f"{fp32['rps']:.0f}", f"{bf16['rps']:.0f}",
                         plain(div(bf16["rps"], fp32["rps"])),
                         f"{fp32['p50']:.2f}", f"{bf16['p50']:.2f}"))
    return lines
