"""The lookup engine: ``get_variable``, from the call to the variable.

One pipeline. :func:`get_variable` takes the reuse path when it can: the scope
reuses, no custom getter, no dtype to check, and the variable is in the context's
dict with the shape asked for: one dict lookup and a shape comparison, the call made
on every forward pass. Otherwise :func:`get_variable_in` normalises the request once
(the scope's defaults filled in), runs the scope's custom getters, and ends in
:func:`get_or_create`, the real getter: find the variable, then either check it for
reuse or create and insert it, under the store's lock. What a store's owner allows
(a built ``ScopedModule`` creates nothing) is its creation policy, consulted here.

This module reads stores and scopes through their attributes; it imports neither.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.compiler import is_compiling
from typing_extensions import Unpack

from . import _naming
from ._checks import check_callable, check_dtype, check_shape, describe, shapes_compatible
from ._collections import try_regularizer
from ._context import _THREAD, DEFAULT, Context
from ._create import make_parameter
from ._errors import (
    ALREADY_EXISTS,
    CREATED_IN_BACKWARD,
    DOES_NOT_EXIST,
    DTYPE_MISMATCH,
    FROZEN,
    SHAPE_MISMATCH,
    DtypeMismatchError,
    FrozenModuleError,
    ShapeMismatchError,
    VariableExistsError,
    VariableNotFoundError,
)
from ._fastpath import same_shape as _same_shape
from ._getters import call_getter, check_getter
from ._graph_keys import GraphKeys
from ._tf_keywords import (
    TF_KEYWORDS,
    TFKeywords,
    VariableAggregation,
    VariableSynchronization,
    check_collections,
    check_partitioner,
    check_tf_keywords,
)
from ._types import (
    Constraint,
    DeviceLike,
    DTypeLike,
    Getter,
    InitializerLike,
    Regularizer,
    Reuse,
    ShapeLike,
)
from ._values import check_value_dtype

if TYPE_CHECKING:
    from ._store import VariableStore
    from ._variable_scope import VariableScope

__all__ = ["caller", "check_reused", "get_or_create", "get_variable", "get_variable_in"]


def get_variable(
    name: str,
    shape: ShapeLike | None = None,
    dtype: DTypeLike | None = None,
    initializer: InitializerLike | None = None,
    regularizer: Regularizer | None = None,
    trainable: bool | None = True,
    device: DeviceLike | None = None,
    constraint: Constraint | None = None,
    **tf_keywords: Unpack[TFKeywords],
) -> torch.nn.Parameter:
    """Gets an existing variable or creates a new one, by full name.

    The full name is the current variable scope's name, ``/``, and ``name``. If
    the scope reuses (``reuse=True``), the existing variable is returned (the same
    object), and ValueError is raised if there is none. If it does not reuse, a
    new variable is created, and ValueError is raised if the name is taken. With
    ``ts.AUTO_REUSE`` it is created if missing and returned otherwise. On reuse a
    given ``shape`` (``None`` dims match anything) and dtype must match.

    Args:
        name: the name relative to the current scope.
        shape: the shape; may be omitted on reuse, or when ``initializer`` is a value.
        dtype: default: the scope's dtype, else ``torch.get_default_dtype()``.
        initializer: ``init(shape, dtype=None, device=None)`` (or an initializer class,
            made with no arguments), or a tensor, number or nested list. With an explicit
            ``dtype``, a tensor (or array) must have that dtype, and numbers must fit it
            without losing values (ValueError otherwise). Default: the scope's, else
            Glorot-uniform (zeros for integer and bool dtypes).
        regularizer: ``fn(variable) -> loss``; see ``ts.regularization_losses()``.
        trainable: ``False`` makes a Parameter with ``requires_grad=False``.
        device: default: the scope's, else ``torch.get_default_device()``.
        constraint: ``fn(variable) -> projected``; see ``ts.apply_constraints()``.
        collections: the collections a new variable joins, as in TensorFlow: exactly
            those (``ts.GraphKeys.GLOBAL_VARIABLES`` only if listed: a variable left out
            of it is not in ``ts.global_variables()``), and ``TRAINABLE_VARIABLES`` when
            trainable. Default: ``GLOBAL_VARIABLES``. Not changed on reuse.
        custom_getter: a getter for this call, called as a scope's custom getter is;
            it replaces the scope's getter for this call, as in TensorFlow.
        partitioner: ``partitioner(shape, dtype) -> partitions``
            (``ts.fixed_size_partitioner(3)``, ...), called and checked, but the variable
            is **not split**: it is made whole, which is how TensorFlow checkpoints a
            partitioned variable (one full-shape entry), so ``ts.train`` restores it.
        synchronization: a ``ts.VariableSynchronization``; ``ON_READ`` with
            ``trainable=None`` makes the variable non-trainable, as in TensorFlow.
        caching_device, use_resource, validate_shape, aggregation: accepted for ported
            code and checked; no effect (PyTorch has no cached reads, reference variables
            or replica aggregation, and every tensor has a fully defined shape).
        The TensorFlow-only keywords are keyword-only (``device`` and ``constraint`` hold
        TensorFlow's positions 7 and 8), typed by ``**tf_keywords`` (a keyword-only
        parameter with a default costs the reuse path a lookup per call, ``**`` one empty
        dict); a call that gives one of them takes the general path.

    Raises:
        ts.VariableExistsError: the variable exists and the scope does not reuse.
        ts.VariableNotFoundError: ``reuse=True`` and the variable does not exist.
        ts.ShapeMismatchError, ts.DtypeMismatchError: reusing a variable of another
            shape or dtype than the one asked for.
        ts.FrozenModuleError: a ``ScopedModule`` call after the first would create one.

    >>> with ts.variable_scope("foo"):
    ...     v = ts.get_variable("v", [1])
    >>> with ts.variable_scope("foo", reuse=True):
    ...     v1 = ts.get_variable("v", [1])
    >>> v1 is v, ts.name_of(v)
    (True, 'foo/v')
    """
    context = _THREAD.slot[0]  # current(), inlined: this runs on every forward call
    if context.store is None:
        context = DEFAULT[0]._local.context
    scope = context.scope
    if scope._fast and dtype is None and not tf_keywords:
        try:
            found = context.params.get(scope._prefix + name)
        except TypeError:
            raise TypeError(
                f"get_variable's name must be a str, got {type(name).__name__}: {name!r}"
            ) from None
        if found is not None and (shape is None or _same_shape(found, shape)):
            if context.on_get is not None:
                context.on_get(found)
            return found
    return get_variable_in(
        context,
        scope,
        name,
        shape,
        dtype,
        initializer,
        regularizer,
        trainable,
        device,
        constraint,
        **_known(tf_keywords),
    )


def _known(tf_keywords: TFKeywords) -> TFKeywords:
    """``tf_keywords``, once checked to hold only ``get_variable``'s keywords."""
    unknown = tf_keywords.keys() - TF_KEYWORDS
    if unknown:
        raise TypeError(
            f"get_variable() got an unexpected keyword argument {sorted(unknown)[0]!r}; its "
            f"TensorFlow keywords are {', '.join(sorted(TF_KEYWORDS))}"
        )
    return tf_keywords


