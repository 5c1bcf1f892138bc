"""``init_from_checkpoint``: a store's variables filled from a TensorFlow checkpoint by name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .._module import ScopedModule
from .._registry import get_default_store
from .._store import VariableStore
from .._types import PathLike
from ._reader import CheckpointReader

__all__ = ["init_from_checkpoint"]

# The slot names TensorFlow 1's optimizers give their per-variable state ("<var>/Adam_1").
_SLOT = re.compile(
    r"/(Adam|Momentum|RMSProp|Adagrad|AdagradDA|Adadelta|Ftrl|ProximalAdagrad|"
    r"ProximalGradientDescent|ExponentialMovingAverage)(_\d+)?$"
)

AssignmentMap = Mapping[str, Any] | Iterable[tuple[str, Any]]


def init_from_checkpoint(
    ckpt_dir_or_file: PathLike,
    assignment_map: AssignmentMap,
    *,
    store: VariableStore | ScopedModule | None = None,
) -> None:
    """Fills variables from a TensorFlow checkpoint, with TensorFlow's ``assignment_map``.

    As ``tf.compat.v1.train.init_from_checkpoint``, but the values are written at once
    (eager PyTorch has no initializers to override). Each item maps a checkpoint name
    to a variable name, a scope or a variable:

    - ``{"old_scope/var": "new_scope/var"}`` or ``{"old_scope/var": variable}``: one
      variable;
    - ``{"old_scope/": "new_scope/"}``: every variable of the store under
      ``new_scope/`` from the checkpoint tensor of the same name under ``old_scope/``;
    - ``{"/": "new_scope/"}``, ``{"old_scope/": "/"}``: the checkpoint's root, or the
      store's.

    Every name, shape and dtype, the checkpoint's files and every tensor's CRC are checked
    before any variable is written, and a problem raises ``ValueError`` naming both sides:
    a failed call leaves every variable as it was.

    Args:
        ckpt_dir_or_file: a folder (its newest checkpoint), a prefix, or a file of the pair.
        assignment_map: a dict, or (checkpoint name, target) pairs.
        store: the variables' store (default: the current one), or a ``ScopedModule``.
            Before the module's first call the checkpoint's tensors become the variables
            that call claims, as with ``load_state_dict`` before the first call: names map
            the same way, with scopes applied to the checkpoint's names. Tensors that cannot
            be variables are left out: strings, names torchscope refuses (TensorFlow 2's
            ``.ATTRIBUTES`` keys: map those one by one), and TensorFlow optimizer slots
            (``<var>/Adam``, ``<var>/Momentum_1``, ... beside ``<var>``).

    Sharded variables (``fully_shard``-ed, or any ``DTensor`` placed ``Shard(dim)`` or
    ``Replicate``) are filled shard by shard: each rank reads its own rows, and no full
    tensor is made. Variables on the meta device are refused (materialise them first).

    >>> import os, tempfile
    >>> with ts.variable_scope("old"):
    ...     _ = ts.get_variable("kernel", [2], initializer=ts.constant_initializer(7.0))
    >>> path = ts.train.Saver().save(os.path.join(tempfile.mkdtemp(), "model.ckpt"))
    >>> with ts.variable_scope("new"):
    ...     w = ts.get_variable("kernel", [2])
    >>> ts.train.init_from_checkpoint(path, {"old/": "new/"})
    >>> w
    Parameter containing:
    tensor([7., 7.], requires_grad=True)
    """
    reader = CheckpointReader(ckpt_dir_or_file)
    items = _items(assignment_map)
    target = get_default_store() if store is None else store
    if isinstance(target, ScopedModule):
        if not target.built:
            _init_unbuilt(reader, items, target)
            return
        target = target.store
    if not isinstance(target, VariableStore):
        raise TypeError(
            f"init_from_checkpoint's store must be a ts.VariableStore or ts.ScopedModule, "
            f"got {type(target).__name__}"
        )
    pairs = _plan(reader, items, target)
    meta = [name for name in pairs if target[name].is_meta]
    if meta:  # copying into a meta tensor keeps nothing: refuse rather than do nothing
        raise ValueError(
            f"init_from_checkpoint would write {len(meta)} variable(s) on the meta device "
            f"({_some(meta)}), which hold no values; give them memory first "
            "(ts.materialize(model), or model.to_empty(device=...)), then restore."
        )
    reader.read_into([(key, target[name]) for name, key in pairs.items()])


def _items(assignment_map: AssignmentMap) -> list[tuple[str, Any]]:
    if isinstance(assignment_map, Mapping):
        items = sorted(assignment_map.items(), key=lambda kv: str(kv[0]))
    elif isinstance(assignment_map, Iterable) and not isinstance(assignment_map, (str, bytes)):
        items = [tuple(item) for item in assignment_map]
        if any(len(item) != 2 for item in items):
            raise TypeError("assignment_map pairs must be (checkpoint name, target) pairs")
    else:
        raise TypeError(
            "assignment_map must be a dict {checkpoint name: variable, variable name or scope} "
            f"or a list of such pairs, got {type(assignment_map).__name__}"
        )
    for ckpt_name, current in items:
        if not isinstance(ckpt_name, str):
            raise TypeError(f"assignment_map key {ckpt_name!r} must be a checkpoint name (a str)")
        if isinstance(current, (list, tuple)):
            raise TypeError(
                f"assignment_map[{ckpt_name!r}] is a list: torchscope's variables are never "
                "partitioned; map the checkpoint's (partitioned or not) tensor to one variable"
            )
        if not isinstance(current, (str, torch.Tensor)):
            raise TypeError(
                f"assignment_map[{ckpt_name!r}] must be a variable, a variable name or a scope "
                f"('scope/'), got {type(current).__name__}"
            )
    return items  # type: ignore[return-value]


def _plan(reader: CheckpointReader, items: list, store: VariableStore) -> dict[str, str]:
    """Variable name -> checkpoint key, by TensorFlow's rules, everything checked."""
    variables = dict(store.items())
    plan: dict[str, str] = {}

    def assign(name: str, key: str, rule: str) -> None:
        if plan.get(name, key) != key:
            raise ValueError(
                f"assignment_map fills variable {name!r} twice: from {plan[name]!r} and from "
                f"{key!r} ({rule})"
            )
        _check_pair(reader, key, name, variables[name])
        plan[name] = key

    for ckpt_name, current in items:
        if isinstance(current, torch.Tensor):
            name = _name_in(store, current, ckpt_name)
            _require(reader, ckpt_name, name)
            assign(name, ckpt_name, f"{ckpt_name!r}: <variable {name!r}>")
        elif current in variables:
            _require(reader, ckpt_name, current)
            assign(current, ckpt_name, f"{ckpt_name!r}: {current!r}")
        else:
            for name, key in _scope_pairs(ckpt_name, current, variables, store):
                if not reader.has_tensor(key):
                    raise ValueError(
                        f"checkpoint tensor {key!r} (for variable {name!r}, by assignment "
                        f"{ckpt_name!r}: {current!r}) is not in checkpoint {reader.prefix}"
                    )
                assign(name, key, f"{ckpt_name!r}: {current!r}")
    return plan


