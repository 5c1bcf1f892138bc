"""ScopedModule under torch.compile, torch.export and torch.func."""

import copy

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from torch.func import functional_call, grad, stack_module_state, vmap

import torchscope as ts


def mlp(x):
    for i in range(3):
        with ts.variable_scope(f"layer{i}"):
            w = ts.get_variable("w", [x.shape[-1], 16])
            b = ts.get_variable("b", [16], initializer=ts.zeros_initializer())
            with ts.name_scope("act"):
                x = torch.relu(x @ w + b)
    return x.sum(-1)


def built(name="mlp"):
    module = ts.ScopedModule(mlp, name=name)
    module(torch.randn(4, 8))
    return module


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_no_graph_breaks():
    module = built()
    explanation = torch._dynamo.explain(module)(torch.randn(4, 8))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_fullgraph_compile_matches_eager_and_does_not_recompile():
    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    for _ in range(3):
        x = torch.randn(4, 8)
        torch.testing.assert_close(compiled(x), module(x))
    assert counter.frame_count == 1


def test_inductor_compile_matches_eager():
    module = built()
    compiled = torch.compile(module, fullgraph=True)
    x = torch.randn(4, 8)
    torch.testing.assert_close(compiled(x), module(x))


def test_compiled_training_step_updates_the_store_variables():
    module = built()
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    before = module.store["mlp/layer0/w"].detach().clone()
    for _ in range(3):
        loss = compiled(torch.randn(4, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, module.store["mlp/layer0/w"])
    assert counter.frame_count == 1


def test_compile_of_a_plain_function_using_the_default_store(ts_store):
    def f(x):
        with ts.variable_scope("f", reuse=ts.AUTO_REUSE):
            return x @ ts.get_variable("w", [8, 2])

    f(torch.ones(1, 8))
    counter = CompileCounter()
    compiled = torch.compile(f, backend=counter, fullgraph=True)
    x = torch.randn(3, 8)
    torch.testing.assert_close(compiled(x), f(x))
    compiled(torch.randn(3, 8))
    assert counter.frame_count == 1


def test_export_keeps_full_variable_names():
    module = built()
    x = torch.randn(4, 8)
    program = torch.export.export(module, (x,))
    names = ["mlp/layer0/w", "mlp/layer0/b", "mlp/layer1/w", "mlp/layer1/b",
             "mlp/layer2/w", "mlp/layer2/b"]
    assert list(program.graph_signature.parameters) == names
    assert list(program.state_dict) == names
    torch.testing.assert_close(program.module()(x), module(x))


def test_functional_call_substitutes_what_get_variable_hands_out():
    module = built()
    x = torch.randn(4, 8)
    params = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
    assert functional_call(module, params, (x,)).abs().sum() == 0
    assert module(x).abs().sum() > 0  # the module's own variables are untouched


def test_functional_grad_matches_autograd():
    module = built()
    x = torch.randn(4, 8)
    params = {name: p.detach() for name, p in module.named_parameters()}

    def loss(p):
        return functional_call(module, p, (x,)).pow(2).mean()

    grads = grad(loss)(params)
    module.zero_grad()
    module(x).pow(2).mean().backward()
    for name, p in module.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)


def test_vmap_over_an_ensemble():
    models = [built() for _ in range(3)]
    params, buffers = stack_module_state(models)
    assert sorted(params) == sorted(n for n, _ in models[0].named_parameters())
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(4, 8)

    def run(p, b, x):
        return functional_call(base, (p, b), (x,))

    out = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x))
