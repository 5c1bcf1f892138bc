"""``ts.summary``: a table of a store's or a module's variables."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["summary"]


def _named(target: Any) -> list[tuple[str, torch.Tensor, bool]]:
    from .store import VariableStore, get_default_store

    if target is None:
        target = get_default_store()
    if isinstance(target, VariableStore):
        trainable = target._trainable
        return [(n, p, n in trainable) for n, p in target.items()]
    if isinstance(target, nn.Module):
        return [(n, p, p.requires_grad) for n, p in target.named_parameters()]
    raise TypeError(
        f"summary takes a ts.VariableStore or an nn.Module (or None: the default store), got "
        f"{type(target).__name__}"
    )


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def summary(store_or_module: Any = None) -> str:
    """A table of variables: name (indented by scope), shape, dtype, device, trainable,
    parameter count; totals last.

    >>> with ts.variable_scope("conv1"):
    ...     _ = ts.get_variable("weights", [5, 5, 3, 8])
    ...     _ = ts.get_variable("biases", [8], initializer=ts.zeros_initializer())
    >>> print(ts.summary())  # doctest: +NORMALIZE_WHITESPACE
    name          shape          dtype    device  trainable  params
    conv1/
      weights     (5, 5, 3, 8)   float32  cpu     yes           600
      biases      (8,)           float32  cpu     yes             8
    total: 2 variables, 608 parameters (608 trainable, 0 non-trainable)
    """
    rows: list[tuple[str, ...]] = []
    shown: list[str] = []
    total = trainable_total = 0
    for name, param, trainable in _named(store_or_module):
        *parents, leaf = name.split("/")
        common = 0
        while common < min(len(parents), len(shown)) and parents[common] == shown[common]:
            common += 1
        for depth in range(common, len(parents)):
            rows.append(("  " * depth + parents[depth] + "/", "", "", "", "", ""))
        shown = parents
        count = param.numel()
        total += count
        trainable_total += count if trainable else 0
        rows.append((
            "  " * len(parents) + leaf,
            str(tuple(param.shape)),
            _dtype(param.dtype),
            str(param.device),
            "yes" if trainable else "no",
            f"{count:,}",
        ))
    header = ("name", "shape", "dtype", "device", "trainable", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(5)] + [row[5].rjust(widths[5])]
        lines.append("  ".join(cells).rstrip())
    variables = sum(1 for r in rows if r[1])
    lines.append(
        f"total: {variables} variables, {total:,} parameters ({trainable_total:,} trainable, "
        f"{total - trainable_total:,} non-trainable)"
    )
    return "\n".join(lines)