def get_variable_in(
    context: Context,
    scope: VariableScope,
    name: str,
    shape: ShapeLike | None = None,
    dtype: DTypeLike | None = None,
    initializer: InitializerLike | None = None,
    regularizer: Regularizer | None = None,
    trainable: bool | None = True,
    device: DeviceLike | None = None,
    constraint: Constraint | None = None,
    *,
    collections: Sequence[str] | None = None,
    caching_device: Any = None,
    partitioner: Callable[..., Sequence[int]] | None = None,
    validate_shape: bool = True,
    use_resource: bool | None = None,
    custom_getter: Getter | None = None,
    synchronization: VariableSynchronization | None = None,
    aggregation: VariableAggregation | None = None,
) -> Any:
    """``get_variable`` in ``scope`` of ``context``: the scope's defaults applied, its
    custom getters run (a getter that fails after the real getter made a variable leaves
    the store as it was), and the variable handed to ``context.on_get``."""
    if not isinstance(name, str):
        raise TypeError(f"get_variable's name must be a str, got {type(name).__name__}: {name!r}")
    full_name = scope._prefix + name
    if initializer is None:
        initializer = scope._initializer
    if dtype is not None and initializer is not None and not callable(initializer):
        _check_value_dtype(context, scope, full_name, initializer, dtype)
    if dtype is None:
        dtype = scope._dtype
    if regularizer is None:
        regularizer = scope._regularizer
    if device is None:
        device = scope._device
    if constraint is None:
        constraint = scope._constraint
    # TensorFlow: the call's getter replaces the scope's (they are not composed)
    getter = scope._custom_getter if custom_getter is None else check_getter(custom_getter)
    tf_keywords = {
        "collections": collections,
        "caching_device": caching_device,
        "partitioner": partitioner,
        "validate_shape": validate_shape,
        "use_resource": use_resource,
        "synchronization": synchronization,
        "aggregation": aggregation,
    }
    store = context.store
    if getter is None:
        variable = get_or_create(
            store,
            context.params,
            full_name,
            shape,
            dtype,
            initializer,
            regularizer,
            scope._reuse,
            trainable,
            constraint=constraint,
            device=device,
            **tf_keywords,
        )
    else:
        # TensorFlow's keywords, all of them; device and constraint only to a getter that
        # takes them (the real getter has them bound, so they apply either way).
        real_getter = functools.partial(
            get_or_create, store, context.params, device=device, constraint=constraint
        )
        with store.transaction():  # a getter that fails after the real getter: taken back
            variable = call_getter(
                getter,
                getter=real_getter,
                name=full_name,
                shape=shape,
                dtype=dtype,
                initializer=initializer,
                regularizer=regularizer,
                reuse=scope._reuse,
                trainable=trainable,
                **tf_keywords,
                device=device,
                constraint=constraint,
            )
            if not isinstance(variable, torch.Tensor):
                raise TypeError(
                    f"custom getter {describe(getter)} of variable {full_name!r} returned "
                    f"{describe(variable) if variable is not None else 'None'}; a getter "
                    "returns the variable (what its getter argument returned, or a tensor "
                    "computed from it)."
                )
    on_get = context.on_get
    if on_get is not None:
        on_get(variable)
    return variable


