#!/usr/bin/python3
"""Checks the peer's answers once: for a single nn.Linear and the 3-layer
MLP 3072 -> 1024 -> 256 -> 10, each served by reluserve-server and by
peer_server.py from the same safetensors file, `reluserve-client infer
--batch 2 --grad --out DIR` asks both for every output; each output must
match the other server's and a float64 torch autograd reference computed
from the x.npy and grad_y.npy the client sent. Then reluserve-load drives
each peer (thread pool and --aio) briefly over ModelStreamInfer, in BF16,
and forward only at N=100; every request must succeed.

    /usr/bin/python3 bench/peer/check_peer.py [--build build/release]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
from bench_servers import Binaries, Server, write_mlp  # noqa: E402
from peer_model import load_safetensors, module_from_state  # noqa: E402

TOLERANCE = 1e-4  # max |a - b| / max |reference|, per output


def write_linear(directory):
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))
    import torch_models
    module = torch_models.linear(1, 3072, 100)
    path = os.path.join(directory, "linear.safetensors")
    torch_models.write_safetensors(path, {
        name: value.detach().numpy()
        for name, value in module.state_dict().items()})
    return path


def reference(weights, x, grad_y):
    """{name: float64 array} of every output, from torch autograd."""
    module = module_from_state(load_safetensors(weights)).double()
    x = torch.from_numpy(x).double().requires_grad_(True)
    y = module(x)
    y.backward(torch.from_numpy(grad_y).double())
    outputs = {"y": y, "grad_x": x.grad}
    outputs.update({f"grad_{name}": p.grad
                    for name, p in module.named_parameters()})
    return {name: t.detach().numpy() for name, t in outputs.items()}


def ask(binaries, server, directory):
    """{name: array} of every file `reluserve-client infer --out` wrote."""
    subprocess.run([binaries.client, "infer", "--target", server.target,
                    "--batch", "2", "--grad", "--out", directory],
                   check=True, stdout=subprocess.DEVNULL)
    return {name[:-4]: np.load(os.path.join(directory, name))
            for name in os.listdir(directory)}


def compare(weights, answers):
    """Prints each output's error against the reference; True if all
    are within TOLERANCE."""
    expected = reference(weights, answers["reluserve"]["x"],
                         answers["reluserve"]["grad_y"])
    ok = True
    for name, want in expected.items():
        scale = max(1e-30, float(np.abs(want).max()))
        errors = {server: float(np.abs(got[name] - want).max()) / scale
                  for server, got in answers.items()}
        ok = ok and max(errors.values()) <= TOLERANCE
        print(f"  {name:14} {str(want.shape):14} " + "  ".join(
            f"{server} {error:.1e}" for server, error in errors.items()))
    return ok


def drive(binaries, server, name, *args):
    """A short reluserve-load run; True if every request succeeded."""
    command = [binaries.load, "--target", server.target, "--quiet",
               "--requests", "50", "--warmup", "0", "--concurrency", "2",
               *args]
    code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    print(f"  {name}: reluserve-load {' '.join(args)}: exit {code}")
    return code == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build/release")
    binaries = Binaries(parser.parse_args().build)
    ok = True
    with tempfile.TemporaryDirectory(prefix="check-peer-") as directory:
        for weights in (write_linear(directory), write_mlp(directory)):
            print(os.path.basename(weights), "(relative max error)")
            answers = {}
            for name, command in (
                    ("reluserve", binaries.reluserve("--weights", weights)),
                    ("peer", binaries.peer("--weights", weights)),
                    ("peer-aio", binaries.peer("--weights", weights, "--aio"))):
                out = os.path.join(directory, f"{name}-{os.path.basename(weights)}")
                with Server(command) as server:
                    answers[name] = ask(binaries, server, out)
                    if name != "reluserve":
                        for args in (["--stream", "--grad"],
                                     ["--dtype", "bf16", "--grad"],
                                     ["--batch", "100"]):
                            ok = drive(binaries, server, name, *args) and ok
            ok = compare(weights, answers) and ok
    print("peer answers match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
