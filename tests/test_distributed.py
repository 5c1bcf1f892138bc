"""A ScopedModule under DistributedDataParallel and FSDP2 (gloo, CPU, 2 processes).

Each rank trains a small MLP written with ``variable_scope``/``get_variable`` on
its own data. The data-parallel wrapper averages gradients, so after the steps
every rank must hold the same parameters, under the same full names. Ranks write
what they end with to files in ``tmp_path``; the assertions run here, in the
parent process.
"""

from __future__ import annotations

import datetime
import gc
import os
import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torchscope as ts

WORLD_SIZE = 2
STEPS = 5
SHAPES = {
    "mlp/layer0/w": (8, 16),
    "mlp/layer0/b": (16,),
    "mlp/layer1/w": (16, 16),
    "mlp/layer1/b": (16,),
    "mlp/layer2/w": (16, 2),
    "mlp/layer2/b": (2,),
}
NAMES = list(SHAPES)
TIMEOUT = datetime.timedelta(seconds=30)

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built")


def _mlp(x: torch.Tensor) -> torch.Tensor:
    for i, width in enumerate([16, 16, 2]):
        with ts.variable_scope(f"layer{i}"):
            w = ts.get_variable("w", [x.shape[-1], width])
            b = ts.get_variable("b", [width], initializer=ts.zeros_initializer())
            x = x @ w + b
            if i < 2:
                x = torch.tanh(x)
    return x


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build(rank: int, mode: str) -> ts.ScopedModule:
    torch.manual_seed(0)  # the same start on every rank
    model = ts.ScopedModule(_mlp, name="mlp")
    model(torch.zeros(1, 8))  # the first call makes the variables, before wrapping
    if rank == 1 and mode == "ddp":  # DDP must broadcast rank 0's values when it wraps
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    return model


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s data at ``step``: different on each rank."""
    gen = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(32, 8, generator=gen), torch.randn(32, 2, generator=gen) + rank


def _make_optimizer(name: str, params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1) if name == "sgd" else torch.optim.Adam(params, lr=0.01)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, rank: int) -> list[float]:
    losses = []
    for step in range(STEPS):
        x, y = _batch(rank, step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _run_ddp(model: ts.ScopedModule, rank: int, optimizer: str) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(model)
    opt = _make_optimizer(optimizer, ddp.parameters())
    ts.check_optimizer(opt, model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = _train(ddp, opt, rank)
    return {
        "start": start,
        "losses": losses,
        "ddp_names": [n for n, _ in ddp.named_parameters()],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def _run_fsdp(model: ts.ScopedModule, rank: int, optimizer: str) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    fully_shard(model, mesh=init_device_mesh("cpu", (WORLD_SIZE,)))  # CPU even where CUDA is
    opt = _make_optimizer(optimizer, model.parameters())
    losses = _train(model, opt, rank)
    params = dict(model.named_parameters())
    return {
        "losses": losses,
        # The parameters are DTensors sharded across the ranks: gather the full values.
        "state": {n: p.full_tensor().detach().clone() for n, p in params.items()},
        "types": {type(p).__name__ for p in params.values()},
        "local_rows": {n: p.to_local().shape[0] for n, p in params.items()},
    }


def _worker(rank: int, port: int, out_dir: str, mode: str, optimizer: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    result: dict = {}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=TIMEOUT)
        try:
            run = _run_ddp if mode == "ddp" else _run_fsdp
            result = run(_build(rank, mode), rank, optimizer)
            gc.collect()  # free the wrapped model while the process group is alive
            # Compare on the ranks too: the largest difference to rank 0's values.
            diff = torch.zeros(())
            for name in sorted(result["state"]):
                value = result["state"][name].clone()
                dist.broadcast(value, src=0)
                diff = torch.maximum(diff, (value - result["state"][name]).abs().max())
            dist.all_reduce(diff, op=dist.ReduceOp.MAX)
            result["max_diff"] = diff.item()
        finally:
            dist.destroy_process_group()
    except Exception:
        result["error"] = traceback.format_exc()
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    # The result is on disk. Skip the interpreter's teardown: after FSDP2 on gloo it
    # aborts the process about one time in two ("terminate called without an active
    # exception", torch 2.13 CPU), after every step here has succeeded.
    os._exit(0)


def _spawn(tmp_path, mode: str, optimizer: str) -> list[dict]:
    mp.spawn(
        _worker, args=(_free_port(), str(tmp_path), mode, optimizer), nprocs=WORLD_SIZE, join=True
    )
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    for rank, result in enumerate(results):
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
    return results


def _check_identical(results: list[dict]) -> None:
    r0, r1 = results
    for result in results:
        assert list(result["state"]) == NAMES
        assert {n: tuple(v.shape) for n, v in result["state"].items()} == SHAPES
    for name in NAMES:
        torch.testing.assert_close(r0["state"][name], r1["state"][name], rtol=0, atol=0, msg=name)
    assert r0["max_diff"] == r1["max_diff"] == 0.0
    # The ranks saw different data (different losses).
    assert r0["losses"] != r1["losses"]


def _reference(optimizer: str) -> dict[str, torch.Tensor]:
    """One process trained on both ranks' batches at once: averaging the two ranks'
    gradients of their mean losses is the gradient of the mean loss over both."""
    model = _build(0, "reference")
    opt = _make_optimizer(optimizer, model.parameters())
    for step in range(STEPS):
        batches = [_batch(rank, step) for rank in range(WORLD_SIZE)]
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


def _check_matches_reference(result: dict, optimizer: str) -> None:
    reference = _reference(optimizer)
    start = _build(0, "reference").state_dict()
    assert list(reference) == NAMES
    for name in NAMES:
        torch.testing.assert_close(
            result["state"][name], reference[name], rtol=1e-5, atol=1e-5, msg=name
        )
        assert not torch.equal(result["state"][name], start[name]), f"{name} did not train"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_ddp_ranks_end_with_identical_parameters(tmp_path, optimizer):
    results = _spawn(tmp_path, "ddp", optimizer)
    _check_identical(results)
    r0, r1 = results
    # DDP sees the full names (behind its "module." prefix) ...
    assert r0["ddp_names"] == [f"module.{n}" for n in NAMES]
    # ... broadcast rank 0's start to rank 1 at wrap time ...
    for name in NAMES:
        torch.testing.assert_close(r1["start"][name], r0["start"][name], rtol=0, atol=0)
    # ... and trained as one process on both ranks' data would.
    _check_matches_reference(r0, optimizer)


def test_fsdp2_ranks_end_with_identical_parameters(tmp_path):
    results = _spawn(tmp_path, "fsdp", "adam")
    _check_identical(results)
    r0, r1 = results
    # fully_shard really sharded every variable (DTensors, half the rows on each rank),
    # named by its full name ...
    assert r0["types"] == r1["types"] == {"DTensor"}
    assert r0["local_rows"] == r1["local_rows"] == {n: SHAPES[n][0] // 2 for n in NAMES}
    # ... and training matches one process on both ranks' data.
    _check_matches_reference(r0, "adam")
