"""Tests of torchscope.ops.conv2d_bias_relu (torch.ops.torchscope.conv2d_bias_relu).

Every result is compared with the eager composition relu(conv2d(x, w, b)); the
compiled CPU kernel is exercised on both of its paths (oneDNN's fused post-op
and the generic convolution + epilogue pass).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts
from torchscope import _native
from torchscope.ops import _knobs, _wrapper

native = pytest.mark.skipif(
    not ts.ops.native_available(), reason="compiled extension torchscope._C not built"
)

OP = "torchscope::conv2d_bias_relu"


def reference(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    return F.relu(F.conv2d(x, w, b, stride, padding, dilation, groups))


@pytest.fixture(params=["onednn", "small", "generic"])
def cpu_path(request):
    """Runs a test on each CPU path of the no-grad forward, whatever the test's sizes:
    oneDNN's post-op convolution ("onednn"), ATen's convolution and a relu pass (what
    outputs under 32768 elements take, "small"), the generic epilogue ("generic")."""
    if not ts.ops.native_available():
        pytest.skip("compiled extension torchscope._C not built")
    with _knobs.cpu_path(
        onednn=request.param != "generic",
        post_op_min_elements=0 if request.param == "onednn" else 2**62,
    ):
        yield request.param


def make(shape, dtype, layout, *, seed, requires_grad=False, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    if layout == "noncontiguous":  # every other column of a wider tensor
        wide = torch.randn(*shape[:-1], 2 * shape[-1], generator=g, dtype=torch.float64) * scale
        t = wide[..., ::2]
        assert not t.is_contiguous()
    t = t.to(dtype)
    if layout == "channels_last" and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(requires_grad)


# (N, C_in, C_out, H, W, kH, kW, stride, padding, dilation, groups, bias)
GEOMETRIES = [
    (2, 3, 4, 7, 6, 3, 3, 1, 1, 1, 1, True),
    (1, 4, 6, 9, 8, 3, 2, (2, 1), (1, 0), 1, 2, True),
    (2, 4, 4, 8, 8, 3, 3, 1, 2, 2, 4, False),  # depthwise, dilated
    (1, 2, 3, 6, 7, 1, 1, 2, 0, 1, 1, True),
    (3, 6, 4, 5, 5, 5, 3, 1, (2, 1), (1, 2), 2, True),
    (1, 3, 2, 4, 4, 4, 4, 3, 1, 1, 1, True),  # kernel as large as the input
    (2, 3, 16, 5, 7, 3, 3, 1, 1, 1, 1, True),  # channels_last rows of whole mask bytes
]
TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.bfloat16: dict(atol=5e-2, rtol=2e-2),
}


def geometry_id(g):
    return "x".join(str(v).replace(" ", "") for v in g)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_matches_eager_forward_and_backward(geometry, layout, dtype, cpu_path):
    n, c_in, c_out, h, w_, kh, kw, stride, padding, dilation, groups, has_bias = geometry
    x = make((n, c_in, h, w_), dtype, layout, seed=1, requires_grad=True)
    w = make((c_out, c_in // groups, kh, kw), dtype, layout, seed=2, requires_grad=True, scale=0.5)
    b = make((c_out,), dtype, "contiguous", seed=3, requires_grad=True) if has_bias else None
    args = (stride, padding, dilation, groups)

    out = ts.ops.conv2d_bias_relu(x, w, b, *args)
    expected = reference(x, w, b, *args)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    channels_last = layout == "channels_last"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)

    # Gradients: through the same relu mask (taken from our output), so that a
    # rounding difference at an exact zero cannot flip a mask bit in bfloat16.
    grad = make(out.shape, dtype, "contiguous", seed=4)
    grad = torch.where(expected > 0, grad, torch.zeros_like(grad)) * (out > 0)
    inputs = [t for t in (x, w, b) if t is not None]
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    for g_got, g_want, t in zip(got, want, inputs, strict=True):
        torch.testing.assert_close(g_got, g_want, **TOLERANCES[dtype])
        assert g_got.shape == t.shape


@pytest.mark.parametrize(
    "x_layout, w_layout", [("contiguous", "channels_last"), ("channels_last", "contiguous")]
)
def test_mixed_layouts_give_channels_last_like_conv2d(x_layout, w_layout, cpu_path):
    x = make((2, 3, 6, 5), torch.float32, x_layout, seed=20, requires_grad=True)
    w = make((4, 3, 3, 3), torch.float32, w_layout, seed=21, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
    expected = reference(x, w, b, 1, 1)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out.stride() == expected.stride()
    grads = torch.autograd.grad(out, (x, w, b), torch.ones_like(out))
    want_grads = torch.autograd.grad(expected, (x, w, b), torch.ones_like(out))
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_float16_runs_on_the_generic_path():
    x = torch.randn(1, 2, 5, 5).half()
    w = torch.randn(3, 2, 3, 3).half()
    b = torch.randn(3).half()
    try:
        expected = reference(x, w, b, 1, 1)
    except RuntimeError as e:  # a torch build without half convolution on CPU
        pytest.skip(f"torch has no float16 conv2d on CPU: {e}")
    torch.testing.assert_close(
        ts.ops.conv2d_bias_relu(x, w, b, 1, 1), expected, atol=1e-2, rtol=1e-2
    )


def relu_mask(output):
    """The relu mask of a dense ``output``, as csrc/epilogue.h defines it.

    Bit i % 8 of byte i // 8 is set when element i (in memory order) is > 0 or NaN.
    """
    flat = ~(output.as_strided((output.numel(),), (1,)) <= 0)
    padded = torch.zeros((flat.numel() + 7) // 8 * 8, dtype=torch.uint8)
    padded[: flat.numel()] = flat
    return (padded.view(-1, 8).int() << torch.arange(8)).sum(1).to(torch.uint8)


@native
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "shape", [(2, 3, 9, 7), (1, 2, 3, 3), (3, 16, 4, 4), (2, 3, 130, 129)], ids=str
)
def test_with_mask_returns_the_output_and_its_bits(layout, dtype, shape, cpu_path):
    x = make(shape, dtype, layout, seed=30)
    w = make((5, shape[1], 3, 3), dtype, layout, seed=31)
    b = make((5,), dtype, "contiguous", seed=32)
    args = ([1, 1], [1, 1], [1, 1], 1)
    out, mask = torch.ops.torchscope.conv2d_bias_relu_with_mask(x, w, b, *args)
    torch.testing.assert_close(out, torch.ops.torchscope.conv2d_bias_relu(x, w, b, *args))
    assert out.stride() == torch.ops.torchscope.conv2d_bias_relu(x, w, b, *args).stride()
    assert mask.dtype == torch.uint8 and mask.shape == ((out.numel() + 7) // 8,)
    assert torch.equal(mask, relu_mask(out))


@native
def test_gradients_needed_are_the_only_ones_computed():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    out, mask = torch.ops.torchscope.conv2d_bias_relu_with_mask(
        x, w, None, [1, 1], [1, 1], [1, 1], 1
    )
    assert torch.equal(mask, relu_mask(out))
    grad = torch.randn_like(out)
    backward = torch.ops.torchscope.conv2d_bias_relu_backward
    for output_mask in ([True, False, False], [False, True, False], [False, False, True]):
        results = backward(grad, mask, x, w, [1, 1], [1, 1], [1, 1], 1, output_mask)
        assert [r is not None for r in results] == output_mask
    assert backward(grad, mask, x, w, [1, 1], [1, 1], [1, 1], 1, [False] * 3) == (None,) * 3
    gi, gw, gb = backward(grad, mask, x, w, [1, 1], [1, 1], [1, 1], 1, [True, True, True])
    masked = grad * (out > 0)
    torch.testing.assert_close(gb, masked.sum((0, 2, 3)))
    ref_gi, ref_gw, _ = torch.ops.aten.convolution_backward(
        masked, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False]
    )
    torch.testing.assert_close(gi, ref_gi)
    torch.testing.assert_close(gw, ref_gw)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("c_out", [32, 12])
def test_large_gradients_match_eager(layout, c_out, cpu_path):
    """Many parallel tasks in the backward's mask pass, rows of whole mask bytes or not."""
    x = make((2, 8, 41, 40), torch.float32, layout, seed=40, requires_grad=True)
    w = make((c_out, 8, 3, 3), torch.float32, layout, seed=41, requires_grad=True, scale=0.2)
    b = make((c_out,), torch.float32, "contiguous", seed=42, requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
    expected = reference(x, w, b, 1, 1)
    grad = make(out.shape, torch.float32, layout, seed=43)
    got = torch.autograd.grad(out, (x, w, b), grad)
    want = torch.autograd.grad(expected, (x, w, b), grad)
    for g_got, g_want in zip(got, want, strict=True):
        torch.testing.assert_close(g_got, g_want, atol=1e-3, rtol=1e-4)


def test_gradient_flows_only_where_required():
    x = torch.randn(1, 2, 5, 5)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    b = torch.randn(3)
    ts.ops.conv2d_bias_relu(x, w, b, padding=1).sum().backward()  # expanded upstream gradient
    expected = torch.autograd.grad(reference(x, w, b, 1, 1).sum(), w)[0]
    torch.testing.assert_close(w.grad, expected)


GRADCHECK_CASES = pytest.mark.parametrize(
    "geometry",
    [
        dict(stride=1, padding=1, dilation=1, groups=1, bias=True),
        dict(stride=2, padding=(0, 1), dilation=(1, 2), groups=2, bias=True),
        dict(stride=1, padding=0, dilation=1, groups=1, bias=False),
    ],
    ids=["plain", "strided-dilated-grouped", "no-bias"],
)


def gradcheck_args(geometry, layout, input_shape):
    """float64 (x, w, b) requiring grad, and the op as a function of them."""
    x = make(input_shape, torch.float64, layout, seed=5, requires_grad=True)
    w = make((4, 4 // geometry["groups"], 3, 3), torch.float64, layout, seed=6, requires_grad=True)
    b = (
        make((4,), torch.float64, "contiguous", seed=7, requires_grad=True)
        if geometry["bias"]
        else None
    )
    args = (geometry["stride"], geometry["padding"], geometry["dilation"], geometry["groups"])
    return (lambda x, w, b: ts.ops.conv2d_bias_relu(x, w, b, *args)), (x, w, b)


@GRADCHECK_CASES
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradcheck_float64(geometry, layout):
    fn, inputs = gradcheck_args(geometry, layout, (2, 4, 6, 6))
    assert torch.autograd.gradcheck(fn, inputs)


@GRADCHECK_CASES
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradgradcheck_float64(geometry, layout):
    """Double backward: the backward recorded with create_graph=True is differentiable."""
    fn, inputs = gradcheck_args(geometry, layout, (1, 4, 5, 5))
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_second_derivatives_match_eager(layout):
    """The audit's case: d/dw2 of |d/dx conv2d(op(x, w1), w2).sum()|^2 was None."""
    x = make((2, 2, 6, 5), torch.float64, layout, seed=50, requires_grad=True)
    w1 = make((3, 2, 3, 3), torch.float64, layout, seed=51, requires_grad=True)
    b1 = make((3,), torch.float64, "contiguous", seed=52, requires_grad=True)
    w2 = make((2, 3, 3, 3), torch.float64, layout, seed=53, requires_grad=True)

    def second_derivatives(layer):
        (gx,) = torch.autograd.grad(F.conv2d(layer(x, w1, b1), w2).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), (x, w1, b1, w2), allow_unused=True)

    got = second_derivatives(lambda x, w, b: ts.ops.conv2d_bias_relu(x, w, b, 1, 1))
    want = second_derivatives(lambda x, w, b: reference(x, w, b, 1, 1))
    for g_got, g_want in zip(got, want, strict=True):
        if g_want is None:  # relu's second derivative is 0: nothing reaches x
            assert g_got is None or not g_got.any()
        else:
            torch.testing.assert_close(g_got, g_want)
    assert got[3] is not None and got[3].abs().sum() > 0


def test_create_graph_gradients_match_the_fused_backward():
    """create_graph=True takes the backward in ATen ops; its first derivatives agree."""
    x = make((2, 3, 7, 6), torch.float32, "channels_last", seed=54, requires_grad=True)
    w = make((4, 3, 3, 3), torch.float32, "contiguous", seed=55, requires_grad=True)
    b = make((4,), torch.float32, "contiguous", seed=56, requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, 2, 1)
    grad = make(out.shape, torch.float32, "contiguous", seed=57)
    fused = torch.autograd.grad(out, (x, w, b), grad, retain_graph=True)
    recorded = torch.autograd.grad(out, (x, w, b), grad, create_graph=True)
    for g_fused, g_recorded, t in zip(fused, recorded, (x, w, b), strict=True):
        torch.testing.assert_close(g_recorded, g_fused)
        assert g_recorded.stride() == g_fused.stride() or g_recorded.shape == t.shape


# -- forward-mode AD ----------------------------------------------------------------------------


@pytest.mark.parametrize("primal_requires_grad", [False, True])
def test_forward_ad_tangents_match_eager(primal_requires_grad):
    import torch.autograd.forward_ad as fwAD

    x = make((2, 3, 6, 5), torch.float64, "contiguous", seed=60)
    w = make((4, 3, 3, 3), torch.float64, "channels_last", seed=61)
    b = make((4,), torch.float64, "contiguous", seed=62)
    tangents = [
        make(t.shape, torch.float64, "contiguous", seed=63 + i) for i, t in enumerate((x, w, b))
    ]
    for t in (x, w, b):
        t.requires_grad_(primal_requires_grad)
    with fwAD.dual_level():
        duals = [fwAD.make_dual(t, dt) for t, dt in zip((x, w, b), tangents, strict=True)]
        got = fwAD.unpack_dual(ts.ops.conv2d_bias_relu(*duals, 2, 1))
        want = fwAD.unpack_dual(reference(*duals, 2, 1))
        # Only the input dual: the weight and bias tangents are zero.
        only_x = fwAD.unpack_dual(ts.ops.conv2d_bias_relu(duals[0], w, b, 2, 1))
        only_x_want = fwAD.unpack_dual(reference(duals[0], w, b, 2, 1))
    torch.testing.assert_close(got.primal, want.primal)
    assert got.tangent is not None
    torch.testing.assert_close(got.tangent, want.tangent)
    torch.testing.assert_close(only_x.tangent, only_x_want.tangent)


def test_forward_ad_only_inside_a_dual_level():
    """The composition runs only while a dual level is open (_wrapper.composition_needed)."""
    import torch.autograd.forward_ad as fwAD

    assert not _wrapper.composition_needed()
    with fwAD.dual_level():
        assert _wrapper.composition_needed()
    assert not _wrapper.composition_needed()


# -- torch.autocast -----------------------------------------------------------------------------


def test_autocast_cpu_gives_eager_dtype_and_values(cpu_path):
    x = make((2, 3, 9, 8), torch.float32, "contiguous", seed=70)
    w = make((4, 3, 3, 3), torch.float32, "contiguous", seed=71, scale=0.5)
    b = make((4,), torch.float32, "contiguous", seed=72)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
        expected = reference(x, w, b, 1, 1)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, **TOLERANCES[torch.bfloat16])
    assert ts.ops.conv2d_bias_relu(x, w, b, 1, 1).dtype == torch.float32  # outside: as given


@pytest.mark.parametrize("padding", [1, "same"])
def test_autocast_cpu_takes_mixed_dtypes(padding):
    """bfloat16 input, float32 weight and bias: cast as conv2d's are (this raised)."""
    x = make((1, 3, 7, 7), torch.bfloat16, "channels_last", seed=73)
    w = make((4, 3, 3, 3), torch.float32, "contiguous", seed=74)
    b = make((4,), torch.float32, "contiguous", seed=75)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ts.ops.conv2d_bias_relu(x, w, b, padding=padding)
        expected = reference(x, w, b, 1, padding)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, **TOLERANCES[torch.bfloat16])
    with pytest.raises(RuntimeError, match=r"argument 'weight' to have the dtype of 'input'"):
        ts.ops.conv2d_bias_relu(x, w, b, padding=padding)  # outside autocast: as before


