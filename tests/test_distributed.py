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
from pathlib import Path

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
        "v_names": {n: p.name for n, p in params.items()},
        "names_of": {n: ts.name_of(p) for n, p in params.items()},
    }


# -- models bigger than one machine: meta build, fully_shard, ts.materialize ----------------

# Every initializer of the package, on shapes whose rows do not split evenly in two.
SCALE_INITIALIZERS = {
    "uniform": (ts.random_uniform_initializer(-1.0, 2.0), (7, 5), None),
    "ints": (ts.random_uniform_initializer(0, 100), (9, 3), torch.int32),
    "normal": (ts.random_normal_initializer(0.5, 2.0), (11, 4), None),
    "truncated": (ts.truncated_normal_initializer(0.5, 2.0), (13, 3, 2), None),
    "glorot_u": (ts.glorot_uniform_initializer(), (7, 9), None),
    "glorot_n": (ts.glorot_normal_initializer(), (5, 3, 4), None),
    "vs": (ts.variance_scaling_initializer(2.0, "fan_out", "uniform"), (6, 6), None),
    "constant": (ts.constant_initializer(0.25), (5, 2), None),
    "values": (ts.constant_initializer(list(range(10))), (5, 2), None),
    "ones": (ts.ones_initializer(), (3,), None),
    "orthogonal": (ts.orthogonal_initializer(1.5), (6, 4), None),
    "init_from": (ts.init_from(torch.nn.init.kaiming_uniform_), (4, 6), None),
    "own_seed": (ts.random_normal_initializer(seed=3), (5, 5), None),
    "default": (None, (9, 8), None),
}
SCALE_SEED = 1234
ELEMENTWISE = {"uniform", "ints", "normal", "truncated", "glorot_u", "glorot_n", "vs", "default"}


def _scale_model(x: torch.Tensor) -> torch.Tensor:
    with ts.variable_scope("big"):
        for name, (init, shape, dtype) in SCALE_INITIALIZERS.items():
            ts.get_variable(name, list(shape), dtype, initializer=init)
    return x


