"""Section 9 of scripts/bench.py: the same server over gRPC and over its
REST front end, with Triton's binary tensor extension and in JSON, driven
by the same reluserve-load (`--protocol http`, `--http-json`) in turn."""
import contextlib

from bench_servers import SHAPES, Server, free_port, measure

IN_FLIGHT = (1, 8)
PROTOCOLS = ("grpc", "rest-binary", "rest-json")


class RestEndpoint:
    """`server` as seen on its REST port: what run_load needs of a server
    (its target, process and CPU time)."""

    def __init__(self, server, port):
        self.server = server
        self.name = f"{server.name} (REST)"
        self.process = server.process
        self.target = f"127.0.0.1:{port}"

    def cpu(self):
        return self.server.cpu()


def protocol_args(protocol, n, grad, level, duration, warmup):
    args = ["--batch", str(n), "--concurrency", str(level), "--duration",
            duration, "--warmup", warmup] + (["--grad"] if grad else [])
    if protocol == "grpc":
        return args + ["--channels", str(level)]
    return args + ["--protocol", "http"] + (
        ["--http-json"] if protocol == "rest-json" else [])


def rest(binaries, duration, warmup):
    """{(shape, in flight, protocol): measure()} on the default single
    layer, each cell's protocols in turn, the order reversed from one cell
    to the next."""
    port = free_port()
    results = {}
    with contextlib.ExitStack() as stack:
        grpc = stack.enter_context(
            Server(binaries.reluserve("--http-port", str(port))))
        endpoints = {"grpc": grpc, "rest-binary": RestEndpoint(grpc, port),
                     "rest-json": RestEndpoint(grpc, port)}
        index = 0
        for label, n, grad in SHAPES:
            for level in IN_FLIGHT:
                order = PROTOCOLS if index % 2 == 0 else PROTOCOLS[::-1]
                index += 1
                for protocol in order:
                    results[(label, level, protocol)] = measure(
                        binaries.load, endpoints[protocol],
                        protocol_args(protocol, n, grad, level, duration,
                                      warmup),
                        duration, warmup)
    return results
