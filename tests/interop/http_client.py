"""A small KServe v2 / Open Inference Protocol HTTP client on Python's
stdlib http.client, for the HTTP interop tests (interop_http_*_test.py).
CI has no network and no tritonclient, so this speaks tritonclient.http's
wire format itself, byte for byte where it matters:

- the header set geventhttpclient (tritonclient.http's transport) sends:
  Host, User-Agent, Content-Length only when the body is not empty (so a
  POST /v2/repository/index has none at all), Inference-Header-Content-Length
  when binary tensors follow the JSON, and no Content-Type; HTTP/1.1 with
  keep-alive, one connection reused for every request;
- the request JSON of tritonclient.http._utils._get_inference_request:
  compact, keys in its order ("id", "inputs", "outputs", "parameters"), each
  input {"name", "shape", "datatype"[, "parameters"][, "data"]}, binary
  inputs with parameters.binary_data_size and their raw little-endian bytes
  after the JSON in inputs order, each requested output {"name",
  "parameters": {"binary_data": bool}}, and parameters.binary_data_output =
  true when no output is named;
- the response parsing of tritonclient.http.InferResult: the JSON header is
  the first Inference-Header-Content-Length bytes (the whole body without
  that header), each output with parameters.binary_data_size takes the next
  that many bytes of the binary section, in outputs order.

For the same tensors, inference_body's bytes were checked by hand to equal
those of tritonclient's own _get_inference_request (client repository at
58a44caa). Beside it: gzip and deflate bodies (its
request_compression_algorithm), and raw_exchange for what http.client cannot
send (Expect: 100-continue, chunked bodies, a body the server refuses before
reading it).

(rapidjson, tritonclient's encoder, writes 1e+38 where Python's json writes
1e38; both are JSON numbers.) Every request is bounded by a socket timeout.
tritonclient turns FP32 into BF16 by truncation, this module (tensor_files)
by rounding to nearest even; the tests send bfloat16-representable values,
for which the two agree. No gRPC and no torch here.
"""

import gzip
import http.client
import json
import re
import socket
import time
import urllib.parse
import zlib

import numpy as np

from tensor_files import bf16_bits, bf16_to_f32

LOOPBACK = "127.0.0.1"
HTTP_TIMEOUT_S = 30.0
# geventhttpclient 2.0.8's default User-Agent (Debian's python3-geventhttpclient).
USER_AGENT = "python/gevent-http-client-2.0.8"
HEADER_LENGTH = "Inference-Header-Content-Length"
# The server logs this line once its HTTP/REST listener is serving.
HTTP_LISTENING_RE = re.compile(r"HTTP/REST listening on http://127\.0\.0\.1:(\d+)")

_NP_TYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "FP16": np.dtype("<f2"),
             "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8")}


def dumps(obj):
    """JSON text as tritonclient's rapidjson.dumps writes it: compact, ASCII,
    NaN and Infinity as bare tokens."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


# -- tensors ---------------------------------------------------------------

def tensor_bytes(array, datatype):
    """The raw little-endian bytes of `array` as `datatype`."""
    if datatype == "BF16":
        return bf16_bits(array).tobytes()
    return np.ascontiguousarray(array, dtype=_NP_TYPES[datatype]).tobytes()


class Input:
    """One input tensor, as tritonclient.http.InferInput with
    set_data_from_numpy(array, binary_data=binary). `nested`: JSON data as
    nested lists in the tensor's shape instead of a flat list (both are the
    spec's). `shape`, `data`, `raw`, `parameters`: override what the array
    gives, to build malformed requests."""

    def __init__(self, name, array, datatype="FP32", binary=True, nested=False,
                 shape=None, data=None, raw=None, parameters=None):
        self.name = name
        self.datatype = datatype
        self.array = None if array is None else np.asarray(array)
        self.shape = [int(d) for d in (shape if shape is not None else self.array.shape)]
        self.binary = binary
        if raw is None and binary and self.array is not None:
            raw = tensor_bytes(self.array, datatype)
        self.raw = raw if binary else None
        if data is None and not binary and self.array is not None:
            values = np.asarray(self.array, _NP_TYPES.get(datatype, np.float32))
            data = values.tolist() if nested else [v.item() for v in values.ravel()]
        self.data = data
        self.parameters = dict(parameters) if parameters is not None else (
            {"binary_data_size": len(self.raw)} if self.raw is not None else {})

    def tensor(self):
        tensor = {"name": self.name, "shape": self.shape, "datatype": self.datatype}
        if self.parameters:
            tensor["parameters"] = self.parameters
        if self.raw is None and self.data is not None:
            tensor["data"] = self.data
        return tensor


class Output:
    """A requested output, as tritonclient.http.InferRequestedOutput(name,
    binary_data=binary); `datatype` adds the server's output parameter
    "datatype" (FP32 or BF16), which tritonclient has no argument for."""

    def __init__(self, name, binary=True, datatype=None):
        self.name = name
        self.parameters = {"binary_data": bool(binary)}
        if datatype is not None:
            self.parameters["datatype"] = datatype

    def tensor(self):
        return {"name": self.name, "parameters": self.parameters}


def inference_body(inputs, outputs=None, request_id="", parameters=None,
                   tritonclient=True):
    """(body bytes, JSON header length or None), as tritonclient's
    _get_inference_request: the length is None when no input is binary
    (the body is the JSON alone). `tritonclient` False: no
    binary_data_output when no output is named, as a plain KServe v2 JSON
    client (curl) sends it."""
    request = {}
    params = dict(parameters or {})
    if request_id != "":
        request["id"] = request_id
    request["inputs"] = [i.tensor() for i in inputs]
    if outputs:
        request["outputs"] = [o.tensor() for o in outputs]
    elif tritonclient:
        params.setdefault("binary_data_output", True)
    if params:
        request["parameters"] = params
    head = dumps(request).encode("utf-8")
    raws = [i.raw for i in inputs if i.raw is not None]
    if not raws:
        return head, None
    return head + b"".join(raws), len(head)


# -- responses ---------------------------------------------------------------

class Response:
    """status, reason, headers (case-insensitive .header()), body bytes."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self._headers = {k.lower(): v for k, v in headers}
        self.body = body

    def header(self, name, default=None):
        return self._headers.get(name.lower(), default)

    def json(self):
        """The body as JSON (Python's json reads NaN and Infinity tokens)."""
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        text = self.body[:600].decode("utf-8", errors="replace")
        return f"HTTP {self.status} {self.reason} {text!r}"