def test_autocast_cpu_leaves_float64_alone():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ts.ops.conv2d_bias_relu(x, w, None, 1, 1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, reference(x, w, None, 1, 1))


def test_autocast_cpu_training_gives_float32_gradients_like_eager():
    x = make((2, 3, 8, 8), torch.float32, "contiguous", seed=76, requires_grad=True)
    w = make((4, 3, 3, 3), torch.float32, "contiguous", seed=77, requires_grad=True, scale=0.5)
    b = make((4,), torch.float32, "contiguous", seed=78, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
        expected = reference(x, w, b, 1, 1)
    assert out.dtype == torch.bfloat16
    grad = torch.where(expected > 0, 1.0, 0.0).to(torch.bfloat16) * (out > 0)
    got = torch.autograd.grad(out, (x, w, b), grad)
    want = torch.autograd.grad(expected, (x, w, b), grad)
    for g_got, g_want in zip(got, want, strict=True):
        assert g_got.dtype == g_want.dtype == torch.float32
        torch.testing.assert_close(g_got, g_want, atol=5e-2, rtol=2e-2)


def test_autocast_under_torch_compile():
    def layer(x, w, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ts.ops.conv2d_bias_relu(x, w, b, 1, 1)

    x, w, b = torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.randn(4)
    torch._dynamo.reset()
    out = torch.compile(layer, fullgraph=True, backend="aot_eager")(x, w, b)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, layer(x, w, b))


def test_autocast_on_the_fallback_path(monkeypatch):
    monkeypatch.setattr(_native, "LOADED", False)
    monkeypatch.setattr(_native, "_warned", True)
    x = torch.randn(1, 3, 6, 6, dtype=torch.bfloat16)
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
        expected = reference(x, w, b, 1, 1)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected)


