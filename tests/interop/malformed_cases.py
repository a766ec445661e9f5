"""The malformed-request table of malformed_requests_test.py: every row a
request the server must refuse, in its gRPC form (a ModelInferRequest built
with the generated stubs, or raw bytes where the point is a message that does
not parse) and its REST twin (the JSON header and binary section as
tritonclient.http sends them, or a raw body), with the gRPC code, the HTTP
status and the fragments each answer must contain. Rows whose gRPC form is
None are REST-only. Every gRPC row has a REST twin: where REST has no such
field (the count of raw_input_contents, a protobuf that does not parse, an
empty model name) the twin is REST's nearest malformation, and the row's
grpc_only and rest_only fragments hold each protocol's own message.

The repository it is written against (write_repository):
    single        nn.Linear(37, 13), max_batch_size 8
    mlp           nn.Sequential(Linear(6, 4), ReLU, Linear(4, 2)), max_batch_size 8
    forward_only  single's weights, parameter backward "false"
"""

import collections
import os

import grpc
import numpy as np

# The stubs' directory is on sys.path: the importer put it there.
import grpc_service_pb2 as pb
import http_client as hc
import tensor_files as tf

SINGLE, MLP, FORWARD = "single", "mlp", "forward_only"
K, M = 37, 13  # single's in_features and out_features
MLP_K, MLP_H, MLP_M = 6, 4, 2
MAX_BATCH = 8
# The receive limit: the largest model's FP32 inputs at its maximum batch
# plus 1 MiB (docs/api.md, Message size); a request of TOO_LARGE_ROWS rows of
# x is well above it.
RECEIVE_LIMIT = MAX_BATCH * (K + M) * 4 + (1 << 20)
TOO_LARGE_ROWS = 2 * RECEIVE_LIMIT // (K * 4)

RPC_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
TOO_LARGE = grpc.StatusCode.RESOURCE_EXHAUSTED


def model_weights():
    """name -> state dict (float32 arrays) of every model in the repository."""
    rng = np.random.default_rng(0x3A1F)

    def linear(prefix, k, m):
        return {prefix + "weight": (rng.standard_normal((m, k)) / np.sqrt(k)).astype(np.float32),
                prefix + "bias": (0.1 * rng.standard_normal(m)).astype(np.float32)}

    single = linear("", K, M)
    return {SINGLE: single, MLP: {**linear("0.", MLP_K, MLP_H), **linear("2.", MLP_H, MLP_M)},
            FORWARD: single}


def write_repository(root):
    """The three models under `root` (Triton's layout); returns the weights."""
    weights = model_weights()
    configs = {SINGLE: "max_batch_size: 8\n",
               MLP: 'max_batch_size: 8\nparameters { key: "layers" value: '
                    '{ string_value: "linear,relu,linear" } }\n',
               FORWARD: 'max_batch_size: 8\nparameters { key: "backward" value: '
                        '{ string_value: "false" } }\n'}
    for name, tensors in weights.items():
        os.makedirs(os.path.join(root, name, "1"))
        tf.write_safetensors(os.path.join(root, name, "1", "model.safetensors"), tensors)
        with open(os.path.join(root, name, "config.pbtxt"), "w", encoding="utf-8") as f:
            f.write(configs[name])
    return weights


# -- one request in both wire forms --------------------------------------------

class T:
    """One input tensor as both protocols carry it: `array` as raw bytes
    (gRPC raw_input_contents, REST binary data) or, with `typed`, as values
    (gRPC contents.fp32_contents, REST JSON "data"). `shape` and `raw`
    override what the array gives."""

    def __init__(self, name, array, datatype="FP32", shape=None, raw=None, typed=False):
        self.name = name
        self.array = np.asarray(array, np.float32)
        self.datatype = datatype
        self.shape = [int(d) for d in (shape if shape is not None else self.array.shape)]
        self.typed = typed
        if raw is None and not typed:
            raw = tf.raw_bytes(self.array, "BF16" if datatype == "BF16" else "FP32")
        self.raw = raw

    def values(self):
        return [float(v) for v in self.array.ravel()]


class Out:
    """A requested output; `datatype` its "datatype" parameter."""

    def __init__(self, name, datatype=None):
        self.name = name
        self.datatype = datatype


def outs(names):
    return [o if isinstance(o, Out) else Out(o) for o in names]


