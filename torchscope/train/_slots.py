"""Optimizer state <-> TensorFlow-1 checkpoint entries (slot variables and Adam's beta powers).

TensorFlow-1 saves an optimizer's state as variables beside the model's: one per slot and
variable, keyed ``<var>/<Name>``, ``<var>/<Name>_1``, ... in the order the optimizer creates
its slots (``Name`` is the optimizer's ``name``), and for Adam the scalars ``beta1_power`` and
``beta2_power``:

=================  ==============================================================
AdamOptimizer      ``<var>/Adam`` (m), ``<var>/Adam_1`` (v), ``beta1_power``, ``beta2_power``
MomentumOptimizer  ``<var>/Momentum``
RMSPropOptimizer   ``<var>/RMSProp`` (ms), ``<var>/RMSProp_1`` (mom); centered:
                   ``<var>/RMSProp`` (ms), ``<var>/RMSProp_1`` (mg), ``<var>/RMSProp_2`` (mom)
AdagradOptimizer   ``<var>/Adagrad``
GradientDescent    (no state)
=================  ==============================================================

:func:`optimizer_slots` and :func:`load_optimizer_slots` map those to and from the state of
``ts.train``'s five optimizers (one to one) and of ``torch.optim``'s ``Adam`` (``exp_avg``,
``exp_avg_sq``, ``step``), ``SGD`` (``momentum_buffer``), ``RMSprop`` (``square_avg``,
``grad_avg``, ``momentum_buffer`` times ``lr``) and ``Adagrad`` (``sum``). Parameters are named
by ``variables``: a mapping from full variable name to parameter, such as a
``ts.VariableStore`` or ``dict(model.named_parameters())`` with TensorFlow's names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ._optimizers import (
    BETA_POWERS,
    AdamOptimizer,
    _TFOptimizer,
    hyper,
)

__all__ = ["load_optimizer_slots", "optimizer_slots", "slot_key"]

Reader = Mapping[str, torch.Tensor] | Callable[[str], torch.Tensor | None] | Any

SUPPORTED = (
    "ts.train's AdamOptimizer, MomentumOptimizer, RMSPropOptimizer, AdagradOptimizer, "
    "GradientDescentOptimizer, and torch.optim's Adam, SGD, RMSprop, Adagrad"
)
_FLOAT32_TINY = torch.finfo(torch.float32).tiny


def slot_key(variable: str, name: str, index: int) -> str:
    """The checkpoint key of a variable's ``index``-th slot (TF's uniquified slot names).

    >>> slot_key("mlp/out/kernel", "Adam", 0), slot_key("mlp/out/kernel", "Adam", 1)
    ('mlp/out/kernel/Adam', 'mlp/out/kernel/Adam_1')
    """
    return f"{variable}/{name}" if index == 0 else f"{variable}/{name}_{index}"


# ---------------------------------------------------------------------------- layouts


def _refuse(kind: str, group: dict, key: str, bad: Callable[[Any], bool], why: str) -> None:
    if key in group and bad(group[key]):
        raise ValueError(f"{kind} with {key}={group[key]!r} has no TensorFlow-1 counterpart: {why}")


def _no_decay(kind: str, group: dict) -> None:
    _refuse(
        kind,
        group,
        "weight_decay",
        lambda v: v != 0,
        "TF1's optimizers apply no "
        "weight decay (add it to the loss, as TF1 models do); use weight_decay=0",
    )
    _refuse(kind, group, "maximize", bool, "TF1 minimizes; negate the loss instead")


class _Layout:
    """How one optimizer type's state maps to TensorFlow's."""

    kind = ""
    default_name = ""

    def check(self, group: dict) -> None:
        """Refuses hyperparameters whose state has no TensorFlow counterpart."""

    def slots(self, group: dict) -> tuple[str, ...]:
        """TensorFlow's slot names, in creation order (the ``_1``, ``_2`` suffixes)."""
        raise NotImplementedError

    def to_tf(self, opt, p: torch.Tensor, group: dict) -> list[torch.Tensor]:
        raise NotImplementedError

    def from_tf(self, opt, p, group, values: list[torch.Tensor], shared) -> dict[str, Any]:
        raise NotImplementedError

    def shared_to_tf(self, opt) -> dict[str, torch.Tensor]:
        return {}

    def shared_from_tf(self, opt, values: dict[str, torch.Tensor]) -> Any:
        return None

    def commit_shared(self, opt, shared) -> None:
        pass


