#!/usr/bin/python3
"""/metrics of the real reluserve-server process, checked by Prometheus' own
tools: `promtool check metrics` finds nothing to say about ReluServe's names
(only its lints on Triton's nv_* names, kept as Triton spells them), a known
workload gives exact counter and gauge values, a real Prometheus server
scrapes the endpoint and its query API returns those values, and the alert
rules in docker/alert-rules.yml pass `promtool check rules` and
`promtool test rules`.

    /usr/bin/python3 -B metrics_prometheus_test.py --server PATH --stubs DIR \
        [--prometheus PATH] [--promtool PATH] [-v]

Everything listens on 127.0.0.1; every wait is bounded.
"""

import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import server_process as sp  # noqa: E402

_tools = argparse.ArgumentParser(add_help=False)
_tools.add_argument("--prometheus", default="/usr/bin/prometheus")
_tools.add_argument("--promtool", default="/usr/bin/promtool")
TOOLS, _rest = _tools.parse_known_args(sys.argv[1:])
ARGS, UNITTEST_ARGV = sp.parse_cli([sys.argv[0], *_rest])
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

ALERT_RULES = HERE.parent.parent / "docker" / "alert-rules.yml"
RULES_TEST = HERE / "alert_rules_test.yml"

K, M = 16, 8
DEAD = (0, 2, 5)  # units whose bias keeps them at 0 whatever x is
FORWARD_REQUESTS, FORWARD_ROWS = 7, 3
BACKWARD_REQUESTS, BACKWARD_ROWS = 2, 2
ROWS = FORWARD_REQUESTS * FORWARD_ROWS + BACKWARD_REQUESTS * BACKWARD_ROWS
LABELS = 'model="linear_relu",version="1"'


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers, response.read().decode("utf-8")