@native
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_opcheck_forward(layout, dtype):
    x = make((2, 4, 7, 6), dtype, layout, seed=8, requires_grad=True)
    w = make((6, 2, 3, 3), dtype, layout, seed=9, requires_grad=True)
    b = make((6,), dtype, "contiguous", seed=10, requires_grad=True)
    for bias in (b, None):
        torch.library.opcheck(
            torch.ops.torchscope.conv2d_bias_relu.default,
            (x, w, bias, [2, 1], [1, 0], [1, 1], 2),
        )


@native
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck_backward(layout):
    x = make((2, 4, 7, 6), torch.float32, layout, seed=11)
    w = make((6, 4, 3, 3), torch.float32, layout, seed=12)
    args = ([1, 1], [1, 1], [1, 1], 1)
    torch.library.opcheck(
        torch.ops.torchscope.conv2d_bias_relu_with_mask.default, (x, w, None, *args)
    )
    out, mask = torch.ops.torchscope.conv2d_bias_relu_with_mask(x, w, None, *args)
    grad = torch.randn_like(out)
    for output_mask in ([True, True, True], [False, True, False]):
        torch.library.opcheck(
            torch.ops.torchscope.conv2d_bias_relu_backward.default,
            (grad, mask, x, w, *args, output_mask),
        )


