#!/usr/bin/python3
"""The peer: what a user would write instead of ReluServe. A Python grpcio
server of inference.GRPCInferenceService (Open Inference Protocol / KServe
v2) around a PyTorch nn.Linear + ReLU or an nn.Sequential of them
(peer_model.py, peer_service.py),
enough of it for reluserve-load to drive unchanged: ServerLive,
ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelConfig,
ModelInfer and ModelStreamInfer. ModelStatistics and RepositoryIndex answer
UNIMPLEMENTED.

Needs Debian's python3-grpcio, python3-torch, python3-numpy,
protobuf-compiler and protobuf-compiler-grpc, and for a fair comparison
libopenblas0-openmp: Debian's torch does its FP32 matrix products in the
system BLAS, by default the reference one (about 40x slower at N=100). When
that package is installed the peer runs on it whatever the system's choice
(LD_LIBRARY_PATH), with its AVX-512 kernels on a CPU that has them
(OPENBLAS_CORETYPE) and OMP_NUM_THREADS = --torch-threads, so that every
gRPC worker thread's BLAS calls keep to that many threads; it prints the
BLAS it loaded.

    /usr/bin/python3 bench/peer/peer_server.py --host 127.0.0.1 --port 0
    # listening on 127.0.0.1:40123

Stops on SIGTERM or SIGINT. Two settings were the fastest measured on 2
cores, each on half the shapes (bench/peer/README.md): the default
(--workers 2 --torch-threads 1) and --aio; scripts/bench.py runs both.
"""
import argparse
import os
import sys

OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def parse_options():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001,
                        help="0 picks a free one")
    parser.add_argument("--in-features", type=int, default=3072)
    parser.add_argument("--out-features", type=int, default=100)
    parser.add_argument("--weights", metavar="FILE",
                        help="safetensors state dict of an nn.Linear (weight, "
                        "bias) or an nn.Sequential (0.weight, 0.bias, ...)")
    parser.add_argument("--layers", help="the Sequential's modules, e.g. "
                        "'linear,relu,linear' (default: a ReLU after every "
                        "Linear)")
    parser.add_argument("--seed", type=int, default=42,
                        help="torch.manual_seed of the default layer")
    parser.add_argument("--model-name", default="linear_relu")
    parser.add_argument("--max-batch", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=2,
                        help="ThreadPoolExecutor max_workers: RPCs at once")
    parser.add_argument("--aio", action="store_true",
                        help="grpc.aio instead: one event loop thread, "
                        "computing each request on it in turn")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads and OMP_NUM_THREADS")
    return parser.parse_args()


def blas_core():
    """OpenBLAS's kernel family for this CPU: Debian's OpenBLAS 0.3.21 does
    not know recent Xeons (family 6, model 207 here) and falls back to
    generic kernels, 5x slower at N=100, unless told."""
    with open("/proc/cpuinfo") as info:
        return "SkylakeX" if " avx512f " in info.read() else None


def set_environment(options):
    """Re-executes this process (same pid) with OpenBLAS first on the library
    path when it is installed, its kernels chosen (OPENBLAS_CORETYPE, unless
    set) and OMP_NUM_THREADS set, unless all are so already."""
    wanted = {"OMP_NUM_THREADS": str(options.torch_threads)}
    path = os.environ.get("LD_LIBRARY_PATH", "")
    if os.path.isdir(OPENBLAS) and OPENBLAS not in path.split(":"):
        wanted["LD_LIBRARY_PATH"] = ":".join(filter(None, [OPENBLAS, path]))
    core = os.environ.get("OPENBLAS_CORETYPE") or blas_core()
    if core:
        wanted["OPENBLAS_CORETYPE"] = core
    if any(os.environ.get(name) != value for name, value in wanted.items()):
        os.environ.update(wanted)
        os.execv(sys.executable, [sys.executable, *sys.argv])


if __name__ == "__main__":
    arguments = parse_options()
    set_environment(arguments)
    import peer_service  # torch loads its BLAS here
    peer_service.serve(arguments)
