#!/usr/bin/python3
"""Checks docker/compose.yaml, docker/prometheus.yml, docker/nginx.conf,
docker/Dockerfile and docker/k8s/ without a cluster: every YAML document
parses, and the objects fit each other and the server (selectors match, probes
and ports are the server's: HTTP readiness and liveness on 8000, gRPC on 8001,
metrics on 8002; the grace period covers preStop plus the drain; every replica
is balanced, over gRPC and HTTP, and scraped).

Usage: docker/check-manifests.py   (run by scripts/docker-test.sh; needs
Debian's python3-yaml). Prints one line per file, exits 1 on a problem.
"""

import pathlib
import re
import sys

import yaml

DOCKER = pathlib.Path(__file__).resolve().parent
HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
DEFAULT_DRAIN_SECONDS = 10
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
# The server's largest bodies at its defaults (docs/api.md, "Message size"):
# a binary-tensor request up to the gRPC receive limit, max_batch x (K + M) x
# 4 bytes + 1 MiB, a JSON one up to 16 times that.
DEFAULT_RECEIVE_BYTES = 4096 * (3072 + 100) * 4 + (1 << 20)
JSON_BODY_FACTOR = 16

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def env_value(container, name, default=None):
    for item in container.get("env", []):
        if item.get("name") == name:
            return item.get("value")
    return default


def seconds(text):
    match = re.fullmatch(r"(\d+)s", str(text))
    return int(match.group(1)) if match else None


def nginx_size(text):
    """Bytes of an nginx size ("1024m", "1g", "0": no limit, None)."""
    match = re.fullmatch(r"(\d+)([kmg]?)", text.lower())
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2)]


def check_http_probe(where, container, probe, path, ports):
    """An httpGet probe on path at the HTTP port (by number or by name)."""
    get = container.get(probe, {}).get("httpGet", {})
    port = get.get("port")
    port = ports.get(port, port)
    return check(get.get("path") == path and port == HTTP_PORT,
                 f"{where}: {probe} is not an httpGet of {path} on {HTTP_PORT}")


