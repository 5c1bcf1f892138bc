"""The per-call steps of torchscope._fastpath: the C versions (torchscope._fastpaths)
against their Python twins, and what they do in get_variable, variable_scope and
ts.ops.conv2d_bias_relu."""

import gc
import os
import subprocess
import sys
import textwrap

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
@pytest.mark.skipif(
    os.environ.get("TORCHSCOPE_DISABLE_NATIVE") == "1",
    reason="TORCHSCOPE_DISABLE_NATIVE=1: torchscope uses the Python versions by request",
)
def test_get_variable_uses_the_c_versions():
    assert _fastpath.compiled
    assert _fastpath.same_shape is _fastpaths.same_shape
    assert _fastpath.cached_scope is _fastpaths.cached_scope
    assert _fastpath.conv2d_bias_relu is _fastpaths.conv2d_bias_relu
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
        "assert _fastpath.conv2d_bias_relu is _fastpath.conv2d_bias_relu_py\n"
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


# -- conv2d_bias_relu ----------------------------------------------------------------------------

needs_op = pytest.mark.skipif(
    _fastpaths is None or not ts.ops.native_available(),
    reason="torchscope._fastpaths or the fused op's extension was not built (no C++ compiler "
    "at install time)",
)
ONES = ([1, 1], [1, 1], [1, 1])


def _conv_args(layout=torch.contiguous_format, grad=False, bias=True):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 6).to(memory_format=layout).requires_grad_(grad)
    w = (torch.randn(6, 2, 3, 3) * 0.3).to(memory_format=layout).requires_grad_(grad)
    b = torch.randn(6).requires_grad_(grad) if bias else None
    return x, w, b


@needs_op
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "pairs",
    [ONES, ([2, 1], [0, 2], [1, 2]), ((1, 2), (1, 1), (2, 1))],
    ids=["ones", "mixed", "tuples"],
)
def test_conv2d_bias_relu_c_call_agrees_with_the_op(layout, bias, pairs):
    """The unboxed call gives what the OpOverload gives: values, strides, the autograd
    node and the gradients (groups=2 here)."""
    x, w, b = _conv_args(layout, grad=True, bias=bias)
    fast = _fastpaths.conv2d_bias_relu(x, w, b, *pairs, 2)
    x2, w2, b2 = (None if t is None else t.detach().clone().requires_grad_() for t in (x, w, b))
    ref = torch.ops.torchscope.conv2d_bias_relu.default(x2, w2, b2, *map(list, pairs), 2)
    torch.testing.assert_close(fast, ref, rtol=0, atol=0)
    assert fast.stride() == ref.stride()
    assert type(fast.grad_fn) is type(ref.grad_fn)
    grad = torch.randn_like(ref)
    fast.backward(grad)
    ref.backward(grad)
    for mine, theirs in zip((x, w, b), (x2, w2, b2), strict=True):
        if mine is not None:
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=0)


@needs_op
@pytest.mark.parametrize(
    "case",
    [
        "subclass input",
        "subclass weight",
        "subclass bias",
        "three strides",
        "float padding",
        "bool groups",
        "huge dilation",
        "str padding",
    ],
)
def test_conv2d_bias_relu_c_call_leaves_the_rest_to_the_op(case):
    """NotImplemented (and no work done) for what only the OpOverload handles: tensor
    subclasses, which may define __torch_function__, and arguments that are not plain
    int pairs and an int, whose errors (or conversions) the OpOverload gives."""
    x, w, b = _conv_args()
    args = [x, w, b, [1, 1], [1, 1], [1, 1], 1]
    index, value = {
        "subclass input": (0, x.as_subclass(_Tagged)),
        "subclass weight": (1, w.as_subclass(_Tagged)),
        "subclass bias": (2, b.as_subclass(_Tagged)),
        "three strides": (3, [1, 1, 1]),
        "float padding": (4, [1.0, 1]),
        "bool groups": (6, True),
        "huge dilation": (5, [2**70, 1]),
        "str padding": (4, "same"),
    }[case]
    args[index] = value
    assert _fastpaths.conv2d_bias_relu(*args) is NotImplemented


@needs_op
def test_conv2d_bias_relu_c_call_takes_parameters():
    x, w, b = _conv_args()
    w, b = torch.nn.Parameter(w), torch.nn.Parameter(b)
    out = _fastpaths.conv2d_bias_relu(x, w, b, *ONES, 2)
    assert out is not NotImplemented and out.grad_fn is not None


