"""The peer's gRPC half: inference.GRPCInferenceService around one
PeerModel, on grpcio's thread-pool server (each RPC on a worker thread) or
on grpc.aio (one event loop thread, each computation run on it in turn).
The stubs are generated at start-up from proto/grpc_service.proto with
Debian's protoc and grpc_python_plugin, into a temporary folder.
peer_server.py is the command line.
"""
import asyncio
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc
import torch

from peer_model import PeerModel, RequestError, raw_bytes

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "..", "..", "proto")
UNARY = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
         "ModelMetadata", "ModelConfig", "ModelInfer")


def load_stubs():
    """(grpc_service_pb2, grpc_service_pb2_grpc, model_config_pb2),
    generated into a temporary folder that is removed once imported."""
    out = tempfile.mkdtemp(prefix="peer-stubs-")
    try:
        subprocess.run(
            ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
             f"--grpc_out={out}",
             "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
             os.path.join(PROTO_DIR, "grpc_service.proto"),
             os.path.join(PROTO_DIR, "model_config.proto")], check=True)
        sys.path.insert(0, out)
        modules = tuple(importlib.import_module(name) for name in (
            "grpc_service_pb2", "grpc_service_pb2_grpc", "model_config_pb2"))
        sys.path.remove(out)
        return modules
    finally:
        shutil.rmtree(out)


pb, pb_grpc, config_pb = load_stubs()


class Protocol:
    """Each RPC as request -> response; raises RequestError to refuse."""

    def __init__(self, model):
        self.model = model

    def check_model(self, name, version):
        if name != self.model.name or version not in ("", "1"):
            raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"no model '{name}' version '{version}'")

    def ServerLive(self, request):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request):
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request):
        return pb.ModelReadyResponse(
            ready=request.name == self.model.name and
            request.version in ("", "1"))

    def ServerMetadata(self, request):
        return pb.ServerMetadataResponse(
            name="peer (grpcio + PyTorch)", version=torch.__version__,
            extensions=["model_configuration"])

    def ModelMetadata(self, request):
        self.check_model(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=self.model.name, versions=["1"], platform="pytorch",
            inputs=[tensor(name=n, datatype="FP32", shape=s)
                    for n, s in self.model.inputs.items()],
            outputs=[tensor(name=n, datatype="FP32", shape=s)
                     for n, s in self.model.outputs.items()])

    def ModelConfig(self, request):
        self.check_model(request.name, request.version)

        def dims(shape):
            return shape[1:] if shape[0] == -1 else shape
        config = config_pb.ModelConfig(
            name=self.model.name, platform="pytorch",
            max_batch_size=self.model.max_batch,
            input=[config_pb.ModelInput(name=n, data_type=config_pb.TYPE_FP32,
                                        dims=dims(s), optional=n != "x")
                   for n, s in self.model.inputs.items()],
            output=[config_pb.ModelOutput(name=n, data_type=config_pb.TYPE_FP32,
                                          dims=dims(s))
                    for n, s in self.model.outputs.items()])
        return pb.ModelConfigResponse(config=config)

    def ModelInfer(self, request):
        self.check_model(request.model_name, request.model_version)
        response = pb.ModelInferResponse(
            model_name=self.model.name, model_version="1", id=request.id)
        for name, datatype, tensor in self.model.infer(request):
            response.outputs.add(name=name, datatype=datatype,
                                 shape=list(tensor.shape))
            response.raw_output_contents.append(raw_bytes(tensor, datatype))
        return response

    def stream_reply(self, request):
        """One ModelStreamInfer answer: the response or its error."""
        try:
            return pb.ModelStreamInferResponse(
                infer_response=self.ModelInfer(request))
        except RequestError as error:
            return pb.ModelStreamInferResponse(
                error_message=f"{error.code.name}: {error}")


def thread_servicer(protocol):
    """The Protocol as a servicer for grpc.server."""
    def unary(method):
        def handler(self, request, context):
            try:
                return method(request)
            except RequestError as error:
                context.abort(error.code, str(error))
        return handler

    def stream(self, request_iterator, context):
        for request in request_iterator:
            yield protocol.stream_reply(request)
    methods = {name: unary(getattr(protocol, name)) for name in UNARY}
    return type("ThreadServicer", (pb_grpc.GRPCInferenceServiceServicer,),
                {**methods, "ModelStreamInfer": stream})()


def async_servicer(protocol):
    """The Protocol as a servicer for grpc.aio.server: coroutines that
    compute on the event loop, one request at a time."""
    def unary(method):
        async def handler(self, request, context):
            try:
                return method(request)
            except RequestError as error:
                await context.abort(error.code, str(error))
        return handler

    async def stream(self, request_iterator, context):
        async for request in request_iterator:
            yield protocol.stream_reply(request)
    methods = {name: unary(getattr(protocol, name)) for name in UNARY}
    return type("AsyncServicer", (pb_grpc.GRPCInferenceServiceServicer,),
                {**methods, "ModelStreamInfer": stream})()


def loaded_blas():
    """The BLAS library this process mapped, from /proc/self/maps."""
    with open("/proc/self/maps") as maps:
        if "openblas" not in maps.read():
            return "the reference BLAS"
    return f"OpenBLAS ({os.environ.get('OPENBLAS_CORETYPE', 'auto')} kernels)"


def channel_options(model):
    """Message limits for the largest request or reply at --max-batch."""
    rows = model.max_batch * (model.in_features + model.out_features)
    weights = sum(p.numel() for p in model.parameters.values())
    limit = min(2**31 - 1, 4 * (rows + weights) + (1 << 20))
    return [("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0)]


def announce(options, model, port):
    mode = ("grpc.aio, one event loop" if options.aio
            else f"{options.workers} gRPC worker threads")
    print(f"{model.in_features} -> {model.out_features}, {model.layers} "
          f"Linear layer(s); {mode}, {options.torch_threads} torch "
          f"thread(s), {loaded_blas()}\n"
          f"listening on {options.host}:{port}", flush=True)


def bind(server, options):
    port = server.add_insecure_port(f"{options.host}:{options.port}")
    if port == 0:
        sys.exit(f"cannot listen on {options.host}:{options.port}")
    return port


def serve_threads(options, model):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        options=channel_options(model))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        thread_servicer(Protocol(model)), server)
    port = bind(server, options)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    announce(options, model, port)
    stop.wait()
    server.stop(grace=1).wait()


async def serve_async(options, model):
    server = grpc.aio.server(options=channel_options(model))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        async_servicer(Protocol(model)), server)
    port = bind(server, options)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await server.start()
    announce(options, model, port)
    await stop.wait()
    await server.stop(grace=1)


def serve(options):
    torch.set_num_threads(options.torch_threads)
    model = PeerModel.build(options.in_features, options.out_features,
                            options.weights, options.layers, options.seed,
                            options.model_name, options.max_batch)
    if options.aio:
        asyncio.run(serve_async(options, model))
    else:
        serve_threads(options, model)