@native
@pytest.mark.parametrize(
    "name", ["conv2d_bias_relu", "conv2d_bias_relu_with_mask", "conv2d_bias_relu_backward"]
)
def test_ops_are_tagged_pt2_compliant(name):
    """Declared with pt2_compliant_tag (csrc/torchscope.cpp), which the opchecks above back."""
    assert torch.Tag.pt2_compliant_tag in getattr(torch.ops.torchscope, name).default.tags


def _layer(x, w, b):
    return ts.ops.conv2d_bias_relu(x, w, b, stride=1, padding="same").sum(dim=1)


def test_compile_fullgraph_no_graph_breaks():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    explanation = torch._dynamo.explain(_layer)(x, w, b)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1

    torch._dynamo.reset()
    compiled = torch.compile(_layer, fullgraph=True)
    out = compiled(x, w, b)
    expected = reference(x, w, b, 1, 1).sum(dim=1)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (x, w, b))
    want = torch.autograd.grad(expected.square().sum(), (x, w, b))
    for got, exp in zip(grads, want, strict=True):
        # Without the extension, inductor compiles the fallback's conv + relu itself, and
        # its float32 gradient sums differ from eager's by up to about 2e-5.
        torch.testing.assert_close(got, exp, rtol=1e-4, atol=1e-4)


def test_compile_channels_last_with_dynamic_shapes():
    compiled = torch.compile(_layer, fullgraph=True, backend="aot_eager", dynamic=True)
    w = torch.randn(4, 3, 3, 3).to(memory_format=torch.channels_last)
    b = torch.randn(4)
    for size in (6, 9):
        x = torch.randn(1, 3, size, size).to(memory_format=torch.channels_last)
        torch.testing.assert_close(compiled(x, w, b), reference(x, w, b, 1, 1).sum(dim=1))


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return ts.ops.conv2d_bias_relu(x, self.conv.weight, self.conv.bias, 1, 1)


def test_export():
    block = _Block()
    x = torch.randn(2, 3, 8, 8)
    exported = torch.export.export(block, (x,))
    if ts.ops.native_available():
        targets = [n.target for n in exported.graph.nodes if n.op == "call_function"]
        assert torch.ops.torchscope.conv2d_bias_relu.default in targets
    x2 = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(exported.module()(x2), block(x2))


def test_export_with_dynamic_shapes():
    block = _Block()
    dims = {0: torch.export.Dim("n"), 2: torch.export.Dim("h", min=3), 3: torch.export.Dim("w")}
    exported = torch.export.export(block, (torch.randn(2, 3, 8, 8),), dynamic_shapes={"x": dims})
    x = torch.randn(3, 3, 11, 7)
    torch.testing.assert_close(exported.module()(x), block(x))