class _Ours(_Layout):
    """ts.train's five: the state holds TF's slots under TF's names, one to one."""

    def __init__(self, opt: _TFOptimizer) -> None:
        self.kind = type(opt).__name__
        self.default_name = opt.name
        self.slots = opt._slot_names

    def to_tf(self, opt, p, group):
        state = opt.state.get(p, {})
        return [state[s] if s in state else opt._new_slot(s, p, group) for s in self.slots(group)]

    def from_tf(self, opt, p, group, values, shared):
        return dict(zip(self.slots(group), values, strict=True))

    def shared_to_tf(self, opt):
        if not isinstance(opt, AdamOptimizer):
            return {}
        powers = [opt.beta_powers(group) for group in opt.param_groups]
        if any(
            not torch.equal(a.cpu(), b.cpu())
            for pair in powers
            for a, b in zip(pair, powers[0], strict=True)
        ):
            raise ValueError(
                f"{self.kind}'s param groups hold different beta powers "
                f"({[tuple(float(b) for b in pair) for pair in powers]}); TensorFlow keeps one "
                "beta1_power/beta2_power pair per optimizer: save one optimizer per group"
            )
        return {
            key: value.detach().clone() for key, value in zip(BETA_POWERS, powers[0], strict=True)
        }

    def shared_from_tf(self, opt, values):
        return values if isinstance(opt, AdamOptimizer) else None

    def commit_shared(self, opt, shared):
        for group in opt.param_groups if shared else ():
            device = group["params"][0].device if group["params"] else None
            for key in BETA_POWERS:
                group[key] = shared[key].to(device=device, dtype=torch.float32, copy=True)


class _TorchAdam(_Layout):
    kind, default_name = "torch.optim.Adam", "Adam"

    def check(self, group):
        _no_decay(self.kind, group)
        _refuse(
            self.kind,
            group,
            "amsgrad",
            bool,
            "TF1's AdamOptimizer keeps no running maximum of v; use amsgrad=False",
        )

    def slots(self, group):
        return ("m", "v")

    def to_tf(self, opt, p, group):
        state = opt.state.get(p, {})
        if "exp_avg" not in state:
            return [torch.zeros_like(p), torch.zeros_like(p)]
        return [state["exp_avg"], state["exp_avg_sq"]]

    def from_tf(self, opt, p, group, values, shared):
        return {
            "step": _torch_step(shared, p, group),
            "exp_avg": values[0],
            "exp_avg_sq": values[1],
        }

    def shared_to_tf(self, opt):
        steps = {int(s["step"]) for s in opt.state.values() if "step" in s}
        if len(steps) > 1:
            raise ValueError(
                f"{self.kind}'s parameters have taken different numbers of steps "
                f"({sorted(steps)}); TensorFlow keeps one beta1_power/beta2_power pair for all"
            )
        k = steps.pop() if steps else 0
        pairs = {
            (
                _float32_power(float(g["betas"][0]), k + 1),
                _float32_power(float(g["betas"][1]), k + 1),
            )
            for g in opt.param_groups
        }
        if len(pairs) > 1:
            raise ValueError(
                f"{self.kind}'s param groups have different betas; TensorFlow "
                "keeps one beta1_power/beta2_power pair: save one optimizer per group"
            )
        return {
            key: torch.tensor(v, dtype=torch.float32)
            for key, v in zip(BETA_POWERS, pairs.pop(), strict=True)
        }

    def shared_from_tf(self, opt, values):
        powers = [float(values[key]) for key in BETA_POWERS]
        steps = {_steps(*powers, *(float(b) for b in g["betas"])) for g in opt.param_groups}
        return steps.pop()  # one value: every group's betas reproduced the same powers


