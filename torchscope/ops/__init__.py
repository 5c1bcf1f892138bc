"""Fused operations: ``conv2d_bias_relu``, backed by the compiled operator library.

``torch.ops.torchscope.conv2d_bias_relu`` is declared in C++ (``csrc/``), with a
CPU kernel (oneDNN's convolution with a fused bias+relu post-op, or
``at::convolution`` followed by a one-pass epilogue) and a CUDA kernel (cuDNN's
convolution followed by the same epilogue), and its autograd formula is
registered in C++ too: when a graph is recorded, the forward is
``torch.ops.torchscope.conv2d_bias_relu_with_mask``, which also returns the
1-bit relu mask that is saved for backward instead of the output, and the
backward is ``torch.ops.torchscope.conv2d_bias_relu_backward`` (or, when the
backward is itself recorded, ``create_graph=True``, the same computation in
differentiable ATen ops, so that double backward works). Under ``torch.autocast``
its autocast kernels cast the arguments as ATen's ``conv2d`` does. This package adds
what PyTorch needs in Python, one job per module: ``_wrapper`` (the typed Python
function: argument resolution, the call of the op or of the composition), ``_fake``
(the fake kernels, shapes, strides and argument checks for ``torch.compile`` and
``torch.export``, registered on import), ``_knobs`` (the CPU kernel's path switches
for tests and benchmarks). ``torchscope._native`` loads the library.

Without the compiled library (see :func:`native_available`), the same function
computes ``relu(conv2d(...))`` with plain PyTorch and warns once. It does so too
where the C++ autograd function cannot serve: under ``torch.func`` transforms and
forward-mode AD (``torch.autograd.forward_ad``).

>>> x, w = torch.randn(1, 2, 5, 5), torch.randn(4, 2, 3, 3)
>>> torch.allclose(ts.ops.conv2d_bias_relu(x, w, None, padding=1),
...                torch.relu(torch.nn.functional.conv2d(x, w, padding=1)), atol=1e-5)
True
"""

from .._native import NativeExtensionWarning
from . import _fake  # noqa: F401 (registers the fake kernels)
from ._wrapper import conv2d_bias_relu, native_available

__all__ = ["NativeExtensionWarning", "conv2d_bias_relu", "native_available"]
