"""Loading of the compiled operator library, ``torchscope._C``.

The library registers ``torch.ops.torchscope.conv2d_bias_relu`` (and its
backward) with PyTorch's dispatcher. When it was not built (no C++ compiler at
install time, ``TORCHSCOPE_NO_EXTENSION=1``) or fails to load (built against
another torch), the operations fall back to pure PyTorch and say so once.
Setting ``TORCHSCOPE_DISABLE_NATIVE=1`` before the import skips the library, to
exercise the fallback.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings

import torch

DISABLE_ENV = "TORCHSCOPE_DISABLE_NATIVE"


class NativeExtensionWarning(UserWarning):
    """The compiled operator library is missing; torchscope.ops runs in pure PyTorch.

    Warned once per process. To silence it where the fallback is expected:

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ts.ops.NativeExtensionWarning)
    ...     y = ts.ops.conv2d_bias_relu(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1), None)
    >>> y.shape
    torch.Size([1, 1, 2, 2])
    """


def build_mismatch() -> str | None:
    """Why the compiled libraries must not be loaded because they were built for another
    torch (``_build_info.json``, written by setup.py beside them), or None. Loading one
    built against another torch fails on a missing symbol at best and crashes at worst."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build_info.json")
    try:
        with open(path) as f:
            built = json.load(f).get("torch")
    except (OSError, ValueError, AttributeError):
        return None  # no record (a build older than the record): try loading
    if built is None or built == torch.__version__:
        return None
    return (
        f"built for torch {built}, running torch {torch.__version__}: reinstall torchscope "
        "against this torch with `pip install --no-build-isolation .` (`-e .` for an "
        "editable install)"
    )


def _load() -> tuple[bool, str]:
    if os.environ.get(DISABLE_ENV) == "1":
        return False, f"{DISABLE_ENV}=1 is set"
    mismatch = build_mismatch()
    if mismatch is not None:
        return False, mismatch
    try:
        importlib.import_module("._C", __package__)
    except (ImportError, OSError) as e:
        return False, f"{type(e).__name__}: {e}"
    if not hasattr(torch.ops.torchscope, "conv2d_bias_relu"):
        return (
            False,
            "torchscope._C loaded but did not register torch.ops.torchscope.conv2d_bias_relu",
        )
    return True, ""


def _kernel_devices() -> frozenset[str]:
    """Device types with a compiled kernel (Meta: the fake kernel, registered by torchscope.ops)."""
    if not LOADED:
        return frozenset()
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
    keys = {"cpu": "CPU", "cuda": "CUDA"}
    found = {d for d, key in keys.items() if has_kernel("torchscope::conv2d_bias_relu", key)}
    return frozenset(found | {"meta"})


LOADED, REASON = _load()
KERNEL_DEVICES = _kernel_devices()
_warned = False

FALLBACK_MESSAGE = (
    "torchscope: the compiled operator library torchscope._C is not loaded ({reason}); "
    "torchscope.ops.conv2d_bias_relu runs as relu(conv2d(...)) in pure PyTorch, without the "
    "fused epilogue.{advice}"
)


def advice(reason: str) -> str:
    """What to do about ``reason``: the build advice where the library is missing; none
    where the reason says it already (another torch) or it was switched off."""
    if reason.startswith("built for torch") or DISABLE_ENV in reason:
        return ""
    if "No module named" in reason:
        return (
            " It was not built: install with a working C++ compiler present, "
            "`pip install --no-build-isolation .` (`-e .` for an editable install)."
        )
    return (
        " It was built but cannot load here (for example against another torch): reinstall "
        "it against this torch with `pip install --no-build-isolation .`."
    )


DEVICE_FALLBACK_MESSAGE = (
    "torchscope: torchscope._C has no {device} kernel (built without it); "
    "torchscope.ops.conv2d_bias_relu runs as relu(conv2d(...)) in pure PyTorch on {device}"
)
_warned_devices: set[str] = set()


def warn_fallback_once() -> None:
    """Warns, the first time only, that the pure-PyTorch fallback is in use."""
    global _warned
    if _warned or torch.compiler.is_compiling():
        return
    _warned = True
    warnings.warn(
        FALLBACK_MESSAGE.format(reason=REASON, advice=advice(REASON)),
        NativeExtensionWarning,
        stacklevel=3,
    )


def warn_device_fallback_once(device: str) -> None:
    """Warns, once per device type, that the library has no kernel for it."""
    if device in _warned_devices or torch.compiler.is_compiling():
        return
    _warned_devices.add(device)
    warnings.warn(
        DEVICE_FALLBACK_MESSAGE.format(device=device), NativeExtensionWarning, stacklevel=3
    )
