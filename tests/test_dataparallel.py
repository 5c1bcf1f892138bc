"""A ScopedModule under ``nn.DataParallel``-style replication: ``forward`` in worker threads.

``nn.DataParallel`` copies the module with ``torch.nn.parallel.replicate`` and runs
each replica's ``forward`` in its own thread (``parallel_apply``). On a machine
without GPUs ``DataParallel`` just calls the module, and ``parallel_apply``
refuses to run (it needs an accelerator), so these tests replicate the module the
way ``replicate`` does (:func:`_replicate`) and run the replicas from
``threading.Thread``s (:func:`_parallel_apply`). A barrier inside ``forward``
holds every thread inside its open scopes at the same time.

Scope stacks are per thread, as in TensorFlow: a worker thread starts at the root
scope, whatever the thread that started it has open. A ScopedModule call always
starts from its store's root, so it names its variables the same everywhere.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn

import torchscope as ts

NAMES = ["mlp/layer0/w", "mlp/layer0/b", "mlp/layer1/w", "mlp/layer1/b"]
TIMEOUT = 30.0


class MLP(ts.ScopedModule):
    """Records the scope it is in at each layer; waits on ``barrier`` inside a scope."""

    def forward(
        self, x: torch.Tensor, log: list | None = None, barrier: threading.Barrier | None = None
    ) -> torch.Tensor:
        for i in range(2):
            with ts.variable_scope(f"layer{i}"):
                if barrier is not None:
                    barrier.wait(TIMEOUT)  # every thread is inside its layer scope now
                w = ts.get_variable("w", [x.shape[-1], 8])
                b = ts.get_variable("b", [8], initializer=ts.constant_initializer(0.1))
                if log is not None:
                    log.append((ts.get_variable_scope().name, ts.get_name_scope()))
                x = torch.tanh(x @ w + b)
        return x


SCOPES = [("mlp/layer0", "mlp/layer0"), ("mlp/layer1", "mlp/layer1")]


def _built() -> MLP:
    torch.manual_seed(0)
    model = MLP(name="mlp")
    model(torch.zeros(1, 4))
    assert [n for n, _ in model.named_parameters()] == NAMES
    return model


def _replicate(module: ts.ScopedModule, scales: Sequence[float]) -> list[ts.ScopedModule]:
    """``torch.nn.parallel.replicate`` without the device copies: replica ``j`` gets
    ``param * scales[j]`` (a non-leaf, as ``Broadcast`` gives), set as a plain
    attribute and recorded in ``_former_parameters``, exactly as ``replicate`` does."""
    replicas = []
    for scale in scales:
        replica = module._replicate_for_data_parallel()
        replica._former_parameters = OrderedDict()
        for key, param in module._parameters.items():
            copy = param * scale
            setattr(replica, key, copy)
            replica._former_parameters[key] = copy
        replicas.append(replica)
    return replicas


def _parallel_apply(
    modules: Sequence[Callable], inputs: Sequence[tuple], kwargs: Sequence[dict] | None = None
) -> list[Any]:
    """``parallel_apply`` on CPU: each call in its own thread; exceptions are re-raised."""
    kwargs = kwargs or [{} for _ in modules]
    results: list[Any] = [None] * len(modules)
    grad_enabled = torch.is_grad_enabled()

    def work(i: int) -> None:
        torch.set_grad_enabled(grad_enabled)
        try:
            results[i] = modules[i](*inputs[i], **kwargs[i])
        except BaseException as error:  # re-raised in the calling thread
            results[i] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(modules))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a worker thread hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _expected(module: ts.ScopedModule, x: torch.Tensor, scale: float) -> torch.Tensor:
    params = {n: p * scale for n, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))


def test_parallel_apply_needs_an_accelerator():
    """Why these tests run the replicas from their own threads."""
    if torch.accelerator.is_available():
        pytest.skip("an accelerator is present: parallel_apply runs")
    model = _built()
    with pytest.raises(RuntimeError, match="accelerator"):
        nn.parallel.parallel_apply([model, model], [torch.ones(1, 4), torch.ones(1, 4)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="with GPUs DataParallel replicates")
def test_data_parallel_without_gpus_calls_the_module():
    model = _built()
    dp = nn.DataParallel(model)
    assert [n for n, _ in dp.named_parameters()] == [f"module.{n}" for n in NAMES]
    x = torch.randn(5, 4)
    torch.testing.assert_close(dp(x), model(x), rtol=0, atol=0)


def test_scopes_opened_inside_forward_work_in_worker_threads():
    model = _built()
    x = torch.randn(3, 4)
    main_log: list = []
    expected = model(x, main_log)
    assert main_log == SCOPES

    replicas = _replicate(model, [1.0, 1.0, 1.0])
    logs: list[list] = [[] for _ in replicas]
    barrier = threading.Barrier(len(replicas))
    outputs = _parallel_apply(
        replicas, [(x,)] * len(replicas), [{"log": log, "barrier": barrier} for log in logs]
    )
    for log, out in zip(logs, outputs, strict=True):
        assert log == SCOPES  # the same full names as in the main thread
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # Nothing was created on the way, by any thread.
    assert list(model.store) == NAMES


def test_each_replica_gets_its_own_parameters():
    model = _built()
    x = torch.randn(3, 4)
    scales = [1.0, 0.5, 2.0]
    replicas = _replicate(model, scales)
    barrier = threading.Barrier(len(replicas))
    outputs = _parallel_apply(replicas, [(x,)] * len(replicas), [{"barrier": barrier}] * 3)
    for scale, out in zip(scales, outputs, strict=True):
        torch.testing.assert_close(out, _expected(model, x, scale))
    assert not torch.allclose(outputs[1], outputs[2])
    # The original still uses its own parameters, and gradients through the replicas'
    # copies reach them (what DataParallel's backward needs).
    torch.testing.assert_close(model(x), outputs[0])
    sum(out.sum() for out in outputs).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_replica_of_variables_named_like_module_attributes():
    """``replicate`` hands each copy to the replica with ``setattr(replica, name, copy)``.
    Variables named "training", "store" or "forward" must not replace those attributes:
    a replica whose ``training`` is a tensor breaks ``if self.training``, one whose
    ``forward`` is a tensor cannot be called."""

    class Net(ts.ScopedModule):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = ts.get_variable("training", [4])
            shift = ts.get_variable("store", [4])
            gate = ts.get_variable("forward", [4])
            out = x * scale + shift * gate
            return torch.nn.functional.dropout(out, 0.5, self.training)

    torch.manual_seed(0)
    model = Net()
    x = torch.randn(3, 4)
    model(x)
    model.eval()  # dropout off: the outputs can be compared
    replicas = _replicate(model, [1.0, 2.0])
    for replica in replicas:
        assert replica.training is False
        assert replica.store is model.store
        assert replica.forward.__func__ is Net.forward
        assert list(replica._former_parameters) == ["training", "store", "forward"]
        assert "_parameters" in replica.__dict__ and not replica._parameters
    outputs = _parallel_apply(replicas, [(x,)] * 2)
    for scale, out in zip([1.0, 2.0], outputs, strict=True):
        torch.testing.assert_close(out, _expected(model, x, scale))
    # The original is untouched: its attributes, and its variables beside them.
    assert model.training is False and isinstance(model.store, ts.VariableStore)
    assert [n for n, _ in model.named_parameters()] == ["training", "store", "forward"]


def test_replica_reads_its_copies_not_the_original():
    """A replica whose copies differ from the original hands out the copies: reading the
    original's parameters would silently give the wrong numbers (and, on GPUs, the
    wrong device)."""
    model = _built()
    (replica,) = _replicate(model, [3.0])
    x = torch.randn(2, 4)
    torch.testing.assert_close(replica(x), _expected(model, x, 3.0))
    assert not torch.allclose(replica(x), model(x))


def _call_in_thread(fn: Callable[[], Any]) -> Any:
    return _parallel_apply([fn], [()])[0]


def test_module_call_under_an_outer_scope_in_another_thread_keeps_its_names():
    model = _built()
    x = torch.randn(3, 4)
    expected = model(x)

    def called_under_outer() -> tuple[torch.Tensor, list]:
        log: list = []
        with ts.variable_scope("outer"), ts.name_scope("ops"):
            out = model(x, log)
            assert ts.get_variable_scope().name == "outer"  # restored after the call
        return out, log

    out, log = _call_in_thread(called_under_outer)
    assert log == SCOPES  # not "outer/mlp/layer0": a call starts from its store's root
    torch.testing.assert_close(out, expected, rtol=0, atol=0)

    # The main thread inside "outer" and a worker at the root: the same names either way.
    with ts.variable_scope("outer"):
        out, log = _call_in_thread(called_under_outer)
        main_log: list = []
        torch.testing.assert_close(model(x, main_log), expected, rtol=0, atol=0)
    assert log == main_log == SCOPES
    assert list(model.store) == NAMES
    assert len(ts.get_default_store()) == 0  # nothing leaked into the default store


def test_first_call_under_an_outer_scope_in_another_thread_creates_the_usual_names():
    def build() -> list[str]:
        with ts.variable_scope("outer"):
            model = MLP(name="mlp")
            model(torch.zeros(1, 4))
        return [n for n, _ in model.named_parameters()]

    assert _call_in_thread(build) == NAMES


def test_worker_thread_starts_at_the_root_scope():
    """Plain default-store code: scopes are per thread. A worker does not see the scopes
    its starting thread has open; it starts at the root, as in TensorFlow."""
    with ts.variable_scope("model"):
        with ts.variable_scope("layer"):
            w = ts.get_variable("w", [2])
        assert ts.name_of(w) == "model/layer/w"

        def where() -> tuple[str, str]:
            return ts.get_variable_scope().name, ts.get_name_scope()

        assert _call_in_thread(where) == ("", "")
        assert where() == ("model", "model")


def test_worker_thread_reusing_a_scope_opened_outside_is_a_clear_error():
    """Reusing from a worker resolves names from the root, so it fails with
    'does not exist' naming the root-level name, rather than silently picking
    another variable."""
    with ts.variable_scope("model"):
        with ts.variable_scope("layer"):
            ts.get_variable("w", [2])

        def reuse_in_worker() -> torch.Tensor:
            with ts.variable_scope("layer", reuse=True):
                return ts.get_variable("w", [2])

        with pytest.raises(ValueError, match=r"^Variable layer/w does not exist"):
            _call_in_thread(reuse_in_worker)
    assert list(ts.get_default_store()) == ["model/layer/w"]  # nothing was created


def test_worker_thread_without_reuse_creates_at_the_root():
    """Without reuse the worker creates a root-level variable: its full name says so."""
    with ts.variable_scope("model"):

        def create_in_worker() -> str:
            with ts.variable_scope("layer"):
                return ts.name_of(ts.get_variable("w", [2]))

        assert _call_in_thread(create_in_worker) == "layer/w"
    assert list(ts.get_default_store()) == ["layer/w"]


def test_worker_thread_reopens_a_captured_scope():
    """The fix for code that must work under a scope opened elsewhere: capture the
    ``VariableScope`` and re-open it in the worker (it jumps to its absolute name)."""
    with ts.variable_scope("model") as captured, ts.variable_scope("layer"):
        w = ts.get_variable("w", [2])

    def reuse_captured() -> torch.Tensor:
        with ts.variable_scope(captured, reuse=True), ts.variable_scope("layer"):
            return ts.get_variable("w", [2])

    assert _call_in_thread(reuse_captured) is w