def _eager_scale_model() -> dict[str, torch.Tensor]:
    net = ts.ScopedModule(_scale_model, name="m")
    net.store.seed = SCALE_SEED
    net(torch.ones(1))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _run_meta_fsdp(rank: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from torchscope import _keyed, _materialize

    _keyed.CHUNK = 4  # many chunks: shards start and end inside them
    made_whole: list[str] = []
    whole = _materialize.initial_value

    def counting(name, *args):
        made_whole.append(name)
        return whole(name, *args)

    _materialize.initial_value = counting  # type: ignore[assignment]
    torch.manual_seed(rank)  # the global generator differs between the ranks
    net = ts.ScopedModule(_scale_model, name="m")
    net.store.seed = SCALE_SEED
    with torch.device("meta"):
        net(torch.ones(1))
    fully_shard(net, mesh=init_device_mesh("cpu", (WORLD_SIZE,)))
    ts.materialize(net)
    params = dict(net.named_parameters())
    result = {
        "state": {n: p.full_tensor().detach().clone() for n, p in params.items()},
        "types": {type(p).__name__ for p in params.values()},
        "made_whole": sorted(made_whole),
        "local_rows": {n: p.to_local().shape[0] for n, p in params.items()},
    }
    # fully_shard's bookkeeping takes the new shards at the first forward.
    net(torch.ones(1))
    # (the root module keeps its parameters unsharded after a forward: full tensors)
    result["after_forward"] = {
        n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
        for n, p in net.named_parameters()
    }
    # Above the bound, an initializer that needs the whole tensor is refused.
    big = ts.ScopedModule(
        lambda x: x * ts.get_variable("o", [64, 64], initializer=ts.orthogonal_initializer()).sum()
    )
    big.store.seed = SCALE_SEED
    with torch.device("meta"):
        big(torch.ones(1))
    fully_shard(big, mesh=init_device_mesh("cpu", (WORLD_SIZE,)))
    try:
        ts.materialize(big, max_full_bytes=1000)
    except ValueError as error:
        result["refused"] = str(error)
    return result


def _run_seeded_ddp_start(rank: int) -> dict:
    torch.manual_seed(rank)  # the global generator differs between the ranks
    ts.set_seed(SCALE_SEED)
    model = ts.ScopedModule(_mlp, name="mlp")
    model(torch.zeros(1, 8))
    ts.set_seed(None)
    # Before any wrapping: the ranks' values, compared to rank 0's.
    diff = torch.zeros(())
    for _, p in sorted(model.named_parameters()):
        value = p.detach().clone()
        dist.broadcast(value, src=0)
        diff = torch.maximum(diff, (value - p.detach()).abs().max())
    return {
        "state": {n: p.detach().clone() for n, p in model.named_parameters()},
        "pre_wrap_diff": diff.item(),
    }


def _run_dcp_restore(rank: int) -> dict:
    """A sharded checkpoint saved from a trained model, restored into a meta-built one."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    out_dir = os.environ["TS_DCP_DIR"]
    source = ts.ScopedModule(_mlp, name="mlp")
    source.store.seed = SCALE_SEED
    source(torch.zeros(1, 8))
    fully_shard(source, mesh=init_device_mesh("cpu", (WORLD_SIZE,)))
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(3.0).add_(0.5)  # not what initialisation makes
    saved = {n: p.full_tensor().detach().clone() for n, p in source.named_parameters()}
    dcp.save(source.state_dict(), checkpoint_id=out_dir)

    target = ts.ScopedModule(_mlp, name="mlp")
    with torch.device("meta"):
        target(torch.zeros(1, 8))
    fully_shard(target, mesh=init_device_mesh("cpu", (WORLD_SIZE,)))
    target.to_empty(device="cpu")  # this rank's shards only, uninitialised
    state = target.state_dict()
    dcp.load(state, checkpoint_id=out_dir)
    params = dict(target.named_parameters())
    return {
        "saved": saved,
        "state": {n: p.full_tensor().detach().clone() for n, p in params.items()},
        "local_numel": {n: p.to_local().numel() for n, p in params.items()},
        "names": list(state),
    }


def _run_tf_restore_sharded(rank: int) -> dict:
    """A TensorFlow checkpoint read into a meta-built, fully_shard-ed model's shards, and
    into DTensors placed other ways; records the size of every tensor the reader made."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    from torchscope.train import _bundle, _shards

    reads: list[tuple[str, int]] = []
    read_rows, fill = _shards._read_rows, _bundle.BundleReader._fill

    def spy_rows(reader, span, shape, first, last, out=None):
        got = read_rows(reader, span, shape, first, last, out)
        reads.append((span.key, got.numel()))
        return got

    def spy_fill(self, jobs, verify):
        reads.extend((span.key, out.numel()) for span, out in jobs)
        return fill(self, jobs, verify)

    _shards._read_rows = spy_rows
    _bundle.BundleReader._fill = spy_fill  # type: ignore[method-assign]
    mesh = init_device_mesh("cpu", (WORLD_SIZE,))
    target = ts.ScopedModule(_mlp, name="mlp")
    with torch.device("meta"):
        target(torch.zeros(1, 8))
    fully_shard(target, mesh=mesh)
    target.to_empty(device="cpu")  # this rank's shards only, uninitialised
    ts.train.init_from_checkpoint(os.environ["TS_TF_CKPT"], {"mlp/": "mlp/"}, store=target)
    params = dict(target.named_parameters())
    fsdp_reads = list(reads)
    state = {n: p.full_tensor().detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for p in params.values():
            p.zero_()
    ts.train.Saver(params).restore(os.environ["TS_TF_CKPT"])  # Saver reads shards too

    # Other placements, a partitioned tensor, and rows read in several chunks.
    _shards.ROW_CHUNK = 16  # bytes: one row at a time below
    partitioned = os.environ["TS_TF_PARTITIONED"]
    ours = ts.train.load_checkpoint(os.environ["TS_TF_CKPT"])
    theirs = ts.train.load_checkpoint(partitioned)
    placed = {}
    for reader, key, placement in [
        (ours, "mlp/layer1/w", Shard(1)),  # 16 chunks of one row, 8 columns kept of each
        (ours, "mlp/layer2/w", Shard(1)),  # [16, 2]
        (theirs, "embed/table", Shard(0)),  # 10 rows stored as 3 row slices
        (theirs, "embed/wide", Shard(0)),  # [3, 8] stored as 2 column slices; 2 rows and 1
        (theirs, "embed/wide", Shard(1)),
        (theirs, "plain", Shard(0)),
        (theirs, "plain", Replicate()),
    ]:
        full = reader.get_tensor(key)
        dtensor = distribute_tensor(torch.zeros_like(full), mesh, [placement])
        reader.read_into([(key, dtensor)])
        placed[f"{key} {placement}"] = (dtensor.full_tensor(), full)
    partial = DTensor.from_local(torch.zeros(2), mesh, [Partial()], run_check=False)
    before = partial.to_local().clone()
    try:
        theirs.read_into([("plain", partial)])
        refused = ""
    except ValueError as error:
        refused = str(error)
    assert torch.equal(partial.to_local(), before)
    # Saving a DTensor as it is would write this rank's part under the full shape.
    save_dir = os.path.join(os.environ["TS_TF_SAVE"], f"rank{rank}")
    try:
        ts.train.Saver({"w": params["mlp/layer1/w"]}).save(os.path.join(save_dir, "m.ckpt"))
        save_refused = ""
    except ValueError as error:
        save_refused = str(error)
    return {
        "refused": refused,
        "save_refused": save_refused,
        "save_left": sorted(os.listdir(save_dir)) if os.path.isdir(save_dir) else [],
        "state": state,
        "restored": {n: p.full_tensor().detach().clone() for n, p in params.items()},
        "local_numel": {n: p.to_local().numel() for n, p in params.items()},
        "fsdp_reads": fsdp_reads,
        "placed": placed,
    }


_SCALE_RUNS = {
    "meta_fsdp": _run_meta_fsdp,
    "seeded_ddp": _run_seeded_ddp_start,
    "dcp_restore": _run_dcp_restore,
    "tf_restore_sharded": _run_tf_restore_sharded,
}


def _worker(rank: int, port: int, out_dir: str, mode: str, optimizer: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    result: dict = {}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=TIMEOUT)
        try:
            if mode in _SCALE_RUNS:
                result = _SCALE_RUNS[mode](rank)
            else:
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
    # FSDP2 puts new Parameters in the variables' places: v.name is PyTorch's (None) on
    # them, as documented, and ts.name_of names them while the store holds them.
    assert r0["v_names"] == r1["v_names"] == {n: None for n in NAMES}
    assert r0["names_of"] == r1["names_of"] == {n: n for n in NAMES}
    # ... and training matches one process on both ranks' data.
    _check_matches_reference(r0, "adam")


def test_fsdp2_materialize_fills_each_shard_as_an_eager_build(tmp_path, monkeypatch):
    from torchscope import _keyed

    results = _spawn(tmp_path, "meta_fsdp", "")
    monkeypatch.setattr(_keyed, "CHUNK", 4)  # as on the ranks
    eager = _eager_scale_model()
    for rank, result in enumerate(results):
        assert result["types"] == {"DTensor"}
        assert list(result["state"]) == list(eager)
        for name, value in eager.items():
            got = result["state"][name]
            assert got.dtype == value.dtype, name
            assert torch.equal(got, value), f"rank {rank}: {name}"
            assert torch.equal(result["after_forward"][name], value), f"rank {rank}: {name}"
        # Only the initializers that need the whole tensor made it whole.
        assert result["made_whole"] == ["m/big/init_from", "m/big/orthogonal", "m/big/own_seed"]
        assert "'o' (16,384 bytes) would be made whole" in result["refused"]
    rows = {n: v.shape[0] for n, v in eager.items()}
    for name, count in rows.items():  # each rank held its own part of the rows
        assert results[0]["local_rows"][name] + results[1]["local_rows"][name] == count


def test_seeded_ddp_ranks_start_identical_before_wrapping(tmp_path):
    results = _spawn(tmp_path, "seeded_ddp", "")
    assert results[0]["pre_wrap_diff"] == results[1]["pre_wrap_diff"] == 0.0
    for name, value in results[0]["state"].items():
        assert torch.equal(value, results[1]["state"][name]), name


def test_dcp_restores_into_a_meta_built_sharded_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TS_DCP_DIR", str(tmp_path / "ckpt"))
    results = _spawn(tmp_path, "dcp_restore", "")
    for result in results:
        assert result["names"] == NAMES
        for name in NAMES:
            assert torch.equal(result["state"][name], results[0]["saved"][name]), name
    # Each rank allocated its shard, not the full tensor.
    for name, shape in SHAPES.items():
        total = results[0]["local_numel"][name] + results[1]["local_numel"][name]
        assert total == torch.Size(shape).numel()
        assert results[0]["local_numel"][name] < torch.Size(shape).numel()


def test_tf_checkpoint_restores_into_a_meta_built_sharded_model_shard_by_shard(
    tmp_path, monkeypatch
):
    source = ts.ScopedModule(_mlp, name="mlp")
    source(torch.zeros(1, 8))
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(3.0).add_(0.5)  # not what initialisation makes
    saved = {n: p.detach().clone() for n, p in source.named_parameters()}
    path = ts.train.Saver(dict(source.named_parameters())).save(str(tmp_path / "model.ckpt"))
    monkeypatch.setenv("TS_TF_CKPT", path)
    data = Path(__file__).parent / "data" / "tf1_checkpoints" / "partitioned"
    monkeypatch.setenv("TS_TF_PARTITIONED", str(data))
    monkeypatch.setenv("TS_TF_SAVE", str(tmp_path / "saves"))
    results = _spawn(tmp_path, "tf_restore_sharded", "")
    for rank, result in enumerate(results):
        assert list(result["state"]) == NAMES
        for name in NAMES:
            assert torch.equal(result["state"][name], saved[name]), f"rank {rank}: {name}"
            assert torch.equal(result["restored"][name], saved[name]), f"rank {rank}: {name}"
        # The reader made nothing bigger than this rank's shard of each variable.
        assert {key for key, _ in result["fsdp_reads"]} <= set(NAMES)
        for key, numel in result["fsdp_reads"]:
            assert numel <= result["local_numel"][key], f"rank {rank}: {key} read {numel}"
        assert len(result["placed"]) == 7
        for what, (got, want) in result["placed"].items():
            assert torch.equal(got, want), f"rank {rank}: {what}"
        assert "'plain' into a DTensor placed (Partial(sum),)" in result["refused"]
        assert "only Shard(dim) and Replicate" in result["refused"]
        assert "'w': a DTensor (FSDP2, tensor parallel) holds only" in result["save_refused"]
        assert result["save_left"] == []  # nothing half-written
    for name, shape in SHAPES.items():  # the shards were the ranks' own parts
        total = results[0]["local_numel"][name] + results[1]["local_numel"][name]
        assert total == torch.Size(shape).numel()