def grpc_request(model, inputs, outputs=(), version=""):
    req = pb.ModelInferRequest(model_name=model, model_version=version)
    for t in inputs:
        tensor = req.inputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        if t.typed:
            tensor.contents.fp32_contents.extend(t.values())
        else:
            req.raw_input_contents.append(t.raw)
    for o in outs(outputs):
        out = req.outputs.add(name=o.name)
        if o.datatype is not None:
            out.parameters["datatype"].string_param = o.datatype
    return req


Rest = collections.namedtuple("Rest", "path body headers")


def rest_body(path, inputs, outputs=()):
    """Rest(path, tritonclient.http's body, its header fields) for hc.Inputs
    and hc.Outputs."""
    body, json_size = hc.inference_body(inputs, outputs or None)
    headers = {hc.HEADER_LENGTH: json_size} if json_size is not None else {}
    return Rest(path, body, headers)


def infer_path(model, version=""):
    return hc.Client.model_path(model, version) + "/infer"


def rest_inputs(inputs):
    out = []
    for t in inputs:
        if t.typed:
            out.append(hc.Input(t.name, None, t.datatype, binary=False, shape=t.shape,
                                data=t.values()))
        else:
            out.append(hc.Input(t.name, None, t.datatype, shape=t.shape, raw=t.raw))
    return out


def rest_outputs(outputs):
    return [hc.Output(o.name, datatype=o.datatype) for o in outs(outputs)]


def rest_request(model, inputs, outputs=(), version=""):
    return rest_body(infer_path(model, version), rest_inputs(inputs), rest_outputs(outputs))


def raw_rest(path, body):
    """A body sent as it is, with Content-Type: application/json."""
    return Rest(path, body, {"Content-Type": "application/json"})


Case = collections.namedtuple(
    "Case", "name grpc rest code status fragments grpc_fragments rest_fragments")


def case(name, grpc_form, rest_form, code, status, fragments=(), grpc_only=(),
         rest_only=()):
    """A row: `fragments` both answers contain; `grpc_only`/`rest_only` the
    ones only that protocol's answer does."""
    return Case(name, grpc_form, rest_form, code, status, tuple(fragments),
                tuple(grpc_only), tuple(rest_only))


def twin(name, code, status, fragments, model=SINGLE, inputs=None, outputs=(),
         version="", grpc_only=(), rest_only=()):
    """A row whose gRPC request and REST twin come from the same tensors."""
    return case(name, grpc_request(model, inputs, outputs, version),
                rest_request(model, inputs, outputs, version), code, status,
                fragments, grpc_only, rest_only)


# -- the table -----------------------------------------------------------------

def _arrays(seed=0x5EED):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, K)).astype(np.float32),
            rng.standard_normal((2, M)).astype(np.float32),
            rng.standard_normal((2, MLP_K)).astype(np.float32),
            rng.standard_normal((2, MLP_M)).astype(np.float32))


