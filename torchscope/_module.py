"""The module adapter: code written with ``get_variable`` as an ``nn.Module``.

A :class:`ScopedModule` owns a :class:`VariableStore`. Each call runs the
function (or the subclass's ``forward``) in a fresh context of that store: the
root scope, empty counters, so every call names its variables and operations the
same way, whatever scopes or threads the caller has open. The first call creates
the variables; later calls reuse them, and a later call that would create one
raises ``ValueError``. As with PyTorch's lazy modules, call the module once
before building the optimizer (the optimizer must see the parameters);
``ts.check_optimizer`` says which variables an optimizer is missing.

The store current at the first call (the default store, or one made current with
``as_default()``, or the store of a module whose call builds this one) lists this module's
variables in its collections afterwards, through a weak reference: the TensorFlow idiom
``model(x); opt = Adam(ts.trainable_variables())`` works, and a module that is gone
leaves the lists. Copies (``copy.deepcopy``, ``torch.load``) are listed nowhere: their
``parameters()`` and ``store`` hold them.

The module's own ``_parameters`` *is* the store's dict, so ``named_parameters()``
and ``state_dict()`` give the full names (``"conv1/weights"``), ``.to()`` moves
the store's variables, and ``torch.func.functional_call`` substitutions are what
``get_variable`` hands out during the call. Variables and attributes are kept
apart: a variable may be named ``"training"`` or ``"forward"`` and ``eval()`` still works.
"""

from __future__ import annotations

import functools
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic

import torch
from torch import nn
from torch.compiler import is_compiling
from torch.nn.modules import module as _nn_module

from . import _context, _naming
from ._collections import BUILT_MODULES
from ._context import _THREAD, Context, current, pop, profiling, push
from ._policy import Conversion, Policy, fit_loaded
from ._scopes import variable_scope
from ._store import (
    _NAME_ATTR,
    VariableStore,
    _delattr_beside_variables,
    _setattr_beside_variables,
    check_load,
)
from ._types import AUTO_REUSE, Getter, P, R, Reuse
from ._variable_scope import VariableScope, _fresh_root, _root_scope

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ScopedModule", "check_optimizer"]


