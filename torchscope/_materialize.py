"""``ts.materialize``: real values for variables made on the meta device.

A model built under ``with torch.device("meta")`` has variables with shapes and dtypes and
no memory. Each meta variable's store kept how it was made (its ``Recipe``: the
initializer its ``get_variable`` used after scopes and custom getters had their say, shape,
dtype, the store's seed then); ``materialize`` runs it again on a real device. A plain
variable is replaced by a new Parameter (same name, trainable flag, collections and
``state_dict`` key); a DTensor (``fully_shard``) keeps its identity (``swap_tensors``, as
``nn.Module.to_empty`` does) and gets only this rank's shard.

A shard is made without the full tensor when the values are a function of the element
index: constants, and, with a store seed, every elementwise random initializer (each
chunk of the flattened tensor has its own keyed generator). Other initializers
(``orthogonal_initializer``, ``init_from``, callables of one's own, an initializer with
its own ``seed=``, any initializer without a store seed) make the full tensor on each rank
and keep the shard: allowed up to ``max_full_bytes`` per variable, refused above it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._create import Recipe, initial_value
from ._initializers import Constant, Elementwise, default_initializer
from ._module import ScopedModule
from ._store import VariableStore
from ._variable import name_variable

__all__ = ["MAX_FULL_BYTES", "materialize"]

MAX_FULL_BYTES = 1 << 30  # the default bound on a full tensor made for one shard

_UNKNOWN_TARGET = (
    "ts.materialize takes a ts.VariableStore, a ts.ScopedModule or an nn.Module holding "
    "ScopedModules, got {what}."
)
_NOTHING_ON_META = (
    "ts.materialize found no variable on the meta device in {what} ({count} variables, all "
    "with values already); build the model under `with torch.device('meta'):` first, e.g. "
    "`with torch.device('meta'): model(example)`, then `ts.materialize(model)`."
)
_NO_RECIPE = (
    "variable {name!r} is on the meta device but was not made there by get_variable (it was "
    "moved or loaded there), so ts.materialize does not know its initializer; load its "
    "values instead (load_state_dict with assign=True, or torch.distributed.checkpoint)."
)
_TOO_BIG = (
    "variable {name!r} ({bytes:,} bytes) would be made whole on this rank to keep its shard: "
    "its initializer {init!r} is not elementwise under a store seed, and the bound is "
    "{bound:,} bytes. Set a seed (ts.set_seed / VariableStore(seed=...)) with an elementwise "
    "initializer, or raise max_full_bytes."
)
_PLACEMENT = (
    "variable {name!r} is a DTensor with placements {placements}; ts.materialize fills "
    "Shard(0) and Replicate placements (what fully_shard makes)."
)


def _stores(target: Any) -> list[VariableStore]:
    if isinstance(target, VariableStore):
        return [target]
    if isinstance(target, nn.Module):
        stores = [m.store for m in target.modules() if isinstance(m, ScopedModule)]
        if stores:
            return stores
        what = f"an {type(target).__name__} with no ScopedModule inside"
    else:
        what = f"a {type(target).__name__}"
    raise TypeError(_UNKNOWN_TARGET.format(what=what))


def _device(device: Any, param: torch.Tensor) -> torch.device:
    if device is None:
        mesh = getattr(param, "device_mesh", None)
        if mesh is not None:
            device = mesh.device_type
        else:
            device = torch.get_default_device()
            device = torch.device("cpu") if device.type == "meta" else device
    device = torch.device(device)
    if device.type == "meta":
        raise ValueError("ts.materialize needs a real device to put values on, got meta")
    return device


def materialize(
    module_or_store: VariableStore | nn.Module,
    device: torch.device | str | None = None,
    *,
    max_full_bytes: int = MAX_FULL_BYTES,
) -> None:
    """Gives every variable on the meta device its values, on ``device``.

    Each variable is made by its own initializer (the one its ``get_variable`` call used,
    from scopes and custom getters too), with its name, trainable flag, collections and
    ``state_dict`` key kept. With a store seed, the values equal those of building the model
    eagerly with the same seed. Build the optimizer afterwards: ``ts.check_optimizer``
    refuses one built before (it holds the meta tensors). Sharded variables (DTensors, from
    ``fully_shard``) get this rank's shard only; see the module's notes for when a full
    tensor is made for a shard (at most ``max_full_bytes`` for one variable).

    Args:
        module_or_store: a ``VariableStore``, a ``ScopedModule``, or an ``nn.Module``
            holding ``ScopedModule`` s (all of their stores).
        device: where the values go. Default: a DTensor's mesh device, else torch's default
            device (CPU when that is meta).
        max_full_bytes: the bound on a full tensor made on one rank for a shard.

    >>> ts.set_seed(0)
    >>> net = ts.ScopedModule(lambda x: x @ ts.get_variable("w", [3, 2]), name="net")
    >>> with torch.device("meta"):
    ...     _ = net(torch.ones(1, 3))
    >>> net.store["net/w"].is_meta
    True
    >>> ts.materialize(net)
    >>> net.store["net/w"].device, list(net.state_dict())
    (device(type='cpu'), ['net/w'])
    """
    stores = _stores(module_or_store)
    todo = [(s, n, p) for s in stores for n, p in s.items() if p is not None and p.is_meta]
    if not todo:
        count = sum(len(s) for s in stores)
        what = type(module_or_store).__name__
        raise ValueError(_NOTHING_ON_META.format(what=what, count=count))
    for store, name, _ in todo:
        if name not in store._recipes:
            raise ValueError(_NO_RECIPE.format(name=name))
    made = [
        (store, name, param, _made(store._recipes[name], name, param, device, max_full_bytes))
        for store, name, param in todo
    ]
    for store, name, param, new in made:  # nothing above changed a store: now all at once
        _replace(store, name, param, new)


def _made(recipe: Recipe, name: str, param: torch.Tensor, device: Any, bound: int) -> torch.Tensor:
    where = _device(device, param)
    mesh = getattr(param, "device_mesh", None)
    if mesh is None:
        return initial_value(
            name, recipe.shape, recipe.dtype, recipe.initializer, where, recipe.seed
        )
    return _local_shard(recipe, name, param, where, bound)


def _local_shard(
    recipe: Recipe, name: str, param: Any, device: torch.device, bound: int
) -> torch.Tensor:
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = tuple(param.placements)
    if not all(
        isinstance(p, Replicate) or (isinstance(p, Shard) and p.dim == 0) for p in placements
    ):
        raise ValueError(_PLACEMENT.format(name=name, placements=placements))
    shape = tuple(param.shape)
    local_shape, offset = compute_local_shape_and_global_offset(
        param.shape, param.device_mesh, param.placements
    )
    row = math.prod(shape[1:]) if shape else 1
    first = offset[0] if shape else 0
    start, stop = first * row, first * row + math.prod(local_shape)
    values = _flat_slice(recipe, name, shape, param.dtype, start, stop, bound)
    local = values.reshape(local_shape).to(device)
    return DTensor.from_local(
        local,
        param.device_mesh,
        placements,
        shape=param.shape,
        stride=param.stride(),
        run_check=False,
    )


def _flat_slice(
    recipe: Recipe,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    start: int,
    stop: int,
    bound: int,
) -> torch.Tensor:
    """Elements ``[start, stop)`` of the flattened value (on CPU); the full tensor is made
    only for an initializer whose slices cannot be made alone, and only up to ``bound``."""
    init = recipe.initializer
    if init is None:
        init = default_initializer(dtype)
    key = None if recipe.seed is None else (recipe.seed, name)
    if isinstance(init, Constant):
        return init.flat(shape, dtype, start, stop)
    if isinstance(init, Elementwise) and init.seed is None and key is not None:
        return init.flat(shape, dtype, start, stop, key)
    size = math.prod(shape) * dtype.itemsize
    if size > bound:
        raise ValueError(_TOO_BIG.format(name=name, bytes=size, init=init, bound=bound))
    whole = initial_value(name, shape, dtype, recipe.initializer, torch.device("cpu"), recipe.seed)
    return whole.reshape(-1)[start:stop].clone()


def _replace(store: VariableStore, name: str, old: nn.Parameter, new: torch.Tensor) -> None:
    with store._lock:
        if getattr(old, "device_mesh", None) is not None:
            # A DTensor keeps its identity: fully_shard's bookkeeping refers to it.
            param = nn.Parameter(new, requires_grad=old.requires_grad)
            name_variable(param, name)  # swap_tensors swaps the attributes too
            torch.utils.swap_tensors(old, param)
        else:
            param = nn.Parameter(new, requires_grad=old.requires_grad)
            name_variable(param, name)
            store._parameters[name] = param
        store._recipes.pop(name, None)
