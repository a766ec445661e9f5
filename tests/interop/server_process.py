"""Helpers shared by the interop tests: run a real `reluserve-server` process
on 127.0.0.1 with an ephemeral port, write safetensors weight files, and split
the tests' own command-line arguments from unittest's.

Run with Debian's /usr/bin/python3 (it has python3-numpy); no gRPC here.

Every wait in this module is bounded in time.
"""

import argparse
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np

LOOPBACK = "127.0.0.1"
# The server logs this line exactly once it is serving (docs/architecture.md:
# tests bind 127.0.0.1:0 and read the chosen port).
LISTENING_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

# The server flag that names the safetensors file. `--weights-prefix` is
# fixed by the brief; the file flag can be overridden without editing tests.
WEIGHTS_FLAG = os.environ.get("RELUSERVE_WEIGHTS_FLAG", "--weights")
WEIGHTS_PREFIX_FLAG = os.environ.get("RELUSERVE_WEIGHTS_PREFIX_FLAG",
                                     "--weights-prefix")

# What AddressSanitizer, LeakSanitizer, UBSan and a fatal error leave in a
# server's log: any of them means it crashed or misbehaved.
CRASH_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault|"
                      r"Aborted|terminate called")

DEFAULT_STARTUP_TIMEOUT_S = 30.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 20.0

_PROXY_VARS = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "ALL_PROXY")


def loopback_env(extra=None):
    """A copy of os.environ in which no proxy can capture a loopback call
    (gRPC C-core honours http_proxy/grpc_proxy, also for 127.0.0.1)."""
    env = dict(os.environ)
    for name in _PROXY_VARS:
        env.pop(name, None)
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost,::1"
    if extra:
        env.update(extra)
    return env


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for listeners,
    such as the metrics endpoint, whose chosen port is not otherwise known)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def stop_class_fixture(cls, expect_code):
    """Ends a test class's shared fixture: closes `cls.channel` if it has
    one, stops `cls.server` (asserting `expect_code`, None: any) and removes
    `cls.tmp`, whatever fails on the way."""
    channel = getattr(cls, "channel", None)
    if channel is not None:
        channel.close()
        cls.channel = None
    try:
        if cls.server is not None:
            cls.server.stop(expect_code=expect_code)
    finally:
        cls.server = None
        if cls.tmp is not None:
            cls.tmp.cleanup()
            cls.tmp = None