def _scope_pairs(
    ckpt_name: str, current: str, variables: dict, store: VariableStore
) -> list[tuple[str, str]]:
    """(variable, checkpoint key) for a scope-to-scope item, as TensorFlow pairs them."""
    if not current.endswith("/"):
        raise ValueError(
            f"assignment_map[{ckpt_name!r}] = {current!r}: the store has no variable "
            f"{current!r} (a scope must end with '/': {{'old_scope/': 'new_scope/'}})"
        )
    if not ckpt_name.endswith("/"):
        raise ValueError(
            f"assignment_map[{ckpt_name!r}] = {current!r} maps a single name to a scope; "
            "scopes map to scopes: {'old_scope/': 'new_scope/'}"
        )
    scope = current[: current.rindex("/")] if current != "/" else ""
    pairs = []
    for name in sorted(variables):
        if scope and not name.startswith(scope + "/"):
            continue
        rest = name[len(scope) :]
        if current != "/":
            rest = rest[1:]
        pairs.append((name, rest if ckpt_name == "/" else ckpt_name + rest))
    if not pairs:
        raise ValueError(
            f"assignment_map[{ckpt_name!r}] = {current!r} matches no variable of the store "
            f"(it has {len(variables)}: {_some(sorted(variables))})"
        )
    return pairs


