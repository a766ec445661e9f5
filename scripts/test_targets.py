#!/usr/bin/python3
"""Prints the build targets that the ctest tests selected by the given ctest
arguments need: every output of the Ninja build that a selected test runs,
names on its command line or lists in REQUIRED_FILES, one per line, as a
path relative to the build tree (Ninja builds an output by its path).

Usage: test_targets.py BUILD_DIR [ctest selection arguments, e.g. -R interop]
Exits 1, printing nothing, when the arguments select no test.
"""

import json
import os
import subprocess
import sys


def main():
    build_dir = os.path.realpath(sys.argv[1])
    listing = subprocess.run(
        ["ctest", "--test-dir", build_dir, "--show-only=json-v1"] +
        sys.argv[2:], check=True, capture_output=True, text=True).stdout
    tests = json.loads(listing).get("tests", [])
    if not tests:
        return 1
    outputs = set()
    for line in subprocess.run(
            ["ninja", "-C", build_dir, "-t", "targets", "all"], check=True,
            capture_output=True, text=True).stdout.splitlines():
        outputs.add(line.rsplit(": ", 1)[0])
    targets = set()
    for test in tests:
        words = list(test.get("command", []))
        for prop in test.get("properties", []):
            if prop["name"] == "REQUIRED_FILES":
                words.extend(prop["value"])
        for word in words:
            path = os.path.realpath(word)
            if path.startswith(build_dir + os.sep):
                relative = os.path.relpath(path, build_dir)
                if relative in outputs:
                    targets.add(relative)
    # Nothing known to build (a test of a kind this script does not read):
    # build everything rather than run tests against stale binaries.
    print("\n".join(sorted(targets)) if targets else "all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
