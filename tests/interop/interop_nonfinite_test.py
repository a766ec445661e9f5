#!/usr/bin/python3
"""Interop test, NaN and Inf: the ReLU backward pass is a select, so
non-finite values in grad_y where y is 0 never leak into the gradients, a NaN
output gets a zero gradient, and a NaN passed through where y > 0 spreads by
IEEE arithmetic only; FP32 and BF16 inputs, against the real reluserve-server
on 127.0.0.1 (interop_common.py).

    /usr/bin/python3 -B interop_nonfinite_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import interop_common as ic  # noqa: E402

import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
from interop_common import (ATOL, B, K, M, MODEL, RTOL, W, input_tensor,  # noqa: E402
                            random_inputs, raw)


# -- NaN and Inf: the ReLU backward rule -------------------------------------

def relu_backward_select(y, grad_y):
    """The contract's ReLU backward (docs/api.md): g = grad_y where y > 0,
    else 0. A select, never grad_y * (y > 0): 0 * NaN and 0 * Inf would be
    NaN. NaN > 0 is False, so g is 0 where y is NaN."""
    return np.where(np.asarray(y) > 0, np.asarray(grad_y, np.float64), 0.0)


def relu_backward_pytorch(result, grad):
    """PyTorch's ReLU backward, threshold_backward(grad, result, 0), which
    computes `result <= 0 ? 0 : grad` (aten/src/ATen/native/cpu/Activation.cpp,
    threshold_kernel). Also a select, but on the complement: NaN <= 0 is False
    as well, so PyTorch passes grad through where result is NaN. (torch is not
    needed: this is its rule, written in numpy.)"""
    return np.where(np.asarray(result) <= 0, 0.0, np.asarray(grad, np.float64))


def ieee_matmul(a, b):
    """a @ b in float64 with every product formed, so 0 * NaN and 0 * Inf are
    NaN as in IEEE arithmetic (a BLAS may skip zero operands)."""
    with np.errstate(invalid="ignore"):  # 0 * Inf: NaN, on purpose
        return (np.asarray(a, np.float64)[:, :, None] *
                np.asarray(b, np.float64)[None, :, :]).sum(axis=1)


def select_reference(x, w, b, grad_y, y_mask=None):
    """Float64 forward and backward with the contract's select. `x` [N, ...];
    returns (y, grad_x shaped like x, grad_weight, grad_bias). The mask is
    y_mask (e.g. the server's own y) when given, else the reference's y."""
    x64 = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    pre = ieee_matmul(x64, np.asarray(w, np.float64).T) + np.asarray(b, np.float64)
    y = np.where(np.isnan(pre), pre, np.maximum(pre, 0.0))  # NaN stays NaN
    g = relu_backward_select(y if y_mask is None else y_mask, grad_y)
    grad_x = ieee_matmul(g, w).reshape(x.shape)
    return y, grad_x, ieee_matmul(g.T, x64), g.sum(axis=0)


def to_bf16_bits(a):
    """float32 -> bfloat16 bits, rounding to nearest even; NaN stays a quiet
    NaN, +-Inf stays +-Inf (as the server's own conversion)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x0040).astype(np.uint16), rounded)


def from_bf16_bits(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def poisoned(grad_y, where):
    """grad_y with NaN, +Inf, -Inf in turn at the positions of `where`."""
    out = np.array(grad_y, np.float32)
    idx = np.flatnonzero(np.asarray(where).ravel())
    cycle = np.array([np.nan, np.inf, -np.inf], np.float32)
    out.ravel()[idx] = cycle[np.arange(idx.size) % 3]
    return out


class NonFiniteTest(ic.InteropTestCase):
    def nonfinite_request(self, x, gy, datatype):
        """x and grad_y (float32 arrays, NaN/Inf allowed) as raw FP32 or BF16,
        with every output asked for in FP32."""
        req = pb.ModelInferRequest(model_name=MODEL)
        for name, array in (("x", x), ("grad_y", gy)):
            req.inputs.add().CopyFrom(input_tensor(name, array, datatype=datatype))
            req.raw_input_contents.append(
                raw(array) if datatype == "FP32"
                else np.ascontiguousarray(to_bf16_bits(array), "<u2").tobytes())
        for name in ("y", "grad_x", "grad_weight", "grad_bias"):
            out = req.outputs.add(name=name)
            out.parameters["datatype"].string_param = "FP32"
        return req

    def as_sent(self, a, datatype):
        """What the server computes from: `a` as the wire datatype holds it."""
        a = np.asarray(a, np.float32)
        return a if datatype == "FP32" else from_bf16_bits(to_bf16_bits(a))

    def assertSameNanAndClose(self, name, got, ref):
        """NaN exactly where the reference has NaN; close elsewhere."""
        got = np.asarray(got, np.float64)
        self.assertEqual(got.shape, ref.shape, f"{name}: shape")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref),
                                      err_msg=f"{name}: NaN pattern")
        finite = ~np.isnan(ref)
        np.testing.assert_allclose(got[finite], ref[finite], rtol=RTOL, atol=ATOL,
                                   err_msg=name)

    def test_nan_and_inf_grad_y_where_y_is_zero_never_leak(self):
        # The repro of the FP32 bug: oneDNN's eltwise backward multiplied,
        # 0 * Inf = NaN, and whole rows of grad_x came back NaN.
        x, gy = random_inputs(6, seed=300)
        for datatype in ("FP32", "BF16"):
            with self.subTest(datatype=datatype):
                xs, ws = self.as_sent(x, datatype), self.as_sent(W, datatype)
                pre = xs.astype(np.float64) @ ws.T.astype(np.float64) + B
                dead = pre < -1e-3  # y is surely 0 there, in either precision
                self.assertGreater(dead.sum(), 5)
                gy_bad = poisoned(gy, dead)
                out = self.decode(self.infer(self.nonfinite_request(x, gy_bad, datatype)))
                for name in ("y", "grad_x", "grad_weight", "grad_bias"):
                    self.assertTrue(np.isfinite(out[name]).all(),
                                    f"{name}: {np.size(out[name]) - np.isfinite(out[name]).sum()}"
                                    " non-finite values")
                self.assertTrue((out["y"][dead] == 0).all())
                gys = self.as_sent(gy_bad, datatype)
                y, gx, gw, gb = select_reference(xs, ws, B, gys, y_mask=out["y"])
                self.assertClose("y", out["y"], y)
                self.assertClose("grad_x", out["grad_x"], gx)
                self.assertClose("grad_weight", out["grad_weight"], gw)
                self.assertClose("grad_bias", out["grad_bias"], gb)
                # Without a NaN in y, PyTorch's rule gives the same g.
                np.testing.assert_array_equal(relu_backward_select(out["y"], gys),
                                              relu_backward_pytorch(out["y"], gys))
                # A multiply would not: 0 * NaN and 0 * Inf are NaN.
                with np.errstate(invalid="ignore"):
                    multiplied = gys.astype(np.float64) * (out["y"] > 0)
                self.assertTrue(np.isnan(multiplied).any())

    def test_nan_output_gets_zero_gradient(self):
        # A NaN in row 1 of x makes that row of y NaN; 1[y > 0] is 0 there, so
        # g's row is 0 whatever grad_y says, even Inf.
        x, gy = random_inputs(4, seed=301)
        x[1, 3] = np.nan
        gy = gy.copy()
        gy[1, 2] = np.inf
        for datatype in ("FP32", "BF16"):
            with self.subTest(datatype=datatype):
                out = self.decode(self.infer(self.nonfinite_request(x, gy, datatype)))
                self.assertTrue(np.isnan(out["y"][1]).all(), out["y"][1])
                self.assertTrue(np.isfinite(np.delete(out["y"], 1, axis=0)).all())
                np.testing.assert_array_equal(out["grad_x"][1], np.zeros(K, np.float32))
                self.assertTrue(np.isfinite(out["grad_bias"]).all(), out["grad_bias"])
                xs, ws = self.as_sent(x, datatype), self.as_sent(W, datatype)
                gys = self.as_sent(gy, datatype)
                y, gx, gw, gb = select_reference(xs, ws, B, gys, y_mask=out["y"])
                self.assertSameNanAndClose("y", out["y"], y)
                self.assertSameNanAndClose("grad_x", out["grad_x"], gx)
                self.assertSameNanAndClose("grad_bias", out["grad_bias"], gb)
                # grad_weight = g^T x is an IEEE product: x's column 3 holds the
                # NaN, and 0 * NaN = NaN, so that column is NaN; the rest is not.
                self.assertTrue(np.isnan(out["grad_weight"][:, 3]).all())
                self.assertSameNanAndClose("grad_weight", out["grad_weight"], gw)
                # The one place PyTorch differs: threshold_backward passes grad
                # through where the result is NaN; the contract gives 0.
                ours = relu_backward_select(out["y"], gys)
                torch_rule = relu_backward_pytorch(out["y"], gys)
                np.testing.assert_array_equal(ours[1], np.zeros(M))
                np.testing.assert_array_equal(torch_rule[1], gys[1].astype(np.float64))
                same = ~np.isnan(out["y"])
                np.testing.assert_array_equal(ours[same], torch_rule[same])

    def test_nan_grad_y_where_y_is_positive_passes_through(self):
        # The select keeps grad_y where y > 0, NaN included: then IEEE
        # arithmetic spreads it (row n of grad_x, row m of grad_weight,
        # grad_bias[m]) and nowhere else.
        x, gy = random_inputs(3, seed=302)
        pre = x.astype(np.float64) @ W.T.astype(np.float64) + B
        n, m = np.argwhere(pre > 1e-3)[0]
        gy = gy.copy()
        gy[n, m] = np.nan
        out = self.decode(self.infer(self.nonfinite_request(x, gy, "FP32")))
        y, gx, gw, gb = select_reference(x, W, B, gy, y_mask=out["y"])
        self.assertTrue(np.isnan(out["grad_bias"][m]))
        self.assertTrue(np.isnan(out["grad_x"][n]).all())
        self.assertTrue(np.isnan(out["grad_weight"][m]).all())
        self.assertSameNanAndClose("grad_x", out["grad_x"], gx)
        self.assertSameNanAndClose("grad_weight", out["grad_weight"], gw)
        self.assertSameNanAndClose("grad_bias", out["grad_bias"], gb)


if __name__ == "__main__":
    ic.main()
