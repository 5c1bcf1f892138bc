"""``v.name``: TensorFlow's ``"scope/v:0"`` on what ``get_variable`` makes, kept through
what PyTorch does to variables (copies, pickles, conversions); the variables stay plain
``nn.Parameter`` objects, so optimizers and ``torch.compile`` see what they saw before."""

import copy
import io

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from torch.func import functional_call

import torchscope as ts


def test_name_is_tensorflows_and_the_variable_a_parameter(ts_store):
    with ts.variable_scope("foo"), ts.variable_scope("bar"):
        v = ts.get_variable("v", [1])
    assert v.name == "foo/bar/v:0"
    assert ts.name_of(v) == "foo/bar/v"
    assert type(v) is torch.nn.Parameter
    assert type(v * 2) is torch.Tensor and (v * 2).name is None  # results are plain tensors


def test_the_tf1_filter_idiom_works(ts_store):
    with ts.variable_scope("d_net"):
        d = ts.get_variable("w", [2])
    with ts.variable_scope("g_net"):
        ts.get_variable("w", [2])
    t_vars = ts.trainable_variables()
    assert [v for v in t_vars if "d_" in v.name] == [d]


def test_layers_and_global_step_are_named(ts_store):
    ts.layers.dense(torch.ones(1, 3), 2)
    step = ts.train.get_or_create_global_step()
    assert [v.name for v in ts.global_variables()] == [
        "dense/kernel:0",
        "dense/bias:0",
        "global_step:0",
    ]
    assert step.name == "global_step:0"


def test_pickle_keeps_the_name_and_a_bare_copy_is_not_the_variable(ts_store):
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [2])
    assert copy.deepcopy(v).name is None  # nn.Parameter.__deepcopy__ copies no attributes
    buffer = io.BytesIO()
    torch.save([v], buffer)
    buffer.seek(0)
    (loaded,) = torch.load(buffer)  # weights_only=True: the rebuild function is allowed
    assert loaded.name == "foo/v:0" and isinstance(loaded, torch.nn.Parameter)
    torch.testing.assert_close(loaded, v)
    detached = v.detach()  # what state_dict() holds: a plain tensor
    assert type(detached) is torch.Tensor


def dense(x):
    with ts.variable_scope("dense"):
        return x @ ts.get_variable("w", [3, 2])


def _module():
    module = ts.ScopedModule(dense, name="net")
    module(torch.ones(1, 3))
    return module


def test_module_copies_and_pickles_keep_names():
    module = _module()
    assert [p.name for p in copy.deepcopy(module).parameters()] == ["net/dense/w:0"]
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert [p.name for p in loaded.parameters()] == ["net/dense/w:0"]
    assert list(module.state_dict()) == ["net/dense/w"]


@pytest.mark.parametrize("future", [None, "swap", "overwrite"])
def test_conversions_keep_names(future, ts_store):
    """nn.Module._apply converts in place by default; with torch.__future__'s switches it
    swaps in, or puts in, plain nn.Parameters: the stores name them again."""
    module = _module()
    with ts.variable_scope("s"):
        ts.get_variable("q", [2])
    setters = {
        "swap": torch.__future__.set_swap_module_params_on_conversion,
        "overwrite": torch.__future__.set_overwrite_module_params_on_conversion,
    }
    if future is not None:
        setters[future](True)
    try:
        module.double()
        ts_store.double()
    finally:
        if future is not None:
            setters[future](False)
    (w,) = module.parameters()
    assert (w.name, w.dtype) == ("net/dense/w:0", torch.float64)
    assert module(torch.ones(1, 3, dtype=torch.float64)).dtype == torch.float64
    (q,) = ts_store.parameters()
    assert (q.name, q.dtype) == ("s/q:0", torch.float64)


def test_conversion_before_the_first_call_names_what_it_makes():
    module = ts.ScopedModule(lambda x: x * ts.get_variable("scale", [1]), name="m").double()
    module(torch.ones(1, dtype=torch.float64))
    (scale,) = module.parameters()
    assert (scale.name, scale.dtype) == ("m/scale:0", torch.float64)


def test_loaded_before_the_first_call_is_named():
    module = ts.ScopedModule(lambda x: x * ts.get_variable("scale", [1]), name="m")
    module.load_state_dict({"m/scale": torch.full((1,), 3.0)})
    module(torch.ones(1))
    (scale,) = module.parameters()
    assert scale.name == "m/scale:0" and scale.item() == 3.0


def test_subclass_parameters_are_named():
    class Scaled(ts.ScopedModule):
        def __init__(self):
            super().__init__(name="s")
            self.gain = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.gain

    assert Scaled().gain.name == "gain:0"


def test_functional_call_and_optimizers_see_the_variables():
    module = _module()
    (w,) = module.parameters()
    out = functional_call(module, {"net/dense/w": torch.zeros(3, 2)}, (torch.ones(1, 3),))
    assert out.abs().sum() == 0
    opt = torch.optim.Adam(module.parameters(), lr=0.1)
    module(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert w.name == "net/dense/w:0" and opt.param_groups[0]["params"][0] is w


def test_compiled_code_reads_names_without_graph_breaks_or_more_guards(ts_store):
    """A named variable is guarded as any Parameter is (a Parameter subclass would add a
    guard per variable, and slow every compiled call)."""
    with ts.variable_scope("foo"):
        v = ts.get_variable("v", [3, 3])
    plain = torch.nn.Parameter(torch.randn(3, 3))
    assert plain.name is None  # a Parameter torchscope did not make: PyTorch's name

    def fn(x, w):
        return x @ w

    def guards(w):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(fn)(torch.ones(2, 3), w)
        assert explained.graph_break_count == 0
        return len(explained.out_guards)

    assert guards(v) == guards(plain)

    def named(x):
        return x @ ts_store["foo/v"], ts_store["foo/v"].name

    counter = CompileCounter()
    compiled = torch.compile(named, backend=counter, fullgraph=True)
    for _ in range(3):
        _, name = compiled(torch.ones(2, 3))
    assert name == "foo/v:0" and counter.frame_count == 1


def test_a_module_compiled_fullgraph_reads_names():
    module = _module()

    def step(x):
        return module(x), [p.name for p in module.parameters()]

    counter = CompileCounter()
    compiled = torch.compile(step, backend=counter, fullgraph=True)
    for _ in range(3):
        _, names = compiled(torch.ones(4, 3))
    assert names == ["net/dense/w:0"] and counter.frame_count == 1