class _TorchSGD(_Layout):
    kind, default_name = "torch.optim.SGD", "Momentum"

    def check(self, group):
        _no_decay(self.kind, group)
        _refuse(
            self.kind,
            group,
            "dampening",
            lambda v: v != 0,
            "TF1's MomentumOptimizer adds the whole gradient to its accumulator; use dampening=0",
        )

    def slots(self, group):
        return ("momentum",) if group["momentum"] != 0 else ()  # momentum 0: GradientDescent

    def to_tf(self, opt, p, group):
        if not self.slots(group):
            return []
        buf = opt.state.get(p, {}).get("momentum_buffer")
        return [torch.zeros_like(p) if buf is None else buf]

    def from_tf(self, opt, p, group, values, shared):
        return {"momentum_buffer": values[0]} if values else {}


class _TorchRMSprop(_Layout):
    """TF's mom includes the learning rate: torch's ``momentum_buffer`` is ``mom / lr``."""

    kind, default_name = "torch.optim.RMSprop", "RMSProp"

    def check(self, group):
        _no_decay(self.kind, group)

    def slots(self, group):
        return ("rms", "mg", "momentum") if group["centered"] else ("rms", "momentum")

    def to_tf(self, opt, p, group):
        state = opt.state.get(p, {})
        ms = state.get("square_avg", torch.ones_like(p))
        mom = state.get("momentum_buffer")
        mom = torch.zeros_like(p) if mom is None else mom * float(group["lr"])
        mg = [state.get("grad_avg", torch.zeros_like(p))] if group["centered"] else []
        return [ms, *mg, mom]

    def from_tf(self, opt, p, group, values, shared):
        state = {"step": _torch_step(0, p, group), "square_avg": values[0]}
        if group["centered"]:
            state["grad_avg"] = values[1]
        if group["momentum"] > 0:
            if float(group["lr"]) == 0:
                raise ValueError(
                    f"{self.kind} with lr=0 cannot take TF's mom (= lr * "
                    "momentum_buffer): give the learning rate before loading"
                )
            state["momentum_buffer"] = values[-1] / float(group["lr"])
        return state


class _TorchAdagrad(_Layout):
    kind, default_name = "torch.optim.Adagrad", "Adagrad"

    def check(self, group):
        _no_decay(self.kind, group)
        _refuse(
            self.kind,
            group,
            "lr_decay",
            lambda v: v != 0,
            "TF1's AdagradOptimizer has "
            "no learning-rate decay; use lr_decay=0 (or an LR scheduler)",
        )

    def slots(self, group):
        return ("accumulator",)

    def to_tf(self, opt, p, group):
        accum = opt.state.get(p, {}).get("sum")  # torch makes it in __init__
        return [torch.full_like(p, group["initial_accumulator_value"]) if accum is None else accum]

    def from_tf(self, opt, p, group, values, shared):
        return {"step": _torch_step(0, p, group), "sum": values[0]}


def _torch_step(count: int, p: torch.Tensor, group: dict) -> torch.Tensor:
    """A ``step`` entry as torch.optim makes it: on the parameter's device when capturable
    or fused, float32 (float64 under a float64 default dtype, unless fused)."""
    fused = bool(group.get("fused"))
    device = p.device if fused or group.get("capturable") else None
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 and not fused else None
    return torch.tensor(float(count), dtype=dtype or torch.float32, device=device)


def _layout(optimizer: Any) -> _Layout:
    if isinstance(optimizer, _TFOptimizer):
        return _Ours(optimizer)
    for cls, layout in (
        (torch.optim.Adam, _TorchAdam),
        (torch.optim.SGD, _TorchSGD),
        (torch.optim.RMSprop, _TorchRMSprop),
        (torch.optim.Adagrad, _TorchAdagrad),
    ):
        if isinstance(optimizer, cls):
            return layout()
    raise TypeError(
        f"no TensorFlow-1 slot layout for {type(optimizer).__module__}."
        f"{type(optimizer).__qualname__}; supported: {SUPPORTED}"
    )


# ---------------------------------------------------------------------------- beta powers


def _float32_power(beta: float, n: int) -> float:
    """``beta ** n`` as TensorFlow computes it: ``beta`` in float32, times ``beta`` in
    float32, ``n - 1`` times (it stops early once the product stops changing)."""
    beta = hyper(beta, torch.float32)
    power = beta
    for _ in range(n - 1):
        following = hyper(power * beta, torch.float32)
        if following == power:
            break
        power = following
    return power


