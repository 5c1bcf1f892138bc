"""ts.checkpoint: activation checkpointing of code that uses get_variable."""

import pytest
import torch

import torchscope as ts


def block(x):
    with ts.variable_scope("blk"):
        return torch.tanh(x @ ts.get_variable("w", [4, 4]))


def layers(x):
    for _ in range(2):
        with ts.variable_scope(None, default_name="layer"):
            x = torch.tanh(x @ ts.get_variable("w", [4, 4]))
    return x


def grads(module, x):
    module.zero_grad()
    module(x).sum().backward()
    return {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize("fn", [block, layers])
def test_gradients_equal_the_unchecheckpointed_module(fn, use_reentrant, ts_store):
    x = torch.randn(3, 4, requires_grad=True)
    plain = ts.ScopedModule(lambda x: fn(x) * 2, name="o")
    checkpointed = ts.ScopedModule(
        lambda x: ts.checkpoint(fn, x, use_reentrant=use_reentrant) * 2, name="o"
    )
    torch.manual_seed(0)
    expected_first = grads(plain, x)  # the first call builds, checkpointed too
    torch.manual_seed(0)
    first = grads(checkpointed, x)
    assert list(first) == list(expected_first)
    for name in first:
        torch.testing.assert_close(first[name], expected_first[name])
    for name, g in grads(checkpointed, x).items():  # later calls reuse
        torch.testing.assert_close(g, grads(plain, x)[name])
    assert len(ts_store) == 0  # nothing strayed into the default store


def test_in_the_default_store_under_open_scopes(ts_store):
    x = torch.randn(3, 4, requires_grad=True)
    with ts.variable_scope("outer"):
        y = ts.checkpoint(layers, x)
        with ts.variable_scope(None, default_name="layer"):  # counted after the checkpoint
            z = y @ ts.get_variable("w", [4, 4])
    z.sum().backward()
    assert list(ts_store) == ["outer/layer/w", "outer/layer_1/w", "outer/layer_2/w"]
    assert all(v.grad is not None for v in ts_store.variables())


def test_under_torch_compile():
    module = ts.ScopedModule(lambda x: ts.checkpoint(block, x).sum(), name="o")
    x = torch.randn(3, 4)
    module(x)
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), module(x))


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_torch_checkpoint_inside_a_module_fails_loudly(use_reentrant, ts_store):
    from torch.utils.checkpoint import checkpoint

    module = ts.ScopedModule(lambda x: checkpoint(block, x, use_reentrant=use_reentrant).sum())
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(
        RuntimeError, match=r"create variable blk/w while backward runs.*ts\.checkpoint"
    ):
        module(x).backward()
    assert len(ts_store) == 0  # nothing made in the default store
