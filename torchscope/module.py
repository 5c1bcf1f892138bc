"""The module adapter: code written with ``get_variable`` as an ``nn.Module``.

A :class:`ScopedModule` owns a :class:`VariableStore`. Each call runs the
function (or the subclass's ``forward``) in a fresh context of that store: the
root scope, empty counters, so every call names its variables and operations the
same way, whatever scopes or threads the caller has open. The first call creates
the variables; later calls reuse them, and a later call that would create one
raises ``ValueError``. As with PyTorch's lazy modules, call the module once
before building the optimizer (the optimizer must see the parameters);
``ts.check_optimizer`` says which variables an optimizer is missing.

The module's own ``_parameters`` *is* the store's dict, so ``named_parameters()``
and ``state_dict()`` give the full names (``"conv1/weights"``), ``.to()`` moves
the store's variables, and ``torch.func.functional_call`` substitutions are what
``get_variable`` hands out during the call. Variables and attributes are kept
apart: a variable may be named ``"training"`` or ``"forward"`` and ``eval()`` still works.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.compiler import is_compiling
from torch.nn.modules import module as _nn_module

from . import _naming
from ._state import _THREAD, Context, pop, profiling, push
from ._variable_scope import AUTO_REUSE, _fresh_root, _root_scope
from .scopes import variable_scope
from .store import (
    _NAME_ATTR,
    VariableStore,
    _delattr_beside_variables,
    _setattr_beside_variables,
)

__all__ = ["ScopedModule", "check_optimizer"]


class ScopedModule(nn.Module):
    """An ``nn.Module`` whose parameters are made by ``get_variable`` on its first call.

    Args:
        fn: the function to run; omit it in a subclass that overrides ``forward``.
        name: a variable scope to run under (``"net"`` gives ``"net/conv1/weights"``).

    >>> def mlp(x):
    ...     with ts.variable_scope("dense"):
    ...         w = ts.get_variable("w", [4, 2])
    ...         b = ts.get_variable("b", [2], initializer=ts.zeros_initializer())
    ...     return x @ w + b
    >>> net = ts.ScopedModule(mlp, name="mlp")
    >>> net(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    >>> [name for name, _ in net.named_parameters()]
    ['mlp/dense/w', 'mlp/dense/b']
    """

    def __init__(self, fn: Callable[..., Any] | None = None, name: str | None = None) -> None:
        super().__init__()
        if fn is not None and not callable(fn):
            raise TypeError(f"ScopedModule's fn must be callable, got {type(fn).__name__}")
        if name is not None:
            _naming.check_scope_name(name, "ScopedModule")
        store = VariableStore()
        # Not a submodule: its parameters are this module's own (one shared dict).
        self.__dict__["store"] = store
        self._parameters = store._parameters
        self._fn = fn
        self._scope_name = name
        self._built = False
        self._loaded: set[str] | None = None

    # A variable may be named "training": see store.py.
    __delattr__ = _delattr_beside_variables

    def __setattr__(self, name: str, value: Any) -> None:
        replicated = self.__dict__.get("_replicated_names")
        if (
            replicated is not None
            and name in replicated
            and isinstance(value, torch.Tensor)
            and not isinstance(value, nn.Parameter)
        ):
            # A data-parallel replica (torch.nn.parallel.replicate) is handed each variable's
            # copy as an attribute, then lists it in _former_parameters: keep the copy there
            # only, so a variable named "training" or "store" leaves those attributes alone.
            former = self.__dict__.get("_former_parameters")
            if former is None:
                former = self.__dict__["_former_parameters"] = OrderedDict()
            former[name] = value
            return
        _setattr_beside_variables(self, name, value)

    def _replicate_for_data_parallel(self) -> ScopedModule:
        replica = super()._replicate_for_data_parallel()
        # The replica's own _parameters is empty: remember the names its copies come under.
        replica.__dict__["_replicated_names"] = frozenset(self._parameters)
        return replica

    @property
    def built(self) -> bool:
        """Whether the first call has made the variables."""
        return self._built

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is None:
            raise NotImplementedError(
                "ScopedModule needs a function (ScopedModule(fn)) or a subclass that overrides "
                "forward()"
            )
        return self._fn(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._built:
            return self._first_call(args, kwargs)
        if (
            is_compiling()
            or profiling()
            or self._compiled_call_impl is not None
            or "_former_parameters" in self.__dict__
        ):
            return self._run(True, args, kwargs)
        # The eager call of a built module, every training step: _run's work, inlined, and
        # forward called directly when no hook is registered (nn.Module's _call_impl makes
        # the same test). In a training loop this code runs with caches that backward and
        # the optimizer step have just filled with their own work, where every function
        # and object it touches costs more than in a hot loop.
        name = self._scope_name
        context = Context(self.store, self._parameters, _root_scope(True, name))
        if name is not None:
            context.name_scope = name
        slot = _THREAD.slot
        previous = slot[0]
        slot[0] = context
        try:
            if (
                self._forward_hooks
                or self._forward_pre_hooks
                or self._backward_hooks
                or self._backward_pre_hooks
                or _nn_module._global_forward_hooks
                or _nn_module._global_forward_pre_hooks
                or _nn_module._global_backward_hooks
                or _nn_module._global_backward_pre_hooks
                or torch._C._get_tracing_state()
            ):
                return self._call_impl(*args, **kwargs)
            return self.forward(*args, **kwargs)
        finally:
            if slot[0] is not context:
                pop(context, previous)  # raises: a context opened inside is still open
            slot[0] = previous

    def _run(self, reuse: Any, args: tuple, kwargs: dict) -> Any:
        # A data-parallel replica (torch.nn.parallel.replicate) holds its copies of the
        # parameters as plain attributes, listed in _former_parameters: hand out those.
        params = self.__dict__.get("_former_parameters") or self._parameters
        name = self._scope_name
        if name is not None and profiling():  # the profiler's range comes from variable_scope
            name, opened = None, name
        else:
            opened = None
        # Eager calls share a cached root, so the scopes entered under it come from its cache;
        # a traced call starts from a fresh one (the shared one's caches would become guards).
        if is_compiling() or self._compiled_call_impl is not None:
            scope = _fresh_root(reuse, name)
        else:
            scope = _root_scope(reuse, name)
        context = Context(self.store, params, scope)
        if name is not None:  # start in the state variable_scope(name) makes at a fresh root
            context.name_scope = name
        # nn.Module's call (hooks, then forward), one layer down: what its __call__ runs
        # unless the module was compiled in place (module.compile()).
        call = self._call_impl if self._compiled_call_impl is None else super().__call__
        previous = push(context)
        try:
            if opened is None:
                return call(*args, **kwargs)
            with variable_scope(opened):
                return call(*args, **kwargs)
        finally:
            pop(context, previous)

    def _first_call(self, args: tuple, kwargs: dict) -> Any:
        store = self.store
        before = set(store._parameters)
        loaded = self._loaded
        try:
            result = self._run(None if loaded is None else AUTO_REUSE, args, kwargs)
        except BaseException:
            store._forget(set(store._parameters) - before)  # a failed call leaves nothing behind
            raise
        self._built = True
        store._frozen = f"ScopedModule {self._describe()}" if self._scope_name else self._describe()
        if loaded is not None:
            self._report_checkpoint_use(before)
        return result

    def _report_checkpoint_use(self, loaded: set[str]) -> None:
        new = [n for n in self.store._parameters if n not in loaded]
        if new:
            warnings.warn(
                f"ScopedModule {self._describe()}: the state dict loaded before the first call "
                f"lacked {new}; they were initialized fresh.",
                stacklevel=3,
            )
        self._loaded = None

    def _describe(self) -> str:
        if self._scope_name:
            return repr(self._scope_name)
        fn = getattr(self._fn, "__qualname__", None)
        return f"{type(self).__name__}({fn})" if fn else type(self).__name__

    # -- checkpoints ------------------------------------------------------------------------------

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        if not self._built and not self._parameters:
            self._create_from_checkpoint(state_dict, prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _create_from_checkpoint(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Loading before the first call: the variables are made from the checkpoint, and
        the first call reuses them (any it asks for that are missing are made fresh, with
        a warning)."""
        names = [
            key[len(prefix) :]
            for key in state_dict
            if key.startswith(prefix) and "." not in key[len(prefix) :]
        ]
        if not names:
            return
        store = self.store
        for name in names:
            _naming.check_variable_name(name)
        for name in names:
            value = state_dict[prefix + name]
            if not isinstance(value, torch.Tensor):
                continue
            grad = value.is_floating_point() or value.is_complex()
            param = nn.Parameter(torch.empty_like(value), requires_grad=grad)
            store._insert(name, param, trainable=grad)
        self._loaded = set(store._parameters)

    def extra_repr(self) -> str:
        fn = getattr(self._fn, "__name__", None)
        parts = [f"fn={fn}"] if fn else []
        if self._scope_name:
            parts.append(f"name={self._scope_name!r}")
        parts.append(f"variables={len(self._parameters)}")
        return ", ".join(parts)


def check_optimizer(optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
    """Raises ValueError if ``module`` has trainable parameters ``optimizer`` does not update.

    Parameters made by ``get_variable`` exist only after the first call; an
    optimizer built before that silently trains nothing. Call this once after
    the first forward pass (``ts.ScopedModule`` users: after ``module(example)``).

    >>> net = ts.ScopedModule(lambda x: x * ts.get_variable("scale", [1]))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)   # too early: no parameters yet
    Traceback (most recent call last):
    ...
    ValueError: optimizer got an empty parameter list
    >>> _ = net(torch.ones(1))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> ts.check_optimizer(opt, net)
    """
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [
        getattr(p, _NAME_ATTR, name)
        for name, p in module.named_parameters()
        if p.requires_grad and id(p) not in held
    ]
    if missing:
        raise ValueError(
            f"the optimizer does not update {len(missing)} trainable variable(s) of this module: "
            f"{missing[:10]}{' ...' if len(missing) > 10 else ''}. They were probably created "
            "after the optimizer was built; call the module once on an example input first, then "
            "build the optimizer (or optimizer.add_param_group({'params': [...]}))."
        )
