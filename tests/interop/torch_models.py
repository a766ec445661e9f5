"""PyTorch models for the deep-model interop tests (deep_models_test.py,
perf_analyzer_sequence_test.py): nn.Linear and nn.Sequential models built
with a fixed torch.manual_seed, their state dicts written as safetensors (by
the writer here: Debian has no python3-safetensors), Triton model
repositories (config.pbtxt + <version>/model.safetensors), and the
reference answers from torch autograd in float64.

No gRPC here. Needs Debian's python3-torch (scripts/install-deps.sh installs
it); without it, importing still works, and every helper that needs torch
raises an AssertionError saying what to install, so the tests FAIL (never
skip) on a machine without torch.

    /usr/bin/python3 -B torch_models.py     # self-test of the helpers
"""

import collections
import copy
import json
import os
import struct
import sys

import numpy as np

# The torch-free half (bf16, raw bytes, safetensors), re-exported under the
# names the tests use (tm.raw_bytes, tm.write_safetensors, ...).
from tensor_files import (bf16_bits, bf16_round, bf16_to_f32,  # noqa: F401
                          element_size, from_raw, raw_bytes, read_safetensors,
                          safetensors_bytes, write_safetensors)

try:
    import torch
    from torch import nn
    TORCH_IMPORT_ERROR = None
except ImportError as error:  # reported by require_torch(), as a failure
    torch = None
    nn = None
    TORCH_IMPORT_ERROR = error

INSTALL_HINT = ("PyTorch is missing from {python}: {error}. The deep-model "
                "interop tests compare against torch autograd; run "
                "scripts/install-deps.sh (it installs Debian's python3-torch).")


def require_torch():
    """Raises AssertionError (a test failure, not a skip) without torch."""
    if TORCH_IMPORT_ERROR is not None:
        raise AssertionError(INSTALL_HINT.format(python=sys.executable,
                                                 error=TORCH_IMPORT_ERROR))


# -- models ----------------------------------------------------------------

def mlp(seed, sizes, final_relu=True, bias=True):
    """nn.Sequential(Linear(sizes[0], sizes[1]), ReLU, Linear(sizes[1],
    sizes[2]), ReLU, ...), ending with a ReLU or not. `bias`: one bool for
    every Linear or a list with one per Linear. Module indices are PyTorch's:
    the Linears are 0, 2, 4, ... Built right after torch.manual_seed(seed),
    so the weights are PyTorch's default initialisation, reproducibly."""
    require_torch()
    n_linear = len(sizes) - 1
    if n_linear < 1:
        raise ValueError("an MLP needs at least two sizes")
    biases = [bias] * n_linear if isinstance(bias, bool) else list(bias)
    if len(biases) != n_linear:
        raise ValueError(f"{n_linear} Linear layers, {len(biases)} bias flags")
    torch.manual_seed(seed)
    modules = []
    for i in range(n_linear):
        modules.append(nn.Linear(sizes[i], sizes[i + 1], bias=biases[i]))
        if i < n_linear - 1 or final_relu:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def sequential(seed, layers, sizes, bias=True):
    """An nn.Sequential following `layers` ("linear,relu,linear,..."), the
    Linears sized by `sizes` ([in, out of the 1st, out of the 2nd, ...]).
    `bias` as for mlp()."""
    require_torch()
    kinds = parse_layers(layers)
    n_linear = kinds.count("linear")
    if len(sizes) != n_linear + 1:
        raise ValueError(f"{n_linear} Linear layers need {n_linear + 1} sizes")
    biases = [bias] * n_linear if isinstance(bias, bool) else list(bias)
    torch.manual_seed(seed)
    modules, j = [], 0
    for kind in kinds:
        if kind == "linear":
            modules.append(nn.Linear(sizes[j], sizes[j + 1], bias=biases[j]))
            j += 1
        else:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def linear(seed, in_features, out_features, bias=True):
    """One nn.Linear (state dict `weight`, `bias`), seeded."""
    require_torch()
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias).eval()