def sample(text, series):
    """The value of the sample written exactly as `series`, or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


def request(rows, with_grad):
    rng = np.random.default_rng(rows)
    req = pb.ModelInferRequest(model_name="linear_relu")
    req.inputs.add(name="x", datatype="FP32", shape=[rows, K])
    req.raw_input_contents.append(
        rng.standard_normal((rows, K)).astype("<f4").tobytes())
    if with_grad:
        req.inputs.add(name="grad_y", datatype="FP32", shape=[rows, M])
        req.raw_input_contents.append(
            rng.standard_normal((rows, M)).astype("<f4").tobytes())
    return req


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in (TOOLS.prometheus, TOOLS.promtool):
            if not os.access(tool, os.X_OK):
                raise AssertionError(f"{tool} not found: apt-get install prometheus "
                                     "(scripts/install-deps.sh does)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="reluserve-metrics-")
        rng = np.random.default_rng(3)
        weight = (rng.standard_normal((M, K)) * 0.1).astype(np.float32)
        # |w·x| stays far below 1000 for N(0, 1) inputs: the sign of the
        # bias decides every unit.
        bias = np.array([-1000.0 if unit in DEAD else 1000.0 for unit in range(M)],
                        np.float32)
        weights = sp.write_linear_weights(os.path.join(cls.tmp.name, "w.safetensors"),
                                          weight, bias, decoys=False)
        cls.metrics_port = sp.free_port()
        cls.server = sp.ServerProcess(ARGS.server, [
            "--weights", weights, "--metrics-port", cls.metrics_port,
            "--dead-relu-window", 1000])
        cls.server.start()
        cls.metrics_url = f"http://{sp.LOOPBACK}:{cls.metrics_port}/metrics"
        with grpc.insecure_channel(cls.server.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(FORWARD_REQUESTS):
                stub.ModelInfer(request(FORWARD_ROWS, False), timeout=20)
            for _ in range(BACKWARD_REQUESTS):
                stub.ModelInfer(request(BACKWARD_ROWS, True), timeout=20)
            bad = pb.ModelInferRequest(model_name="linear_relu")
            bad.inputs.add(name="x", datatype="FP32", shape=[1, K + 1])
            bad.raw_input_contents.append(bytes(4 * (K + 1)))
            with cls.assertRaises(cls(), grpc.RpcError) as refused:
                stub.ModelInfer(bad, timeout=20)
            assert refused.exception.code() == grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def scrape(self):
        status, headers, body = http_get(self.metrics_url)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return body

    def test_known_workload_gives_exact_values(self):
        text = self.scrape()
        expected = {
            f"nv_inference_request_success{{{LABELS}}}": FORWARD_REQUESTS + BACKWARD_REQUESTS,
            f'nv_inference_request_failure{{{LABELS},reason="REJECTED"}}': 1,
            f'nv_inference_request_failure{{{LABELS},reason="BACKEND"}}': 0,
            f"nv_inference_count{{{LABELS}}}": ROWS,
            f"nv_inference_exec_count{{{LABELS}}}": FORWARD_REQUESTS + BACKWARD_REQUESTS,
            f"nv_inference_pending_request_count{{{LABELS}}}": 0,
            f'reluserve_request_duration_seconds_count{{{LABELS},pass="forward"}}':
                FORWARD_REQUESTS,
            f'reluserve_request_duration_seconds_count{{{LABELS},pass="backward"}}':
                BACKWARD_REQUESTS,
            f'reluserve_batch_rows_bucket{{{LABELS},le="2"}}': BACKWARD_REQUESTS,
            f"reluserve_batch_rows_sum{{{LABELS}}}": ROWS,
            f'reluserve_relu_units{{{LABELS},layer="0"}}': M,
            f'reluserve_relu_dead_units{{{LABELS},layer="0"}}': len(DEAD),
            f'reluserve_relu_window_rows{{{LABELS},layer="0"}}': ROWS,
            'grpc_server_handled_total{grpc_service="inference.GRPCInferenceService",'
            'grpc_method="ModelInfer",grpc_code="OK"}': FORWARD_REQUESTS + BACKWARD_REQUESTS,
            'grpc_server_handled_total{grpc_service="inference.GRPCInferenceService",'
            'grpc_method="ModelInfer",grpc_code="InvalidArgument"}': 1,
        }
        got = {series: sample(text, series) for series in expected}
        self.assertEqual(got, expected, text)
        self.assertGreater(sample(text, "process_resident_memory_bytes"), 1 << 20)

    def promtool_check(self, text):
        result = subprocess.run([TOOLS.promtool, "check", "metrics"], input=text,
                                capture_output=True, text=True, timeout=30)
        return result.returncode, (result.stdout + result.stderr).splitlines()

    def test_promtool_finds_nothing_but_its_lints_on_tritons_names(self):
        code, problems = self.promtool_check(self.scrape())
        self.assertTrue(problems, "promtool lints Triton's nv_* names; it said nothing, "
                                  "so it did not read the exposition")
        for problem in problems:
            self.assertRegex(problem, r"^nv_inference_\w+ ",
                             f"promtool: {problem!r}\n(all: {problems})")
        # promtool: 0 clean, 3 lint problems only, 1 an exposition it cannot
        # parse.
        self.assertEqual(code, 3, problems)
        # Triton's names lint only for their suffixes, never their syntax.
        for problem in problems:
            self.assertRegex(problem, r'should have "_total" suffix|should not contain '
                                      r'abbreviated units|should not have "_count" suffix')

    def test_promtool_rejects_what_the_check_above_must_not_pass(self):
        # A ReluServe counter without _total is a lint problem (exit 3), a
        # label left open a parse error (exit 1), a clean family exit 0.
        code, problems = self.promtool_check(
            "# HELP reluserve_things Things.\n# TYPE reluserve_things counter\n"
            "reluserve_things 1\n")
        self.assertEqual(code, 3)
        self.assertTrue(any(p.startswith("reluserve_things ") for p in problems), problems)
        code, problems = self.promtool_check('reluserve_x{a="b" 1\n')
        self.assertEqual(code, 1, problems)
        code, problems = self.promtool_check(
            "# HELP reluserve_things_total Things.\n"
            "# TYPE reluserve_things_total counter\nreluserve_things_total 1\n")
        self.assertEqual((code, problems), (0, []))

    def test_alert_rules_pass_promtool(self):
        for argv in ([TOOLS.promtool, "check", "rules", str(ALERT_RULES)],
                     [TOOLS.promtool, "test", "rules", str(RULES_TEST)]):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                    cwd=HERE)
            self.assertEqual(result.returncode, 0,
                             f"{' '.join(argv)}\n{result.stdout}{result.stderr}")

    def test_real_prometheus_scrapes_and_answers_queries(self):
        tmp = self.tmp.name
        web_port = sp.free_port()
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {ALERT_RULES}\n"
                    "scrape_configs:\n  - job_name: reluserve\n    static_configs:\n"
                    f"      - targets: ['{sp.LOOPBACK}:{self.metrics_port}']\n")
        argv = [TOOLS.prometheus, f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                f"--web.listen-address={sp.LOOPBACK}:{web_port}", "--log.level=warn"]
        log_path = os.path.join(tmp, "prometheus.log")
        with open(log_path, "wb") as log:
            prometheus = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=sp.loopback_env(),
                                          preexec_fn=sp._die_with_parent)
        try:
            api = f"http://{sp.LOOPBACK}:{web_port}/api/v1/query?query="
            queries = {
                f'nv_inference_request_success{{{LABELS}}}':
                    FORWARD_REQUESTS + BACKWARD_REQUESTS,
                f'reluserve_relu_dead_units{{{LABELS},layer="0"}}': len(DEAD),
                f'up{{job="reluserve"}}': 1,
            }
            answers = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(answers) < len(queries):
                if prometheus.poll() is not None:
                    break
                for query in queries:
                    try:
                        _, _, body = http_get(api + urllib.parse.quote(query), timeout=2)
                    except OSError:
                        continue  # not listening yet
                    result = json.loads(body)["data"]["result"]
                    if result:
                        answers[query] = float(result[0]["value"][1])
                time.sleep(0.5)
            with open(log_path, encoding="utf-8", errors="replace") as f:
                context = f"prometheus log:\n{f.read()[-3000:]}"
            self.assertEqual(answers, queries, context)
            _, _, body = http_get(f"http://{sp.LOOPBACK}:{web_port}/api/v1/rules", timeout=5)
            names = [rule["name"] for group in json.loads(body)["data"]["groups"]
                     for rule in group["rules"]]
            self.assertIn("ReluServeDeadReluUnits", names, context)
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=5)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