class ScopedModule(nn.Module, Generic[P, R]):
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

    Type checkers see the module called as ``fn`` is: ``ScopedModule(mlp)(x)`` has the
    type ``mlp`` returns (a subclass that overrides ``forward`` returns ``Any``).
    """

    store: VariableStore
    """The store that holds this module's variables (its ``_parameters`` are the store's)."""
    _fn: Callable[P, R] | None
    _scope_name: str | None
    _built: bool
    _building: bool
    _build_getter: Getter | None
    _loaded: dict[str, str] | None
    _build_lock: threading.RLock

    def __init__(self, fn: Callable[P, R] | None = None, name: str | None = None) -> None:
        super().__init__()
        if fn is not None and not callable(fn):
            raise TypeError(f"ScopedModule's fn must be callable, got {type(fn).__name__}")
        if name is not None:
            _naming.check_scope_name(name, "ScopedModule", root=True)
        # The seed of the store current when the module is made (ts.set_seed) is its own.
        store = VariableStore(seed=_context.current().store.seed)
        store.policy = Policy(self)
        # Not a submodule: its parameters are this module's own (one shared dict).
        self.__dict__["store"] = store
        self._parameters = store._parameters
        self._fn = fn
        self._scope_name = name
        self._built = False
        self._building = False  # the first call is running (a call inside it is part of it)
        self._build_getter = None
        self._loaded = None  # made from a checkpoint, not yet asked for: name -> its source
        self._build_lock = threading.RLock()  # the first call holds it

    # ts.summary(module, inputs=...) sets it for one call: get_variable hands it each variable.
    _observer: Callable[[torch.Tensor], None] | None = None

    # A variable may be named "training": see _store.py.
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

    def __setstate__(self, state: dict[str, Any]) -> None:
        policy = state.pop("_policy_state", None)
        super().__setstate__(state)
        self.store.policy = Policy(self, *(policy or ()))
        self._build_lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_build_lock", None)
        policy = self._policy()
        # The store's policy refers to this module weakly: saved here, rebuilt on load.
        state["_policy_state"] = (policy._frozen, policy.conversion)
        return state

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        # A subclass's own nn.Parameter (self.scale = nn.Parameter(...)) lands in the store's
        # dict: it becomes a variable of that name, with the store's bookkeeping.
        super().register_parameter(name, param)
        if param is not None:
            self.store._adopt(name, param)

    def _apply(self, fn: Callable[[torch.Tensor], Any], recurse: bool = True) -> Self:
        # .to(), .double(), .half(), .cuda()... before the first call: the variables that call
        # makes get the same conversion (as a lazy module's uninitialized parameters do).
        if not self._built:
            policy = self._policy()
            conversion = policy.conversion or Conversion()
            conversion.then(fn)
            policy.conversion = conversion
        super()._apply(fn, recurse)
        self.store._name_again()  # nn.Module._apply may have made plain nn.Parameters
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """As ``nn.Module.requires_grad_``, except that variables made with
        ``trainable=False`` (and integer or bool ones, which cannot have gradients) are
        left frozen when ``requires_grad`` is True: unfreezing a model does not make its
        moving averages or step counters trainable."""
        trainable = self.store._trainable
        for name, param in self._parameters.items():
            if param is not None and (not requires_grad or name in trainable):
                param.requires_grad_(requires_grad)
        for child in self.children():
            child.requires_grad_(requires_grad)
        return self

    def _replicate_for_data_parallel(self) -> Self:
        if not self._built:
            raise RuntimeError(
                f"{self._describe()} has not made its variables yet: call it once "
                "on an example input before wrapping it in nn.DataParallel (the replicas share "
                "the variables its first call makes)."
            )
        replica = super()._replicate_for_data_parallel()
        # The replica's own _parameters is empty: remember the names its copies come under.
        replica.__dict__["_replicated_names"] = frozenset(self._parameters)
        return replica

    def _policy(self) -> Policy:
        """The store's creation policy: the one this module gave it."""
        return self.store.policy  # type: ignore[return-value]

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

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self._built:
            return self._first_call(args, kwargs)
        if (
            is_compiling()
            or profiling()
            or self._compiled_call_impl is not None
            or "_former_parameters" in self.__dict__
        ):
            return self._run(True, args, kwargs, None)
        # The eager call of a built module, every training step: _run's work, inlined, and
        # forward called directly when no hook is registered (nn.Module's _call_impl makes
        # the same test). In a training loop this code runs with caches that backward and
        # the optimizer step have just filled with their own work, where every function
        # and object it touches costs more than in a hot loop.
        name = self._scope_name
        context = Context(
            self.store, self._parameters, _root_scope(True, name), name or "", self._observer
        )
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
                return self._call_impl(*args, **kwargs)  # type: ignore[return-value]
            return self.forward(*args, **kwargs)
        finally:
            if slot[0] is not context:
                pop(context, previous)  # raises: a context opened inside is still open
            slot[0] = previous

    def _run(
        self, reuse: Reuse, args: tuple[Any, ...], kwargs: dict[str, Any], getter: Getter | None
    ) -> Any:
        # getter has no default: torch.compile would guard on _run.__defaults__ on every call.
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
        if getter is not None:  # the first call after a checkpoint was loaded (see _build)
            ns = name + "/" if name else ""
            scope = VariableScope(reuse, name or "", custom_getter=getter, name_scope=ns)
        elif is_compiling() or self._compiled_call_impl is not None:
            scope = _fresh_root(reuse, name)
        else:
            scope = _root_scope(reuse, name)
        # Named: starts in the state variable_scope(name) makes at a fresh root.
        observer = None if is_compiling() else self._observer
        context = Context(self.store, params, scope, name or "", observer)
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

    def _first_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if torch.compiler.is_exporting() or torch._C._get_tracing_state() is not None:
            # torch.export and torch.jit.trace run the call on fake or traced values: the
            # variables would be made of those, and the program would hold no parameters.
            raise RuntimeError(
                f"{self._describe()} has not made its variables yet: call it once "
                "on an example input before torch.export.export or torch.jit.trace (they "
                "record the variables the first call makes as the program's parameters)."
            )
        # One thread builds; the others wait, then reuse what it made. A call of this module
        # inside its own first call (recursion) is part of the build: it reuses what exists
        # so far and makes what is missing.
        with self._build_lock:
            if not self._built:
                if self._building:
                    return self._run(AUTO_REUSE, args, kwargs, self._build_getter)
                return self._build(args, kwargs)
        return self(*args, **kwargs)  # another thread built it while this one waited

    def _build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        store = self.store
        outer = current().store  # the store this module is built in (see _collections)
        self._refuse_substitutes(())
        before = set(store._parameters)
        loaded = self._loaded
        claimed: set[str] = set()
        getter = None if loaded is None else self._claiming_getter(loaded, claimed)
        self._building, self._build_getter = True, getter
        try:
            # A failed call leaves nothing behind: no variables, no collection items.
            with store.transaction():
                result = self._run(None if loaded is None else AUTO_REUSE, args, kwargs, getter)
                created = [n for n in store._parameters if n not in before]
                self._refuse_substitutes(created)
        finally:
            self._building, self._build_getter = False, None
        unused = [n for n in store._parameters if loaded and n in loaded and n not in claimed]
        if loaded is not None:
            self._report_checkpoint_use(created, unused)
        self._warn_doubled_prefix(created)
        if outer is not store:
            # ts.trainable_variables() & co. of the store current now list this module's
            # (a weak reference: a module that is gone leaves them). In the caller's
            # transaction, if any: a failed outer call takes it back.
            outer.add_to_collection(BUILT_MODULES, weakref.ref(store))
        self._built = True
        policy = self._policy()
        policy.freeze(self._describe())
        return result

    def _claiming_getter(self, loaded: dict[str, str], claimed: set[str]) -> Getter:
        """The root scope's custom getter for the first call after a checkpoint was loaded:
        each variable made from the checkpoint takes what the ``get_variable`` call that
        first asks for it says (trainable, regularizer, constraint, and its dtype: the value
        is cast, as a load after the first call would), as if the call had made it and the
        checkpoint had been loaded afterwards. A shape that differs is refused, naming the
        checkpoint."""
        store = self.store
        policy = self._policy()

        def claim(getter: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> Any:
            param = store._parameters.get(name)
            fresh = name in loaded and name not in claimed and param is not None
            if fresh:
                fit_loaded(name, param, kwargs, policy, loaded[name])  # type: ignore[arg-type]
            variable = getter(name, *args, **kwargs)
            if fresh and variable is param:
                store._claim(
                    name,
                    variable,
                    kwargs.get("trainable"),
                    kwargs.get("regularizer"),
                    kwargs.get("constraint"),
                )
                claimed.add(name)
            return variable

        return claim

    def _warn_doubled_prefix(self, created: list[str]) -> None:
        """Warns (once: the first call) when ``name`` and the function's own outermost
        ``variable_scope`` say the same: every variable is then ``"model/model/..."``, not
        the TensorFlow names a checkpoint holds."""
        name = self._scope_name
        doubled = f"{name}/{name}/"
        if name and created and all(n.startswith(doubled) for n in created):
            warnings.warn(
                f"{self._describe()}: every variable its first call made starts with "
                f"{doubled!r} (for example {created[0]!r}): the module's name={name!r} and "
                f"the variable_scope({name!r}) its function opens both add {name!r}. For "
                f"TensorFlow's names ({created[0][len(name) + 1 :]!r}), drop name= "
                f"(ts.ScopedModule(fn)) or the function's variable_scope({name!r}).",
                stacklevel=5,
            )

    def _refuse_substitutes(self, created: Iterable[str]) -> None:
        """Raises if tensors were put in the place of this module's variables before it made
        them (``torch.func.functional_call`` before the first call): they would be ignored."""
        attrs = self.__dict__
        held = [n for n, v in attrs.items() if isinstance(v, torch.Tensor) and "/" in n]
        held += [n for n in created if isinstance(attrs.get(n), torch.Tensor) and n not in held]
        if held:
            raise RuntimeError(
                f"{self._describe()} was given tensors for {held} (by "
                "torch.func.functional_call or setattr) before its first call made its "
                "variables, so they would be ignored. Call the module once on an example "
                "input first; then functional_call substitutes them."
            )

    def _report_checkpoint_use(self, created: list[str], unused: list[str]) -> None:
        if created:
            warnings.warn(
                f"{self._describe()}: the state dict loaded before the first call "
                f"lacked {created}; they were initialized fresh.",
                stacklevel=4,
            )
        if unused:
            # load_state_dict's strict flag does not reach the module (nn.Module checks keys
            # after loading), and the names are known only now: a warning, whatever strict was.
            self.store._remove(unused)
            warnings.warn(
                f"{self._describe()}: the state dict loaded before the first call "
                f"held {unused}, which the call did not ask for; they were dropped. (Loaded "
                "after the first call, load_state_dict reports such keys itself.)",
                stacklevel=4,
            )
        self._loaded = None

    def _describe(self) -> str:
        """The module as messages name it: ``ScopedModule 'net'`` (its scope),
        ``ScopedModule(mlp)``, ``ScopedModule(partial(mlp))`` (its function), or the
        subclass's name."""
        if self._scope_name:
            return f"{type(self).__name__} {self._scope_name!r}"
        fn = describe_fn(self._fn)
        return f"{type(self).__name__}({fn})" if fn else type(self).__name__

    # -- checkpoints ------------------------------------------------------------------------------

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``, all or nothing once the module is built: every key
        and shape (and with ``strict`` the key sets) is checked before any value is copied.
        Before the first call the state dict's tensors become the variables that call
        claims (see ``_create_from_checkpoint``)."""
        if self._built:
            check_load(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        if not self._built:
            self._create_from_checkpoint(state_dict, prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _create_from_checkpoint(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Loading before the first call: the variables are made from the checkpoint (so an
        optimizer can be built, and its state loaded, before the first call), and the first
        call claims them: each takes what the ``get_variable`` call that asks for it says
        (trainable, regularizer, constraint; see ``_claiming_getter``). Variables the call
        asks for that the checkpoint lacks are made fresh, and ones it holds that the call
        does not ask for are dropped, each with a warning."""
        values = {}
        sources = {}
        for key, value in state_dict.items():
            name = key[len(prefix) :]
            if key.startswith(prefix) and "." not in name and isinstance(value, torch.Tensor):
                values[name] = value
                sources[name] = f"key {key!r} of the state dict given to load_state_dict()"
        self._create_loaded(values, own=False, sources=sources)

    def _create_loaded(
        self,
        values: dict[str, torch.Tensor],
        *,
        own: bool,
        sources: dict[str, str] | None = None,
    ) -> None:
        """Makes a variable for each name of ``values`` this unbuilt module does not have yet,
        for its first call to claim (see ``_create_from_checkpoint``). ``own``: the tensors
        become the variables' data (``ts.train.init_from_checkpoint`` reads into fresh
        tensors); else each variable gets fresh memory its values are copied into later.
        ``sources`` says where each value came from, for the first call's errors."""
        store = self.store
        names = [n for n in values if n not in self._buffers]
        for name in names:
            _naming.check_variable_name(name)
        # Loaded again before the first call: a value of another shape replaces the one
        # loaded before (nothing has claimed it yet); one of the same shape is copied in.
        pending = self._loaded or {}
        params = self._parameters
        store._remove(
            [n for n in names if n in pending and _shape(params.get(n)) != values[n].shape]
        )
        names = [n for n in names if n not in self._parameters]
        for name in names:
            value = values[name]
            grad = value.is_floating_point() or value.is_complex()
            data = value.detach() if own else torch.empty_like(value)
            param = self._policy().convert(nn.Parameter(data, requires_grad=grad))
            store._insert(name, param, trainable=grad)
        if names:
            sources = sources or {}
            loaded = dict(self._loaded or {})
            for name in names:
                loaded[name] = sources.get(name, f"the value loaded for {name!r}")
            self._loaded = loaded

    def extra_repr(self) -> str:
        fn = describe_fn(self._fn)
        parts = [f"fn={fn}"] if fn else []
        if self._scope_name:
            parts.append(f"name={self._scope_name!r}")
        parts.append(f"variables={len(self._parameters)}")
        return ", ".join(parts)


def describe_fn(fn: Any) -> str | None:
    """A function's name for messages: its qualified name; ``partial(name)`` for a
    ``functools.partial``; the class name of a callable object; None for None."""
    if fn is None:
        return None
    if isinstance(fn, functools.partial):
        inner = describe_fn(fn.func)
        return f"partial({inner})"
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__name__


def _shape(param: torch.Tensor | None) -> torch.Size | None:
    return None if param is None else param.shape


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
    stale = [p for group in optimizer.param_groups for p in group["params"] if p.is_meta]
    if stale:
        raise ValueError(
            f"the optimizer holds {len(stale)} tensor(s) on the meta device: it was built "
            "before ts.materialize gave the variables their values (materialize makes new "
            "Parameters). Build the optimizer after ts.materialize(module)."
        )
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
