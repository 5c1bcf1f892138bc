"""Property-based tests: random scope programs against a small reference model of
the rules, and round trips of torchscope._naming against TensorFlow's algorithm."""

import contextlib
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import torchscope as ts
from torchscope import _naming

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the reference model -------------------------------------------------------------------------


def tf_unique_name(names_in_use, name):
    """TensorFlow's ``Graph.unique_name`` over a plain dict of every name in use."""
    name_key = name.lower()
    i = names_in_use.get(name_key, 0)
    names_in_use[name_key] = i + 1
    if i > 0:
        base_name_key = name_key
        while name_key in names_in_use:
            name_key = f"{base_name_key}_{i}"
            i += 1
        names_in_use[name_key] = 1
        name = f"{name}_{i - 1}"
    return name


def join(prefix, name):
    return f"{prefix}/{name}" if prefix else name


class ModelScope:
    """What a VariableScope is in the model: a name and a (mutable) reuse flag."""

    def __init__(self, name, reuse):
        self.name = name
        self.reuse = reuse


class Frame:
    """One open ``with``: the variable scope, what leaving it does to the variable-scope
    counts (``("close", name)``, ``("restore", counts)`` or None for a name scope), the
    name scope and the name-scope names used in its entry."""

    def __init__(self, scope, on_exit, ns, ns_used):
        self.scope = scope
        self.on_exit = on_exit
        self.ns = ns
        self.ns_used = ns_used


class Model:
    def __init__(self):
        self.frames = [Frame(ModelScope("", False), None, "", {})]
        # TensorFlow's variable_scopes_count, kept as TensorFlow keeps it: by full name
        self.var_counts = {}
        self.variables = {}  # full name -> the object get_variable returned
        self.captured = []  # ModelScope objects, shared with the frames that made them

    @property
    def top(self):
        return self.frames[-1]

    def _open_variable_scope(self, name, reuse, relative, default=None):
        top = self.top
        self.var_counts[name] = self.var_counts.get(name, 0) + 1
        if relative is None:  # a captured scope: the name scope stays; counts put back
            on_exit = ("restore", dict(self.var_counts))
            frame = Frame(ModelScope(name, reuse), on_exit, top.ns, top.ns_used)
        elif default is not None:  # TensorFlow opens name_scope(default_name): made unique
            ns = join(top.ns, tf_unique_name(top.ns_used, default))
            frame = Frame(ModelScope(name, reuse), ("close", name), ns, {})
        else:
            top.ns_used.setdefault(relative.lower(), 1)
            frame = Frame(ModelScope(name, reuse), ("close", name), join(top.ns, relative), {})
        self.frames.append(frame)
        return frame.scope

    def open_name(self, relative, reuse):
        parent = self.top.scope
        name = join(parent.name, relative)
        return self._open_variable_scope(name, reuse if reuse else parent.reuse, relative)

    def open_default(self, default):
        parent = self.top.scope
        relative, i = default, 1
        while self.var_counts.get(join(parent.name, relative), 0) > 0:
            relative = f"{default}_{i}"
            i += 1
        return self._open_variable_scope(
            join(parent.name, relative), parent.reuse, relative, default
        )

    def open_captured(self, scope, reuse):
        return self._open_variable_scope(scope.name, reuse if reuse else scope.reuse, None)

    def open_name_scope(self, name):
        top = self.top
        full = join(top.ns, tf_unique_name(top.ns_used, name))
        self.frames.append(Frame(top.scope, None, full, {}))
        return full

    def close(self):
        on_exit = self.frames.pop().on_exit
        if on_exit is None:
            return
        kind, value = on_exit
        if kind == "restore":
            self.var_counts = value
        else:
            below = value + "/"
            for key in self.var_counts:
                if key.startswith(below):
                    self.var_counts[key] = 0

    def get_variable(self, name):
        """("create" | "return" | "raise", full name)."""
        scope = self.top.scope
        full = join(scope.name, name)
        exists = full in self.variables
        if scope.reuse is True:
            return ("return" if exists else "raise"), full
        if scope.reuse is ts.AUTO_REUSE:
            return ("return" if exists else "create"), full
        return ("raise" if exists else "create"), full


# -- the programs ---------------------------------------------------------------------------------

REUSES = st.sampled_from([None, False, True, ts.AUTO_REUSE])
ACTIONS = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(["a", "layer", "layer_1", "a/layer"]), REUSES),
    st.tuples(st.just("default"), st.sampled_from(["layer", "a"])),
    st.tuples(st.just("captured"), st.integers(0, 50), REUSES),
    st.tuples(st.just("name_scope"), st.sampled_from(["n", "N", "n_1", "a", "Layer"])),
    st.tuples(st.just("get"), st.sampled_from(["v", "w"])),
    st.tuples(st.just("close")),
    st.tuples(st.just("block"), st.sampled_from(["a", "layer", "n"]), st.sampled_from(["v", "w"])),
    st.tuples(st.just("reuse_variables")),
)


