"""``ts.summary``: a table of a store's or a module's variables.

Given example inputs, it also says how often each variable was handed out by
``get_variable`` in one call of the module. That count is taken only then: each
``ScopedModule`` inside gets an observer for that one call, which its calls put on
their contexts (``Context.on_get``, called by ``get_variable`` with each variable it
hands out).
"""

from __future__ import annotations

import collections
from typing import Any

import torch
from torch import nn

from ._module import ScopedModule
from ._registry import get_default_store
from ._store import VariableStore

__all__ = ["summary"]


def _named(target: VariableStore | nn.Module | None) -> list[tuple[str, torch.Tensor, bool]]:

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


def summary(
    store_or_module: VariableStore | nn.Module | None = None,
    *,
    inputs: tuple[Any, ...] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> str:
    """A table of variables: name (indented by scope), shape, dtype, device, trainable,
    parameter count; totals last.

    Args:
        store_or_module: a ``VariableStore``, an ``nn.Module`` (its ``named_parameters()``),
            or None for the default store.
        inputs, kwargs: example arguments for a module: the module is called once with
            them (under ``torch.no_grad()``) and a ``uses`` column says how many times
            ``get_variable`` returned each variable of its ``ScopedModule`` s in that call
            (0: a variable the call did not use; blank: a parameter ``get_variable`` does
            not hand out, such as a plain submodule's weight).

    >>> with ts.variable_scope("conv1"):
    ...     _ = ts.get_variable("weights", [5, 5, 3, 8])
    ...     _ = ts.get_variable("biases", [8], initializer=ts.zeros_initializer())
    >>> print(ts.summary())  # doctest: +NORMALIZE_WHITESPACE
    name          shape          dtype    device  trainable  params
    conv1/
      weights     (5, 5, 3, 8)   float32  cpu     yes           600
      biases      (8,)           float32  cpu     yes             8
    total: 2 variables, 608 parameters (608 trainable, 0 non-trainable)

    A tower applied twice uses its variables twice:

    >>> def towers(a, b):
    ...     out = []
    ...     for x in (a, b):
    ...         with ts.variable_scope("tower", reuse=ts.AUTO_REUSE):
    ...             out.append(x @ ts.get_variable("w", [2, 2]))
    ...     return out
    >>> net = ts.ScopedModule(towers)
    >>> x = torch.ones(1, 2)
    >>> print(ts.summary(net, inputs=(x, x)))  # doctest: +NORMALIZE_WHITESPACE
    name    shape   dtype    device  trainable  params  uses
    tower/
      w     (2, 2)  float32  cpu     yes             4     2
    total: 1 variables, 4 parameters (4 trainable, 0 non-trainable)
    """
    counted = inputs is not None or kwargs is not None
    uses, counted_ids = _count_uses(store_or_module, inputs, kwargs) if counted else (None, ())
    rows: list[tuple[str, ...]] = []
    shown: list[str] = []
    total = trainable_total = 0
    for name, param, trainable in _named(store_or_module):
        *parents, leaf = name.split("/")
        common = 0
        while common < min(len(parents), len(shown)) and parents[common] == shown[common]:
            common += 1
        for depth in range(common, len(parents)):
            rows.append(("  " * depth + parents[depth] + "/", "", "", "", "", "", ""))
        shown = parents
        count = param.numel()
        total += count
        trainable_total += count if trainable else 0
        rows.append(
            (
                "  " * len(parents) + leaf,
                str(tuple(param.shape)),
                _dtype(param.dtype),
                str(param.device),
                "yes" if trainable else "no",
                f"{count:,}",
                # Blank for what get_variable does not hand out (a plain submodule's weights).
                str(uses.get(id(param), 0))
                if uses is not None and id(param) in counted_ids
                else "",
            )
        )
    header = ("name", "shape", "dtype", "device", "trainable", "params", "uses")
    columns = 6 if uses is None else 7
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(columns)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(5)]
        cells += [row[i].rjust(widths[i]) for i in range(5, columns)]
        lines.append("  ".join(cells).rstrip())
    variables = sum(1 for r in rows if r[1])
    lines.append(
        f"total: {variables} variables, {total:,} parameters ({trainable_total:,} trainable, "
        f"{total - trainable_total:,} non-trainable)"
    )
    meta = [p for _, p, _ in _named(store_or_module) if p.is_meta]
    if meta:  # built under torch.device("meta"): what ts.materialize will allocate
        size = sum(p.numel() * p.element_size() for p in meta)
        lines.append(
            f"meta: {len(meta)} variables, {sum(p.numel() for p in meta):,} parameters, "
            f"{size:,} bytes ({size / 2**30:.2f} GiB) not allocated until ts.materialize"
        )
    return "\n".join(lines)


def _count_uses(
    target: VariableStore | nn.Module | None,
    inputs: tuple[Any, ...] | None,
    kwargs: dict[str, Any] | None,
) -> tuple[collections.Counter[int], set[int]]:
    """Calls ``target`` once on the example arguments; the uses of each variable, by id,
    and the ids of the variables counted (those of the ``ScopedModule`` s inside)."""

    if not isinstance(target, nn.Module) or isinstance(target, VariableStore):
        raise TypeError(
            "summary's inputs= needs a module to call (a ts.ScopedModule, or an nn.Module "
            f"holding some), got {type(target).__name__}"
        )
    if inputs is not None and not isinstance(inputs, tuple):
        raise TypeError(
            f"summary's inputs must be a tuple of positional arguments, got "
            f"{type(inputs).__name__} (for one argument: inputs=(x,))"
        )
    modules = [m for m in target.modules() if isinstance(m, ScopedModule)]
    if not modules:
        raise ValueError(
            "summary(..., inputs=...) counts get_variable calls of ScopedModules; this "
            f"{type(target).__name__} holds none"
        )
    uses: collections.Counter[int] = collections.Counter()
    counted_ids = {id(p) for m in modules for p in m._parameters.values()}

    def observe(variable: torch.Tensor) -> None:
        uses[id(variable)] += 1

    try:
        for module in modules:
            module._observer = observe
        with torch.no_grad():
            target(*(inputs or ()), **(kwargs or {}))
    finally:
        for module in modules:
            module.__dict__.pop("_observer", None)
    counted_ids.update(id(p) for m in modules for p in m._parameters.values())  # made by it
    return uses, counted_ids