def request_cases():
    """Every row of the table, in the order they are sent."""
    x, gy, mx, mgy = _arrays()
    X, GY = T("x", x), T("grad_y", gy)
    pair = [X, GY]
    x_bytes = tf.raw_bytes(x)
    shape_of_x = f"[N, {K}]"
    rows = [
        # -- the model and version
        twin("unknown model", NOT_FOUND, 404, ["unknown model 'resnet50'", "'single'", "'mlp'"],
             model="resnet50", inputs=pair),
        twin("unknown version", NOT_FOUND, 404, ["unknown version '3'", "version 1"],
             inputs=pair, version="3"),
        twin("version with a leading zero", NOT_FOUND, 404, ["unknown version '01'"],
             inputs=pair, version="01"),
        twin("model name of another case", NOT_FOUND, 404, ["unknown model 'Single'", "'single'"],
             model="Single", inputs=pair),
        case("empty model name", grpc_request("", pair), rest_request("", pair), NOT_FOUND, 404,
             grpc_only=["unknown model ''", "'single'"], rest_only=["no endpoint POST"]),
        # -- which inputs
        twin("missing x", INVALID, 400, ["missing input 'x'", shape_of_x], inputs=[GY]),
        twin("no inputs at all", INVALID, 400, ["missing input 'x'", "got 0 other input(s)"],
             inputs=[]),
        twin("unknown input", INVALID, 400, ["unknown input 'z'", "'grad_y' (optional)"],
             inputs=[X, T("z", gy)]),
        twin("input name of another case", INVALID, 400, ["unknown input 'X'"],
             inputs=[T("X", x)]),
        twin("duplicated input", INVALID, 400, ["input 'x' appears twice"],
             inputs=[X, T("x", x)]),
        # -- which outputs
        twin("unknown output", INVALID, 400, ["unknown output 'logits'", "grad_weight"],
             inputs=pair, outputs=["logits"]),
        twin("empty output name", INVALID, 400, ["unknown output ''"], inputs=pair,
             outputs=[""]),
        twin("duplicated output", INVALID, 400, ["output 'y' requested twice"], inputs=pair,
             outputs=["y", "y"]),
        twin("grad_x without grad_y", INVALID, 400, ["output 'grad_x' needs input 'grad_y'"],
             inputs=[X], outputs=["grad_x"]),
        twin("grad_weight without grad_y", INVALID, 400,
             ["output 'grad_weight' needs input 'grad_y'", f"[N, {M}]"],
             inputs=[X], outputs=["y", "grad_weight"]),
        # -- datatypes
        twin("datatype FP16", INVALID, 400, ["input 'x'", "FP32 or BF16", "'FP16'"],
             inputs=[T("x", x, "FP16", raw=x.astype("<f2").tobytes())]),
        twin("datatype FP64", INVALID, 400, ["input 'x'", "FP32 or BF16", "'FP64'"],
             inputs=[T("x", x, "FP64", raw=x.astype("<f8").tobytes())]),
        twin("datatype INT32", INVALID, 400, ["input 'x'", "FP32 or BF16", "'INT32'"],
             inputs=[T("x", x, "INT32", raw=x.astype("<i4").tobytes())]),
        twin("datatype in lower case", INVALID, 400, ["input 'x'", "'fp32'"],
             inputs=[T("x", x, "fp32")]),
        twin("empty datatype", INVALID, 400, ["input 'x'", "FP32 or BF16", "got ''"],
             inputs=[T("x", x, "")]),
        twin("grad_y in BF16, x in FP32", INVALID, 400,
             ["input 'grad_y'", "FP32 (as 'x')", "'BF16'"], inputs=[X, T("grad_y", gy, "BF16")]),
        case("BF16 as typed values",
             grpc_request(SINGLE, [T("x", x, "BF16", typed=True)]),
             rest_request(SINGLE, [T("x", x, "BF16", typed=True)]), INVALID, 400,
             ["input 'x'", "BF16"], grpc_only=["no typed contents field"],
             rest_only=["only as binary data"]),
        twin("output datatype FP16", INVALID, 400, ["output 'y'", "FP32 or BF16", "'FP16'"],
             inputs=pair, outputs=[Out("y", "FP16")]),
        _wrong_parameter_type(pair),
        # -- shapes
        twin("x without a batch dimension", INVALID, 400, ["input 'x'", shape_of_x, f"[{K}]"],
             inputs=[T("x", x[0])]),
        twin("x with an empty shape", INVALID, 400, ["input 'x'", "got none"],
             inputs=[T("x", x, shape=[], raw=b"")]),
        twin("x with too few features", INVALID, 400, ["input 'x'", shape_of_x, f"[2, {K - 1}]"],
             inputs=[T("x", x[:, :K - 1])]),
        twin("x reshaped to other features", INVALID, 400, ["input 'x'", "[2, 6, 7]",
                                                            "(42 features)"],
             inputs=[T("x", np.zeros((2, 6, 7)))]),
        twin("grad_y with too few columns", INVALID, 400,
             ["input 'grad_y'", f"[2, {M}]", f"[2, {M - 1}]"], inputs=[X, T("grad_y", gy[:, 1:])]),
        twin("grad_y of rank 3", INVALID, 400, ["input 'grad_y'", f"[2, {M}, 1]"],
             inputs=[X, T("grad_y", gy[:, :, None])]),
        twin("grad_y rows differ from x's", INVALID, 400,
             ["input 'grad_y'", f"[3, {M}]", "first dimension is the batch"],
             inputs=[X, T("grad_y", np.zeros((3, M)))]),
        twin("N = 0", INVALID, 400, ["input 'x'", "N >= 1", f"[0, {K}]"],
             inputs=[T("x", np.zeros((0, K)))]),
        twin("N above the maximum batch", INVALID, 400,
             ["input 'x'", f"batch size {MAX_BATCH + 1}", f"maximum batch size of {MAX_BATCH}"],
             inputs=[T("x", np.zeros((MAX_BATCH + 1, K)))]),
        twin("negative batch", INVALID, 400, ["input 'x'", "non-negative", "-2"],
             inputs=[T("x", x, shape=[-2, K])]),
        twin("negative features", INVALID, 400, ["input 'x'", "non-negative", f"-{K}"],
             inputs=[T("x", x, shape=[2, -K])]),
        twin("shape whose size overflows", INVALID, 400, ["input 'x'", "overflows"],
             inputs=[T("x", x, shape=[1 << 40, 1 << 40])]),
        twin("batch of 2^62 rows", INVALID, 400, ["input 'x'", "overflows"],
             inputs=[T("x", x, shape=[1 << 62, K])]),
        twin("batch of INT64_MAX rows", INVALID, 400, ["input 'x'", "overflows"],
             inputs=[T("x", x, shape=[(1 << 63) - 1, K])]),
        # -- the data against the shape
        twin("one byte short", INVALID, 400,
             ["input 'x'", f"expected {2 * K * 4} bytes", f"got {2 * K * 4 - 1}"],
             inputs=[T("x", x, raw=x_bytes[:-1])]),
        twin("one value too many", INVALID, 400,
             ["input 'x'", f"expected {2 * K * 4} bytes", f"got {2 * K * 4 + 4}"],
             inputs=[T("x", x, raw=x_bytes + x_bytes[:4])]),
        twin("BF16 bytes for an FP32 shape", INVALID, 400,
             ["input 'x'", f"expected {2 * K * 4} bytes", f"got {2 * K * 2}"],
             inputs=[T("x", x, raw=tf.raw_bytes(x, "BF16"))]),
        twin("typed values one short", INVALID, 400, ["input 'x'", f"expected {2 * K} values",
                                                      f"got {2 * K - 1}"],
             inputs=[T("x", x.ravel()[:-1], shape=[2, K], typed=True)]),
        _typed_of_another_type(x),
        _raw_and_typed(pair, gy),
        _raw_count_short(pair),
        _raw_count_long(x_bytes),
        # -- deep and inference-only models
        twin("deep model, wrong in_features", INVALID, 400,
             ["input 'x'", f"[N, {MLP_K}]", f"[2, {MLP_K - 1}]"], model=MLP,
             inputs=[T("x", mx[:, 1:])]),
        twin("deep model, image-shaped x of other features", INVALID, 400,
             ["input 'x'", "[2, 2, 4]", "(8 features)"], model=MLP,
             inputs=[T("x", np.zeros((2, 2, 4)))]),
        twin("deep model, grad_y of the hidden width", INVALID, 400,
             ["input 'grad_y'", f"[2, {MLP_M}]", f"[2, {MLP_H}]"], model=MLP,
             inputs=[T("x", mx), T("grad_y", np.zeros((2, MLP_H)))]),
        twin("deep model, gradient of a module it lacks", INVALID, 400,
             ["unknown output 'grad_1.weight'", "grad_0.weight", "grad_2.bias"], model=MLP,
             inputs=[T("x", mx), T("grad_y", mgy)], outputs=["grad_1.weight"]),
        twin("deep model, a single layer's gradient name", INVALID, 400,
             ["unknown output 'grad_weight'", "grad_0.weight"], model=MLP,
             inputs=[T("x", mx), T("grad_y", mgy)], outputs=["grad_weight"]),
        twin("deep model, grad_0.weight without grad_y", INVALID, 400,
             ["output 'grad_0.weight' needs input 'grad_y'"], model=MLP,
             inputs=[T("x", mx)], outputs=["grad_0.weight"]),
        twin("inference-only model given grad_y", INVALID, 400,
             ["unknown input 'grad_y'", "expected 'x' (required)"], model=FORWARD, inputs=pair),
        twin("inference-only model asked for grad_x", INVALID, 400,
             ["unknown output 'grad_x'", "expected one of y"], model=FORWARD, inputs=[X],
             outputs=["grad_x"]),
        # -- messages that are too large or do not parse
        _too_large(),
        *_unparseable(x),
        # -- REST only: the framing of the binary extension and the JSON itself
        *_rest_only(x, x_bytes),
    ]
    return rows