class Decoded:
    """An inference response taken apart: `header` (the JSON), `outputs`
    (name -> float32 array, response order), `datatypes` (name -> datatype),
    `binary` (names that came in the binary section)."""

    def __init__(self, header, outputs, datatypes, binary):
        self.header = header
        self.outputs = outputs
        self.datatypes = datatypes
        self.binary = binary


def decode_inference(response):
    """Takes a 200 inference response apart as tritonclient's InferResult
    does, and checks the framing on the way: the header length within the
    body, every binary output's bytes present and the binary section used
    up exactly, element counts matching shapes, JSON data flat. Raises
    AssertionError on any violation."""
    if response.status != 200:
        raise AssertionError(f"expected 200, got {response!r}")
    length = response.header(HEADER_LENGTH)
    if length is None:
        head, rest = response.body, b""
    else:
        if not re.fullmatch(r"[0-9]+", length.strip()):
            raise AssertionError(f"{HEADER_LENGTH}: {length!r} is no byte count")
        n = int(length)
        if n > len(response.body):
            raise AssertionError(f"{HEADER_LENGTH} {n} > body {len(response.body)} bytes")
        head, rest = response.body[:n], response.body[n:]
    header = json.loads(head.decode("utf-8"))
    outputs, datatypes, binary = {}, {}, []
    offset = 0
    for tensor in header.get("outputs", []):
        name, datatype = tensor["name"], tensor["datatype"]
        shape = tuple(int(d) for d in tensor["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if name in outputs:
            raise AssertionError(f"output {name!r} twice")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if length is None:
                raise AssertionError(f"{name}: binary_data_size without {HEADER_LENGTH}")
            if "data" in tensor:
                raise AssertionError(f"{name}: both binary_data_size and data")
            width = 2 if datatype == "BF16" else _NP_TYPES[datatype].itemsize
            if size != count * width:
                raise AssertionError(f"{name}: binary_data_size {size} vs shape {shape} "
                                     f"of {datatype}")
            blob = rest[offset:offset + size]
            if len(blob) != size:
                raise AssertionError(f"{name}: {len(blob)} of {size} binary bytes")
            offset += size
            array = (bf16_to_f32(np.frombuffer(blob, "<u2")) if datatype == "BF16"
                     else np.frombuffer(blob, _NP_TYPES[datatype]).astype(np.float32))
            binary.append(name)
        else:
            data = tensor["data"]
            if any(isinstance(v, list) for v in data):
                raise AssertionError(f"{name}: response data must be flat")
            if len(data) != count:
                raise AssertionError(f"{name}: {len(data)} values for shape {shape}")
            array = np.asarray(data, np.float64).astype(np.float32)
        outputs[name] = array.reshape(shape)
        datatypes[name] = datatype
    if offset != len(rest):
        raise AssertionError(f"{len(rest) - offset} bytes after the last binary output")
    return Decoded(header, outputs, datatypes, binary)


# -- the client --------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port. Not thread-safe:
    one Client a thread."""

    def __init__(self, port, host=LOOPBACK, timeout=HTTP_TIMEOUT_S):
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self._conn = None
        self._used = False  # the connection has answered a request before

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._used = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def request(self, method, path, body=b"", headers=None, retry=True):
        """Sends one request with geventhttpclient's header set plus
        `headers` (a value None drops a field) and returns the Response.
        Once (unless not `retry`), a keep-alive connection that the server
        closed while idle is replaced and the request sent again."""
        fields = {"Host": f"{self.host}:{self.port}", "User-Agent": USER_AGENT}
        if body:
            fields["Content-Length"] = str(len(body))
        fields.update(headers or {})
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
            reused = self._used
            try:
                self._conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in fields.items():
                    if value is not None:
                        self._conn.putheader(name, str(value))
                self._conn.endheaders(body if body else None)
                reply = self._conn.getresponse()
                data = reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 0 and reused and retry:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            response = Response(reply.status, reply.reason, reply.getheaders(), data)
            if reply.will_close:
                self.close()
            else:
                self._used = True
            return response
        raise AssertionError("unreachable")

    def get(self, path, headers=None, retry=True):
        return self.request("GET", path, headers=headers, retry=retry)

    def post(self, path, body=b"", headers=None):
        return self.request("POST", path, body, headers)

    # -- the endpoints, at tritonclient.http's URIs -------------------------
    @staticmethod
    def model_path(model, version=""):
        path = "/v2/models/" + urllib.parse.quote(model)
        return path + (f"/versions/{version}" if version != "" else "")

    def infer(self, model, inputs, outputs=None, version="", request_id="",
              parameters=None, headers=None, content_type=None, tritonclient=True,
              compression=None):
        """POST .../infer with tritonclient's body and headers (inference_body
        says what `tritonclient` changes); returns the Response
        (decode_inference takes it apart). `compression` "gzip" or "deflate":
        the body compressed with Content-Encoding, as tritonclient's
        request_compression_algorithm (the header length stays the
        uncompressed JSON's)."""
        body, json_size = inference_body(inputs, outputs, request_id, parameters,
                                         tritonclient)
        extra = dict(headers or {})
        if compression == "gzip":
            body = gzip.compress(body)
        elif compression == "deflate":
            body = zlib.compress(body)  # "deflate" is the zlib format (RFC 9110)
        elif compression is not None:
            raise ValueError(compression)
        if compression is not None:
            extra.setdefault("Content-Encoding", compression)
        if json_size is not None:
            extra.setdefault(HEADER_LENGTH, json_size)
        if content_type is not None:
            extra.setdefault("Content-Type", content_type)
        return self.post(self.model_path(model, version) + "/infer", body, extra)

    def repository_index(self, ready=None):
        """POST /v2/repository/index: tritonclient sends no body at all
        (no Content-Length either); `ready` sends {"ready": ready}."""
        body = b"" if ready is None else dumps({"ready": ready}).encode()
        return self.post("/v2/repository/index", body)


def raw_exchange(port, head, body=b"", timeout=30.0, expect_continue=False,
                 continue_timeout=2.0):
    """One request on a fresh socket, for what http.client cannot send:
    `head` (the request line and header fields, CRLF-separated, without the
    blank line), then `body`, sending and reading at once, so that an answer
    given before the whole body is read (413) is still read. With
    `expect_continue`, the body waits for the interim response, for
    `continue_timeout` at most (then it goes anyway, as curl's does).
    Returns (status, headers with lower-case names, body, interim statuses);
    status None when no response came. Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    pending = head.encode("latin-1") + b"\r\n\r\n"
    held = body if expect_continue else b""
    if not expect_continue:
        pending += body
    continue_deadline = time.monotonic() + continue_timeout
    reply, interim = b"", []
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.setblocking(False)
        while time.monotonic() < deadline:
            progressed = False
            if held and time.monotonic() > continue_deadline:
                pending, held = pending + held, b""
            if pending:
                try:
                    sent = sock.send(pending[:1 << 16])
                    pending, progressed = pending[sent:], True
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    pending = held = b""
            try:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                reply, progressed = reply + chunk, True
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            while re.match(rb"HTTP/1\.[01] 1\d\d ", reply) and b"\r\n\r\n" in reply:
                line, _, reply = reply.partition(b"\r\n\r\n")
                interim.append(int(line.split(b" ")[1]))
                pending, held = pending + held, b""
            if _complete(reply):
                break
            if not progressed:
                time.sleep(0.002)
    if not re.match(rb"HTTP/1\.[01] \d\d\d", reply):
        return None, {}, reply, interim
    head_bytes, _, rest = reply.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields.get("content-length", len(rest)))
    return int(lines[0].split(" ")[1]), fields, rest[:length], interim


def _complete(reply):
    """A final response whose head and Content-Length bytes are all in."""
    head, sep, rest = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return m is not None and len(rest) >= int(m.group(1))


def wait_http(server, timeout=30.0):
    """The port once `server` (a server_process.ServerProcess) has logged
    its HTTP/REST listening line; AssertionError with the log if it exits
    or does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = HTTP_LISTENING_RE.search(server.log())
        if m:
            return int(m.group(1))
        if server.wait_exit(timeout=0.05) is not None:
            break
    raise AssertionError(f"no 'HTTP/REST listening on http://127.0.0.1:<port>' within "
                         f"{timeout:.0f} s (exit code {server.returncode})\n"
                         f"--- server log ---\n{server.log()}")