@needs_op
def test_torch_function_modes_and_subclasses_see_the_op():
    """ts.ops.conv2d_bias_relu still reaches __torch_function__: under a mode, and for a
    subclass that defines it, the call goes through the OpOverload."""
    op = torch.ops.torchscope.conv2d_bias_relu.default
    seen = []

    class Record(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    calls = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            calls.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    x, w, b = _conv_args()
    expected = ts.ops.conv2d_bias_relu(x, w, b, 1, 1, groups=2)
    with Record():
        assert _fastpaths.conv2d_bias_relu(x, w, b, *ONES, 2) is NotImplemented
        out = ts.ops.conv2d_bias_relu(x, w, b, 1, 1, groups=2)
    assert op in seen
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out = ts.ops.conv2d_bias_relu(x.as_subclass(Logged), w, b, 1, 1, groups=2)
    assert op in calls
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, rtol=0, atol=0)


@needs_op
def test_dispatch_modes_see_the_op_of_the_c_call():
    """Dispatcher-level Python (a TorchDispatchMode, as FlopCounterMode and FakeTensor use)
    sees the op called from C as it sees the OpOverload call."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x, w, b = _conv_args()
    expected = ts.ops.conv2d_bias_relu(x, w, b, 1, 1, groups=2)
    with Record():
        out = _fastpaths.conv2d_bias_relu(x, w, b, *ONES, 2)
    assert torch.ops.torchscope.conv2d_bias_relu.default in seen
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@needs_op
def test_conv2d_bias_relu_c_call_honours_autocast():
    """The C call reaches the op's autocast kernel: under torch.autocast the output has
    the autocast dtype, and a bfloat16 input takes a float32 weight, as eager conv2d."""
    x, w, b = _conv_args()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _fastpaths.conv2d_bias_relu(x.bfloat16(), w, b, *ONES, 2)
        expected = torch.relu(torch.nn.functional.conv2d(x.bfloat16(), w, b, 1, 1, 1, 2))
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, atol=5e-2, rtol=2e-2)


@needs_op
def test_conv2d_bias_relu_c_call_raises_the_ops_errors():
    x, w, b = _conv_args()
    op = torch.ops.torchscope.conv2d_bias_relu.default
    for bad in [(x, w[:, :1], b, 2), (x, w, b[:4], 2), (x[0], w, b, 2), (x, w, b, 4)]:
        *tensors, groups = bad
        with pytest.raises(RuntimeError) as fast:
            _fastpaths.conv2d_bias_relu(*tensors, *ONES, groups)
        with pytest.raises(RuntimeError) as ref:
            op(*tensors, *ONES, groups)
        assert str(fast.value) == str(ref.value)
    with pytest.raises(TypeError, match="7 positional arguments, got 3"):
        _fastpaths.conv2d_bias_relu(x, w, b)


@needs_op
def test_conv2d_bias_relu_c_call_runs_in_threads():
    """The GIL is released while the op runs: calls from several threads at once give
    each thread its own correct result."""
    import threading

    x, w, b = _conv_args()
    expected = ts.ops.conv2d_bias_relu(x, w, b, 1, 1, groups=2)
    results = [None] * 4

    def work(i):
        for _ in range(20):
            results[i] = _fastpaths.conv2d_bias_relu(x, w, b, *ONES, 2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for out in results:
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_import_loads_no_dynamo_and_compiling_later_still_registers():
    """``import torchscope`` imports no part of torch._dynamo (some 800 modules); the
    tracer's substitutions and constants are registered when torch._dynamo loads, in
    time for the first trace: a scoped forward compiles with fullgraph=True."""
    code = textwrap.dedent(
        """
        import sys
        import torch
        import torchscope as ts
        loaded = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
        assert not loaded, loaded

        def forward(x):
            with ts.variable_scope("layer"):
                w = ts.get_variable("w", [3, 3])
            return x @ w

        net = ts.ScopedModule(forward, name="net")
        x = torch.ones(2, 3)
        net(x)
        compiled = torch.compile(net, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x), net(x))
        from torchscope import _naming
        assert getattr(_naming.is_checked_scope_name, "_dynamo_marked_constant", False)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_dynamo_imported_first_registers_at_once():
    code = textwrap.dedent(
        """
        import torch._dynamo
        import torchscope
        from torchscope import _naming
        assert getattr(_naming.is_checked_scope_name, "_dynamo_marked_constant", False)
        assert not any(type(f).__name__ == "_Finder" for f in __import__("sys").meta_path)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
