#!/usr/bin/python3
"""Checks docker/compose.yaml, docker/prometheus.yml, docker/nginx.conf,
docker/Dockerfile and docker/k8s/ without a cluster: every YAML document
parses, and the objects fit each other and the server (selectors match, probes
and ports are the server's: HTTP readiness and liveness on 8000, gRPC on 8001,
metrics on 8002; the grace period covers preStop plus the drain; every replica
is balanced, over gRPC and HTTP, and scraped). The secure variants too
(docker/k8s/secure/, docker/compose.secure.yaml, nginx.secure.conf,
prometheus.secure.yml): every Secret or file the server, its probes, nginx
and Prometheus name is mounted and has the key named, and the probes are
exec probes of reluserve-client health with the TLS flags.

Usage: docker/check-manifests.py   (run by scripts/docker-test.sh; needs
Debian's python3-yaml). Prints one line per file, exits 1 on a problem.
"""

import pathlib
import re
import shlex
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


SECURE_K8S = DOCKER / "k8s" / "secure"


def load_k8s():
    """{(kind, name): (where, doc)} of docker/k8s/ outside secure/, and of
    secure/ (which kustomization.yaml, not an object, lists)."""
    plain, secure = {}, {}
    for path in sorted((DOCKER / "k8s").rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects = secure if SECURE_K8S in path.parents else plain
        docs = load_all(path)
        check(docs, f"{path}: no YAML document")
        for doc in docs:
            where = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            for key in ("apiVersion", "kind", "metadata"):
                check(key in doc, f"{where}: no {key}")
            check(doc.get("metadata", {}).get("name"), f"{where}: no metadata.name")
            key = (doc.get("kind"), doc["metadata"].get("name"))
            check(key not in plain and key not in secure,
                  f"{where}: a second {key[0]} named {key[1]} (one namespace holds both sets)")
            objects[key] = (where, doc)
        print(f"check-manifests: {path.relative_to(DOCKER.parent)}: {len(docs)} object(s)")
    return plain, secure


def check_k8s(objects):

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


TLS_ENV = ("RELUSERVE_TLS_CERT", "RELUSERVE_TLS_KEY", "RELUSERVE_TLS_CLIENT_CA",
           "RELUSERVE_AUTH_TOKEN_FILE")
TLS_FLAGS = ("--tls-ca", "--tls-cert", "--tls-key")


def flag_value(args, flag):
    """The value of `flag V` or `flag=V` in an argument list, or None."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def check_health_command(where, args, mounted):
    """reluserve-client health on 127.0.0.1:8001 with every TLS flag naming
    a mounted file (mounted: a predicate on a path)."""
    check(args[:2] == ["reluserve-client", "health"], f"{where}: not reluserve-client health: {args}")
    check(flag_value(args, "--target") == f"127.0.0.1:{GRPC_PORT}",
          f"{where}: --target is not 127.0.0.1:{GRPC_PORT}")
    check(flag_value(args, "--model") == "", f"{where}: no --model '' (ServerLive and ServerReady)")
    for flag in TLS_FLAGS:
        path = flag_value(args, flag)
        check(path and mounted(path), f"{where}: {flag} {path} is not a mounted file")


def secure_secrets():
    """{name: (type, {keys})} of the Secrets docker/k8s/secure declares: its
    kustomization.yaml's secretGenerator (KEY=FILE or FILE) and any Secret
    objects; and the kustomization's resources."""
    secrets = {}
    path = SECURE_K8S / "kustomization.yaml"
    kustomization = load_all(path)[0] if path.exists() else {}
    for gen in kustomization.get("secretGenerator", []):
        keys = {entry.split("=", 1)[0] if "=" in entry else pathlib.PurePath(entry).name
                for entry in gen.get("files", [])}
        keys |= {entry.split("=", 1)[0] for entry in gen.get("literals", [])}
        secrets[gen.get("name")] = (gen.get("type", "Opaque"), keys)
        if gen.get("type") == "kubernetes.io/tls":
            check({"tls.crt", "tls.key"} <= keys, f"kustomization.yaml: Secret {gen.get('name')} "
                  "of type kubernetes.io/tls without tls.crt and tls.key")
    check(kustomization.get("generatorOptions", {}).get("disableNameSuffixHash") is True,
          "kustomization.yaml: Secret names get a hash suffix: the Deployment and the "
          "kubectl create commands name them without")
    return secrets, kustomization.get("resources", [])


def check_k8s_secure(objects, plain):
    secrets, resources = secure_secrets()
    for (kind, name), (_, doc) in objects.items():
        if kind == "Secret":
            keys = set(doc.get("data", {}) or {}) | set(doc.get("stringData", {}) or {})
            secrets[name] = (doc.get("type", "Opaque"), keys)
    files = sorted(p.name for p in SECURE_K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    check(sorted(resources) == files,
          f"kustomization.yaml: resources {resources}, expected the directory's {files}")

    found = objects.get(("Deployment", "reluserve-secure"))
    check(found, "k8s/secure: no Deployment named reluserve-secure")
    deployment = found[1] if found else {}
    plain_deployment = plain.get(("Deployment", "reluserve"), ("", {}))[1]
    where = "k8s/secure Deployment"
    spec = deployment.get("spec", {})
    template = spec.get("template", {})
    labels = template.get("metadata", {}).get("labels", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    check(selector and selector.items() <= labels.items(),
          f"{where}: selector does not match the pod template's labels")
    # Neither set's selectors may pick up the other's pods.
    plain_labels = plain_deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    for (kind, name), (_, doc) in plain.items():
        sel = doc.get("spec", {}).get("selector", {})
        sel = sel.get("matchLabels", sel) if kind != "Service" else sel
        if isinstance(sel, dict) and sel and all(isinstance(v, str) for v in sel.values()):
            check(not sel.items() <= labels.items(),
                  f"{where}: plaintext {kind} {name} selects its pods")
    for (kind, name), (_, doc) in objects.items():
        if kind == "Service":
            sel = doc.get("spec", {}).get("selector", {})
            check(sel and sel.items() <= labels.items(), f"k8s/secure Service {name}: selector "
                  "does not match the secure Deployment's pods")
            check(not (sel.items() <= plain_labels.items()),
                  f"k8s/secure Service {name}: selects the plaintext pods")
    pod = template.get("spec", {})
    plain_pod = plain_deployment.get("spec", {}).get("template", {}).get("spec", {})
    security = pod.get("securityContext", {})
    for key, value in plain_pod.get("securityContext", {}).items():
        check(security.get(key) == value, f"{where}: pod securityContext.{key} is not the "
              f"plaintext Deployment's {value}")
    containers = pod.get("containers", [])
    check(len(containers) == 1, f"{where}: expected one container")
    container = containers[0] if containers else {}
    plain_container = (plain_pod.get("containers") or [{}])[0]
    check(container.get("securityContext") == plain_container.get("securityContext"),
          f"{where}: container securityContext differs from the plaintext Deployment's")
    for key in ("terminationGracePeriodSeconds", "automountServiceAccountToken"):
        check(pod.get(key) == plain_pod.get(key), f"{where}: {key} differs from the plaintext one")
    check(container.get("lifecycle") == plain_container.get("lifecycle"),
          f"{where}: lifecycle (preStop) differs from the plaintext Deployment's")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(ports == {"http": HTTP_PORT, "grpc": GRPC_PORT, "metrics": METRICS_PORT},
          f"{where}: container ports are {ports}")

    # Secret volumes: declared here, readable by the server's UID alone,
    # mounted whole and read-only (a subPath mount is never updated).
    secret_volumes = {}
    for volume in pod.get("volumes", []):
        secret = volume.get("secret")
        if secret is None:
            continue
        name = secret.get("secretName")
        check(name in secrets, f"{where}: volume {volume.get('name')} mounts Secret {name}, "
              "which docker/k8s/secure does not declare")
        mode = secret.get("defaultMode", 0o644)
        check(mode & 0o137 == 0, f"{where}: volume {volume.get('name')}: defaultMode "
              f"{mode:04o} lets others read or anyone write")
        secret_volumes[volume.get("name")] = secrets.get(name, ("", set()))[1]
    check(not secret_volumes or (security.get("fsGroup") is not None
                                 and security.get("fsGroup") == security.get("runAsGroup")),
          f"{where}: Secret volumes without fsGroup = runAsGroup: the files are root's, "
          "unreadable by the server's UID")
    mounts = {}  # mount path -> keys
    for mount in container.get("volumeMounts", []):
        if mount.get("name") in secret_volumes:
            check(mount.get("readOnly") is True, f"{where}: Secret mount {mount.get('mountPath')} not readOnly")
            check("subPath" not in mount, f"{where}: Secret mount {mount.get('mountPath')} with "
                  "subPath: kubelet never updates it (rotation)")
            mounts[mount.get("mountPath").rstrip("/")] = secret_volumes[mount.get("name")]
    for name in secret_volumes:
        check(any(m.get("name") == name for m in container.get("volumeMounts", [])),
              f"{where}: Secret volume {name} is not mounted")

    def mounted(path):
        parent, _, key = str(path).rpartition("/")
        return key in mounts.get(parent, set())

    for name in TLS_ENV:
        path = env_value(container, name)
        check(path and mounted(path), f"{where}: {name}={path} is no key of a mounted Secret")
    # The kubelet's gRPC probe cannot speak TLS, httpGet cannot present a
    # client certificate: exec probes of reluserve-client health, with the
    # plaintext Deployment's failure budgets.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = container.get(probe, {})
        check(set(p) & {"httpGet", "grpc", "tcpSocket", "exec"} == {"exec"},
              f"{where}: {probe} is not an exec probe")
        check_health_command(f"{where}: {probe}", p.get("exec", {}).get("command", []), mounted)
        plain_probe = plain_container.get(probe, {})
        for key, default in (("periodSeconds", 10), ("failureThreshold", 3)):
            check(p.get(key, default) == plain_probe.get(key, default),
                  f"{where}: {probe}.{key} {p.get(key, default)} is not the plaintext "
                  f"Deployment's {plain_probe.get(key, default)}")
    drain_s = int(env_value(container, "RELUSERVE_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS))
    liveness = container.get("livenessProbe", {})
    check(liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3) > drain_s,
          f"{where}: livenessProbe would restart a pod within its {drain_s} s drain")

    for (kind, name), (_, doc) in objects.items():
        if kind != "Service":
            continue
        for port in doc.get("spec", {}).get("ports", []):
            check(port.get("targetPort") in ports,
                  f"k8s/secure Service {name}: targetPort {port.get('targetPort')} is no container port")
            check(port.get("appProtocol") == "https",
                  f"k8s/secure Service {name}: port {port.get('port')} appProtocol is not https (TLS)")
    print(f"check-manifests: docker/k8s/secure: {len(secrets)} Secret(s), "
          f"{len(mounts)} mounted, {len(TLS_ENV)} paths, 3 exec probes")


def compose_mounts(service, top_secrets):
    """{container path: host file} of a compose service's file secrets and
    bind mounts."""
    mounts = {}
    for secret in service.get("secrets", []):
        source = secret if isinstance(secret, str) else secret.get("source")
        target = secret if isinstance(secret, str) else secret.get("target", source)
        target = target if target.startswith("/") else f"/run/secrets/{target}"
        check(source in top_secrets, f"compose.secure.yaml: secret {source} is not defined")
        mounts[target] = top_secrets.get(source, {}).get("file")
    for volume in service.get("volumes", []):
        parts = str(volume).split(":")
        if len(parts) >= 2:
            mounts[parts[1]] = parts[0]
    return mounts


def check_compose_secure():
    where = "compose.secure.yaml"
    base = load_all(DOCKER / "compose.yaml")[0].get("services", {})
    override = load_all(DOCKER / "compose.secure.yaml")[0]
    services = override.get("services", {})
    top_secrets = override.get("secrets", {})
    for name, secret in top_secrets.items():
        check("file" in secret, f"{where}: secret {name} has no file")
    replicas = sorted(n for n in base if re.fullmatch(r"reluserve-\d+", n))
    for name in replicas:
        service = services.get(name)
        if not check(service, f"{where}: replica {name} is not overridden"):
            continue
        mounts = compose_mounts(service, top_secrets)
        env = service.get("environment", {})
        for var in TLS_ENV:
            check(env.get(var) in mounts, f"{where}: {name}: {var}={env.get(var)} is not mounted")
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"]:
            args = shlex.split(test[1]) if len(test) > 1 else []
        else:
            args = test[1:]
        check_health_command(f"{where}: {name}: healthcheck", args, mounts.__contains__)

    nginx = services.get("nginx", {})
    mounts = compose_mounts(nginx, top_secrets)
    check(mounts.get("/etc/nginx/nginx.conf") == "./nginx.secure.conf",
          f"{where}: nginx does not mount ./nginx.secure.conf on /etc/nginx/nginx.conf")
    conf = (DOCKER / "nginx.secure.conf").read_text(encoding="utf-8")
    paths = re.findall(r"^\s*\w*ssl_(?:certificate|certificate_key|trusted_certificate|"
                       r"client_certificate)\s+(\S+);", conf, re.M)
    check(len(paths) >= 8, f"nginx.secure.conf: {len(paths)} certificate paths, expected 8")
    for path in paths:
        check(path in mounts, f"nginx.secure.conf: {path} is not mounted into nginx")
    for name in replicas:
        for port in (GRPC_PORT, HTTP_PORT):
            check(re.search(rf"server\s+{name}:{port}\b", conf),
                  f"nginx.secure.conf: no upstream server {name}:{port}")
    for directive in (r"grpc_pass\s+grpcs://", r"proxy_pass\s+https://",
                      r"grpc_ssl_verify\s+on;", r"proxy_ssl_verify\s+on;",
                      r"grpc_ssl_name\s+\S+;", r"proxy_ssl_name\s+\S+;",
                      r"grpc_ssl_certificate\s", r"proxy_ssl_certificate\s",
                      rf"listen\s+{GRPC_PORT}\s+ssl\s+http2;", rf"listen\s+{HTTP_PORT}\s+ssl;",
                      r"grpc_next_upstream\s+error\s+timeout\b",
                      r"proxy_next_upstream\s+error\s+timeout\b"):
        check(re.search(directive, conf), f"nginx.secure.conf: no {directive}")
    check(not re.search(r"(grpc|proxy)_pass\s+(grpc|http)://", conf),
          "nginx.secure.conf: a plaintext grpc_pass or proxy_pass")

    prometheus = services.get("prometheus", {})
    mounts = compose_mounts(prometheus, top_secrets)
    check(mounts.get("/etc/prometheus/prometheus.yml") == "./prometheus.secure.yml",
          f"{where}: prometheus does not mount ./prometheus.secure.yml")
    jobs = load_all(DOCKER / "prometheus.secure.yml")[0].get("scrape_configs", [])
    for job in jobs:
        check(job.get("scheme") == "https", f"prometheus.secure.yml: job {job.get('job_name')} not https")
        tls = job.get("tls_config", {})
        for key in ("ca_file", "cert_file", "key_file"):
            check(tls.get(key) in mounts, f"prometheus.secure.yml: tls_config.{key} "
                  f"{tls.get(key)} is not mounted into prometheus")
    targets = [t for job in jobs for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
    for name in replicas:
        check(f"{name}:{METRICS_PORT}" in targets,
              f"prometheus.secure.yml: does not scrape {name}:{METRICS_PORT}")
    print(f"check-manifests: docker/compose.secure.yaml: {len(replicas)} replicas with TLS, "
          f"nginx.secure.conf ({len(paths)} certificate paths), prometheus.secure.yml")


def check_dockerfile():
    exposed = set()
    for line in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("EXPOSE "):
            exposed |= {int(p.split("/")[0]) for p in line.split()[1:]}
    check(exposed == {HTTP_PORT, GRPC_PORT, METRICS_PORT},
          f"Dockerfile: EXPOSE {sorted(exposed)}, expected {[HTTP_PORT, GRPC_PORT, METRICS_PORT]}")
    print(f"check-manifests: docker/Dockerfile: EXPOSE {' '.join(map(str, sorted(exposed)))}")


plain_objects, secure_objects = load_k8s()
check_k8s(plain_objects)
check_k8s_secure(secure_objects, plain_objects)
check_compose()
check_compose_secure()
check_dockerfile()
for problem in problems:
    print(f"check-manifests: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
