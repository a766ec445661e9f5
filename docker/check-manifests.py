#!/usr/bin/python3
"""Checks docker/compose.yaml, docker/prometheus.yml and docker/k8s/ without a
cluster: every YAML document parses, and the objects fit each other and the
server (selectors match, probes and ports are the server's, the grace period
covers preStop plus the drain, every replica is balanced and scraped).

Usage: docker/check-manifests.py   (run by scripts/docker-test.sh; needs
Debian's python3-yaml). Prints one line per file, exits 1 on a problem.
"""

import pathlib
import re
import sys

import yaml

DOCKER = pathlib.Path(__file__).resolve().parent
GRPC_PORT = 8001
METRICS_PORT = 8002
DEFAULT_DRAIN_SECONDS = 10

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
    check(ports.get("grpc") == GRPC_PORT and ports.get("metrics") == METRICS_PORT,
          f"Deployment: container ports are {ports}, expected grpc {GRPC_PORT}, metrics {METRICS_PORT}")
    for probe in ("readinessProbe", "livenessProbe"):
        check(container.get(probe, {}).get("grpc", {}).get("port") == GRPC_PORT,
              f"Deployment: {probe} is not a gRPC probe on {GRPC_PORT}")
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        check({"cpu", "memory"} <= set(resources.get(part, {})),
              f"Deployment: resources.{part} lacks cpu or memory")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(len(pre_stop) == 2 and pre_stop[0] == "sleep", "Deployment: preStop is not [sleep, N]")
    sleep_s = int(pre_stop[1]) if len(pre_stop) == 2 else 0
    drain_s = int(env_value(container, "RELUSERVE_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS))
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
    runtime_ports = [p for c in runtime.get("containers", []) for p in c.get("ports", [])]
    check(any(p.get("name") == "h2c" and p.get("containerPort") == GRPC_PORT for p in runtime_ports),
          f"ServingRuntime: no container port named h2c on {GRPC_PORT}")
    check(all(c.get("securityContext", {}).get("runAsNonRoot") is True
              for c in runtime.get("containers", [])),
          "ServingRuntime: a container without runAsNonRoot")
    formats = {f.get("name") for f in runtime.get("supportedModelFormats", [])}
    model = get("InferenceService", "linear-relu").get("spec", {}).get("predictor", {}).get("model", {})
    check(model.get("runtime") == "reluserve", "InferenceService: runtime is not reluserve")
    check(model.get("modelFormat", {}).get("name") in formats,
          "InferenceService: modelFormat is not one the ServingRuntime supports")
    check(model.get("protocolVersion") in runtime.get("protocolVersions", []),
          "InferenceService: protocolVersion is not one the ServingRuntime speaks")


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
        check(re.search(rf"server\s+{name}:{GRPC_PORT}\b", nginx_conf),
              f"nginx.conf: no upstream server {name}:{GRPC_PORT}")
        check(f"{name}:{METRICS_PORT}" in targets, f"prometheus.yml: does not scrape {name}:{METRICS_PORT}")
    check(re.search(r"grpc_next_upstream\s+error\s+timeout\b", nginx_conf),
          "nginx.conf: no grpc_next_upstream error timeout")
    check({"nginx", "prometheus"} <= set(services), "compose.yaml: no nginx or prometheus service")
    print(f"check-manifests: docker/compose.yaml: {len(replicas)} replicas, nginx, prometheus")


check_k8s()
check_compose()
for problem in problems:
    print(f"check-manifests: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