def _check_value_dtype(
    context: Context, scope: VariableScope, full_name: str, value: Any, dtype: Any
) -> None:
    """TensorFlow's check of a value initializer against an explicit ``dtype``, made as
    TensorFlow makes it: before the scope's defaults apply and the custom getters run.
    Only for a variable that will be created: on reuse the initializer is ignored."""
    reuse = scope._reuse
    if reuse is True or (reuse and dict.get(context.params, full_name) is not None):
        return
    check_value_dtype(full_name, value, dtype)


def get_or_create(
    store: VariableStore,
    params: dict[str, Any],
    name: str,
    shape: ShapeLike | None = None,
    dtype: DTypeLike | None = None,
    initializer: InitializerLike | None = None,
    regularizer: Regularizer | None = None,
    reuse: Reuse = None,
    trainable: bool | None = None,
    collections: Any = None,
    caching_device: Any = None,
    partitioner: Any = None,
    validate_shape: bool = True,
    use_resource: Any = None,
    constraint: Constraint | None = None,
    synchronization: Any = None,
    aggregation: Any = None,
    *,
    device: DeviceLike | None = None,
) -> Any:
    """The real getter, at the end of the custom-getter chain: returns the variable
    ``name`` of ``store``, creating it unless ``reuse`` forbids.

    The TensorFlow-only keywords are checked and applied only when the variable is made
    (``_tf_keywords`` says what each does); on reuse they are ignored, as in TensorFlow.
    """
    shape = check_shape(shape, name)
    dtype = check_dtype(dtype, name)
    policy = store.policy
    found = dict.get(params, name)
    if found is None and params is not store._parameters:
        found = store._parameters.get(name)
    if found is None and policy is not None:
        found = policy.computed(name)
    if found is not None:
        return _existing(store, name, found, reuse, shape, dtype)
    _naming.check_variable_name(name)  # an invalid name is invalid under reuse too
    if policy is not None and policy.frozen is not None:  # a built module creates nothing
        raise FrozenModuleError(FROZEN.format(name=name, owner=policy.frozen))
    if reuse is True:
        raise VariableNotFoundError(DOES_NOT_EXIST.format(name=name))
    if torch._C._current_graph_task_id() != -1 and not is_compiling():
        raise RuntimeError(CREATED_IN_BACKWARD.format(name=name))
    trainable = check_tf_keywords(
        name, trainable, caching_device, validate_shape, use_resource, synchronization, aggregation
    )
    collections = check_collections(collections, name)
    if partitioner is not None:
        check_partitioner(partitioner, name, shape, dtype)
    with store._lock:
        found = store._parameters.get(name)
        if found is not None:  # another thread created it meanwhile
            return _existing(store, name, found, reuse, shape, dtype)
        making = store._local.making  # names this thread is making: a callback may nest
        if name in making:
            raise RuntimeError(
                f"variable {name!r} was asked for while it is being made: its initializer "
                "(or regularizer) calls get_variable for it. Make it from another variable, "
                "or give the value itself."
            )
        making.add(name)
        try:
            param, trainable = make_parameter(
                name, shape, dtype, initializer, trainable, device, seed=store.seed
            )
        finally:
            making.discard(name)
        if policy is not None:
            param = policy.convert(param)
        regularizer = check_callable(regularizer, "regularizer", name)
        constraint = check_callable(constraint, "constraint", name)
        if regularizer is not None:
            try_regularizer(regularizer, name, param)
        is_global = collections is None or GraphKeys.GLOBAL_VARIABLES in collections
        store._insert(name, param, trainable, regularizer, constraint, caller(), is_global)
        for key in collections or ():
            if key not in _STORE_FILLED:  # the store lists its variables in these itself
                store.add_to_collection(key, param)
    return param