def proc_status(pid):
    """/proc/<pid>/status as {field: [values]}."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return fields


def rss_bytes(pid):
    """VmRSS of process `pid`, in bytes."""
    return int(proc_status(pid)["VmRSS"][0]) * 1024


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies (e.g. a
    ctest TIMEOUT kill), so no server outlives its test."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # best effort only
        pass


class ServerError(AssertionError):
    """The server did not start, did not stop, or stopped with a bad code.
    An AssertionError so that unittest reports it as a failure."""


class ServerProcess:
    """One `reluserve-server` child process on 127.0.0.1:<ephemeral port>.

    with ServerProcess(binary, ["--weights", path]) as server:
        channel = grpc.insecure_channel(server.target)
    # leaving the block sends SIGTERM and asserts exit code 0.

    Not thread-safe: drive it from one thread.
    """

    def __init__(self, binary, extra_args=(), *,
                 startup_timeout=DEFAULT_STARTUP_TIMEOUT_S,
                 shutdown_timeout=DEFAULT_SHUTDOWN_TIMEOUT_S,
                 env=None, open_files=None):
        self.binary = str(binary)
        extra_env = shlex.split(os.environ.get("RELUSERVE_SERVER_EXTRA_ARGS", ""))
        extra_args = [str(a) for a in extra_args]
        # The metrics endpoint's and the REST front end's default ports
        # (8002, 8000) would be shared by every test server running at once:
        # off unless a test asks for them.
        metrics = [] if "--metrics-port" in extra_args else ["--metrics-port", "0"]
        http = [] if "--http-port" in extra_args else ["--http-port", "0"]
        self.argv = [self.binary, "--host", LOOPBACK, "--port", "0", *metrics,
                     *http, *extra_args, *extra_env]
        self.startup_timeout = float(startup_timeout)
        self.shutdown_timeout = float(shutdown_timeout)
        self.env = loopback_env(env)
        # (soft, hard) RLIMIT_NOFILE for the server process, or None.
        self.open_files = open_files
        self.port = None
        self.returncode = None
        self._proc = None
        self._lines = []
        self._lines_lock = threading.Lock()
        self._listening = threading.Event()
        self._reader = None

    # -- properties ------------------------------------------------------
    @property
    def target(self):
        if self.port is None:
            raise ServerError("server not started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def log(self):
        """Everything the server wrote to stdout and stderr so far."""
        with self._lines_lock:
            return "".join(self._lines)

    # -- lifecycle -------------------------------------------------------
    def start(self):
        """Starts the process and returns the port once the server logs
        `listening on 127.0.0.1:<port>`; raises ServerError with the captured
        log if that does not happen within startup_timeout."""
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            raise ServerError(f"server binary not found or not executable: {self.binary}")
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=self.env,
                preexec_fn=self._preexec, close_fds=True)
        except OSError as e:
            raise ServerError(f"cannot start {self.argv!r}: {e}") from e
        self._reader = threading.Thread(target=self._read_output,
                                        name="server-log-reader", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + self.startup_timeout
        while not self._listening.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise ServerError(
                    f"server did not log 'listening on {LOOPBACK}:<port>' within "
                    f"{self.startup_timeout:.0f} s\ncommand: {shlex.join(self.argv)}\n"
                    f"--- server log ---\n{self.log()}")
            if self._proc.poll() is not None:
                # Give the reader a moment to collect the last lines.
                self._reader.join(timeout=2.0)
                if self._listening.is_set():
                    break
                code = self._proc.returncode
                self.returncode = code
                raise ServerError(
                    f"server exited with code {code} before listening\n"
                    f"command: {shlex.join(self.argv)}\n--- server log ---\n{self.log()}")
            self._listening.wait(timeout=min(0.05, remaining))
        if self._proc.poll() is not None:
            raise ServerError(f"server exited with code {self._proc.returncode} right after "
                              f"logging its port\n--- server log ---\n{self.log()}")
        return self.port

    def send_signal(self, signum):
        self._proc.send_signal(signum)

    def wait_exit(self, timeout):
        """The exit code once the process has exited, or None if it is
        still running after `timeout` seconds."""
        try:
            self.returncode = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_reader()
        return self.returncode

    def stop(self, expect_code=0):
        """SIGTERM, wait at most shutdown_timeout, then SIGKILL. Raises
        ServerError unless the exit code is `expect_code` (None: any)."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            try:
                self._proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self._proc.wait(timeout=self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self._join_reader()
                raise ServerError(
                    f"server did not exit within {self.shutdown_timeout:.0f} s of SIGTERM "
                    f"(killed)\n--- server log ---\n{self.log()}")
        self.returncode = self._proc.returncode
        self._join_reader()
        if expect_code is not None and self.returncode != expect_code:
            raise ServerError(
                f"server exited with code {self.returncode} after SIGTERM, expected "
                f"{expect_code}\n--- server log ---\n{self.log()}")
        return self.returncode

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # Already failing: clean up, but keep the original error.
            try:
                self.stop(expect_code=None)
            except ServerError:
                pass
            return False
        self.stop()
        return False

    # -- internals -------------------------------------------------------
    def _preexec(self):
        _die_with_parent()
        if self.open_files is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def _read_output(self):
        # Keeps draining the pipe for the whole life of the process so that a
        # chatty server never blocks on a full pipe.
        stream = self._proc.stdout
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._lines_lock:
                self._lines.append(line)
            if not self._listening.is_set():
                m = LISTENING_RE.search(line)
                if m and int(m.group(1)) > 0:
                    self.port = int(m.group(1))
                    self._listening.set()
        stream.close()

    def _join_reader(self):
        if self._reader is not None:
            self._reader.join(timeout=5.0)

    def _kill(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        if self._proc is not None:
            self.returncode = self._proc.returncode


# -- safetensors -----------------------------------------------------------

_ST_DTYPES = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
}


def safetensors_bytes(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` (name -> array):
    8-byte little-endian header length, a JSON header (dtype, shape,
    data_offsets relative to the data section) padded with spaces to a
    multiple of 8, then the raw little-endian row-major data in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        a = np.asarray(array)
        if a.dtype not in _ST_DTYPES:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        data = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False)).tobytes()
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` (name -> numpy array) to `path` as safetensors."""
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))
    return path


def read_safetensors(path):
    """Reads a safetensors file back (used to self-check the writer)."""
    inv = {v: k for k, v in _ST_DTYPES.items()}
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dt = inv[info["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(info["shape"])
    return out


def write_linear_weights(path, weight, bias, prefix="", decoys=True):
    """A safetensors file in nn.Linear.state_dict() form: `<prefix>weight`
    [M, K] and `<prefix>bias` [M], F32. With `decoys`, another layer
    ("head.weight"/"head.bias") sits beside it, as in a larger state dict, so
    the prefix really has to select."""
    weight = np.asarray(weight, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    tensors = {}
    if decoys:
        tensors["head.weight"] = np.full((2, weight.shape[0]), 7.0, np.float32)
    tensors[prefix + "weight"] = weight
    tensors[prefix + "bias"] = bias
    if decoys:
        tensors["head.bias"] = np.full((2,), -7.0, np.float32)
    return write_safetensors(path, tensors, metadata={"format": "pt"})


# -- command line ----------------------------------------------------------

def parse_cli(argv, need_client=False):
    """Splits argv into this harness's options and unittest's argv.

    --server PATH   reluserve-server (or $RELUSERVE_SERVER)
    --client PATH   reluserve-client (or $RELUSERVE_CLIENT), CLI test only
    --stubs DIR     directory holding the generated *_pb2.py stubs
                    (or $RELUSERVE_PY_STUBS)
    Everything else (e.g. -v, Test.test_name) goes to unittest.main.
    """
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--server", default=os.environ.get("RELUSERVE_SERVER"))
    p.add_argument("--client", default=os.environ.get("RELUSERVE_CLIENT"))
    p.add_argument("--stubs", default=os.environ.get("RELUSERVE_PY_STUBS"))
    args, rest = p.parse_known_args(argv[1:])
    missing = []
    if not args.server:
        missing.append("--server PATH")
    if need_client and not args.client:
        missing.append("--client PATH")
    if missing:
        sys.stderr.write(f"usage: {argv[0]} --server PATH"
                         f"{' --client PATH' if need_client else ''} [--stubs DIR] "
                         f"[unittest args]\nmissing: {', '.join(missing)}\n")
        sys.exit(2)
    return args, [argv[0], *rest]


def parse_load_cli(argv):
    """parse_cli for the reluserve-load tests: also takes --load PATH
    (reluserve-load, or $RELUSERVE_LOAD). Returns (args, load, unittest_argv),
    `load` None when neither names it."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--load", default=os.environ.get("RELUSERVE_LOAD"))
    load_args, rest = p.parse_known_args(argv[1:])
    args, unittest_argv = parse_cli([argv[0], *rest])
    return args, load_args.load, unittest_argv


def require_load(test, load):
    """Fails `test` unless `load` is an executable file."""
    if not load or not (os.path.isfile(load) and os.access(load, os.X_OK)):
        test.fail(f"reluserve-load not found or not executable: {load!r} (pass --load)")


def make_weights(seed, k, m):
    """He-normal weight [m, k] and small random bias [m], float32."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((m, k)) * np.sqrt(2.0 / k)).astype(np.float32)
    b = (rng.standard_normal(m) * 0.1).astype(np.float32)
    return w, b


def reference(x, w, b, grad_y=None, y_server=None):
    """Float64 reference of docs/api.md. `x` of any shape [N, ...] with K values
    per row. Returns (y, grad_x, grad_weight, grad_bias); the gradients are
    None without grad_y. Where the pre-activation is so close to 0 that fp32
    cannot decide its sign, the ReLU mask follows the server's y (if given)."""
    x64 = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    w64 = np.asarray(w, np.float64)
    b64 = np.asarray(b, np.float64)
    pre = x64 @ w64.T + b64
    y = np.maximum(pre, 0.0)
    if grad_y is None:
        return y, None, None, None
    mask = pre > 0
    if y_server is not None:
        scale = np.abs(x64) @ np.abs(w64).T + np.abs(b64)
        ambiguous = np.abs(pre) <= 1e-5 * scale
        mask = np.where(ambiguous, np.asarray(y_server).reshape(mask.shape) > 0, mask)
    g = np.asarray(grad_y, np.float64) * mask
    grad_x = (g @ w64).reshape(x.shape)
    return y, grad_x, g.T @ x64, g.sum(axis=0)
