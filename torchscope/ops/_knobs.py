"""Switches of the CPU kernel's paths, for tests and benchmarks, set for a ``with`` block.

The CPU forward of ``torch.ops.torchscope.conv2d_bias_relu`` without autograd takes
oneDNN's post-op convolution for float32/bfloat16 outputs of 32768 elements or more,
ATen's convolution and a relu pass for smaller ones, and the generic epilogue
(``at::convolution`` and one bias+relu pass) for everything else
(csrc/cpu/conv2d_bias_relu_cpu.cpp). Tests run each path whatever their sizes, and
``bench/conv.py`` times the generic one beside oneDNN's. The switches are plain
functions of the compiled module ``torchscope._C``, not ops: they are not part of the
op library, and ``torch.ops.torchscope`` holds the ops only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

from .. import _native

NOT_LOADED_MESSAGE = (
    "torchscope.ops._knobs.cpu_path: the compiled operator library torchscope._C is not "
    "loaded ({reason}); its CPU path switches exist only there. Check "
    "ts.ops.native_available() first"
)


class Replaced(NamedTuple):
    """The settings a :func:`cpu_path` block replaced (None: not changed by it)."""

    onednn: bool | None
    post_op_min_elements: int | None


@contextlib.contextmanager
def cpu_path(
    *, onednn: bool | None = None, post_op_min_elements: int | None = None
) -> Iterator[Replaced]:
    """Sets the CPU kernel's path switches for the block; restores them on exit.

    Args:
        onednn: whether the CPU forward may take oneDNN's fused post-op path
            (default ``True``); ``False`` forces the generic epilogue. None: unchanged.
        post_op_min_elements: the smallest output, in elements, that takes the
            post-op path (default 32768); ``0`` sends every size there, a negative
            value restores the default. None: unchanged.

    Yields:
        The values the block replaced, which it restores on exit, exception or not.

    Raises:
        RuntimeError: when the compiled library is not loaded.

    Example:
        >>> from torchscope.ops._knobs import cpu_path
        >>> x, w = torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)
        >>> if ts.ops.native_available():
        ...     with cpu_path(onednn=False, post_op_min_elements=-1) as replaced:
        ...         y = ts.ops.conv2d_bias_relu(x, w, None)  # the generic epilogue
        ...     assert replaced == (True, 32768), replaced
    """
    if not _native.LOADED:
        raise RuntimeError(NOT_LOADED_MESSAGE.format(reason=_native.REASON))
    from .. import _C

    with contextlib.ExitStack() as restore:
        previous_onednn = previous_min = None
        if onednn is not None:
            previous_onednn = _C._set_cpu_onednn(onednn)
            restore.callback(_C._set_cpu_onednn, previous_onednn)
        if post_op_min_elements is not None:
            previous_min = _C._set_cpu_post_op_min_elements(post_op_min_elements)
            restore.callback(_C._set_cpu_post_op_min_elements, previous_min)
        yield Replaced(previous_onednn, previous_min)
