#!/usr/bin/python3
"""The server's start-up, drain and file-descriptor behaviour, against the
real reluserve-server binary on 127.0.0.1:
- refused start-ups: a FIFO or /dev/zero as --weights, an impossible
  --max-batch;
- signals: one during start-up ends it at once; a second one during a drain
  ends the drain at once; idle streams and health watches do not hold a
  drain;
- file descriptors and connections: the soft open-file limit is raised to
  the hard one, idle and old connections get GOAWAY, idle ones keepalive
  pings, and when gRPC's listener dies at the limit, readiness and health
  turn false;
- configuration: RELUSERVE_* environment variables, the command line
  winning, the effective configuration logged once.

    /usr/bin/python3 -B server_lifecycle_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import http2_frames as h2  # noqa: E402
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import grpc_health_v1_pb2 as health_pb  # noqa: E402
import grpc_health_v1_pb2_grpc as health_grpc  # noqa: E402

K, M = 37, 13
SMALL_MODEL = ["--in-features", K, "--out-features", M]
GOAWAY, PING = h2.GOAWAY, h2.PING
frame_types = h2.frame_types


def run_server(args, timeout):
    return subprocess.run([ARGS.server, "--host", sp.LOOPBACK, "--port", "0",
                           "--metrics-port", "0", "--http-port", "0",
                           *[str(a) for a in args]],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=sp.loopback_env())


def channel(target):
    return grpc.insecure_channel(target, options=[
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
        ("grpc.use_local_subchannel_pool", 1)])


def wait_for(condition, timeout, poll=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


def http2_connection(port):
    """A raw connection that has said the HTTP/2 preface and then idles."""
    return h2.http2_connection(sp.LOOPBACK, port)


class RefusedStartTest(unittest.TestCase):
    def assertRefused(self, args, *fragments):
        start = time.monotonic()
        result = run_server(args, timeout=30)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertLess(time.monotonic() - start, 10.0, output)
        for fragment in fragments:
            self.assertIn(fragment, output)

    def test_fifo_as_weights(self):
        with tempfile.TemporaryDirectory() as tmp:
            fifo = os.path.join(tmp, "weights.fifo")
            os.mkfifo(fifo)
            self.assertRefused(["--weights", fifo], fifo, "is not a regular file")

    def test_dev_zero_as_weights(self):
        self.assertRefused(["--weights", "/dev/zero"], "/dev/zero",
                           "is not a regular file")

    def test_impossible_max_batch(self):
        # K = 3072, M = 100: about 169k rows fit in gRPC's 2 GiB message.
        self.assertRefused(["--max-batch", 16777216],
                           "a maximum batch of 16777216 for model 'linear_relu' "
                           "version 1 needs messages above gRPC's 2 GiB",
                           "the largest batch that fits is ")


class ConfigurationTest(unittest.TestCase):
    def test_flags_from_the_environment_and_the_command_line_wins(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL, "--max-batch", 32],
                                  env={"RELUSERVE_MODEL_NAME": "from_env",
                                       "RELUSERVE_MAX_BATCH": "16",
                                       "RELUSERVE_MAX_STREAM_PENDING": "4"})
        server.start()
        try:
            stub = pb_grpc.GRPCInferenceServiceStub(channel(server.target))
            config = stub.ModelConfig(pb.ModelConfigRequest(name="from_env"),
                                      timeout=10).config
            self.assertEqual(config.name, "from_env")
            self.assertEqual(config.max_batch_size, 32)  # the command line's
            log = server.log()
            # The effective configuration, logged once.
            self.assertEqual(log.count("configuration: "), 1, log)
            self.assertRegex(log, r"model-name=[\"']from_env[\"']")
            self.assertIn("max-batch=32", log)
            self.assertIn("max-stream-pending=4", log)
        finally:
            server.stop()


    def test_json_log_format(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL, "--log-format", "json"])
        server.start()
        # A string field that is not UTF-8 (found by the grpc_request fuzz
        # target): protobuf complains about it, and that must not leave the
        # log's format.
        with grpc.insecure_channel(server.target) as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer")
            for _ in range(3):
                with self.assertRaises(grpc.RpcError) as refused:
                    infer(b"\x0a\x02\xff\xfe", timeout=10)
                self.assertEqual(refused.exception.code(),
                                 grpc.StatusCode.INVALID_ARGUMENT)
        server.stop()
        lines = server.log().splitlines()
        self.assertGreater(len(lines), 3)
        records = [json.loads(line) for line in lines]  # every line is JSON
        for record in records:
            self.assertEqual(set(record), {"time", "level", "message"}, record)
        messages = [r["message"] for r in records]
        self.assertTrue(any(m.startswith(f"listening on {server.target}")
                            for m in messages), messages)
        configuration = next(m for m in messages if m.startswith("configuration: "))
        self.assertIn('log-format="json"', configuration)  # quotes survive
        self.assertEqual(messages[-1], "stopped")


class SignalTest(unittest.TestCase):
    def test_signal_during_startup_exits_at_once(self):
        # 16384 x 16384 default weights take seconds to generate and reorder.
        server = sp.ServerProcess(ARGS.server, ["--in-features", 16384,
                                                "--out-features", 16384])
        # Started by hand: ServerProcess.start() waits for "listening on".
        proc = subprocess.Popen(server.argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=server.env, text=True)
        try:
            time.sleep(0.5)
            self.assertIsNone(proc.poll(), "start-up finished too soon to test")
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
            elapsed = time.monotonic() - start
            output = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(code, 128 + signal.SIGTERM, output)
        self.assertLess(elapsed, 2.0, output)
        self.assertIn("during start-up: exiting", output)
        self.assertNotIn("listening on", output)

    def test_second_signal_ends_the_drain_at_once(self):
        # One forward+backward pass of N = 2048 through 4096 x 4096 keeps a
        # drain busy for seconds.
        k = 4096
        server = sp.ServerProcess(ARGS.server, ["--in-features", k, "--out-features", k,
                                                "--drain-seconds", 60])
        server.start()
        try:
            stub = pb_grpc.GRPCInferenceServiceStub(channel(server.target))
            n = 2048
            request = pb.ModelInferRequest(model_name="linear_relu")
            for name in ("x", "grad_y"):
                request.inputs.add(name=name, datatype="FP32", shape=[n, k])
                request.raw_input_contents.append(
                    np.ones((n, k), np.float32).tobytes())
            future = stub.ModelInfer.future(request, timeout=120)
            # Let the 64 MiB request arrive and its computation start, then
            # signal twice.
            time.sleep(1.5)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(server.wait_exit(0), "exited before the second signal")
            start = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait_exit(5)
            elapsed = time.monotonic() - start
            future.cancel()
        finally:
            if server.wait_exit(0) is None:
                server.stop(expect_code=None)
        self.assertEqual(code, 128 + signal.SIGTERM, server.log())
        self.assertLess(elapsed, 2.0)
        self.assertIn("without waiting for the drain", server.log())

    def test_idle_stream_and_health_watch_do_not_hold_the_drain(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL, "--drain-seconds", 30])
        server.start()
        target = server.target
        conn = channel(target)
        stub = pb_grpc.GRPCInferenceServiceStub(conn)
        stop_sending = threading.Event()

        def requests():
            request = pb.ModelInferRequest(model_name="linear_relu")
            request.inputs.add(name="x", datatype="FP32", shape=[1, K])
            request.raw_input_contents.append(np.ones((1, K), np.float32).tobytes())
            yield request
            stop_sending.wait(60)  # then idle, never half-closing

        stream = stub.ModelStreamInfer(requests(), timeout=60)
        first = next(stream)
        self.assertEqual(first.error_message, "")
        watch = health_grpc.HealthStub(conn).Watch(
            health_pb.HealthCheckRequest(service=""), timeout=60)
        self.assertEqual(next(watch).status, health_pb.HealthCheckResponse.SERVING)
        try:
            start = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait_exit(10)
            elapsed = time.monotonic() - start
        finally:
            stop_sending.set()
            if server.wait_exit(0) is None:
                server.stop(expect_code=None)
            conn.close()
        self.assertEqual(code, 0, server.log())
        self.assertLess(elapsed, 6.0, "the drain waited for idle calls")


class FileDescriptorTest(unittest.TestCase):
    def test_soft_open_file_limit_is_raised_to_the_hard_one(self):
        server = sp.ServerProcess(ARGS.server, SMALL_MODEL, open_files=(256, 4096))
        server.start()
        try:
            self.assertIn("open-file limit raised from 256 to 4096", server.log())
            idle = [http2_connection(server.port) for _ in range(300)]
            try:
                conn = channel(server.target)
                stub = pb_grpc.GRPCInferenceServiceStub(conn)
                self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
                conn.close()
            finally:
                for connection in idle:
                    connection.close()
        finally:
            server.stop()

    def frames_within(self, port, seconds, wanted):
        """Frame types a raw idle connection receives until `wanted` comes
        or `seconds` pass."""
        connection = http2_connection(port)
        try:
            return frame_types(h2.read_until(
                connection, lambda data: wanted in frame_types(data), seconds))
        finally:
            connection.close()

    def test_old_connections_are_sent_goaway(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL,
                                                "--max-connection-idle-ms", 0,
                                                "--max-connection-age-ms", 300,
                                                "--max-connection-age-grace-ms", 200])
        server.start()
        try:
            self.assertIn(GOAWAY, self.frames_within(server.port, 10, GOAWAY))
        finally:
            server.stop()

    def test_keepalive_pings_idle_connections(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL,
                                                "--keepalive-time-ms", 300,
                                                "--keepalive-timeout-ms", 5000])
        server.start()
        try:
            self.assertIn(PING, self.frames_within(server.port, 10, PING))
        finally:
            server.stop()

    def test_idle_connections_are_closed(self):
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL,
                                                "--max-connection-idle-ms", 500])
        server.start()
        try:
            types = self.frames_within(server.port, 10, GOAWAY)
            self.assertIn(GOAWAY, types, f"no GOAWAY within 10 s; frames {types}")
        finally:
            server.stop()

    def test_a_dead_listener_turns_readiness_and_health_false(self):
        # A hard limit of 64: the flood below runs gRPC's accept4 into EMFILE,
        # which in gRPC 1.51 ends accepting on the port for good.
        server = sp.ServerProcess(ARGS.server, [*SMALL_MODEL,
                                                "--max-connection-idle-ms", 0],
                                  open_files=(64, 64))
        server.start()
        conn = channel(server.target)
        stub = pb_grpc.GRPCInferenceServiceStub(conn)
        health = health_grpc.HealthStub(conn)
        idle = []
        try:
            self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
            for _ in range(100):
                try:
                    idle.append(http2_connection(server.port))
                except OSError:
                    break
            self.assertTrue(wait_for(lambda: "no longer accepts connections"
                                     in server.log(), 10), server.log())
            # The connection made before still answers, and says not ready.
            self.assertFalse(stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
            self.assertEqual(health.Check(health_pb.HealthCheckRequest(service=""),
                                          timeout=10).status,
                             health_pb.HealthCheckResponse.NOT_SERVING)
        finally:
            for connection in idle:
                connection.close()
            conn.close()
            server.stop()


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
