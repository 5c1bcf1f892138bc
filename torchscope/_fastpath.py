"""Three steps on the paths every forward call takes, and where they come from.

Each is a small function here, in Python (``*_py``), and the same function in C in the
compiled module ``torchscope._fastpaths`` (``csrc/python/fastpaths.cpp``), which is
used when it was built: in a training loop the Python versions cost a few
microseconds per step that the C ones do not. ``torch.compile`` traces the Python
version in place of the C one, so compiled code has no graph break there. Tests
check that the two say the same on many inputs.

- :func:`same_shape_py`: ``get_variable``'s reuse path compares the shape it was given
  with the variable's.
- :func:`cached_scope_py`: re-entering a variable scope hands out the scope object the
  last entry made, if nothing else holds it.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import torch
from torch.compiler import is_compiling

from ._compile_hooks import when_dynamo_loads
from ._native import DISABLE_ENV

__all__ = [
    "cached_scope",
    "cached_scope_py",
    "compiled",
    "conv2d_bias_relu",
    "conv2d_bias_relu_py",
    "same_shape",
    "same_shape_py",
]


def same_shape_py(tensor: torch.Tensor, shape: Any, /) -> bool:
    """Whether ``shape``, a list or tuple, is exactly ``tensor``'s shape (False sends
    ``get_variable`` to its full check, which raises the error).

    >>> same_shape_py(torch.zeros(2, 3), [2, 3]), same_shape_py(torch.zeros(2, 3), [2, None])
    (True, False)
    """
    if type(shape) not in (list, tuple) or tensor.shape != tuple(shape):
        return False
    for dim in shape:  # equal, but the full path refuses these with a TypeError
        if dim.__class__ is not int and isinstance(dim, (bool, float, complex)):
            return False
    return True


def cached_scope_py(cache: dict, key: Any, /) -> Any:
    """``cache[key]`` if the dict ``cache`` holds the only reference to it, else None.

    TensorFlow makes a new scope object on every ``variable_scope`` entry. The cache
    hands out the last entry's object again only when no one can tell the difference:
    nothing holds it, neither a caller's ``as s`` nor an open entry, so that
    ``s.reuse_variables()`` in one entry never changes another entry's scope.

    >>> cache = {"a": object()}
    >>> cached_scope_py(cache, "a") is cache["a"]
    True
    >>> kept = cache["a"]
    >>> cached_scope_py(cache, "a") is None
    True
    """
    if type(cache) is not dict:
        raise TypeError(f"cached_scope's cache must be a dict, got {type(cache).__name__}")
    if is_compiling():  # traced code takes what is cached (see _traced_cached_scope)
        return cache.get(key)
    # Two references when only the cache holds it: the dict's and the argument's.
    if sys.getrefcount(cache.get(key)) > 2:
        return None  # held elsewhere (or missing: None has many references)
    return cache.get(key)


def _traced_cached_scope(cache: dict, key: Any, /) -> Any:
    """What ``torch.compile`` traces for the C ``cached_scope``: refcounts are not
    traceable, and the scopes a trace sees are guarded by identity anyway."""
    return cache.get(key)


def conv2d_bias_relu_py(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    /,
) -> Any:
    """``torch.ops.torchscope.conv2d_bias_relu.default(...)``, the arguments resolved
    (int pairs). The C version returns NotImplemented for what it leaves to this call:
    tensor subclasses, a torch function mode, arguments that are not int pairs."""
    return torch.ops.torchscope.conv2d_bias_relu.default(
        input, weight, bias, stride, padding, dilation, groups
    )


def _load() -> Any:
    if os.environ.get(DISABLE_ENV) == "1" or not hasattr(torch.compiler, "substitute_in_graph"):
        return None
    try:
        _fastpaths = importlib.import_module("torchscope._fastpaths")  # compiled: untyped
    except (ImportError, OSError):
        return None

    def register() -> None:
        torch.compiler.substitute_in_graph(_fastpaths.same_shape)(same_shape_py)
        torch.compiler.substitute_in_graph(_fastpaths.cached_scope)(_traced_cached_scope)
        torch.compiler.substitute_in_graph(_fastpaths.conv2d_bias_relu)(conv2d_bias_relu_py)

    when_dynamo_loads(register)
    return _fastpaths


_COMPILED = _load()
compiled: bool = _COMPILED is not None
"""Whether the C versions are in use."""

# The versions torchscope calls.
same_shape = same_shape_py if _COMPILED is None else _COMPILED.same_shape
cached_scope = cached_scope_py if _COMPILED is None else _COMPILED.cached_scope
conv2d_bias_relu = conv2d_bias_relu_py if _COMPILED is None else _COMPILED.conv2d_bias_relu
