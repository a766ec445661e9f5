#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
valid inputs for the models of tests/support/fuzz_models.h and near-misses
of each refusal, a few dozen small files in all. Deterministic; rerun after
changing it and commit the result.

    /usr/bin/python3 tests/fuzz/make_corpus.py [CORPUS_DIR]

Protobuf messages are encoded by hand (no generated stubs needed); a
finding's reproducer, kept in the corpus as regress-*, is left alone.
"""

import json
import pathlib
import shutil
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
K, M = 6, 4          # linear_relu and forward_only: Linear(6, 4)
DEEP_OUT = 3         # deep: Linear(6, 5), Linear(5, 4), Linear(4, 3)


# --- protobuf wire format -------------------------------------------------

def varint(value):
    value &= (1 << 64) - 1  # negative int64: ten bytes, as protobuf writes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field (strings, bytes, messages, packed)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def packed_int64(number, values):
    return field(number, b"".join(varint(v) for v in values))


def packed_float(number, values):
    return field(number, struct.pack(f"<{len(values)}f", *values))


def parameter(key, message):
    """A map<string, InferParameter> entry."""
    return field(1, key) + field(2, message)


def string_param(text):
    return field(3, text)


def bool_param(value):
    return varint(1 << 3 | 0) + varint(int(value))


def input_tensor(name, datatype, shape, fp32=None, int32=None, params=b""):
    message = field(1, name) + field(2, datatype) + packed_int64(3, shape)
    message += params
    if fp32 is not None:
        message += field(5, packed_float(6, fp32))
    if int32 is not None:
        message += field(5, field(2, b"".join(varint(v) for v in int32)))
    return field(5, message)


def output_tensor(name, datatype=None):
    message = field(1, name)
    if datatype is not None:
        message += field(2, parameter("datatype", string_param(datatype)))
    return field(6, message)


def request(model, inputs=(), outputs=(), raw=(), version="", id_="",
            extra=b""):
    message = field(1, model)
    if version:
        message += field(2, version)
    if id_:
        message += field(3, id_)
    message += extra + b"".join(inputs) + b"".join(outputs)
    message += b"".join(field(7, r) for r in raw)
    return message


def floats(count, scale=0.25):
    return [((i * 7) % 11 - 5) * scale for i in range(count)]


def fp32_bytes(count):
    return struct.pack(f"<{count}f", *floats(count))


def bf16_bytes(count):
    return b"".join(struct.pack("<f", v)[2:] for v in floats(count))


def x_input(shape, datatype="FP32", **contents):
    return input_tensor("x", datatype, shape, **contents)


def linear_relu(inputs, outputs=(), raw=()):
    return request("linear_relu", inputs, outputs, raw=raw)


def grpc_request_seeds():
    x, gy = x_input([2, K]), input_tensor("grad_y", "FP32", [2, M])
    x1 = x_input([1, K])
    return {
        "forward_raw": linear_relu([x1], raw=[fp32_bytes(K)]),
        "backward_raw": request("linear_relu", [x, gy],
                                raw=[fp32_bytes(2 * K), fp32_bytes(2 * M)],
                                id_="req-1"),
        "forward_typed": linear_relu([x_input([1, K], fp32=floats(K))],
                                     [output_tensor("y")]),
        "reshaped_grad_x": linear_relu(
            [x_input([2, 2, 3]), gy],
            [output_tensor("grad_x"), output_tensor("grad_bias")],
            raw=[fp32_bytes(2 * K), fp32_bytes(2 * M)]),
        "bf16_mixed_outputs": linear_relu(
            [x_input([1, K], "BF16"), input_tensor("grad_y", "BF16", [1, M])],
            [output_tensor("grad_weight", "FP32"), output_tensor("y")],
            raw=[bf16_bytes(K), bf16_bytes(M)]),
        "deep_gradients": request(
            "deep",
            [x_input([3, K]), input_tensor("grad_y", "FP32", [3, DEEP_OUT])],
            [output_tensor("grad_0.weight"), output_tensor("grad_2.bias"),
             output_tensor("grad_4.weight"), output_tensor("grad_x", "BF16")],
            raw=[fp32_bytes(3 * K), fp32_bytes(3 * DEEP_OUT)]),
        "deep_version_1": request(
            "deep", [x_input([8, K])], raw=[fp32_bytes(8 * K)], version="1",
            id_="abc", extra=field(4, parameter("priority", bool_param(True)))),
        "forward_only": request("forward_only",
                                [x_input([1, K], fp32=floats(K))]),
        # Near-misses, one refusal each.
        "raw_count": linear_relu([x, gy], raw=[fp32_bytes(2 * K)]),
        "raw_and_typed": linear_relu([x_input([1, K], fp32=floats(K))],
                                     raw=[fp32_bytes(K)]),
        "bf16_typed": linear_relu([x_input([1, K], "BF16", fp32=floats(K))]),
        "int_contents": linear_relu([x_input([1, K], int32=[1] * K)]),
        "wrong_datatype": linear_relu([x_input([1, K], "INT32")],
                                      raw=[fp32_bytes(K)]),
        "batch_above_max": linear_relu([x_input([9, K])],
                                       raw=[fp32_bytes(9 * K)]),
        "batch_zero": linear_relu([x_input([0, K])], raw=[b""]),
        "negative_dim": linear_relu([x_input([-1, K])], raw=[fp32_bytes(K)]),
        "overflowing_shape": linear_relu([x_input([1 << 62, 1 << 62])],
                                         raw=[fp32_bytes(K)]),
        "byte_count": linear_relu([x1], raw=[fp32_bytes(K - 1)]),
        "gradient_without_grad_y": linear_relu([x1], [output_tensor("grad_x")],
                                               raw=[fp32_bytes(K)]),
        "duplicate_input": linear_relu([x1] * 2, raw=[fp32_bytes(K)] * 2),
        "unknown_output_datatype": linear_relu(
            [x1], [output_tensor("y", "FP16"), output_tensor("y")],
            raw=[fp32_bytes(K)]),
        "unknown_model": request("mlp", [x1], raw=[fp32_bytes(K)]),
        "unknown_version": request("deep", [x1], raw=[fp32_bytes(K)],
                                   version="2"),
        "backward_on_forward_only": request(
            "forward_only", [x1, input_tensor("grad_y", "FP32", [1, M])],
            raw=[fp32_bytes(K), fp32_bytes(M)]),
    }


# --- REST bodies: byte 0 the model (+0x80: chunked), bytes 1-2
# Inference-Header-Content-Length

MODEL_INDEX = {"linear_relu": 0, "deep": 1, "deep/1": 2, "forward_only": 3,
               "deep/2": 4, "missing": 5}
NO_HEADER_LENGTH = 0xFFFF


def http(model, header, binary=b"", header_length=None, chunked=False):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if header_length is None:
        header_length = len(text) if binary else NO_HEADER_LENGTH
    first = MODEL_INDEX[model] | (0x80 if chunked else 0)
    return bytes([first]) + struct.pack("<H", header_length) + text + binary


def json_input(name, shape, data, datatype="FP32"):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def binary_input(name, shape, size, datatype="FP32"):
    return {"name": name, "datatype": datatype, "shape": shape,
            "parameters": {"binary_data_size": size}}


def http_infer_request_seeds():
    x1 = json_input("x", [1, K], floats(K))
    nested = json_input("x", [2, K], [floats(K), floats(K, 0.5)])
    seeds = {
        "json_forward": http("linear_relu", {"inputs": [x1]}),
        "json_nested_backward": http("linear_relu", {
            "id": "r1",
            "inputs": [nested, json_input("grad_y", [2, M], floats(2 * M))],
            "outputs": [{"name": "grad_x", "parameters": {"binary_data": True}},
                        {"name": "y"}]}),
        "binary_forward": http("linear_relu", {"inputs": [binary_input("x", [1, K], 4 * K)]},
                               fp32_bytes(K)),
        "binary_bf16": http("linear_relu", {
            "inputs": [binary_input("x", [1, K], 2 * K, "BF16"),
                       binary_input("grad_y", [1, M], 2 * M, "BF16")],
            "outputs": [{"name": "grad_weight",
                         "parameters": {"datatype": "BF16", "binary_data": True}},
                        {"name": "grad_bias", "parameters": {"datatype": "FP32"}}]},
                            bf16_bytes(K) + bf16_bytes(M)),
        "deep_binary_output": http("deep", {
            "parameters": {"binary_data_output": True},
            "inputs": [binary_input("x", [2, 2, 3], 8 * K),
                       json_input("grad_y", [2, DEEP_OUT], floats(2 * DEEP_OUT))],
            "outputs": [{"name": "grad_0.weight"}, {"name": "grad_x"}]},
                                   fp32_bytes(2 * K)),
        "deep_version_1": http("deep/1", {"inputs": [x1], "outputs": [{"name": "y"}]}),
        "chunked_binary": http("linear_relu", {"inputs": [binary_input("x", [2, K], 8 * K)]},
                               fp32_bytes(2 * K), chunked=True),
        "forward_only": http("forward_only", {"id": "f", "inputs": [x1]}),
        # Near-misses.
        "binary_beyond_body": http("linear_relu",
                                   {"inputs": [binary_input("x", [1, K], 4 * K + 4)]},
                                   fp32_bytes(K)),
        "binary_extra_bytes": http("linear_relu", {"inputs": [binary_input("x", [1, K], 4 * K)]},
                                   fp32_bytes(K + 1)),
        "bf16_in_json": http("linear_relu",
                             {"inputs": [json_input("x", [1, K], floats(K), "BF16")]}),
        "data_and_binary": http("linear_relu", {"inputs": [dict(binary_input("x", [1, K], 4 * K),
                                                                data=floats(K))]}, fp32_bytes(K)),
        "negative_shape": http("linear_relu", {"inputs": [json_input("x", [-1, K], floats(K))]}),
        "not_an_object": http("linear_relu", [1, 2, 3]),
        "nan_in_json": http("linear_relu", b'{"inputs":[{"name":"x","datatype":"FP32",'
                                           b'"shape":[1,6],"data":[NaN,0,0,0,0,0]}]}'),
        "string_in_data": http("linear_relu", {"inputs": [json_input("x", [1, K], ["a"] * K)]}),
        "beyond_fp32": http("linear_relu", {"inputs": [json_input("x", [1, K], [1e39] * K)]}),
        "no_inputs": http("linear_relu", {"outputs": [{"name": "y"}]}),
        "outputs_not_array": http("linear_relu", {"inputs": [x1], "outputs": {"name": "y"}}),
        "binary_data_not_bool": http("linear_relu", {
            "inputs": [x1], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}),
        "unknown_model": http("missing", {"inputs": [x1]}),
        "unknown_version": http("deep/2", {"inputs": [x1]}),
        "truncated_header": http("linear_relu", {"inputs": [binary_input("x", [1, K], 4 * K)]},
                                 fp32_bytes(K), header_length=40),
    }
    return seeds


# --- safetensors ----------------------------------------------------------

def safetensors(tensors, metadata=None, data_override=None):
    """tensors: (name, dtype, shape, byte count or None for the shape's)."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, size in tensors:
        count = 1
        for d in shape:
            count *= d
        size = count * {"F32": 4, "F16": 2, "I64": 8}[dtype] if size is None else size
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + size]}
        data += bytes((offset + i) % 251 for i in range(size))
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    if data_override is not None:
        data = data_override
    return struct.pack("<Q", len(text)) + text + data