def test_saved_for_backward_is_no_more_than_eager():
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    w = torch.randn(8, 3, 3, 3, requires_grad=True)
    b = torch.randn(8, requires_grad=True)

    def saved(fn):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(storages.values())

    fused = saved(lambda: ts.ops.conv2d_bias_relu(x, w, b, 1, 1))
    eager = saved(lambda: reference(x, w, b, 1, 1))
    assert fused <= eager
    if ts.ops.native_available():  # input, weight and a 1-bit relu mask; not the output
        assert fused == x.nbytes + w.nbytes + (2 * 8 * 16 * 16) // 8


# -------------------------------------------------------- padding arguments


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_padding_same_and_valid():
    x = torch.randn(2, 3, 7, 6)
    b = torch.randn(4)
    for kernel, dilation in ((3, 1), (4, 1), (2, 3), (5, 2)):
        w = torch.randn(4, 3, kernel, kernel)
        out = ts.ops.conv2d_bias_relu(x, w, b, padding="same", dilation=dilation)
        torch.testing.assert_close(out, reference(x, w, b, 1, "same", dilation))
        assert out.shape[-2:] == x.shape[-2:]
    w = torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(
        ts.ops.conv2d_bias_relu(x, w, b, 2, "valid"), reference(x, w, b, 2, 0)
    )


def test_unbatched_input_follows_conv2d():
    x = torch.randn(3, 6, 6)
    w = torch.randn(4, 3, 3, 3)
    out = ts.ops.conv2d_bias_relu(x, w, None, padding=1)
    assert out.shape == (4, 6, 6)
    torch.testing.assert_close(out, reference(x, w, None, 1, 1))