_STORE_FILLED = (GraphKeys.GLOBAL_VARIABLES, GraphKeys.TRAINABLE_VARIABLES)


def _existing(store: Any, name: str, found: Any, reuse: Any, shape: Any, dtype: Any) -> Any:
    """A variable that exists: refused unless the scope reuses, else checked for reuse."""
    if not reuse:
        raise VariableExistsError(
            ALREADY_EXISTS.format(name=name, where=store._created_at.get(name, ""))
        )
    return check_reused(name, found, shape, dtype)


def check_reused(
    name: str, found: torch.Tensor, shape: tuple | None, dtype: torch.dtype | None
) -> Any:
    """``found`` if it has the shape (``None`` dims match anything) and dtype asked for."""
    if shape is not None and not shapes_compatible(shape, found.shape):
        raise ShapeMismatchError(
            SHAPE_MISMATCH.format(
                name=name,
                # torch.compile cannot format a size it traces as dynamic (a SymInt)
                shape="(sizes torch.compile traced)" if is_compiling() else _fmt_shape(shape),
                found=_fmt_shape(found.shape),
            )
        )
    if dtype is not None and dtype != found.dtype:
        raise DtypeMismatchError(DTYPE_MISMATCH.format(name=name, dtype=dtype, found=found.dtype))
    return found


def _fmt_shape(shape: Any) -> str:
    return "(" + ", ".join(_fmt_dim(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _fmt_dim(dim: Any) -> str:
    return "?" if dim is None else str(dim)


def caller() -> str:
    """``file:line`` of the first frame outside torchscope (where a variable was created)."""
    frame = sys._getframe(2)
    package = __name__.rpartition(".")[0]
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == package:
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"