def _steps(beta1_power: float, beta2_power: float, beta1: float, beta2: float) -> int:
    """How many steps TF's Adam had taken: ``beta_power == beta ** (k + 1)``."""
    pairs = (("beta1_power", beta1_power, beta1), ("beta2_power", beta2_power, beta2))
    usable = [(n, p, b) for n, p, b in pairs if 0 < b < 1 and _FLOAT32_TINY <= p <= 1]
    if not usable:
        raise ValueError(
            f"cannot tell the step count of TF's Adam from beta1_power={beta1_power!r} and "
            f"beta2_power={beta2_power!r} (betas {beta1}, {beta2}): both have underflowed"
        )
    name, power, beta = usable[-1]  # beta2's: it decays slower, so it tells k finer
    k = round(math.log(power) / math.log(beta)) - 1
    if k < 0:
        raise ValueError(
            f"the checkpoint's {name}={power!r} is not beta**(k+1) for any step count k >= 0 "
            f"of this optimizer's beta {beta}: was the checkpoint's Adam made with other betas?"
        )
    for other, value, b in pairs:
        expected = _float32_power(b, k + 1)
        if not math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-44):
            raise ValueError(
                f"the checkpoint's {other}={value!r} is not beta**(k+1)={expected!r} for "
                f"the k={k} steps that its {name}={power!r} gives (this optimizer's betas "
                f"are {beta1}, {beta2}): was the checkpoint's Adam made with other betas?"
            )
    return k


# ---------------------------------------------------------------------------- the two


def _named_params(optimizer, variables: Mapping[str, torch.Tensor]):
    """(group, param, name) for every parameter of the optimizer that can be trained (one
    that cannot, such as a store's int64 ``global_step``, has no slots in TensorFlow)."""
    names: dict[int, list[str]] = {}
    for name, value in variables.items():
        names.setdefault(id(value), []).append(name)
    out = []
    for g, group in enumerate(optimizer.param_groups):
        for i, p in enumerate(group["params"]):
            if not p.requires_grad:
                continue
            found = names.get(id(p), [])
            if len(found) != 1:
                problem = f"is named {found}" if found else "has no name in `variables`"
                raise ValueError(
                    f"parameter {i} of param group {g} (shape {list(p.shape)}) {problem}: "
                    "`variables` must map one full variable name to each parameter of the "
                    "optimizer (a ts.VariableStore, or {name: param})"
                )
            out.append((group, p, found[0]))
    return out


def optimizer_slots(
    optimizer: torch.optim.Optimizer,
    variables: Mapping[str, torch.Tensor],
    *,
    name: str | None = None,
) -> dict[str, torch.Tensor]:
    """The TensorFlow-1 checkpoint entries of an optimizer's current state.

    Args:
        optimizer: one of ts.train's five optimizers, or ``torch.optim``'s ``Adam``, ``SGD``,
            ``RMSprop`` or ``Adagrad`` (hyperparameters that TensorFlow-1 has no state for,
            such as ``amsgrad`` or ``weight_decay``, are refused).
        variables: full variable name -> parameter, naming every parameter of the optimizer.
        name: the slot suffix; by default the optimizer's ``name`` (ts.train) or TensorFlow's
            default (``Adam``, ``Momentum``, ``RMSProp``, ``Adagrad``).

    Returns:
        checkpoint key -> a new tensor (slots in the parameter's dtype, beta powers float32).
        A parameter without state yet gets the values TensorFlow creates its slots with.

    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> w.grad = torch.ones(2)
    >>> opt.step()
    >>> optimizer_slots(opt, {"dense/kernel": w})
    {'dense/kernel/Momentum': tensor([1., 1.])}
    """
    layout = _layout(optimizer)
    entries = _named_params(optimizer, variables)
    for group in optimizer.param_groups:
        layout.check(group)
    suffix = name or layout.default_name
    out = {}
    for group, p, var in entries:
        for i, value in enumerate(layout.to_tf(optimizer, p, group)):
            out[slot_key(var, suffix, i)] = value.detach().clone()
    out.update(layout.shared_to_tf(optimizer))
    return out


