#!/usr/bin/python3
"""Runs the shell commands of the project's documents, as written, against a
real reluserve-server started on 127.0.0.1 with the default model, so that
the README and docs cannot drift from what the binaries do.

    /usr/bin/python3 -B doc_commands_test.py --server PATH --build-dir DIR \
        --source-dir DIR [unittest args]

Every ```sh block of README.md, docs/*.md and bench/README.md runs, in the
order written, one bash script per document (so `C=...` set in one block
serves the next), under `set -euo pipefail`, and must exit 0. A block whose
fence is preceded by the line

    <!-- doc-test: skip: REASON -->

is not run; the reason is printed. Other languages' blocks are not run.

The scripts run in an empty temporary directory in which `build/release`
links to the build tree under test (so the asan pass runs its own binaries)
and `scripts`, `docs`, `docker`, `tests` link to the source tree; files the commands write land
there or under /tmp as the documents say. RELUSERVE_TARGET points the
clients at the test's server, whose port is chosen by the kernel; its
metrics endpoint and REST front end are on the default ports, 8002 and 8000,
as the documents' `curl` commands expect (no other test uses those ports:
their servers turn them off or pick free ones).
"""

import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "interop"))
import server_process as sp  # noqa: E402

DOCUMENT_TIMEOUT_S = 240.0
SKIP_RE = re.compile(r"<!--\s*doc-test:\s*skip:\s*(.+?)\s*-->")
FENCE_RE = re.compile(r"^```(\w*)\s*$")


def parse_args(argv):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--server", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    args, rest = parser.parse_known_args(argv[1:])
    return args, [argv[0], *rest]


ARGS, UNITTEST_ARGV = parse_args(sys.argv)


def shell_blocks(path):
    """(line, language, text, skip reason or None) of each fenced block."""
    blocks = []
    lines = pathlib.Path(path).read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE_RE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        previous = next((lines[j] for j in range(start - 1, -1, -1)
                         if lines[j].strip()), "")
        skip = SKIP_RE.search(previous)
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        blocks.append((start + 1, language, "\n".join(body),
                       skip.group(1) if skip else None))
    return blocks


def documents():
    source = pathlib.Path(ARGS.source_dir)
    paths = [source / "README.md", *sorted((source / "docs").glob("*.md")),
             source / "bench" / "README.md"]
    return [p for p in paths if p.is_file()]


class DocCommandsTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = sp.ServerProcess(ARGS.server, ["--metrics-port", 8002,
                                                     "--http-port", 8000])
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()

    def test_parser_finds_blocks_and_skip_reasons(self):
        with tempfile.NamedTemporaryFile("w", suffix=".md") as doc:
            doc.write("text\n```sh\necho a\n```\n\n<!-- doc-test: skip: slow -->\n"
                      "```sh\necho b\n```\n```python\nprint(1)\n```\n")
            doc.flush()
            self.assertEqual(shell_blocks(doc.name), [
                (2, "sh", "echo a", None), (7, "sh", "echo b", "slow"),
                (10, "python", "print(1)", None)])

    def test_every_document_has_been_read(self):
        names = [p.name for p in documents()]
        self.assertIn("README.md", names)
        self.assertIn("api.md", names)

    def test_commands_run_as_written(self):
        ran = 0
        for document in documents():
            with self.subTest(document=str(document)):
                ran += self.run_document(document)
        # The README's "Try it" section alone: C=, five reluserve-client
        # commands, L=, two reluserve-load commands.
        self.assertGreaterEqual(ran, 9)

    def run_document(self, document):
        script = ["set -euo pipefail"]
        commands = 0
        for line, language, text, skip in shell_blocks(document):
            where = f"{document.name}:{line}"
            if language not in ("sh", "bash", "shell"):
                continue
            if skip is not None:
                print(f"not run: {where}: {skip}", file=sys.stderr)
                continue
            script.append(f"echo '### {where}' >&2")
            for command in text.splitlines():
                if command.strip() and not command.lstrip().startswith("#"):
                    commands += 1
                    script.append(f"echo {shlex.quote('$ ' + command.strip())} >&2")
                script.append(command)
        if commands == 0:
            return 0
        with tempfile.TemporaryDirectory(prefix="reluserve-doc-") as work:
            os.makedirs(os.path.join(work, "build"))
            os.symlink(os.path.realpath(ARGS.build_dir),
                       os.path.join(work, "build", "release"))
            for name in ("scripts", "docs", "docker", "tests"):
                os.symlink(os.path.join(os.path.realpath(ARGS.source_dir), name),
                           os.path.join(work, name))
            env = sp.loopback_env({"RELUSERVE_TARGET": self.server.target})
            result = subprocess.run(
                ["bash", "-c", "\n".join(script)], cwd=work, env=env,
                capture_output=True, text=True, timeout=DOCUMENT_TIMEOUT_S)
        if result.returncode != 0:
            self.fail(f"{document}: a command failed (exit {result.returncode}); "
                      f"the last '### file:line' and '$ command' below name it\n"
                      f"--- stderr\n{result.stderr[-6000:]}\n--- stdout\n"
                      f"{result.stdout[-3000:]}\n--- server log\n"
                      f"{self.server.log()[-2000:]}")
        print(f"ran {commands} command(s) of {document.name}", file=sys.stderr)
        return commands


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