def parse_layers(layers):
    kinds = [k.strip().lower() for k in layers.split(",")]
    for kind in kinds:
        if kind not in ("linear", "relu"):
            raise ValueError(f"unknown layer kind {kind!r} in {layers!r}")
    return kinds


def layers_of(module):
    """The --layers string of an nn.Sequential (or nn.Linear)."""
    require_torch()
    if isinstance(module, nn.Linear):
        return "linear"
    kinds = []
    for child in module.children():
        if isinstance(child, nn.Linear):
            kinds.append("linear")
        elif isinstance(child, nn.ReLU):
            kinds.append("relu")
        else:
            raise ValueError(f"not a Linear or ReLU: {child!r}")
    return ",".join(kinds)


class Parent(nn.Module if nn is not None else object):
    """A model holding the served Sequential as submodule `net` beside a
    decoy `head` (registered first, so its tensors come first in the state
    dict): the keys are `head.weight`, ..., `net.0.weight`, ..., and only
    the prefix `net.` selects the served model."""

    def __init__(self, net, head):
        super().__init__()
        self.head = head
        self.net = net


def nested(module, seed=12345):
    """`module` inside a Parent, with a seeded decoy head Linear."""
    require_torch()
    out = ServedModel(module).out_features
    torch.manual_seed(seed)
    return Parent(module, nn.Linear(out, 3))


# -- what the server computes, by torch autograd ---------------------------