def run_program(actions):
    store = ts.VariableStore()
    model = Model()
    real_captured = []
    with store.as_default(), contextlib.ExitStack() as outer:
        stack = [outer]
        for action in actions:
            kind = action[0]
            if kind in ("open", "default", "captured", "name_scope"):
                frame = contextlib.ExitStack()
                frame.__enter__()
                if kind == "open":
                    scope = frame.enter_context(ts.variable_scope(action[1], reuse=action[2]))
                    expected = model.open_name(action[1], action[2])
                elif kind == "default":
                    scope = frame.enter_context(ts.variable_scope(None, default_name=action[1]))
                    expected = model.open_default(action[1])
                elif kind == "captured":
                    if not real_captured:
                        frame.__exit__(None, None, None)
                        continue
                    index = action[1] % len(real_captured)
                    scope = frame.enter_context(
                        ts.variable_scope(real_captured[index], reuse=action[2])
                    )
                    expected = model.open_captured(model.captured[index], action[2])
                else:
                    ns = frame.enter_context(ts.name_scope(action[1]))
                    full = model.open_name_scope(action[1])
                    assert ns == full + "/"
                    scope = expected = None
                if scope is not None:
                    real_captured.append(scope)
                    model.captured.append(expected)
                stack.append(frame)
            elif kind == "block":  # a whole `with` block: open, get, close
                with ts.variable_scope(action[1], reuse=ts.AUTO_REUSE):
                    model.open_name(action[1], ts.AUTO_REUSE)
                    assert ts.get_name_scope() == model.top.ns
                    outcome, full = model.get_variable(action[2])
                    v = ts.get_variable(action[2], [1])
                    if outcome == "return":
                        assert v is model.variables[full]
                    else:
                        model.variables[full] = v
                model.close()
            elif kind == "close":
                if len(stack) > 1:
                    stack.pop().__exit__(None, None, None)
                    model.close()
            elif kind == "reuse_variables":
                ts.get_variable_scope().reuse_variables()
                model.top.scope.reuse = True
            elif kind == "get":
                outcome, full = model.get_variable(action[1])
                if outcome == "raise":
                    text = "already exists" if full in model.variables else "does not exist"
                    try:
                        ts.get_variable(action[1], [1])
                    except ValueError as error:
                        assert full in str(error) and text in str(error)
                    else:
                        raise AssertionError(f"get_variable({full!r}) should have raised: {text}")
                else:
                    v = ts.get_variable(action[1], [1])
                    assert ts.name_of(v) == full
                    if outcome == "return":
                        assert v is model.variables[full]
                    else:
                        assert full not in model.variables
                        model.variables[full] = v
                assert len(store) == len(model.variables)
            # After every action the visible state agrees with the model.
            current = ts.get_variable_scope()
            assert current.name == model.top.scope.name
            assert current.reuse is model.top.scope.reuse or current.reuse == model.top.scope.reuse
            assert ts.get_name_scope() == model.top.ns
        for frame in reversed(stack[1:]):
            frame.__exit__(None, None, None)
        assert ts.get_variable_scope().name == ""
        assert ts.get_name_scope() == ""
    assert list(store) == list(model.variables)


@SETTINGS
@given(st.lists(ACTIONS, max_size=30))
@example([("block", "a", "v"), ("name_scope", "a"), ("block", "n", "v"), ("name_scope", "n")])
def test_scope_programs_follow_the_model(actions):
    run_program(actions)


def test_model_example():
    run_program(
        [
            ("open", "a", None),
            ("get", "v"),
            ("close",),
            ("open", "a", True),
            ("get", "v"),
            ("get", "w"),
            ("close",),
            ("default", "a"),
            ("get", "v"),
            ("reuse_variables",),
            ("get", "v"),
            ("close",),
            ("captured", 0, None),
            ("name_scope", "n"),
            ("get", "w"),
            ("close",),
            ("close",),
        ]
    )


# -- naming ----------------------------------------------------------------------------------------

SIBLING_NAMES = st.sampled_from(
    ["foo", "Foo", "foo_1", "foo_2", "foo_1_1", "foo_01", "bar", "foo_10"]
)


@SETTINGS
@given(st.lists(SIBLING_NAMES, max_size=40))
def test_unique_name_matches_tensorflow_and_is_distinct(names):
    counts, tf_names = {}, {}
    got = [_naming.unique_name(counts, n) for n in names]
    assert got == [tf_unique_name(tf_names, n) for n in names]
    assert len({g.lower() for g in got}) == len(got)
    # Bounded: one entry per requested name, never one per minted name.
    assert set(counts) <= {n.lower() for n in names}


@SETTINGS
@given(st.lists(SIBLING_NAMES, max_size=20), SIBLING_NAMES)
def test_unique_name_without_marking_predicts_the_next_name(names, probe):
    counts = {}
    for n in names:
        _naming.unique_name(counts, n)
    snapshot = dict(counts)
    predicted = _naming.unique_name(counts, probe, mark=False)
    assert counts == snapshot
    assert _naming.unique_name(counts, probe) == predicted


VARIABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-/>\\]*")


def reference_valid(name):
    return bool(VARIABLE_NAME.fullmatch(name)) and "//" not in name and not name.endswith("/")


NAME_TEXT = st.text(alphabet="aZ09_-/>\\.: é", max_size=8)


@SETTINGS
@given(NAME_TEXT)
def test_check_variable_name_accepts_exactly_the_rule(name):
    try:
        _naming.check_variable_name(name)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert accepted == reference_valid(name)


@SETTINGS
@given(
    st.lists(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,4}", fullmatch=True), min_size=1, max_size=4
    )
)
def test_joined_valid_components_are_valid_names(parts):
    full = ""
    for part in parts:
        full = _naming.join(full, part)
    assert _naming.check_variable_name(full) == full
    assert full.split("/") == parts
