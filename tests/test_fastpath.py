"""The per-call checks of torchscope._fastpath: the C versions (torchscope._fastpaths)
against their Python twins, and what they do in get_variable and variable_scope."""

import gc
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchscope as ts
from torchscope import _fastpath

try:
    from torchscope import _fastpaths
except ImportError:  # built without a compiler
    _fastpaths = None

needs_compiled = pytest.mark.skipif(
    _fastpaths is None,
    reason="torchscope._fastpaths was not built (no C++ compiler at install time)",
)


class _Tagged(torch.Tensor):
    """A tensor subclass: the C check asks Python for its shape."""


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as error:  # the same error type from both, if any
        return type(error)


# -- same_shape ---------------------------------------------------------------------------------

_DIMS = st.one_of(
    st.integers(0, 4),
    st.sampled_from([None, True, False, 2.0, 3.5, "2", -1, 2**70]),
)


@needs_compiled
@settings(max_examples=400, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 4), max_size=4),
    asked=st.one_of(st.lists(_DIMS, max_size=5), st.tuples(_DIMS, _DIMS), st.integers(0, 4)),
    container=st.sampled_from(["as drawn", "list", "tuple", "size"]),
)
def test_same_shape_agrees_with_python(sizes, asked, container):
    tensor = torch.zeros(sizes)
    if container in ("list", "tuple") and isinstance(asked, (list, tuple)):
        asked = {"list": list, "tuple": tuple}[container](asked)
    elif container == "size":
        asked = torch.Size(sizes)
    for value in (tensor, torch.nn.Parameter(tensor), tensor.as_subclass(_Tagged)):
        assert _outcome(_fastpaths.same_shape, value, asked) == _outcome(
            _fastpath.same_shape_py, value, asked
        ), (sizes, asked)


@needs_compiled
def test_same_shape_edge_cases():
    np = pytest.importorskip("numpy")
    same = _fastpaths.same_shape
    t = torch.zeros(2, 3)
    assert same(t, [2, 3]) and same(t, (2, 3)) and same(torch.zeros(()), [])
    assert same(t, [np.int64(2), 3])  # as Python's == says
    assert not same(t, torch.Size([2, 3]))  # not a list or tuple: the full check decides
    assert not same(t, [2, 3, 1]) and not same(t, [2]) and not same(t, [2, None])
    assert not same(t, "23") and not same(t, None)
    with pytest.raises(AttributeError):
        same(object(), [2, 3])  # as `.shape` would
    with pytest.raises(TypeError, match=r"takes 2 positional arguments, got 1"):
        same(t)
    assert same(t.as_subclass(_Tagged), [2, 3]) and not same(t.as_subclass(_Tagged), [3, 2])

    class Shrinking:  # a dimension whose == empties the list: compared as Python does
        def __init__(self, owner):
            self.owner = owner

        def __eq__(self, other):
            self.owner.clear()
            return True

    def shrinking(index):
        shape: list = [2, 3]
        shape[index] = Shrinking(shape)
        return shape

    for index in (0, 1):
        assert same(t, shrinking(index)) is _fastpath.same_shape_py(t, shrinking(index)) is True


@needs_compiled
def test_get_variable_uses_the_c_versions():
    assert _fastpath.compiled
    assert _fastpath.same_shape is _fastpaths.same_shape
    assert _fastpath.cached_scope is _fastpaths.cached_scope
    with ts.variable_scope("s"):
        v = ts.get_variable("v", [2, 3])
    with ts.variable_scope("s", reuse=True):
        assert ts.get_variable("v", [2, 3]) is v
        assert ts.get_variable("v", (2, None)) is v  # the full check: None matches
        with pytest.raises(ValueError, match=r"s/v.*\(3, 2\).*\(2, 3\)"):
            ts.get_variable("v", [3, 2])


def test_python_versions_without_the_compiled_module():
    """TORCHSCOPE_DISABLE_NATIVE=1: the Python twins are used, with the same results."""
    code = (
        "import torch, torchscope as ts\n"
        "from torchscope import _fastpath\n"
        "assert not _fastpath.compiled\n"
        "assert _fastpath.same_shape is _fastpath.same_shape_py\n"
        "assert _fastpath.cached_scope is _fastpath.cached_scope_py\n"
        "with ts.variable_scope('s') as kept:\n"
        "    v = ts.get_variable('v', [2, 3])\n"
        "with ts.variable_scope('s', reuse=True) as again:\n"
        "    assert ts.get_variable('v', [2, 3]) is v\n"
        "    assert again is not kept\n"
        "    try:\n"
        "        ts.get_variable('v', [3, 2])\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
    )
    env = dict(os.environ, TORCHSCOPE_DISABLE_NATIVE="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "s/v" in result.stdout


def test_get_variable_with_a_shape_compiles_without_graph_breaks():
    """torch.compile traces the Python twins in place of the C versions."""
    torch._dynamo.reset()
    with ts.variable_scope("c"):
        ts.get_variable("w", [3, 3])

    def fn(x):
        with ts.variable_scope("c", reuse=True):
            return x @ ts.get_variable("w", [3, 3])

    x = torch.randn(2, 3)
    explanation = torch._dynamo.explain(fn)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch.testing.assert_close(torch.compile(fn, fullgraph=True)(x), fn(x))
    torch._dynamo.reset()


# -- cached_scope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        _fastpath.cached_scope_py,
        pytest.param(getattr(_fastpaths, "cached_scope", None), marks=needs_compiled),
    ],
    ids=["python", "c"],
)
def test_cached_scope_hands_out_only_what_nothing_else_holds(fn):
    class Scope:
        pass

    cache = {"a": Scope()}
    assert fn(cache, "a") is cache["a"]
    assert fn(cache, "missing") is None
    kept = cache["a"]
    assert fn(cache, "a") is None
    del kept
    assert fn(cache, "a") is cache["a"]
    holder = [cache["a"]]
    assert fn(cache, "a") is None
    holder.clear()
    assert fn(cache, "a") is cache["a"]
    with pytest.raises(TypeError):
        fn(["not", "a", "dict"], 0)
    with pytest.raises(TypeError):
        fn(cache, ["unhashable"])


def test_reentering_a_scope_shares_the_object_only_while_no_one_holds_it():
    # Compared by id, so that the test holds no reference (the cache keeps the object
    # alive, so its id is not reused).
    with ts.variable_scope("a"):
        first = id(ts.get_variable_scope())
    gc.collect()
    with ts.variable_scope("a"):
        assert id(ts.get_variable_scope()) == first  # the cached object, handed out again
    with ts.variable_scope("a") as kept:
        pass
    with ts.variable_scope("a") as again:
        assert again is not kept  # kept is held: TensorFlow's new object per entry
        again.reuse_variables()
    assert kept.reuse is False and again.reuse is True


def test_a_captured_scope_nested_in_itself_gets_two_objects():
    """The example hypothesis found: the inner entry's scope must not be the outer's."""
    with ts.variable_scope("a") as a:
        with ts.variable_scope(a) as outer:
            with ts.variable_scope(a) as inner:
                assert inner is not outer
            outer.reuse_variables()
            with ts.variable_scope(inner) as again:
                assert inner.reuse is False and again.reuse is False
        with ts.variable_scope(a) as later:
            assert later.reuse is False