class ServedModel:
    """A model as the server serves it: the Linear layers of `module` (an
    nn.Linear or nn.Sequential) with a ReLU after every Linear (the
    server's default), or the module list `layers` ("linear,relu,linear",
    the --layers flag / `layers` parameter), which must match the
    Sequential's children one for one.

    Parameter names are the module's state-dict keys (no prefix): `weight`,
    `bias` for a single nn.Linear; `0.weight`, `0.bias`, `2.weight`, ... for
    a Sequential. The server's gradient outputs are `grad_<name>`."""

    def __init__(self, module, layers=None):
        require_torch()
        self.module = module
        self.layers = layers
        if isinstance(module, nn.Linear):
            children = [("", module)]
        elif isinstance(module, nn.Sequential):
            children = [(f"{name}.", child) for name, child in module.named_children()]
        else:
            raise TypeError(f"not an nn.Linear or nn.Sequential: {type(module)}")
        steps = []  # ("linear", prefix) or ("relu", None)
        if layers is None:
            for prefix, child in children:
                if isinstance(child, nn.Linear):
                    steps += [("linear", prefix), ("relu", None)]
                elif not isinstance(child, nn.ReLU):
                    raise ValueError(f"not a Linear or ReLU: {child!r}")
        else:
            kinds = parse_layers(layers)
            if len(kinds) != len(children):
                raise ValueError(f"layers {layers!r} has {len(kinds)} entries, the "
                                 f"module {len(children)} children")
            for kind, (prefix, child) in zip(kinds, children):
                want = nn.Linear if kind == "linear" else nn.ReLU
                if not isinstance(child, want):
                    raise ValueError(f"layers says {kind} at {prefix!r}, the module "
                                     f"has {child!r}")
                steps.append((kind, prefix if kind == "linear" else None))
        self.steps = steps
        linears = [dict(children)[p] for kind, p in steps if kind == "linear"]
        if not linears:
            raise ValueError("no Linear layer")
        self.in_features = linears[0].in_features
        self.out_features = linears[-1].out_features
        self.state = collections.OrderedDict(
            (name, t.detach().to(torch.float32).contiguous())
            for name, t in module.state_dict().items())
        self.param_names = list(self.state)

    # Names and shapes, as ModelMetadata should list them.
    def input_specs(self, backward=True):
        specs = [("x", [-1, self.in_features])]
        if backward:
            specs.append(("grad_y", [-1, self.out_features]))
        return specs

    def output_specs(self, backward=True):
        specs = [("y", [-1, self.out_features])]
        if backward:
            specs.append(("grad_x", [-1, self.in_features]))
            specs += [("grad_" + name, list(self.state[name].shape))
                      for name in self.param_names]
        return specs

    def default_outputs(self, with_grad_y):
        """The outputs, in order, of a request that names none."""
        return [name for name, _ in self.output_specs(backward=with_grad_y)]

    def _run(self, x, grad_y=None, dtype=None):
        dtype = dtype or torch.float64
        model = copy.deepcopy(self.module).to(dtype)
        model.zero_grad(set_to_none=True)
        children = ({"": model} if isinstance(model, nn.Linear) else
                    {f"{name}.": child for name, child in model.named_children()})
        xt = torch.tensor(np.asarray(x), dtype=dtype).requires_grad_(grad_y is not None)
        h = torch.flatten(xt, 1) if xt.dim() > 1 else xt.reshape(1, -1)
        if h.shape[1] != self.in_features:
            raise ValueError(f"x {tuple(xt.shape)}: {h.shape[1]} features per row, "
                             f"the model takes {self.in_features}")
        margins = []  # per ReLU after a Linear: (|pre| / scale, pre > 0)
        previous = None
        for kind, prefix in self.steps:
            if kind == "linear":
                layer = children[prefix]
                with torch.no_grad():
                    scale = h.abs() @ layer.weight.abs().t()
                    if layer.bias is not None:
                        scale = scale + layer.bias.abs()
                h = layer(h)
                previous = ("linear", h, scale)
            else:
                if previous is not None and previous[0] == "linear":
                    pre, scale = previous[1].detach(), previous[2]
                    ratio = pre.abs() / torch.clamp(scale, min=torch.finfo(dtype).tiny)
                    margins.append((ratio.numpy(), (pre > 0).numpy()))
                h = torch.relu(h)
                previous = ("relu", h, None)
        y = h
        out = collections.OrderedDict(y=y.detach().numpy().copy())
        if grad_y is not None:
            gy = torch.tensor(np.asarray(grad_y), dtype=dtype)
            if tuple(gy.shape) != tuple(y.shape):
                raise ValueError(f"grad_y {tuple(gy.shape)} vs y {tuple(y.shape)}")
            (y * gy).sum().backward()
            out["grad_x"] = xt.grad.detach().numpy().copy()
            params = dict(model.named_parameters())
            for name in self.param_names:
                out["grad_" + name] = params[name].grad.detach().numpy().copy()
        return out, margins

    def reference(self, x, grad_y=None, dtype=None):
        """name -> float64 array (torch autograd of (y * grad_y).sum() in
        float64 unless `dtype`): y, and with grad_y grad_x (x's shape) and
        grad_<P> for every parameter P, in the server's default order."""
        return self._run(x, grad_y, dtype)[0]

    def relu_margins(self, x):
        """For every ReLU that follows a Linear: (|pre-activation| / (|h|·|W|ᵀ
        + |b|), pre-activation > 0), each [N, features]."""
        return self._run(x)[1]

    def inputs(self, n, x_tail=None, seed=1, margin=2e-5, round_bf16=False,
               attempts=500):
        """x [n, *x_tail] and grad_y [n, out_features], float32, standard
        normal, such that no ReLU's pre-activation is within `margin` of 0
        relative to its magnitude scale (so fp32 or bf16 rounding cannot flip
        a ReLU and the reference's mask is the server's), every ReLU layer
        has a unit on, and some unit somewhere is off (so the masks matter).
        `round_bf16`: the values are bfloat16-representable. Bounded."""
        x_tail = tuple(x_tail) if x_tail is not None else (self.in_features,)
        if int(np.prod(x_tail)) != self.in_features:
            raise ValueError(f"x tail {x_tail} vs in_features {self.in_features}")
        for attempt in range(attempts):
            rng = np.random.default_rng([seed, attempt])
            x = rng.standard_normal((n, *x_tail)).astype(np.float32)
            gy = rng.standard_normal((n, self.out_features)).astype(np.float32)
            if round_bf16:
                x, gy = bf16_round(x), bf16_round(gy)
            margins = self.relu_margins(x)
            if not margins:
                return x, gy
            if all(r.min() >= margin and on.any() for r, on in margins) and \
                    any((~on).any() for _, on in margins):
                return x, gy
        raise AssertionError(f"no input with ReLU margins >= {margin} in {attempts} "
                             f"attempts (n={n}, seed={seed})")