def _wrong_parameter_type(pair):
    req = grpc_request(SINGLE, pair, ["y"])
    req.outputs[0].parameters["datatype"].int64_param = 5
    outputs = rest_outputs(["y"])
    outputs[0].parameters["datatype"] = 5
    return case("output datatype parameter not a string", req,
                rest_body(infer_path(SINGLE), rest_inputs(pair), outputs), INVALID, 400,
                ["output 'y'", "'datatype'", "a string"], grpc_only=["int64_param"],
                rest_only=["a number"])


def _typed_of_another_type(x):
    req = grpc_request(SINGLE, [T("x", x, typed=True)])
    req.inputs[0].contents.ClearField("fp32_contents")
    req.inputs[0].contents.int_contents.extend([1] * x.size)
    data = [1.0] * x.size
    data[3] = "1.0"
    rest = rest_body(infer_path(SINGLE),
                     [hc.Input("x", None, binary=False, shape=list(x.shape), data=data)])
    return case("typed values of another type", req, rest, INVALID, 400, ["input 'x'"],
                grpc_only=["fp32_contents", "int_contents"],
                rest_only=["to hold numbers", "a string at value 3"])


def _raw_and_typed(pair, gy):
    req = grpc_request(SINGLE, pair)
    req.inputs[1].contents.fp32_contents.extend(gy.ravel().tolist())
    inputs = rest_inputs(pair)
    tensors = [i.tensor() for i in inputs]
    tensors[1]["data"] = [float(v) for v in gy.ravel()]  # beside its binary_data_size
    head = hc.dumps({"inputs": tensors, "parameters": {"binary_data_output": True}})
    body = head.encode() + inputs[0].raw + inputs[1].raw
    return case("raw and typed mixed", req,
                Rest(infer_path(SINGLE), body, {hc.HEADER_LENGTH: len(head)}), INVALID, 400,
                ["'grad_y'", "both"], grpc_only=["raw_input_contents", "contents.fp32_contents"],
                rest_only=["binary_data_size"])


