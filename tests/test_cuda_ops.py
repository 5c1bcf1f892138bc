"""conv2d_bias_relu on CUDA (cuDNN convolution + the CUDA epilogue kernels).

Skipped where torch sees no GPU; run them on a machine with one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torchscope as ts

pytestmark = [
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="CUDA not available (no GPU on this machine)"
    ),
    pytest.mark.skipif(
        not ts.ops.native_available(), reason="compiled extension torchscope._C not built"
    ),
]

TOLERANCES = {
    torch.float32: dict(atol=2e-3, rtol=2e-3),  # TF32 may be on for cuDNN
    torch.float64: dict(atol=1e-9, rtol=1e-9),
    torch.float16: dict(atol=2e-2, rtol=2e-2),
    torch.bfloat16: dict(atol=1e-1, rtol=5e-2),
}


def reference(x, w, b, *args):
    return F.relu(F.conv2d(x, w, b, *args))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize(
    "geometry", [(1, 1, 1, 1), (2, (1, 0), (1, 2), 2)], ids=["plain", "strided"]
)
def test_matches_eager_on_cuda(layout, dtype, geometry):
    torch.manual_seed(0)
    dev = "cuda"
    x = torch.randn(2, 4, 9, 8, device=dev, dtype=dtype).to(memory_format=layout).requires_grad_()
    groups = geometry[3]
    w = torch.randn(6, 4 // groups, 3, 3, device=dev, dtype=dtype).to(memory_format=layout)
    w.requires_grad_()
    b = torch.randn(6, device=dev, dtype=dtype, requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, *geometry)
    expected = reference(x, w, b, *geometry)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    assert out.is_contiguous(memory_format=layout)
    grad = torch.randn_like(out) * (out > 0) * (expected > 0)
    for got, want in zip(
        torch.autograd.grad(out, (x, w, b), grad),
        torch.autograd.grad(expected, (x, w, b), grad),
        strict=True,
    ):
        torch.testing.assert_close(got, want, **TOLERANCES[dtype])


def test_large_channels_last_bias_gradient():
    x = torch.randn(4, 8, 64, 64, device="cuda").to(memory_format=torch.channels_last)
    w = torch.randn(96, 8, 3, 3, device="cuda").to(memory_format=torch.channels_last)
    b = torch.randn(96, device="cuda", requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1)
    grad = torch.randn_like(out)
    (gb,) = torch.autograd.grad(out, b, grad)
    torch.testing.assert_close(gb, (grad * (out > 0)).sum((0, 2, 3)), atol=1e-2, rtol=1e-4)


def relu_mask(output):
    """The relu mask of a dense ``output`` as csrc/epilogue.h defines it (as in test_ops.py)."""
    flat = ~(output.as_strided((output.numel(),), (1,)) <= 0)
    padded = torch.zeros((flat.numel() + 7) // 8 * 8, dtype=torch.uint8, device=output.device)
    padded[: flat.numel()] = flat
    shifts = torch.arange(8, device=output.device)
    return (padded.view(-1, 8).int() << shifts).sum(1).to(torch.uint8)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 13, 11, 5), (4, 8, 64, 64, 96)], ids=str)
def test_with_mask_bits_match_the_output(layout, shape):
    n, c_in, h, w_, c_out = shape
    x = torch.randn(n, c_in, h, w_, device="cuda").to(memory_format=layout)
    w = torch.randn(c_out, c_in, 3, 3, device="cuda").to(memory_format=layout)
    b = torch.randn(c_out, device="cuda")
    args = ([1, 1], [1, 1], [1, 1], 1)
    out, mask = torch.ops.torchscope.conv2d_bias_relu_with_mask(x, w, b, *args)
    assert torch.equal(out, torch.ops.torchscope.conv2d_bias_relu(x, w, b, *args))
    assert torch.equal(mask, relu_mask(out))
    torch.library.opcheck(torch.ops.torchscope.conv2d_bias_relu_with_mask.default, (x, w, b, *args))


def test_gradcheck_cuda_float64():
    x = torch.randn(1, 2, 5, 5, device="cuda", dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, device="cuda", dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, device="cuda", dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: ts.ops.conv2d_bias_relu(*a, 1, 1), (x, w, b))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=str)
def test_opcheck_cuda(layout):
    x = torch.randn(2, 4, 7, 6, device="cuda").to(memory_format=layout).requires_grad_()
    w = torch.randn(6, 2, 3, 3, device="cuda").to(memory_format=layout).requires_grad_()
    b = torch.randn(6, device="cuda", requires_grad=True)
    torch.library.opcheck(
        torch.ops.torchscope.conv2d_bias_relu.default, (x, w, b, [2, 1], [1, 0], [1, 1], 2)
    )


def test_compile_cuda():
    x = torch.randn(2, 3, 8, 8, device="cuda")
    w = torch.randn(4, 3, 3, 3, device="cuda")
    b = torch.randn(4, device="cuda")
    fn = torch.compile(lambda *a: ts.ops.conv2d_bias_relu(*a, 1, "same"), fullgraph=True)
    torch.testing.assert_close(fn(x, w, b), reference(x, w, b, 1, 1), atol=2e-3, rtol=2e-3)


def test_mixed_devices_name_the_argument():
    x = torch.randn(1, 3, 5, 5, device="cuda")
    with pytest.raises(
        RuntimeError,
        match=r"argument 'weight' to be on the device of 'input' \(cuda:0\), but got cpu",
    ):
        ts.ops.conv2d_bias_relu(x, torch.randn(4, 3, 3, 3), None)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=str)
def test_planes_and_rows_with_odd_sizes_and_strided_bias(layout):
    """Mask tails (27 and 15 elements per plane), an expanded bias, every gradient."""
    x = torch.randn(3, 2, 3, 5, device="cuda", dtype=torch.float64).to(memory_format=layout)
    w = torch.randn(5, 2, 1, 3, device="cuda", dtype=torch.float64).to(memory_format=layout)
    b = torch.randn(1, device="cuda", dtype=torch.float64).expand(5)
    args = ([1, 1], [0, 1], [1, 1], 1)
    out, mask = torch.ops.torchscope.conv2d_bias_relu_with_mask(x, w, b, *args)
    torch.testing.assert_close(out, reference(x, w, b, 1, (0, 1)))
    assert torch.equal(mask, relu_mask(out))
    grad = torch.randn_like(out)
    backward = torch.ops.torchscope.conv2d_bias_relu_backward
    gi, gw, gb = backward(grad, mask, x, w, *args, [True, True, True])
    masked = grad * (out > 0)
    torch.testing.assert_close(gb, masked.sum((0, 2, 3)))
    want_gi, want_gw, _ = torch.ops.aten.convolution_backward(
        masked, x, w, None, *args[:3], False, [0, 0], 1, [True, True, False]
    )
    torch.testing.assert_close(gi, want_gi)
    torch.testing.assert_close(gw, want_gw)


def test_empty_batch_on_cuda():
    x = torch.randn(0, 3, 6, 5, device="cuda", requires_grad=True)
    w = torch.randn(4, 3, 3, 3, device="cuda", requires_grad=True)
    b = torch.randn(4, device="cuda", requires_grad=True)
    out = ts.ops.conv2d_bias_relu(x, w, b, padding=1)
    assert out.shape == (0, 4, 6, 5)
    gx, gw, gb = torch.autograd.grad(out.sum(), (x, w, b))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w))
    assert torch.equal(gb, torch.zeros_like(b))