def state_dict_arrays(module, prefix=""):
    """The module's state dict as name -> float32 numpy array (in the state
    dict's order), each name with `prefix` in front."""
    require_torch()
    return collections.OrderedDict(
        (prefix + name, t.detach().cpu().to(torch.float32).contiguous().numpy().copy())
        for name, t in module.state_dict().items())


def save_state_dict(module, path, prefix=""):
    """Writes module.state_dict() (float32) to `path` as safetensors, each
    key with `prefix` in front (e.g. "net." as if it sat in a parent), with
    torch's own metadata {"format": "pt"}. Returns the names written."""
    tensors = state_dict_arrays(module, prefix)
    write_safetensors(path, tensors, metadata={"format": "pt"})
    return list(tensors)


# -- Triton model repositories ---------------------------------------------

def config_pbtxt(name=None, max_batch_size=None, layers=None, backward=None,
                 dynamic_batching=None, extra=None):
    """config.pbtxt text (protobuf text format, as Triton's). `backward`:
    True/False -> parameter "backward" "true"/"false". `dynamic_batching`:
    (max_queue_delay_microseconds, [preferred sizes]). `extra`: raw text
    appended (e.g. a field the server must refuse)."""
    lines = []
    if name is not None:
        lines.append(f'name: "{name}"')
    if max_batch_size is not None:
        lines.append(f"max_batch_size: {int(max_batch_size)}")
    if dynamic_batching is not None:
        delay, preferred = dynamic_batching
        lines.append("dynamic_batching {")
        if preferred:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(int(p)) for p in preferred)} ]")
        lines.append(f"  max_queue_delay_microseconds: {int(delay)}")
        lines.append("}")
    params = []
    if layers is not None:
        params.append(("layers", layers))
    if backward is not None:
        params.append(("backward", "true" if backward else "false"))
    for key, value in params:
        lines += ["parameters {", f'  key: "{key}"',
                  f'  value: {{ string_value: "{value}" }}', "}"]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def write_repository(root, models):
    """Triton's layout under `root`: for every (name, versions, config) in
    `models`, root/name/config.pbtxt (when config is not None) and
    root/name/<version>/model.safetensors from each module in `versions`
    ({int: module}). Returns {(name, version): weights path}."""
    paths = {}
    for name, versions, config in models:
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        if config is not None:
            with open(os.path.join(folder, "config.pbtxt"), "w", encoding="utf-8") as f:
                f.write(config)
        for version, module in versions.items():
            vdir = os.path.join(folder, str(int(version)))
            os.makedirs(vdir, exist_ok=True)
            path = os.path.join(vdir, "model.safetensors")
            save_state_dict(module, path)
            paths[(name, str(int(version)))] = path
    return paths


# -- comparison ------------------------------------------------------------

def max_relative_error(got, expected):
    """max|got - expected| / max|expected| (max|diff| when expected is all 0)."""
    got = np.asarray(got, np.float64)
    expected = np.asarray(expected, np.float64)
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return diff / scale if scale > 0 else diff


# -- self-test ---------------------------------------------------------------

