"""The peer's model: a PyTorch nn.Linear + ReLU (or an nn.Sequential of
them) behind the Open Inference Protocol's tensors, as a user would write it
with torch and autograd, no ReluServe code.

    model = PeerModel.build(in_features=3072, out_features=100)
    outputs = model.infer(request)   # -> [(name, datatype, tensor)]

The signature is reluserve-server's: inputs x [N, K] and the optional
grad_y [N, M]; outputs y [N, M], grad_x [N, K] and grad_<parameter> for
every parameter (grad_weight, grad_bias for one layer; grad_0.weight,
grad_0.bias, grad_2.weight, ... for a Sequential). Tensors arrive and leave
as raw little-endian FP32 or BF16 bytes; outputs go out in x's datatype
unless an output's "datatype" parameter asks otherwise.
"""
import json
import struct
import warnings

import grpc
import torch
from torch import nn

# torch.frombuffer on the request's immutable bytes: read-only use, no copy.
warnings.filterwarnings("ignore", message="The given buffer is not writable")

TORCH_DTYPES = {"FP32": torch.float32, "BF16": torch.bfloat16}
ELEMENT_BYTES = {"FP32": 4, "BF16": 2}
SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16,
                      "F16": torch.float16, "F64": torch.float64}


class RequestError(Exception):
    """A request the model refuses, with the gRPC code to answer."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def invalid(message):
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


class LinearReLU(nn.Linear):
    """relu(x W^T + b); its parameters are named weight and bias."""

    def forward(self, x):
        return torch.relu(super().forward(x))


def load_safetensors(path):
    """name -> float32 tensor (Debian has no python3-safetensors)."""
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    header.pop("__metadata__", None)
    data = memoryview(blob)[8 + length:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(data[begin:end],
                                dtype=SAFETENSORS_DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).float().clone()
    return tensors


def module_from_state(state, layers=None):
    """nn.Linear+ReLU for a state dict of weight (and bias); otherwise an
    nn.Sequential following `layers` ("linear,relu,..."; default a ReLU
    after every Linear), its Linears at the indices the keys name."""
    if "weight" in state:
        out_features, in_features = state["weight"].shape
        module = LinearReLU(in_features, out_features, bias="bias" in state)
    else:
        count = len({key.split(".")[0] for key in state})
        kinds = (layers.split(",") if layers
                 else ["linear", "relu"] * count)
        modules = []
        for index, kind in enumerate(kinds):
            if kind == "relu":
                modules.append(nn.ReLU())
                continue
            out_features, in_features = state[f"{index}.weight"].shape
            modules.append(nn.Linear(in_features, out_features,
                                     bias=f"{index}.bias" in state))
        module = nn.Sequential(*modules)
    module.load_state_dict(state, strict=True)
    return module.eval()


class PeerModel:
    """One served model: the module, its tensors' names and shapes."""

    def __init__(self, module, name, max_batch):
        self.module = module
        self.name = name
        self.max_batch = max_batch
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        self.layers = len(linears)
        self.in_features = linears[0].in_features
        self.out_features = linears[-1].out_features
        self.parameters = {f"grad_{n}": p for n, p in module.named_parameters()}
        # name -> shape, -1 the batch dimension, in reluserve-server's order.
        self.inputs = {"x": [-1, self.in_features],
                       "grad_y": [-1, self.out_features]}
        self.outputs = {"y": [-1, self.out_features],
                        "grad_x": [-1, self.in_features],
                        **{n: list(p.shape) for n, p in self.parameters.items()}}

    @classmethod
    def build(cls, in_features=3072, out_features=100, weights=None,
              layers=None, seed=42, name="linear_relu", max_batch=4096):
        if weights:
            module = module_from_state(load_safetensors(weights), layers)
        else:
            torch.manual_seed(seed)
            module = LinearReLU(in_features, out_features).eval()
        return cls(module, name, max_batch)

    def infer(self, request):
        """[(name, datatype, tensor)] for a ModelInferRequest, or raises
        RequestError."""
        tensors, datatype = self.read_inputs(request)
        wanted = self.wanted_outputs(request, tensors, datatype)
        values = self.compute(tensors, [name for name, _ in wanted])
        return [(name, dtype, values[name]) for name, dtype in wanted]

    def read_inputs(self, request):
        """({name: float32 tensor}, x's datatype) from raw_input_contents."""
        if len(request.raw_input_contents) != len(request.inputs):
            raise invalid("expected every input in raw_input_contents")
        tensors, datatype, rows = {}, None, None
        for tensor, raw in zip(request.inputs, request.raw_input_contents):
            shape = list(tensor.shape)
            expected = self.inputs.get(tensor.name)
            if expected is None or tensor.name in tensors:
                raise invalid(f"unexpected input '{tensor.name}'")
            if tensor.datatype not in TORCH_DTYPES:
                raise invalid(f"input '{tensor.name}': datatype "
                              f"{tensor.datatype}, expected FP32 or BF16")
            if len(shape) != 2 or shape[1] != expected[1] or \
                    not 1 <= shape[0] <= self.max_batch or \
                    shape[0] != (rows or shape[0]):
                raise invalid(f"input '{tensor.name}': shape {shape}")
            if len(raw) != shape[0] * shape[1] * ELEMENT_BYTES[tensor.datatype]:
                raise invalid(f"input '{tensor.name}': {len(raw)} bytes "
                              f"for {tensor.datatype} {shape}")
            rows = shape[0]
            tensors[tensor.name] = torch.frombuffer(
                raw, dtype=TORCH_DTYPES[tensor.datatype]).reshape(shape).float()
            datatype = datatype or tensor.datatype
        if "x" not in tensors:
            raise invalid("input 'x' missing")
        return tensors, datatype

    def wanted_outputs(self, request, tensors, datatype):
        """[(name, datatype)]: the requested outputs, or y and (with grad_y)
        every gradient."""
        if not request.outputs:
            names = list(self.outputs) if "grad_y" in tensors else ["y"]
            return [(name, datatype) for name in names]
        wanted = []
        for output in request.outputs:
            if output.name not in self.outputs:
                raise invalid(f"unknown output '{output.name}'")
            if output.name != "y" and "grad_y" not in tensors:
                raise invalid(f"output '{output.name}' needs input 'grad_y'")
            asked = output.parameters.get("datatype")
            dtype = asked.string_param if asked else datatype
            if dtype not in TORCH_DTYPES:
                raise invalid(f"output '{output.name}': datatype {dtype}")
            wanted.append((output.name, dtype))
        return wanted

    def compute(self, tensors, names):
        """{name: tensor}: the forward pass, and torch.autograd.grad (which
        leaves the shared parameters' .grad alone, so calls on several
        threads do not mix) for the gradients asked for."""
        x = tensors["x"]
        gradients = [name for name in names if name != "y"]
        if not gradients:
            with torch.inference_mode():
                return {"y": self.module(x)}
        x.requires_grad_("grad_x" in gradients)
        with torch.enable_grad():
            y = self.module(x)
            wrt = [x if name == "grad_x" else self.parameters[name]
                   for name in gradients]
            grads = torch.autograd.grad(y, wrt, grad_outputs=tensors["grad_y"])
        return {"y": y.detach(), **dict(zip(gradients, grads))}


def raw_bytes(tensor, datatype):
    """The tensor's little-endian bytes as FP32 or BF16."""
    if datatype == "BF16":
        return tensor.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    return tensor.numpy().tobytes()
