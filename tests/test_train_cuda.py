"""ts.train with variables and optimizers on a GPU: checkpoints read into and written from
CUDA tensors, TensorFlow's optimizers' foreach paths on CUDA.

Skipped where torch sees no GPU; tools/gpu_check.sh runs them on a machine with one.
"""

from __future__ import annotations

import pytest
import torch
from tf_fixtures import CHECKPOINTS, expected, train_data

import torchscope as ts

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA not available (no GPU on this machine)"
)

NAMES = ["mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"]


def _model(device):
    with ts.variable_scope("mlp", device=device):
        with ts.variable_scope("hidden"):
            ts.get_variable("kernel", [5, 6])
            ts.get_variable("bias", [6])
        with ts.variable_scope("out"):
            ts.get_variable("kernel", [6, 2])
            ts.get_variable("bias", [2])
    return ts.get_default_store()


def test_restore_into_and_save_from_cuda_variables(tmp_path):
    store = _model("cuda")
    ts.train.Saver(store).restore(CHECKPOINTS / "adam")
    want = expected("adam")
    for name in NAMES:
        assert store[name].is_cuda
        assert torch.equal(store[name].cpu(), want[name]), name
    path = ts.train.Saver(store).save(tmp_path / "m")
    reader = ts.train.load_checkpoint(path)
    for name in NAMES:
        assert torch.equal(reader.get_tensor(name), want[name]), name


@pytest.mark.parametrize("folder", ["adam", "momentum", "rmsprop"])
def test_a_tensorflow_run_resumes_on_the_gpu(folder):
    store = _model("cuda")
    make = {
        "adam": lambda p: ts.train.AdamOptimizer(p, 0.01),
        "momentum": lambda p: ts.train.MomentumOptimizer(p, 0.05, momentum=0.9),
        "rmsprop": lambda p: ts.train.RMSPropOptimizer(p, 0.01),
    }[folder]
    opt = make(store.parameters())
    ts.train.Saver(store, optimizer=opt).restore(CHECKPOINTS / folder)
    data = train_data(folder)
    x, y = data["x"].cuda(), data["y"].cuda()
    h = torch.relu(x @ store["mlp/hidden/kernel"] + store["mlp/hidden/bias"])
    torch.mean((h @ store["mlp/out/kernel"] + store["mlp/out/bias"] - y) ** 2).backward()
    opt.step()
    for name in NAMES:
        got = store[name].detach().cpu()
        assert (got - data[f"next/{name}"]).abs().max() <= 1e-6, name  # TF32 is off for fp32


@pytest.mark.parametrize(
    "make",
    [
        lambda p: ts.train.AdamOptimizer(p, 0.01),
        lambda p: ts.train.MomentumOptimizer(p, 0.1, 0.9, use_nesterov=True),
        lambda p: ts.train.RMSPropOptimizer(p, 0.01, momentum=0.5, centered=True),
        lambda p: ts.train.GradientDescentOptimizer(p, 0.1),
        lambda p: ts.train.AdagradOptimizer(p, 0.1),
    ],
    ids=["adam", "nesterov", "rmsprop-centered", "sgd", "adagrad"],
)
def test_cuda_steps_match_cpu_steps(make):
    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 32), (32,), (300_000,)]
    cpu = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    gpu = [torch.nn.Parameter(p.detach().cuda()) for p in cpu]
    opt_cpu, opt_gpu = make(cpu), make(gpu)
    for _ in range(3):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, q, g in zip(cpu, gpu, grads, strict=True):
            p.grad, q.grad = g, g.cuda()
        opt_cpu.step()
        opt_gpu.step()
    for p, q in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=1e-6, atol=1e-7)
