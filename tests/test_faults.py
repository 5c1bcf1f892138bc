"""Fault injection: an exception raised at any callback point leaves nothing half-done.

Scope programs are generated with hypothesis (scopes, default names, get_variable with
initializers, regularizers, constraints and custom getters, collections, templates), and
an exception is injected at the k-th callback the program makes (an initializer, a custom
getter before or after it calls the real getter, a regularizer). Then:

- in a plain store, the store (names, values bit for bit, attributes, collections, the
  default_name counters of the scope the failed call ran in) is what it was before the call
  that failed (a get_variable, a template call);
- run as a ScopedModule's first call, the module is as it was before the call (no
  variables, no collection items) and its next, correct call gives what a fresh module's
  gives;
- constraints and loads that fail leave every variable as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchscope as ts


class Injected(Exception):
    """The injected fault."""


@dataclass
class Faults:
    """Counts callbacks; raises at the one numbered ``at`` (None: never)."""

    at: int | None = None
    seen: int = 0
    where: list[str] = field(default_factory=list)

    def __call__(self, point: str) -> None:
        self.seen += 1
        self.where.append(point)
        if self.seen == self.at:
            raise Injected(f"injected at callback {self.seen} ({point})")


# -- programs ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
SHAPES = st.sampled_from([[2], [2, 3], []])


@st.composite
def get_var(draw: Any) -> tuple:
    return (
        "get",
        draw(NAMES),
        draw(SHAPES),
        draw(st.booleans()),  # regularizer
        draw(st.booleans()),  # constraint
        draw(st.booleans()),  # trainable
    )


def programs(depth: int = 2) -> Any:
    leaves = st.one_of(get_var(), st.tuples(st.just("collect"), NAMES))
    if depth == 0:
        return st.lists(leaves, max_size=4)
    inner = programs(depth - 1)
    scope = st.tuples(
        st.just("scope"),
        st.one_of(st.none(), NAMES),  # None: default_name
        st.sampled_from([None, True, ts.AUTO_REUSE]),
        st.booleans(),  # custom getter
        inner,
    )
    template = st.tuples(st.just("template"), NAMES, inner)
    return st.lists(st.one_of(leaves, scope, template), max_size=4)


class Runner:
    """Runs a program, calling ``faults`` at every callback; ``checkpoints`` (a list) gets,
    before each leaf call, a snapshot of the store, so that a test can compare the state
    after a failure with the state before the call that failed."""

    def __init__(self, faults: Faults, store_of: Any, snapshots: list | None = None) -> None:
        self.faults = faults
        self.store_of = store_of
        self.snapshots = snapshots
        self.templates: dict[int, ts.Template] = {}  # one per template in the program
        self.seed = 0
        self.in_template = 0  # inside a template call, the template call is the call
        self.in_scope = 0

    def initializer(self) -> Any:
        self.seed += 1
        base = ts.random_normal_initializer(seed=self.seed)
        faults = self.faults

        def init(shape: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
            faults("initializer")
            return base(shape, dtype=dtype, device=device)

        return init

    def regularizer(self) -> Any:
        faults = self.faults

        def regularizer(v: torch.Tensor) -> torch.Tensor:
            faults("regularizer")
            return (v**2).sum()

        return regularizer

    def getter(self) -> Any:
        faults = self.faults

        def getter(getter: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            faults("getter, before")
            variable = getter(name, *args, **kwargs)
            faults("getter, after")
            return variable

        return getter

    def run(self, program: list, x: torch.Tensor) -> torch.Tensor:
        total = x.sum() * 0
        for op in program:
            kind = op[0]
            if kind == "get":
                _, name, shape, reg, con, trainable = op
                self._snapshot()
                with contextlib.suppress(ValueError):  # exists / mismatch: a normal refusal
                    v = ts.get_variable(
                        name,
                        shape,
                        initializer=self.initializer(),
                        regularizer=self.regularizer() if reg else None,
                        constraint=(lambda t: t.clamp(-1, 1)) if con else None,
                        trainable=trainable,
                    )
                    total = total + v.sum()
            elif kind == "collect":
                self._snapshot()
                ts.add_to_collection("things", op[1])
            elif kind == "scope":
                _, name, reuse, getter, body = op
                kwargs: dict[str, Any] = {"custom_getter": self.getter()} if getter else {}
                if name is None:
                    kwargs["default_name"] = "block"
                else:
                    kwargs["reuse"] = reuse
                with ts.variable_scope(name, **kwargs):
                    self.in_scope += 1
                    try:
                        total = total + self.run(body, x)
                    finally:
                        self.in_scope -= 1
            elif kind == "template":
                _, name, body = op
                template = self.templates.get(id(op))
                if template is None:
                    template = self.templates[id(op)] = ts.make_template(
                        name, lambda x, body=body: self.run(body, x)
                    )
                self._snapshot()
                self.in_template += 1
                try:
                    with contextlib.suppress(ValueError):
                        total = total + template(x)
                finally:
                    self.in_template -= 1
        return total

    def _snapshot(self) -> None:
        if self.snapshots is not None and not self.in_template:
            snapshot = state(self.store_of())
            # Counters are compared at the top level only: the scopes open around a failed
            # call were entered before it, and marked their names then.
            snapshot["top level"] = not self.in_scope
            self.snapshots.append(snapshot)


def state(store: ts.VariableStore) -> dict:
    """Everything a failed call must leave as it was, in comparable form."""
    context = store._local.context
    return {
        "names": list(store),
        "values": {n: p.detach().clone() for n, p in store.items()},
        "trainable": list(store._trainable),
        "regularizers": list(store._regularizers),
        "constraints": list(store._constraints),
        "collections": {k: list(v) for k, v in store._collections.items()},
        "counters": (opened_scopes(context), dict(context.name_counts or {})),
    }


def opened_scopes(context) -> list[str]:
    """The variable scopes default_name counts as opened, from whichever record the context
    keeps (the tables of its entries, or the tree made from them)."""
    if context.opened is not None:
        found = []

        def walk(node, prefix):
            for key, child in node.items():
                if key:
                    full = prefix + key
                    if "" in child:
                        found.append(full)
                    walk(child, full + "/")

        walk(context.opened.root, "")
        return sorted(found)
    names, table = set(), context.outer if context.var_counts is None else context.var_counts
    while table is not None:
        names.update(name for name in table if name)
        table = table[""]
    return sorted(names)


def assert_same(found: dict, expected: dict) -> None:
    keys = ["names", "trainable", "regularizers", "constraints", "collections"]
    if expected.get("top level", True):
        keys.append("counters")
    for key in keys:
        assert found[key] == expected[key], key
    for name, value in expected["values"].items():
        assert torch.equal(found["values"][name], value), name


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(program=programs(), at=st.integers(1, 12))
def test_a_failed_call_in_a_store_leaves_it_as_before_the_call(program, at):
    store = ts.VariableStore()
    snapshots: list = []
    faults = Faults(at)
    runner = Runner(faults, lambda: store, snapshots)
    with store.as_default():
        try:
            runner.run(program, torch.ones(2))
        except Injected:
            assert snapshots, "a callback ran before any call"
            assert_same(state(store), snapshots[-1])


@SETTINGS
@given(program=programs(), at=st.integers(1, 12))
def test_a_failed_first_call_leaves_the_module_as_before(program, at):
    faults = Faults(at)
    module = ts.ScopedModule(lambda x: Runner(faults, lambda: module.store).run(program, x))
    before = state(ts.get_default_store())
    try:
        module(torch.ones(2))
    except Injected:
        assert not module.built
        assert len(module.store) == 0 and not module.store._collections
        assert_same(state(ts.get_default_store()), before)
        faults.at = None  # the next call is correct
        out = module(torch.ones(2))
        fresh_faults = Faults(None)
        fresh = ts.ScopedModule(lambda x: Runner(fresh_faults, lambda: fresh.store).run(program, x))
        expected = fresh(torch.ones(2))
        assert torch.equal(out, expected)
        assert_same(state(module.store), state(fresh.store))


def test_a_custom_getter_failing_after_the_real_getter_takes_its_variable_back():
    def getter(getter: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        getter(name, *args, **kwargs)
        raise Injected("after")

    with ts.variable_scope("s", custom_getter=getter), pytest.raises(Injected):
        ts.get_variable("w", [2])
    assert list(ts.get_default_store()) == []


def test_a_template_whose_first_call_fails_halfway_can_be_called_again():
    calls = []

    def body(x: torch.Tensor) -> torch.Tensor:
        w = ts.get_variable("w", [2])
        calls.append(1)
        if len(calls) == 1:
            raise Injected("halfway")
        return x * w

    template = ts.make_template("t", body)
    with pytest.raises(Injected):
        template(torch.ones(2))
    assert list(ts.get_default_store()) == []
    out = template(torch.ones(2))  # not "already exists"
    assert [ts.name_of(v) for v in template.variables] == ["t/w"]
    assert out.shape == (2,)


def test_failing_constraints_change_no_variable():
    a = ts.get_variable("a", initializer=[5.0], constraint=lambda v: v.clamp(max=1.0))

    def broken(v: torch.Tensor) -> torch.Tensor:
        raise Injected("constraint")

    b = ts.get_variable("b", initializer=[5.0], constraint=broken)
    with pytest.raises(Injected):
        ts.apply_constraints()
    assert a.item() == 5.0 and b.item() == 5.0


@pytest.mark.parametrize("owner", ["store", "module"])
def test_a_failing_load_writes_nothing(owner):
    def build(x: torch.Tensor) -> torch.Tensor:
        a = ts.get_variable("a", initializer=[1.0, 2.0])
        b = ts.get_variable("b", initializer=[3.0])
        return x * a.sum() + b

    if owner == "store":
        target: Any = ts.VariableStore()
        with target.as_default():
            build(torch.ones(1))
    else:
        target = ts.ScopedModule(build)
        target(torch.ones(1))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    bad = {"a": torch.zeros(2), "b": torch.zeros(5)}  # b: wrong shape
    with pytest.raises(RuntimeError, match="size mismatch for b"):
        target.load_state_dict(bad)
    missing = {"a": torch.zeros(2)}  # strict: b missing
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_state_dict(missing)
    for key, value in before.items():
        assert torch.equal(target.state_dict()[key], value), key