def check_k8s():
    objects = {}
    for path in sorted((DOCKER / "k8s").rglob("*.yaml")):
        docs = load_all(path)
        check(docs, f"{path}: no YAML document")
        for doc in docs:
            where = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            for key in ("apiVersion", "kind", "metadata"):
                check(key in doc, f"{where}: no {key}")
            check(doc.get("metadata", {}).get("name"), f"{where}: no metadata.name")
            objects[(doc.get("kind"), doc["metadata"].get("name"))] = (where, doc)
        print(f"check-manifests: {path.relative_to(DOCKER.parent)}: {len(docs)} object(s)")

    def get(kind, name):
        found = objects.get((kind, name))
        check(found, f"k8s: no {kind} named {name}")
        return found[1] if found else {}

    deployment = get("Deployment", "reluserve")
    spec = deployment.get("spec", {})
    template = spec.get("template", {})
    labels = template.get("metadata", {}).get("labels", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    check(selector and selector.items() <= labels.items(),
          "Deployment: selector does not match the pod template's labels")
    annotations = template.get("metadata", {}).get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true",
          "Deployment: no prometheus.io/scrape: \"true\"")
    check(annotations.get("prometheus.io/port") == str(METRICS_PORT),
          f"Deployment: prometheus.io/port is not \"{METRICS_PORT}\"")
    check(annotations.get("prometheus.io/path") == "/metrics",
          "Deployment: prometheus.io/path is not /metrics")
    pod = template.get("spec", {})
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
          "Deployment: pod securityContext.runAsNonRoot is not true")
    containers = pod.get("containers", [])
    check(len(containers) == 1, "Deployment: expected one container")
    container = containers[0] if containers else {}
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(ports.get("http") == HTTP_PORT and ports.get("grpc") == GRPC_PORT
          and ports.get("metrics") == METRICS_PORT,
          f"Deployment: container ports are {ports}, expected http {HTTP_PORT}, "
          f"grpc {GRPC_PORT}, metrics {METRICS_PORT}")
    check(env_value(container, "RELUSERVE_HTTP_PORT", str(HTTP_PORT)) == str(HTTP_PORT),
          f"Deployment: RELUSERVE_HTTP_PORT is not {HTTP_PORT}: the probes need the HTTP front end")
    # Start-up and readiness over HTTP (503 while draining); liveness on the
    # gRPC health service, which busy HTTP threads cannot starve, and whose
    # failure budget outlasts a drain: a draining pod must not be restarted.
    check_http_probe("Deployment", container, "startupProbe", READY_PATH, ports)
    check_http_probe("Deployment", container, "readinessProbe", READY_PATH, ports)
    liveness = container.get("livenessProbe", {})
    check(liveness.get("grpc", {}).get("port") == GRPC_PORT,
          f"Deployment: livenessProbe is not a gRPC probe on {GRPC_PORT}")
    drain_s = int(env_value(container, "RELUSERVE_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS))
    check(liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3) > drain_s,
          f"Deployment: livenessProbe would restart a pod within its {drain_s} s drain")
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        check({"cpu", "memory"} <= set(resources.get(part, {})),
              f"Deployment: resources.{part} lacks cpu or memory")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(len(pre_stop) == 2 and pre_stop[0] == "sleep", "Deployment: preStop is not [sleep, N]")
    sleep_s = int(pre_stop[1]) if len(pre_stop) == 2 else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= sleep_s + drain_s + 5,
          f"Deployment: terminationGracePeriodSeconds {grace} < preStop {sleep_s} s + drain {drain_s} s + 5")

    for name, headless in (("reluserve-headless", True), ("reluserve", False)):
        service = get("Service", name).get("spec", {})
        check((service.get("clusterIP") == "None") == headless,
              f"Service {name}: clusterIP None is {not headless}")
        check(service.get("selector") and service["selector"].items() <= labels.items(),
              f"Service {name}: selector does not match the Deployment's pods")
        for port in service.get("ports", []):
            check(port.get("targetPort") in ports,
                  f"Service {name}: targetPort {port.get('targetPort')} is no container port")
        grpc = [p for p in service.get("ports", []) if p.get("port") == GRPC_PORT]
        check(grpc and grpc[0].get("appProtocol") == "kubernetes.io/h2c",
              f"Service {name}: no port {GRPC_PORT} with appProtocol kubernetes.io/h2c")
        if not headless:
            http = [p for p in service.get("ports", []) if p.get("port") == HTTP_PORT]
            check(http and ports.get(http[0].get("targetPort")) == HTTP_PORT
                  and http[0].get("appProtocol") == "http",
                  f"Service {name}: no port {HTTP_PORT} to the http container port with appProtocol http")

    hpa = get("HorizontalPodAutoscaler", "reluserve").get("spec", {})
    check(hpa.get("scaleTargetRef", {}).get("name") == "reluserve",
          "HorizontalPodAutoscaler: does not scale Deployment reluserve")
    check(1 <= hpa.get("minReplicas", 0) <= hpa.get("maxReplicas", 0),
          "HorizontalPodAutoscaler: minReplicas/maxReplicas")
    pdb = get("PodDisruptionBudget", "reluserve").get("spec", {})
    pdb_selector = pdb.get("selector", {}).get("matchLabels", {})
    check(pdb_selector and pdb_selector.items() <= labels.items(),
          "PodDisruptionBudget: selector does not match the Deployment's pods")

    runtime = get("ServingRuntime", "reluserve").get("spec", {})
    check(set(runtime.get("protocolVersions", [])) >= {"v2", "grpc-v2"},
          "ServingRuntime: protocolVersions lacks v2 or grpc-v2")
    annotations = runtime.get("annotations", {})
    check(annotations.get("prometheus.kserve.io/port") == str(METRICS_PORT)
          and annotations.get("prometheus.kserve.io/path") == "/metrics",
          "ServingRuntime: prometheus.kserve.io/port or path")
    runtime_containers = runtime.get("containers", [])
    runtime_ports = [p for c in runtime_containers for p in c.get("ports", [])]
    # Knative (KServe's serverless mode) allows a single port; http1 says
    # HTTP/1.1 (h2c would say gRPC).
    check(len(runtime_ports) == 1 and runtime_ports[0].get("name") == "http1"
          and runtime_ports[0].get("containerPort") == HTTP_PORT,
          f"ServingRuntime: container ports are {runtime_ports}, expected one, http1 on {HTTP_PORT}")
    for c in runtime_containers:
        where = f"ServingRuntime: container {c.get('name')}"
        check_http_probe(where, c, "readinessProbe", READY_PATH, {})
        check_http_probe(where, c, "livenessProbe", LIVE_PATH, {})
        for arg in c.get("args", []):
            for flag, port in (("--http-port", HTTP_PORT), ("--port", GRPC_PORT)):
                if arg.startswith(flag + "="):
                    check(arg == f"{flag}={port}", f"{where}: {arg}, expected {flag}={port}")
    check(all(c.get("securityContext", {}).get("runAsNonRoot") is True
              for c in runtime.get("containers", [])),
          "ServingRuntime: a container without runAsNonRoot")
    formats = {f.get("name") for f in runtime.get("supportedModelFormats", [])}
    isvc = get("InferenceService", "linear-relu")
    model = isvc.get("spec", {}).get("predictor", {}).get("model", {})
    check(model.get("runtime") == "reluserve", "InferenceService: runtime is not reluserve")
    check(model.get("modelFormat", {}).get("name") in formats,
          "InferenceService: modelFormat is not one the ServingRuntime supports")
    check(model.get("protocolVersion") in runtime.get("protocolVersions", []),
          "InferenceService: protocolVersion is not one the ServingRuntime speaks")
    # KServe merges the model's container into the runtime's: a probe here
    # with another handler than the runtime's (grpc, say) would have two.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        for c in runtime_containers:
            handlers = set(model.get(probe, {})) & {"httpGet", "grpc", "tcpSocket", "exec"}
            check(handlers <= set(c.get(probe, {})),
                  f"InferenceService: {probe} {sorted(handlers)} would be merged into the "
                  f"ServingRuntime's {sorted(c.get(probe, {}))}")
    model_ports = model.get("ports", [])
    mode = isvc.get("metadata", {}).get("annotations", {}).get("serving.kserve.io/deploymentMode")
    check(not model_ports or mode == "RawDeployment",
          "InferenceService: more ports than Knative's one outside RawDeployment")
    check(all(p.get("name") == "h2c" and p.get("containerPort") == GRPC_PORT for p in model_ports),
          f"InferenceService: ports {model_ports}, expected only h2c on {GRPC_PORT}")