def linear(prefix, out, inp, bias=True):
    tensors = [(prefix + "weight", "F32", [out, inp], None)]
    if bias:
        tensors.append((prefix + "bias", "F32", [out], None))
    return tensors


def raw_safetensors(header_text, data=b""):
    return struct.pack("<Q", len(header_text)) + header_text + data


def safetensors_seeds():
    sequential = linear("0.", 5, K) + linear("2.", 4, 5) + linear("4.", 3, 4, bias=False)
    overlapping = json.dumps({
        "weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "bias": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}).encode()
    return {
        "single_linear": safetensors(linear("", M, K)),
        "single_no_bias": safetensors(linear("", M, K, bias=False), metadata={"format": "pt"}),
        "sequential": safetensors(sequential),
        "prefixed": safetensors(linear("net.0.", 3, K) + linear("net.1.", 2, 3)
                                + [("head.weight", "F16", [2, 2], None)]),
        "other_dtypes": safetensors(linear("", 2, 3) + [("steps", "I64", [], None),
                                                        ("mystery", "Q4", [3], 7)]),
        # Near-misses.
        "truncated_length": b"\x10\x00\x00",
        "absurd_header_length": struct.pack("<Q", 1 << 40) + b"{}",
        "header_past_file": struct.pack("<Q", 64) + b'{"weight":',
        "not_json": raw_safetensors(b"{not json}"),
        "not_object": raw_safetensors(b"[1,2]   "),
        "overlapping": raw_safetensors(overlapping, bytes(16)),
        "wrong_dtype": safetensors([("weight", "F16", [M, K], None)]),
        "bias_mismatch": safetensors(linear("", M, K)[:1] + [("bias", "F32", [M + 1], None)]),
        "no_chain": safetensors(linear("0.", 5, K) + linear("1.", 4, 6)),
        "bias_without_weight": safetensors(linear("0.", 5, K) + [("1.bias", "F32", [4], None)]),
        "not_linear": safetensors(linear("0.", 5, K) + [("0.running_mean", "F32", [5], None)]),
        "mixed_forms": safetensors(linear("", 5, K) + linear("0.", 5, K)),
        "offsets_beyond": safetensors(linear("", M, K), data_override=bytes(8)),
        "begin_after_end": raw_safetensors(json.dumps({
            "weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [8, 4]}}).encode(),
            bytes(8)),
        "size_overflow": raw_safetensors(json.dumps({
            "weight": {"dtype": "F32", "shape": [1 << 40, 1 << 40],
                       "data_offsets": [0, 4]}}).encode(),
            bytes(4)),
        "zero_dimension": safetensors([("weight", "F32", [0, K], None)]),
        "rank_3_weight": safetensors([("weight", "F32", [2, 2, 2], None)]),
    }


# --- config.pbtxt ---------------------------------------------------------

def model_config_seeds():
    return {
        "full": b'name: "mlp"\nplatform: "onednn_linear_relu"\nbackend: "reluserve"\n'
                b"max_batch_size: 64\n"
                b"dynamic_batching { max_queue_delay_microseconds: 500"
                b" preferred_batch_size: [ 32 ] }\n"
                b'parameters { key: "layers" value: { string_value: "linear,relu,linear" } }\n'
                b'parameters { key: "backward" value: { string_value: "false" } }\n',
        "empty": b"",
        "comments_only": b"# a config that sets nothing\n\n",
        "batching_defaults": b"dynamic_batching { }\n",
        "layers_single": b'parameters: [ { key: "layers",'
                         b' value { string_value: " linear , relu " } } ]\n',
        # Near-misses.
        "instance_group": b"instance_group [ { count: 2 kind: KIND_CPU } ]\n",
        "input": b'input [ { name: "x" data_type: TYPE_FP32 dims: [ 6 ] } ]\n',
        "other_name": b'name: "other"\n',
        "other_platform": b'platform: "tensorrt_plan"\n',
        "other_backend": b'backend: "onnxruntime"\n',
        "negative_batch": b"max_batch_size: -1\n",
        "preferred_above_max": b"max_batch_size: 8 dynamic_batching { preferred_batch_size: 9 }\n",
        "preferred_zero": b"dynamic_batching { preferred_batch_size: [ 0 ] }\n",
        "two_preferred": b"dynamic_batching { preferred_batch_size: [ 4, 8 ] }\n",
        "huge_delay": b"dynamic_batching { max_queue_delay_microseconds: 18446744073709551615 }\n",
        "unknown_parameter": b'parameters { key: "prefix" value: { string_value: "net." } }\n',
        "backward_maybe": b'parameters { key: "backward" value: { string_value: "maybe" } }\n',
        "layers_mismatch":
            b'parameters { key: "layers" value: { string_value: "relu,linear" } }\n',
        "syntax_error": b"max_batch_size: {\n",
        "wrong_type": b'max_batch_size: "many"\n',
    }


def main(argv):
    root = pathlib.Path(argv[1]) if len(argv) > 1 else HERE / "corpus"
    for target, seeds in [("grpc_request", grpc_request_seeds()),
                          ("http_infer_request", http_infer_request_seeds()),
                          ("safetensors", safetensors_seeds()),
                          ("model_config", model_config_seeds())]:
        directory = root / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            if not old.name.startswith("regress-"):
                old.unlink() if old.is_file() else shutil.rmtree(old)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
