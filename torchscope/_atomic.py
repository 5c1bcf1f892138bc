"""What makes a store's changes all or nothing.

A transaction (``store.transaction()``) records what one thread adds to a store inside a
block and takes it back if the block raises; a load is checked whole before anything is
copied. The store's own methods do the adding and removing; this module reads the store
through its attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from . import _context

__all__ = ["Savepoint", "Transaction", "check_load"]

Counters = tuple[int, dict[str, int] | None]


class Savepoint:
    """What one transaction added: variable names (``added``), (collection, item) pairs,
    claimed variables' earlier attributes; and the counters of the context it began in (a
    mark in its record of opened variable scopes, a copy of its name-scope table)."""

    __slots__ = ("added", "collected", "claimed", "context", "counters")

    def __init__(self, context: _context.Context | None, counters: Counters | None) -> None:
        self.added: list[str] = []
        self.collected: list[tuple[str, Any]] = []
        self.claimed: list[tuple[Any, ...]] = []
        self.context: _context.Context | None = context
        self.counters: Counters | None = counters

    def absorb(self, inner: Savepoint) -> None:
        self.added += inner.added
        self.collected += inner.collected
        self.claimed += inner.claimed


class Transaction:
    """``store.transaction()``: see there. A class, not a generator: templates enter one on
    every call."""

    __slots__ = ("_store", "_savepoint")

    def __init__(self, store: Any) -> None:
        self._store = store
        self._savepoint: Savepoint | None = None

    def __enter__(self) -> Savepoint:
        store = self._store
        context = _context.current()
        if context.store is store:
            savepoint = Savepoint(context, context.counters())
        else:
            savepoint = Savepoint(None, None)
        store._local.savepoints.append(savepoint)
        self._savepoint = savepoint
        return savepoint

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        store, savepoint = self._store, self._savepoint
        savepoints = store._local.savepoints
        savepoints.pop()
        if kind is not None:
            store._rollback(savepoint)  # type: ignore[arg-type]
            return
        context = savepoint.context  # type: ignore[union-attr]  (set on entry)
        if context is not None:
            context.keep_counters()
        if savepoints:
            savepoints[-1].absorb(savepoint)  # type: ignore[arg-type]


def check_load(module: nn.Module, state_dict: Mapping[str, Any], strict: bool) -> None:
    """Raises, as ``nn.Module.load_state_dict`` would, before anything is copied: a value
    whose shape is not the one in ``module``, and with ``strict`` missing or unexpected
    keys (the same message text, so callers that match it keep working)."""
    expected = module.state_dict(keep_vars=True)
    errors: list[str] = []
    if strict:
        unexpected = [k for k in state_dict if k not in expected]
        missing = [k for k in expected if k not in state_dict]
        if missing:  # torch's order: missing, unexpected, then size mismatches
            shown = ", ".join(f'"{k}"' for k in missing)
            errors.append(f"Missing key(s) in state_dict: {shown}. ")
        if unexpected:
            shown = ", ".join(f'"{k}"' for k in unexpected)
            errors.append(f"Unexpected key(s) in state_dict: {shown}. ")
    for key, value in state_dict.items():
        held = expected.get(key)
        if held is None or not isinstance(value, torch.Tensor):
            continue
        scalar = held.ndim == 0 and value.ndim == 1 and value.shape[0] == 1  # torch takes it
        if value.shape != held.shape and not scalar:
            errors.append(
                f"size mismatch for {key}: copying a param with shape {value.shape} from "
                f"checkpoint, the shape in current model is {held.shape}."
            )
    if errors:
        raise RuntimeError(
            f"Error(s) in loading state_dict for {type(module).__name__} (nothing was "
            "loaded):\n\t" + "\n\t".join(errors)
        )