def _raw_count_short(pair):
    req = grpc_request(SINGLE, pair)
    del req.raw_input_contents[1]
    inputs = rest_inputs(pair)
    inputs[1].raw, inputs[1].parameters = None, {}
    return case("fewer raw contents than inputs", req,
                rest_body(infer_path(SINGLE), inputs), INVALID, 400,
                grpc_only=["one raw_input_contents entry per input (2)", "got 1"],
                rest_only=["input 'grad_y'", "got neither"])


def _raw_count_long(x_bytes):
    req = grpc_request(SINGLE, [T("x", np.zeros((2, K)))])
    req.raw_input_contents.append(x_bytes)
    rest = rest_body(infer_path(SINGLE), rest_inputs([T("x", np.zeros((2, K)))]))
    rest = Rest(rest.path, rest.body + x_bytes, rest.headers)
    return case("more raw contents than inputs", req, rest, INVALID, 400,
                grpc_only=["one raw_input_contents entry per input (1)", "got 2"],
                rest_only=[f"{len(x_bytes)} bytes of binary data beyond"])


def _too_large():
    big = [T("x", np.zeros((TOO_LARGE_ROWS, K)))]
    return case("message above the receive limit", grpc_request(SINGLE, big),
                rest_request(SINGLE, big), TOO_LARGE, 413, grpc_only=["larger than max"],
                rest_only=["above the server's limit"])