def test_nan_propagation(cpu_path):
    x = torch.randn(1, 2, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    w = torch.randn(3, 2, 1, 1)
    out = ts.ops.conv2d_bias_relu(x, w, torch.randn(3))
    # Every path follows torch.relu: NaN stays NaN (oneDNN's relu post-op, which maps
    # NaN to 0, is not used for a call whose input holds one).
    assert out[0, :, 1, 1].isnan().all()
    assert not out[0, :, 0, 0].isnan().any()
    # Training (autograd records the op): the relu runs in the mask pass, NaN stays.
    trained = ts.ops.conv2d_bias_relu(x, w.requires_grad_(), torch.randn(3))
    assert trained[0, :, 1, 1].isnan().all()


@native
def test_small_outputs_skip_the_post_op_and_large_ones_take_it():
    """The default split (32768 output elements): both sides give eager's numbers."""
    from torchscope import _C

    with _knobs.cpu_path(post_op_min_elements=-1) as replaced:  # -1: the default
        assert replaced.post_op_min_elements == 32768  # the default, unchanged
        for hw in (8, 64):  # 8 * 8 * 8 = 512 and 8 * 64 * 64 = 32768 output elements
            x = torch.randn(1, 3, hw, hw)
            w, b = torch.randn(8, 3, 1, 1), torch.randn(8)
            # A huge finite weight: the post-op's overflow bound sends the call to the
            # relu pass; the results tell the paths apart (-1 below: post-op taken).
            huge = w.clone()
            huge[0, 0, 0, 0] = 3e38
            taken = _C._post_op_calls()
            torch.testing.assert_close(ts.ops.conv2d_bias_relu(x, w, b), reference(x, w, b, 1, 0))
            assert _C._post_op_calls() - taken == (1 if hw == 64 else 0)
            ts.ops.conv2d_bias_relu(x, huge, b)
            assert _C._post_op_calls() - taken == (1 if hw == 64 else 0)


# ---------------------------------------------------------------- the CPU path switches


@native
def test_the_cpu_path_switches_are_functions_of_the_library_not_ops():
    """torch.ops.torchscope holds the three ops only; the switches live in torchscope._C."""
    from torchscope import _C

    declared = {
        s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith("torchscope::")
    }
    assert declared == {OP, f"{OP}_with_mask", f"{OP}_backward"}
    for name in ("_set_cpu_onednn", "_set_cpu_post_op_min_elements"):
        assert callable(getattr(_C, name))
        with pytest.raises(AttributeError):
            getattr(torch.ops.torchscope, name)


@native
def test_cpu_path_restores_what_it_replaced_even_on_error():
    with _knobs.cpu_path(onednn=False, post_op_min_elements=5) as outer:
        assert outer == (True, 32768)
        with pytest.raises(KeyError), _knobs.cpu_path(onednn=True, post_op_min_elements=7):
            raise KeyError("inside")
        with _knobs.cpu_path(onednn=False, post_op_min_elements=5) as inner:
            assert inner == (False, 5)
        with _knobs.cpu_path() as untouched:  # nothing asked, nothing changed
            assert untouched == (None, None)
    with _knobs.cpu_path(onednn=True, post_op_min_elements=-1) as after:
        assert after == (True, 32768)


@native
def test_cpu_path_switches_check_their_arguments():
    from torchscope import _C

    with pytest.raises(
        TypeError, match=r"_set_cpu_onednn: expected argument 'enabled' to be a bool, but got 1"
    ):
        _C._set_cpu_onednn(1)
    with pytest.raises(TypeError, match=r"'elements' to be an int, but got True"):
        _C._set_cpu_post_op_min_elements(True)
    with pytest.raises(OverflowError):
        _C._set_cpu_post_op_min_elements(2**70)
    with (
        pytest.raises(TypeError, match="'elements' to be an int"),
        _knobs.cpu_path(onednn=False, post_op_min_elements=1.5),
    ):
        pass  # the switch that was set before the error is restored
    with _knobs.cpu_path(onednn=True) as after:
        assert after.onednn is True


def test_cpu_path_needs_the_library(monkeypatch):
    monkeypatch.setattr(_native, "LOADED", False)
    monkeypatch.setattr(_native, "REASON", "simulated for the test")
    with (
        pytest.raises(
            RuntimeError, match=r"torchscope._C is not loaded \(simulated for the test\)"
        ),
        _knobs.cpu_path(onednn=False),
    ):
        pass


# ---------------------------------------------------------------- bad inputs

BAD_INPUTS = [
    (
        "channel mismatch",
        dict(x=(1, 3, 5, 5), w=(4, 2, 3, 3)),
        r"argument 'input' to have weight\.size\(1\) \* groups = 2 \* 1 = 2 channels \(dim 1\), "
        r"but got 3 channels",
    ),
    (
        "bias length",
        dict(b=(5,)),
        r"argument 'bias' to be a 1-D tensor of 4 elements .* but got a tensor of shape \[5\]",
    ),
    ("bias rank", dict(b=(4, 1)), r"argument 'bias' to be a 1-D tensor of 4 elements"),
    (
        "input rank",
        dict(x=(1, 1, 3, 5, 5)),
        r"argument 'input' to be a 4-D \(N, C, H, W\) or 3-D \(C, H, W\) tensor, but got a "
        r"5-D tensor of shape \[1, 1, 3, 5, 5\]",
    ),
    ("weight rank", dict(w=(4, 3, 3)), r"argument 'weight' to be a 4-D tensor .* but got a 3-D"),
    (
        "weight dtype",
        dict(w_dtype=torch.float64),
        r"argument 'weight' to have the dtype of 'input' \(torch\.float32\), "
        r"but got torch\.float64",
    ),
    (
        "bias dtype",
        dict(b_dtype=torch.bfloat16),
        r"argument 'bias' to have the dtype of 'input' \(torch\.float32\), but got torch\.bfloat16",
    ),
    (
        "integer input",
        dict(x_dtype=torch.int64),
        r"argument 'input' to have a floating-point dtype, but got torch\.int64",
    ),
    ("groups", dict(groups=0), r"argument 'groups' to be a positive integer, but got 0"),
    (
        "groups vs output channels",
        dict(x=(1, 4, 5, 5), w=(3, 2, 3, 3), groups=2),
        r"argument 'weight' to have a number of output channels \(dim 0\) divisible by groups = 2",
    ),
    ("stride", dict(stride=0), r"argument 'stride' to be 2 positive integers, but got \[0, 0\]"),
    ("padding", dict(padding=-1), r"argument 'padding' to be 2 non-negative integers"),
    ("dilation", dict(dilation=(1, 0)), r"argument 'dilation' to be 2 positive integers"),
    (
        "kernel larger than input",
        dict(x=(1, 3, 2, 5)),
        r"argument 'input' to be at least as large as the dilated kernel of 'weight' after "
        r"padding, but got padded size 2 < kernel size 3 in spatial dim 0",
    ),
]


def _bad_call(
    device,
    *,
    x=(1, 3, 5, 5),
    w=(4, 3, 3, 3),
    b=(4,),
    groups=1,
    stride=1,
    padding=0,
    dilation=1,
    x_dtype=torch.float32,
    w_dtype=None,
    b_dtype=None,
):
    make_ = lambda shape, dtype: torch.ones(shape, dtype=dtype, device=device)  # noqa: E731
    return lambda: ts.ops.conv2d_bias_relu(
        make_(x, x_dtype),
        make_(w, w_dtype or x_dtype),
        make_(b, b_dtype or x_dtype),
        stride,
        padding,
        dilation,
        groups,
    )


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_bad_inputs_name_the_argument(case, device):
    """The C++ checks (cpu) and the fake kernel's (meta) fail alike."""
    _, kwargs, message = case
    with pytest.raises(RuntimeError, match=rf"torchscope::conv2d_bias_relu: expected {message}"):
        _bad_call(device, **kwargs)()


def test_cpp_and_fake_messages_are_identical():
    for _, kwargs, _ in BAD_INPUTS:
        messages = []
        for device in ("cpu", "meta"):
            with pytest.raises(RuntimeError) as info:
                _bad_call(device, **kwargs)()
            messages.append(str(info.value).splitlines()[0])
        assert messages[0] == messages[1]


def test_mixed_devices():
    x = torch.ones(1, 3, 5, 5)
    w = torch.ones(4, 3, 3, 3, device="meta")
    with pytest.raises(
        RuntimeError,
        match=r"argument 'weight' to be on the device of 'input' \(cpu\), but got meta",
    ):
        ts.ops.conv2d_bias_relu(x, w, None)
    with pytest.raises(
        RuntimeError, match=r"argument 'bias' to be on the device of 'input' \(cpu\), but got meta"
    ):
        ts.ops.conv2d_bias_relu(x, torch.ones(4, 3, 3, 3), torch.ones(4, device="meta"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(padding="full"),
            r"argument 'padding' must be an int, a pair of ints, 'valid' or 'same', got 'full'",
        ),
        (dict(padding="same", stride=2), r"padding='same' needs stride 1"),
        (
            dict(stride=(1, 2, 3)),
            r"argument 'stride' must be an int or a pair of ints, got \(1, 2, 3\)",
        ),
        (dict(dilation=1.5), r"argument 'dilation' must be an int or a pair of ints, got 1\.5"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ts.ops.conv2d_bias_relu(torch.ones(1, 3, 5, 5), torch.ones(4, 3, 3, 3), None, **kwargs)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize(
    "x, w, kwargs, message",
    [
        (  # "same" with an even kernel pads the input (to [1, 4, 7, 7]) after the checks
            (1, 4, 6, 6),
            (2, 3, 4, 4),
            dict(padding="same"),
            r"argument 'input' to have weight\.size\(1\) \* groups = 3 \* 1 = 3 channels "
            r"\(dim 1\), but got 4 channels "
            r"\(input shape \[1, 4, 6, 6\], weight shape \[2, 3, 4, 4\]\)",
        ),
        (  # unbatched: the caller's 3-D shape, channels at dim 0
            (3, 5, 5),
            (4, 2, 3, 3),
            dict(padding=1),
            r"argument 'input' to have weight\.size\(1\) \* groups = 2 \* 1 = 2 channels "
            r"\(dim 0\), but got 3 channels "
            r"\(input shape \[3, 5, 5\], weight shape \[4, 2, 3, 3\]\)",
        ),
        (
            (3, 2, 5),
            (4, 3, 3, 3),
            dict(),
            r"argument 'input' to be at least as large as the dilated kernel of 'weight' after "
            r"padding, but got padded size 2 < kernel size 3 in spatial dim 0 "
            r"\(input shape \[3, 2, 5\], weight shape \[4, 3, 3, 3\], padding \[0, 0\], "
            r"dilation \[1, 1\]\)",
        ),
        (
            (1, 3, 0, 5),
            (4, 3, 2, 2),
            dict(padding="same"),
            r"argument 'input' to be at least as large as the dilated kernel of 'weight' after "
            r"padding, but got padded size 1 < kernel size 2 in spatial dim 0 "
            r"\(input shape \[1, 3, 0, 5\], weight shape \[4, 3, 2, 2\], padding 'same', "
            r"dilation \[1, 1\]\)",
        ),
        (  # a 1-D input got F.pad's message
            (5,),
            (4, 3, 2, 2),
            dict(padding="same"),
            r"argument 'input' to be a 4-D \(N, C, H, W\) or 3-D \(C, H, W\) tensor, but got a "
            r"1-D tensor of shape \[5\]",
        ),
        (
            (3, 5, 5),
            (4, 3, 3, 3),
            dict(bias=(3,)),
            r"argument 'bias' to be a 1-D tensor of 4 elements .* but got a tensor of shape \[3\]",
        ),
    ],
    ids=["same-even-kernel", "unbatched-channels", "unbatched-size", "same-empty", "1-D", "bias"],
)
def test_messages_show_the_callers_shapes(x, w, kwargs, message):
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", None)
    args = (torch.ones(x), torch.ones(w), None if bias is None else torch.ones(bias))
    with pytest.raises(RuntimeError, match=rf"^torchscope::conv2d_bias_relu: expected {message}"):
        ts.ops.conv2d_bias_relu(*args, **kwargs)


@native
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_op_itself_takes_4d_input_only(device):
    """torch.ops.torchscope.conv2d_bias_relu (C++ and fake kernel) is 4-D only; the
    wrapper batches 3-D input."""
    with pytest.raises(
        RuntimeError,
        match=r"argument 'input' to be a 4-D tensor \(N, C, H, W\), but got a 3-D tensor of "
        r"shape \[3, 5, 5\]",
    ):
        torch.ops.torchscope.conv2d_bias_relu(
            torch.ones(3, 5, 5, device=device),
            torch.ones(4, 3, 3, 3, device=device),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )


@pytest.mark.parametrize(
    "kwargs, eager",
    [
        (dict(stride=[2]), dict(stride=2)),
        (dict(stride=(2,), padding=[1], dilation=[2]), dict(stride=2, padding=1, dilation=2)),
        (dict(stride=[2, 1], padding=(1, 0)), dict(stride=(2, 1), padding=(1, 0))),
    ],
    ids=["stride-list-of-1", "all-of-1", "pairs"],
)
def test_length_one_lists_as_conv2d(kwargs, eager):
    x, w, b = torch.randn(1, 3, 7, 6), torch.randn(4, 3, 3, 3), torch.randn(4)
    torch.testing.assert_close(
        ts.ops.conv2d_bias_relu(x, w, b, **kwargs), reference(x, w, b, **eager)
    )


def test_numpy_integers_as_conv2d():
    np = pytest.importorskip("numpy")
    x, w, b = torch.randn(1, 4, 7, 6), torch.randn(4, 2, 3, 3), torch.randn(4)
    out = ts.ops.conv2d_bias_relu(
        x, w, b, np.int64(2), (np.int32(1), 0), [np.int64(1)], np.int64(2)
    )
    torch.testing.assert_close(out, reference(x, w, b, 2, (1, 0), 1, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stride=True), r"argument 'stride' must be an int or a pair of ints, got True"),
        (dict(stride=[2.0]), r"argument 'stride' must be an int or a pair of ints, got \[2\.0\]"),
        (dict(padding=[]), r"argument 'padding' must be an int or a pair of ints, got \[\]"),
        (dict(dilation=(1, False)), r"argument 'dilation' must be .* got \(1, False\)"),
        (dict(stride="2"), r"argument 'stride' must be an int or a pair of ints, got '2'"),
    ],
)
def test_bools_floats_and_wrong_lengths_still_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ts.ops.conv2d_bias_relu(torch.ones(1, 3, 5, 5), torch.ones(4, 3, 3, 3), None, **kwargs)


@native
@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(
    "which, bad, message",
    [
        (
            0,
            torch.ones(1, 4, 3, 4),
            r"argument 'grad_output' to have the output's shape \[1, 4, 3, 3\], "
            r"but got \[1, 4, 3, 4\]",
        ),
        (
            1,
            torch.ones(1, 4, 3, 3),
            r"argument 'mask' to be the relu mask of the output \(1-D, torch.uint8, 5 bytes\), "
            r"but got a torch.float32 tensor of shape \[1, 4, 3, 3\]",
        ),
        (
            1,
            torch.ones(4, dtype=torch.uint8),
            r"argument 'mask' to be the relu mask of the output \(1-D, torch.uint8, 5 bytes\), "
            r"but got a torch.uint8 tensor of shape \[4\]",
        ),
    ],
    ids=["grad_output-shape", "mask-is-the-output", "mask-length"],
)
def test_backward_op_checks_its_arguments(device, which, bad, message):
    x = torch.ones(1, 3, 5, 5)
    w = torch.ones(4, 3, 3, 3)
    args = [torch.ones(1, 4, 3, 3), torch.ones(5, dtype=torch.uint8), x, w]
    args[which] = bad
    args = [t.to(device) for t in args]
    with pytest.raises(
        RuntimeError, match=rf"torchscope::conv2d_bias_relu_backward: expected {message}"
    ):
        torch.ops.torchscope.conv2d_bias_relu_backward(*args, [1, 1], [0, 0], [1, 1], 1, [True] * 3)


# ------------------------------------------------------------ fallback path


def test_fallback_warns_once_and_matches(monkeypatch):
    monkeypatch.setattr(_native, "LOADED", False)
    monkeypatch.setattr(_native, "REASON", "simulated for the test")
    monkeypatch.setattr(_native, "_warned", False)
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    w = torch.randn(4, 3, 3, 3)
    b = torch.randn(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ts.ops.conv2d_bias_relu(x, w, b, padding="same")
        second = ts.ops.conv2d_bias_relu(x, w, b, padding=1)
    fallback = [c for c in caught if issubclass(c.category, ts.ops.NativeExtensionWarning)]
    assert len(fallback) == 1
    assert "simulated for the test" in str(fallback[0].message)
    assert "pure PyTorch" in str(fallback[0].message)
    assert not ts.ops.native_available()
    torch.testing.assert_close(first, reference(x, w, b, 1, 1))
    torch.testing.assert_close(second, first)
    first.sum().backward()
    assert x.grad is not None
    with pytest.raises(RuntimeError, match=r"argument 'bias' to be a 1-D tensor of 4 elements"):
        ts.ops.conv2d_bias_relu(x, w, torch.ones(3))


def test_fallback_when_extension_is_disabled_in_a_fresh_process():
    code = (
        "import warnings, torch, torchscope as ts\n"
        "warnings.simplefilter('always')\n"
        "assert not ts.ops.native_available()\n"
        "x, w = torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        "        out = ts.ops.conv2d_bias_relu(x, w, None, padding=1)\n"
        "assert len(caught) == 1, caught\n"
        "print(caught[0].message)\n"
        "assert torch.equal(out, torch.relu(torch.nn.functional.conv2d(x, w, None, 1, 1)))\n"
    )
    env = dict(os.environ, TORCHSCOPE_DISABLE_NATIVE="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "TORCHSCOPE_DISABLE_NATIVE=1 is set" in result.stdout


@native
def test_device_without_a_kernel_falls_back_and_warns_once(monkeypatch):
    monkeypatch.setattr(_native, "KERNEL_DEVICES", frozenset({"meta"}))  # as if no CPU kernel
    monkeypatch.setattr(_native, "_warned_devices", set())
    x = torch.randn(1, 3, 6, 6)
    w = torch.randn(4, 3, 3, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            out = ts.ops.conv2d_bias_relu(x, w, None, padding=1)
    assert [str(c.message) for c in caught] == [
        "torchscope: torchscope._C has no cpu kernel (built without it); "
        "torchscope.ops.conv2d_bias_relu runs as relu(conv2d(...)) in pure PyTorch on cpu"
    ]
    torch.testing.assert_close(out, reference(x, w, None, 1, 1))


# -- torch.func ------------------------------------------------------------------------------------


def _composite(x, w, b):
    return F.relu(F.conv2d(x, w, b, 1, 1))


def test_torch_func_grad_jacrev_and_vmap_match_the_composition():
    """The C++ autograd function cannot run under torch.func transforms; the op runs the
    composition of the same ops there, so grad, jacrev and vmap work and agree."""
    from torch.func import grad, jacrev, vmap

    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)

    def fused_loss(w, b):
        return ts.ops.conv2d_bias_relu(x, w, b, padding=1).square().sum()

    def eager_loss(w, b):
        return _composite(x, w, b).square().sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the library is not missing
        gw, gb = grad(fused_loss, argnums=(0, 1))(w, b)
        jb = jacrev(lambda b: ts.ops.conv2d_bias_relu(x[:1], w, b, padding=1).sum((0, 2, 3)))(b)
        batched = vmap(lambda xi: ts.ops.conv2d_bias_relu(xi, w, b, padding=1))(x.unsqueeze(1))
    ew, eb = grad(eager_loss, argnums=(0, 1))(w, b)
    torch.testing.assert_close(gw, ew)
    torch.testing.assert_close(gb, eb)
    expected_jb = jacrev(lambda b: _composite(x[:1], w, b).sum((0, 2, 3)))(b)
    torch.testing.assert_close(jb, expected_jb)
    torch.testing.assert_close(batched.squeeze(1), ts.ops.conv2d_bias_relu(x, w, b, padding=1))
