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

import importlib
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


_UNCHANGED = Replaced(None, None)


def cpu_path(*, onednn: bool | None = None, post_op_min_elements: int | None = None) -> CpuPath:
    """Sets the CPU kernel's path switches for a ``with`` block; restores them on exit.

    Args:
        onednn: whether the CPU forward may take oneDNN's fused post-op path
            (default ``True``); ``False`` forces the generic epilogue. None: unchanged.
        post_op_min_elements: the smallest output, in elements, that takes the
            post-op path (default 32768); ``0`` sends every size there, a negative
            value restores the default. None: unchanged.

    Returns:
        A context manager; entering it sets the switches and gives the values they
        replaced, which leaving it restores, exception or not.

    Raises:
        RuntimeError: on entering, when the compiled library is not loaded.

    Example:
        >>> from torchscope.ops._knobs import cpu_path
        >>> x, w = torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)
        >>> if ts.ops.native_available():
        ...     with cpu_path(onednn=False, post_op_min_elements=-1) as replaced:
        ...         y = ts.ops.conv2d_bias_relu(x, w, None)  # the generic epilogue
        ...     assert replaced == (True, 32768), replaced
    """
    return CpuPath(onednn, post_op_min_elements)


class CpuPath:
    """What :func:`cpu_path` returns. A class rather than a generator: bench/conv.py
    enters one around every call of its generic-path variant, whose timing includes it."""

    __slots__ = ("_library", "_onednn", "_post_op_min_elements", "_replaced")

    def __init__(self, onednn: bool | None, post_op_min_elements: int | None) -> None:
        self._onednn = onednn
        self._post_op_min_elements = post_op_min_elements
        self._replaced = _UNCHANGED

    def __enter__(self) -> Replaced:
        if not _native.LOADED:
            raise RuntimeError(NOT_LOADED_MESSAGE.format(reason=_native.REASON))
        _C = importlib.import_module("torchscope._C")  # compiled: untyped

        self._library = _C
        if self._onednn is not None:
            self._replaced = Replaced(_C._set_cpu_onednn(self._onednn), None)
        if self._post_op_min_elements is not None:
            try:
                elements = _C._set_cpu_post_op_min_elements(self._post_op_min_elements)
            except BaseException:
                self.__exit__()  # puts back the oneDNN switch
                raise
            self._replaced = self._replaced._replace(post_op_min_elements=elements)
        return self._replaced

    def __exit__(self, *exc: object) -> None:
        """Restores what ``__enter__`` replaced, in the reverse order."""
        onednn, elements = self._replaced
        if elements is not None:
            self._library._set_cpu_post_op_min_elements(elements)
        if onednn is not None:
            self._library._set_cpu_onednn(onednn)