def self_test(tmpdir):
    """Checks the helpers against each other and against independent code:
    the safetensors writer against this reader and against
    server_process.read_safetensors; the float64 autograd reference against
    a hand-written numpy forward/backward; the repository layout. Raises
    AssertionError on any mismatch."""
    require_torch()
    import server_process as sp  # the older, independent safetensors reader

    # safetensors round trip, with a prefix and nested in a parent.
    model = mlp(7, [6, 5, 4, 3], final_relu=False, bias=[True, False, True])
    path = os.path.join(tmpdir, "mlp.safetensors")
    names = save_state_dict(model, path, prefix="enc.")
    assert names == ["enc.0.weight", "enc.0.bias", "enc.2.weight",
                     "enc.4.weight", "enc.4.bias"], names
    back, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"}, metadata
    assert list(back) == names, list(back)
    for name, t in model.state_dict().items():
        np.testing.assert_array_equal(back["enc." + name], t.numpy())
    other = sp.read_safetensors(path)
    for name in names:
        np.testing.assert_array_equal(other[name], back[name])
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0 and blob[8:9] == b"{", (n, blob[8:9])
    header = json.loads(blob[8:8 + n])
    assert header["enc.0.weight"] == {"dtype": "F32", "shape": [5, 6],
                                      "data_offsets": [0, 120]}, header["enc.0.weight"]
    assert len(blob) == 8 + n + 4 * sum(t.numel() for t in model.state_dict().values())

    parent = nested(model)
    ppath = os.path.join(tmpdir, "parent.safetensors")
    pnames = save_state_dict(parent, ppath)
    assert pnames[:2] == ["head.weight", "head.bias"], pnames
    assert [p for p in pnames if p.startswith("net.")] == [
        "net.0.weight", "net.0.bias", "net.2.weight", "net.4.weight", "net.4.bias"], pnames
    pback, _ = read_safetensors(ppath)
    np.testing.assert_array_equal(pback["net.2.weight"], model[2].weight.detach().numpy())

    # BF16 tensors and the strict reader.
    bpath = os.path.join(tmpdir, "bf16.safetensors")
    write_safetensors(bpath, {"w": ("BF16", bf16_bits(np.array([1.0, -2.5, 3.0e38], "f4")))})
    bback, _ = read_safetensors(bpath)
    np.testing.assert_array_equal(bback["w"], bf16_round(np.array([1.0, -2.5, 3.0e38], "f4")))
    bad = bytearray(blob)
    bad[:8] = struct.pack("<Q", len(blob))
    bad_path = os.path.join(tmpdir, "bad.safetensors")
    with open(bad_path, "wb") as f:
        f.write(bytes(bad))
    try:
        read_safetensors(bad_path)
    except ValueError:
        pass
    else:
        raise AssertionError("the reader accepted a header length beyond the file")

    # bfloat16 rounding: nearest, ties to even.
    v = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -9, -0.0], np.float32)
    np.testing.assert_array_equal(bf16_round(v), [1.0, 1.0, 1.0 + 2 ** -6, 1.0, -0.0])
    assert bf16_bits(np.array([1.0], np.float32))[0] == 0x3F80

    # The reference against a hand-written numpy forward/backward.
    served = ServedModel(model, layers=layers_of(model))
    assert served.steps == [("linear", "0."), ("relu", None), ("linear", "2."),
                            ("relu", None), ("linear", "4.")], served.steps
    x, gy = served.inputs(3, (2, 3), seed=5)
    ref = served.reference(x, gy)
    assert list(ref) == ["y", "grad_x", "grad_0.weight", "grad_0.bias",
                         "grad_2.weight", "grad_4.weight", "grad_4.bias"], list(ref)
    assert list(ref) == served.default_outputs(True)
    sd = {k: t.double().numpy() for k, t in model.state_dict().items()}
    h0 = x.reshape(3, -1).astype(np.float64)
    p1 = h0 @ sd["0.weight"].T + sd["0.bias"]
    h1 = np.maximum(p1, 0)
    p2 = h1 @ sd["2.weight"].T
    h2 = np.maximum(p2, 0)
    y = h2 @ sd["4.weight"].T + sd["4.bias"]
    g = gy.astype(np.float64)
    want = {"y": y, "grad_4.weight": g.T @ h2, "grad_4.bias": g.sum(0)}
    g2 = (g @ sd["4.weight"]) * (p2 > 0)
    want["grad_2.weight"] = g2.T @ h1
    g1 = (g2 @ sd["2.weight"]) * (p1 > 0)
    want["grad_0.weight"] = g1.T @ h0
    want["grad_0.bias"] = g1.sum(0)
    want["grad_x"] = (g1 @ sd["0.weight"]).reshape(x.shape)
    for name, expected in want.items():
        assert ref[name].shape == expected.shape, (name, ref[name].shape)
        err = max_relative_error(ref[name], expected)
        assert err < 1e-12, (name, err)
    margins = served.relu_margins(x)
    assert len(margins) == 2 and all(r.min() >= 2e-5 for r, _ in margins)
    # The default (a ReLU after every Linear) adds a final ReLU.
    default = ServedModel(model)
    assert default.steps[-1] == ("relu", None) and len(default.steps) == 6
    np.testing.assert_allclose(default.reference(x)["y"], np.maximum(y, 0), rtol=1e-12)
    # The served model equals the torch module's own forward (fp32).
    with torch.no_grad():
        own = model(torch.from_numpy(x.reshape(3, -1))).double().numpy()
    assert max_relative_error(own, ref["y"]) < 1e-6
    assert served.output_specs() == [
        ("y", [-1, 3]), ("grad_x", [-1, 6]), ("grad_0.weight", [5, 6]),
        ("grad_0.bias", [5]), ("grad_2.weight", [4, 5]), ("grad_4.weight", [3, 4]),
        ("grad_4.bias", [3])], served.output_specs()
    assert served.input_specs(backward=False) == [("x", [-1, 6])]

    # A single nn.Linear: weight, bias; a ReLU after it by default.
    single = linear(3, 4, 2)
    ss = ServedModel(single)
    assert ss.param_names == ["weight", "bias"]
    xs = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(
        ss.reference(xs)["y"][0],
        np.maximum(single.weight.detach().double().numpy().sum(1)
                   + single.bias.detach().double().numpy(), 0), rtol=1e-12)

    # Repository layout and config text.
    repo = os.path.join(tmpdir, "repo")
    paths = write_repository(repo, [
        ("a", {1: model, 3: mlp(8, [6, 5, 4, 3], final_relu=False,
                                bias=[True, False, True])},
         config_pbtxt(name="a", max_batch_size=8, layers="linear,relu,linear,relu,linear",
                      backward=False, dynamic_batching=(100, [4]))),
        ("b", {1: single}, None)])
    assert sorted(paths) == [("a", "1"), ("a", "3"), ("b", "1")], sorted(paths)
    assert sorted(os.listdir(os.path.join(repo, "a"))) == ["1", "3", "config.pbtxt"]
    assert os.listdir(os.path.join(repo, "b")) == ["1"]
    with open(os.path.join(repo, "a", "config.pbtxt"), encoding="utf-8") as f:
        text = f.read()
    for fragment in ('name: "a"', "max_batch_size: 8", "preferred_batch_size: [ 4 ]",
                     "max_queue_delay_microseconds: 100", 'key: "layers"',
                     'string_value: "linear,relu,linear,relu,linear"', 'key: "backward"',
                     'string_value: "false"'):
        assert fragment in text, (fragment, text)
    a3, _ = read_safetensors(paths[("a", "3")])
    a1, _ = read_safetensors(paths[("a", "1")])
    assert not np.array_equal(a1["0.weight"], a3["0.weight"]), "versions must differ"
    try:
        from google.protobuf import text_format  # noqa: F401
        import model_config_pb2  # generated stubs, when on sys.path
    except ImportError:
        pass
    else:  # the text parses as the server's ModelConfig subset
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        assert config.name == "a" and config.max_batch_size == 8
        assert list(config.dynamic_batching.preferred_batch_size) == [4]
        assert config.parameters["backward"].string_value == "false"
    return True


if __name__ == "__main__":
    import tempfile

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if len(sys.argv) > 2 and sys.argv[1] == "--stubs":
        sys.path.insert(0, os.path.abspath(sys.argv[2]))
    with tempfile.TemporaryDirectory(prefix="torch-models-") as tmp:
        self_test(tmp)
    print("torch_models self-test: OK")