def load_optimizer_slots(
    optimizer: torch.optim.Optimizer,
    variables: Mapping[str, torch.Tensor],
    read: Reader,
    *,
    name: str | None = None,
) -> None:
    """Sets an optimizer's state from TensorFlow-1 checkpoint entries; all or nothing.

    Every entry is read and checked before any state is written: each key present, each
    slot's shape the parameter's and its dtype castable to the parameter's, Adam's beta
    powers scalars (for ``torch.optim.Adam``: a whole number of steps of its betas). On any
    problem a ``ValueError`` names the variable, the key and what was wrong, and the
    optimizer is left as it was. The parameters' state is replaced by the loaded one.

    Args:
        optimizer, variables, name: as for :func:`optimizer_slots`.
        read: checkpoint key -> tensor, or ``None`` (or ``KeyError``) if the checkpoint has
            no such key; a mapping such as ``dict``, or a checkpoint reader (an object with
            ``get_tensor``, as ``load_checkpoint`` returns), works too.

    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = torch.optim.Adagrad([w], lr=0.1)
    >>> load_optimizer_slots(opt, {"emb": w}, {"emb/Adagrad": torch.tensor([4.0, 9.0])})
    >>> opt.state[w]["sum"]
    tensor([4., 9.])
    """
    layout = _layout(optimizer)
    entries = _named_params(optimizer, variables)
    for group in optimizer.param_groups:
        layout.check(group)
    suffix = name or layout.default_name
    get = read.get if isinstance(read, Mapping) else getattr(read, "get_tensor", read)
    shared_values = {key: _read(get, key, None, "", "") for key in _shared_keys(layout, optimizer)}
    shared = layout.shared_from_tf(optimizer, shared_values)
    staged = []
    for group, p, var in entries:
        slots = layout.slots(group)
        values = [_read(get, slot_key(var, suffix, i), p, var, s) for i, s in enumerate(slots)]
        if slots[:1] == ("rms",) and "mg" not in slots:
            _check_not_centered(get, var, suffix)
        staged.append((p, layout.from_tf(optimizer, p, group, values, shared)))
    for p, state in staged:  # nothing below can fail
        optimizer.state[p] = state
    layout.commit_shared(optimizer, shared)


def _shared_keys(layout: _Layout, optimizer) -> tuple[str, ...]:
    adam = isinstance(layout, _TorchAdam) or isinstance(optimizer, AdamOptimizer)
    return BETA_POWERS if adam else ()


def _lookup(get, key: str):
    try:
        return get(key)
    except KeyError:
        return None


def _read(get, key: str, p: torch.Tensor | None, var: str, slot: str) -> torch.Tensor:
    """The checkpoint's ``key``, checked against parameter ``p`` (a scalar when ``p`` is None)
    and converted to its dtype and device."""
    what = f"slot {slot!r} of variable {var!r}" if p is not None else "Adam's beta power"
    value = _lookup(get, key)
    if value is None:
        raise ValueError(
            f"checkpoint key {key!r} ({what}) is missing; was the checkpoint's optimizer "
            "another type, or named otherwise (pass name=...)?"
        )
    value = torch.as_tensor(value)
    shape = tuple(p.shape) if p is not None else ()
    if tuple(value.shape) != shape:
        raise ValueError(
            f"checkpoint key {key!r} ({what}) has shape {list(value.shape)}, expected {list(shape)}"
        )
    dtype = p.dtype if p is not None else torch.float32
    if not value.is_floating_point() or not torch.can_cast(value.dtype, dtype):
        raise ValueError(
            f"checkpoint key {key!r} ({what}) has dtype {value.dtype}, which cannot be cast "
            f"to {dtype}"
        )
    device = p.device if p is not None else None
    return value.to(device=device, dtype=dtype, copy=True)


def _check_not_centered(get, var: str, suffix: str) -> None:
    extra = slot_key(var, suffix, 2)
    if _lookup(get, extra) is not None:
        raise ValueError(
            f"checkpoint key {extra!r} is present, so the checkpoint's RMSProp was centered "
            f"and {slot_key(var, suffix, 1)!r} is its mg, not mom: load it into an RMSProp "
            f"with centered=True (variable {var!r})"
        )