def _unparseable(x):
    good = grpc_request(SINGLE, [T("x", x)]).SerializeToString()
    json_body = rest_request(SINGLE, [T("x", x, typed=True)]).body
    not_parsed = ["could not be parsed as an inference.ModelInferRequest"]
    not_json = ["not valid JSON"]
    return [
        # Field 1 (model_name) claims 255 bytes; none follow.
        case("length beyond the message", b"\x0a\xff\x01",
             raw_rest(infer_path(SINGLE), b'{"inputs": [{"name": "x", "shape'), INVALID, 400,
             grpc_only=not_parsed, rest_only=not_json),
        case("message cut in the middle", good[:len(good) // 2],
             raw_rest(infer_path(SINGLE), json_body[:len(json_body) // 2]), INVALID, 400,
             grpc_only=not_parsed, rest_only=not_json),
        # proto3 strings are UTF-8: a model_name of 0xff 0xfe does not parse.
        case("model name not UTF-8", b"\x0a\x02\xff\xfe",
             raw_rest(infer_path(SINGLE), b'{"id": "\xff\xfe", "inputs": []}'), INVALID, 400,
             grpc_only=not_parsed, rest_only=not_json),
        case("not a message at all", b"\xff" * 16, raw_rest(infer_path(SINGLE), b"hello"),
             INVALID, 400, grpc_only=not_parsed, rest_only=not_json),
    ]


def _rest_only(x, x_bytes):
    path = infer_path(SINGLE)
    rest = rest_request(SINGLE, [T("x", x)])
    head_len = rest.headers[hc.HEADER_LENGTH]

    def header_length(value):
        return Rest(path, rest.body, {hc.HEADER_LENGTH: value})

    def with_input(**fields):
        tensor = {"name": "x", "shape": [2, K], "datatype": "FP32", **fields}
        return raw_rest(path, hc.dumps({"inputs": [tensor]}).encode())

    data = [float(v) for v in x.ravel()]
    return [
        case("JSON array as the request", None, raw_rest(path, b"[]"), INVALID, 400,
             rest_only=["a JSON object", "an array"]),
        case("inputs not a list", None, raw_rest(path, b'{"inputs": {"name": "x"}}'), INVALID,
             400, rest_only=["'inputs'", "an array"]),
        case("input without a name", None,
             raw_rest(path, hc.dumps({"inputs": [{"datatype": "FP32", "shape": [2, K],
                                                  "data": data}]}).encode()),
             INVALID, 400, rest_only=["inputs[0]", "'name'"]),
        case("shape of strings", None, with_input(shape=["2", str(K)], data=data), INVALID, 400,
             rest_only=["input 'x'", "non-negative integers"]),
        case("id not a string", None,
             raw_rest(path, hc.dumps({"id": 7, "inputs": [{"name": "x", "shape": [2, K],
                                                           "datatype": "FP32",
                                                           "data": data}]}).encode()),
             INVALID, 400, rest_only=["'id'", "a string"]),
        case("binary_data_output not a boolean", None,
             raw_rest(path, hc.dumps({"inputs": [{"name": "x", "shape": [2, K],
                                                  "datatype": "FP32", "data": data}],
                                      "parameters": {"binary_data_output": "yes"}}).encode()),
             INVALID, 400, rest_only=["'binary_data_output'", "a boolean"]),
        case("NaN in JSON data", None,
             raw_rest(path, hc.dumps({"inputs": [{"name": "x", "shape": [1, 1],
                                                  "datatype": "FP32",
                                                  "data": [float("nan")]}]}).encode()),
             INVALID, 400, rest_only=["not valid JSON", "binary data"]),
        case("binary_data_size negative", None,
             Rest(path, *_binary_size_body(-4, x_bytes)), INVALID, 400,
             rest_only=["input 'x'", "binary_data_size"]),
        case("binary_data_size a string", None,
             Rest(path, *_binary_size_body(str(len(x_bytes)), x_bytes)), INVALID, 400,
             rest_only=["input 'x'", "binary_data_size", "a string"]),
        case("binary_data_size beyond the body", None,
             Rest(path, *_binary_size_body(len(x_bytes) + 4, x_bytes)), INVALID, 400,
             rest_only=["input 'x'", "goes beyond the body"]),
        case("header length not a number", None, header_length("twelve"), INVALID, 400,
             rest_only=[hc.HEADER_LENGTH]),
        case("header length beyond the body", None, header_length(len(rest.body) + 1), INVALID,
             400, rest_only=[hc.HEADER_LENGTH]),
        case("header length inside the JSON", None, header_length(head_len - 3), INVALID, 400,
             rest_only=["not valid JSON", f"first {head_len - 3} bytes", hc.HEADER_LENGTH]),
        case("binary data without a header length", None, header_length(None), INVALID, 400,
             rest_only=["not valid JSON", f"needs the header {hc.HEADER_LENGTH}"]),
    ]


def _binary_size_body(size, x_bytes):
    head = hc.dumps({"inputs": [{"name": "x", "shape": [2, K], "datatype": "FP32",
                                 "parameters": {"binary_data_size": size}}]}).encode()
    return head + x_bytes, {hc.HEADER_LENGTH: len(head)}
