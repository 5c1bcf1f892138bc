"""Custom getters called TensorFlow's way stay traceable: torch.compile(fullgraph=True) of a
ScopedModule whose forward composes getters (a ported one without **kwargs among them, and
one made afresh on every call) has no graph break and compiles once."""

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import torchscope as ts


def forwarding(getter, name, *args, **kwargs):
    return getter(name, *args, **kwargs) * 2


def ported(getter, name, shape=None, dtype=None, initializer=None, regularizer=None,
           reuse=None, trainable=None, collections=None, caching_device=None,
           partitioner=None, validate_shape=True, use_resource=None,
           synchronization=None, aggregation=None):  # fmt: skip
    return getter(name, shape=shape, dtype=dtype, initializer=initializer, reuse=reuse) + 1


def forward(x):
    scale = 3.0

    def made_per_call(getter, name, *args, **kwargs):
        return getter(name, *args, **kwargs) * scale

    with (
        ts.variable_scope("a", custom_getter=forwarding),
        ts.variable_scope("b", custom_getter=ported),
        ts.variable_scope("c", custom_getter=made_per_call),
    ):
        return x @ ts.get_variable("w", [4, 4])


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_composed_getters_compile_without_graph_breaks():
    module = ts.ScopedModule(forward, name="net")
    x = torch.randn(2, 4)
    eager = module(x)
    assert list(module.store) == ["net/a/b/c/w"]
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    for _ in range(3):
        torch.testing.assert_close(compiled(x), eager)
    assert counter.frame_count == 1
