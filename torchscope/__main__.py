"""``python -m torchscope``: a short self-check to run first when something looks wrong."""

from __future__ import annotations

import platform
import sys

import torch

import torchscope as ts


def main() -> int:
    python = platform.python_version()
    print(f"torchscope {ts.__version__} (torch {torch.__version__}, Python {python})")
    native = ts.ops.native_available()
    library = "compiled and loaded" if native else "missing (pure-PyTorch fallback)"
    print(f"native operator library: {library}")
    from torchscope import _fastpath

    print(
        "per-call steps (torchscope._fastpaths): "
        f"{'compiled' if _fastpath.compiled else 'Python versions (module not built)'}"
    )
    print(f"CUDA available: {torch.cuda.is_available()}")
    store = ts.VariableStore()
    with store.as_default():
        with ts.variable_scope("demo"):
            w = ts.get_variable("w", [2, 2])
        with ts.variable_scope("demo", reuse=True):
            shared = ts.get_variable("w", [2, 2]) is w
        x = torch.randn(1, 4, 4, 2)
        fused = ts.nn.conv2d_bias_relu(
            x, torch.randn(3, 3, 2, 2), torch.zeros(2), [1, 1, 1, 1], "SAME"
        )
        ok = shared and ts.name_of(w) == "demo/w" and fused.shape == (1, 4, 4, 2)
    print(f"scope demo: created {ts.name_of(w)!r}, reused the same object: {shared}")
    print(f"fused conv2d+bias+relu: output shape {tuple(fused.shape)}")
    print("self-check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
