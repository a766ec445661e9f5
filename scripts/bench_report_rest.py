"""The REST section of docs/benchmarks.md (scripts/bench_rest.py's runs)."""
from bench_servers import SHAPES
from bench_tables import div, header, plain, row

BEGIN = "<!-- bench: rest begins -->"
END = "<!-- bench: rest ends -->"


def rest_section(report):
    runs = report["rest"]
    lines = [
        BEGIN,
        "## REST against gRPC, binary tensors against JSON", "",
        "One reluserve-server on the default model (K=3072, M=100), driven "
        "by the same reluserve-load in turn over gRPC (a channel per request "
        "in flight), over HTTP/1.1 with Triton's binary tensor extension "
        "(`--protocol http`, a keep-alive connection per request in flight) "
        "and over HTTP with the tensors as JSON numbers (`--http-json`), "
        f"{report['duration']} s a step. REST/gRPC is the binary REST req/s "
        "over gRPC's; JSON/binary is JSON's over binary REST's. CPU is "
        "client + server CPU µs per request.", "",
        *header("shape", "in flight", "gRPC req/s", "REST binary req/s",
                "REST JSON req/s", "REST/gRPC", "JSON/binary",
                "p50 ms gRPC / binary / JSON", "CPU µs gRPC / binary / JSON",
                "errors")]
    for label, _, _ in SHAPES:
        for level in (1, 8):
            cells = [runs.get((label, level, p)) for p in
                     ("grpc", "rest-binary", "rest-json")]
            if None in cells:
                continue
            grpc, binary, text = cells
            lines.append(row(
                label, level, f"{grpc['rps']:.0f}", f"{binary['rps']:.0f}",
                f"{text['rps']:.0f}", plain(div(binary["rps"], grpc["rps"])),
                plain(div(text["rps"], binary["rps"])),
                " / ".join(f"{c['p50']:.2f}" for c in cells),
                " / ".join(f"{c['cpu_per_request'] * 1e6:.0f}" for c in cells),
                sum(c["errors"] for c in cells)))
    lines.append(END)
    return lines


def splice(document, section):
    """`document` with its REST section replaced by `section` (appended
    when it has none)."""
    text = "\n".join(section)
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + text + rest.split(END, 1)[1]
    return document.rstrip("\n") + "\n\n" + text + "\n"