def _require(reader: CheckpointReader, key: str, name: str) -> None:
    if not reader.has_tensor(key):
        raise ValueError(
            f"checkpoint tensor {key!r} (for variable {name!r}) is not in checkpoint "
            f"{reader.prefix} (it holds {len(reader.keys())}: {_some(reader.keys())})"
        )


def _check_pair(reader: CheckpointReader, key: str, name: str, variable: torch.Tensor) -> None:
    shape = reader.get_variable_to_shape_map()[key]
    dtype = reader.get_variable_to_dtype_map()[key]
    if dtype is bytes:
        raise ValueError(f"checkpoint tensor {key!r} holds strings; variable {name!r} cannot")
    if list(variable.shape) != shape or variable.dtype != dtype:
        raise ValueError(
            f"variable {name!r} is {variable.dtype} {list(variable.shape)}, but checkpoint "
            f"tensor {key!r} is {dtype} {shape}"
        )


def _name_in(store: VariableStore, variable: torch.Tensor, ckpt_name: str) -> str:
    for name, held in store.items():
        if held is variable:
            return name
    raise ValueError(
        f"assignment_map[{ckpt_name!r}] is a tensor that is not a variable of the store "
        "(pass store= the store or module that holds it)"
    )


def _init_unbuilt(reader: CheckpointReader, items: list, module: ScopedModule) -> None:
    """Before the first call: the checkpoint's tensors become the variables it claims."""
    from .._naming import check_variable_name

    wanted: dict[str, str] = {}  # variable name -> checkpoint key
    for ckpt_name, current in items:
        if isinstance(current, torch.Tensor):
            raise ValueError(
                f"assignment_map[{ckpt_name!r}] is a tensor, but {module._describe()} has not "
                "made its variables yet: map to names ('scope/var' or 'scope/')"
            )
        if not current.endswith("/"):
            _require(reader, ckpt_name, current)
            wanted[current] = ckpt_name
            continue
        if not ckpt_name.endswith("/"):
            raise ValueError(
                f"assignment_map[{ckpt_name!r}] = {current!r} maps a single name to a scope; "
                "scopes map to scopes: {'old_scope/': 'new_scope/'}"
            )
        old = "" if ckpt_name == "/" else ckpt_name
        new = "" if current == "/" else current
        found = False
        keys = reader.keys()
        known = set(keys)
        for key in keys:
            if _is_slot(key, known):
                continue
            if key.startswith(old) and reader.get_variable_to_dtype_map()[key] is not bytes:
                name = new + key[len(old) :]
                try:
                    check_variable_name(name)
                except ValueError:
                    continue
                wanted.setdefault(name, key)
                found = True
        if not found:
            raise ValueError(
                f"assignment_map[{ckpt_name!r}] = {current!r}: checkpoint {reader.prefix} "
                f"holds no tensor under {ckpt_name!r}"
            )
    existing = {n: module.store[n] for n in wanted if n in module.store}
    for name, variable in existing.items():
        _check_pair(reader, wanted[name], name, variable)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    fresh = {
        name: torch.empty(shapes[key], dtype=dtypes[key])  # type: ignore[arg-type]
        for name, key in wanted.items()
        if name not in existing
    }
    for name in fresh:
        check_variable_name(name)
    pairs = [(wanted[name], t) for name, t in fresh.items()]
    pairs += [(wanted[name], v) for name, v in existing.items()]
    reader.read_into(pairs)  # everything checked before anything is written
    module._create_loaded(
        fresh,
        own=True,
        sources={
            name: f"checkpoint variable {wanted[name]!r} read by ts.train.init_from_checkpoint()"
            for name in fresh
        },
    )


def _is_slot(key: str, keys: set[str]) -> bool:
    """Whether ``key`` is an optimizer's slot of another tensor of the checkpoint."""
    match = _SLOT.search(key)
    return match is not None and key[: match.start()] in keys


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