def check_compose():
    path = DOCKER / "compose.yaml"
    services = load_all(path)[0].get("services", {})
    replicas = sorted(name for name in services if re.fullmatch(r"reluserve-\d+", name))
    check(len(replicas) == 3, f"compose.yaml: {len(replicas)} replicas, expected 3")
    nginx_conf = (DOCKER / "nginx.conf").read_text(encoding="utf-8")
    targets = [t for job in load_all(DOCKER / "prometheus.yml")[0].get("scrape_configs", [])
               for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
    for name in replicas:
        service = services[name]
        env = service.get("environment", {})
        drain = int(env.get("RELUSERVE_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS))
        grace = seconds(service.get("stop_grace_period", "10s"))
        check(grace is not None and grace > drain,
              f"compose.yaml: {name}: stop_grace_period {service.get('stop_grace_period')} "
              f"is not longer than the drain ({drain} s)")
        for port in (GRPC_PORT, HTTP_PORT):
            check(re.search(rf"server\s+{name}:{port}\b", nginx_conf),
                  f"nginx.conf: no upstream server {name}:{port}")
        check(str(env.get("RELUSERVE_HTTP_PORT", HTTP_PORT)) == str(HTTP_PORT),
              f"compose.yaml: {name}: RELUSERVE_HTTP_PORT is not {HTTP_PORT}")
        check(any(str(p).endswith(f"::{HTTP_PORT}") for p in service.get("ports", [])),
              f"compose.yaml: {name}: {HTTP_PORT} not published (docker-test reads its readiness)")
        check(f"{name}:{METRICS_PORT}" in targets, f"prometheus.yml: does not scrape {name}:{METRICS_PORT}")
    check(re.search(r"grpc_next_upstream\s+error\s+timeout\b", nginx_conf),
          "nginx.conf: no grpc_next_upstream error timeout")
    # The REST server: its own port, HTTP/1.1 keep-alive to the replicas,
    # bodies as large as the replicas take.
    check(re.search(rf"listen\s+{HTTP_PORT};", nginx_conf), f"nginx.conf: no listen {HTTP_PORT}")
    for directive in (r"proxy_pass\s+http://", r"proxy_http_version\s+1\.1;",
                      r'proxy_set_header\s+Connection\s+"";',
                      r"proxy_next_upstream\s+error\s+timeout\b"):
        check(re.search(directive, nginx_conf), f"nginx.conf: no {directive}")
    largest = JSON_BODY_FACTOR * DEFAULT_RECEIVE_BYTES
    sizes = [nginx_size(s) for s in re.findall(r"client_max_body_size\s+(\w+);", nginx_conf)]
    check(sizes and all(s is not None and (s == 0 or s >= largest) for s in sizes),
          f"nginx.conf: a client_max_body_size below {largest / (1 << 20):.0f} MiB "
          f"({JSON_BODY_FACTOR} x the replicas' receive limit)")
    nginx_ports = [str(p) for p in services.get("nginx", {}).get("ports", [])]
    for port in (GRPC_PORT, HTTP_PORT):
        check(any(p.endswith(f":{port}") for p in nginx_ports),
              f"compose.yaml: nginx does not publish {port}")
    check({"nginx", "prometheus"} <= set(services), "compose.yaml: no nginx or prometheus service")
    print(f"check-manifests: docker/compose.yaml: {len(replicas)} replicas, nginx, prometheus")


def check_dockerfile():
    exposed = set()
    for line in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("EXPOSE "):
            exposed |= {int(p.split("/")[0]) for p in line.split()[1:]}
    check(exposed == {HTTP_PORT, GRPC_PORT, METRICS_PORT},
          f"Dockerfile: EXPOSE {sorted(exposed)}, expected {[HTTP_PORT, GRPC_PORT, METRICS_PORT]}")
    print(f"check-manifests: docker/Dockerfile: EXPOSE {' '.join(map(str, sorted(exposed)))}")


check_k8s()
check_compose()
check_dockerfile()
for problem in problems:
    print(f"check-manifests: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
