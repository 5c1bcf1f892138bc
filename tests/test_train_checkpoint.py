"""ts.train's reader and writer of TensorFlow checkpoints, against real TensorFlow files.

The fixtures in tests/data/tf1_checkpoints were written by TensorFlow 2.21; their
expected.npz holds what TensorFlow's own reader returned for each key.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import pytest
import torch
from tf_fixtures import CHECKPOINTS, expected, strings

import torchscope as ts
from torchscope.train import _bundle, _crc, _writer
from torchscope.train._proto import BundleHeader
from torchscope.train._sstable import read_table, write_table

FOLDERS = ["dtypes", "sharded", "partitioned", "adam", "momentum", "rmsprop", "tf2_object"]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bytes of a tensor, for bit-exact comparison (NaN-safe, -0.0-aware)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_identical(a: torch.Tensor, b: torch.Tensor, what: str = "") -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(bits(a), bits(b)), what


@pytest.fixture
def copy_of(tmp_path):
    """A writable copy of a fixture folder."""

    def copy(folder: str):
        target = tmp_path / folder
        shutil.copytree(CHECKPOINTS / folder, target)
        return target

    return copy


# -- reading TensorFlow's files ------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_fixture_reads_bit_exact(folder):
    reader = ts.train.load_checkpoint(CHECKPOINTS / folder / "model.ckpt")
    want = expected(folder)
    texts = strings(folder)
    dtypes = reader.get_variable_to_dtype_map()
    numeric = [k for k, dtype in dtypes.items() if dtype is not bytes]
    assert sorted(numeric) == sorted(want)
    for key in numeric:
        assert_identical(reader.get_tensor(key), want[key], key)
    for key, items in texts.items():
        if key.startswith("__"):
            continue
        assert [b.decode("utf-8") for b in reader.get_tensor(key)] == items


def test_dtype_and_shape_maps():
    reader = ts.train.load_checkpoint(CHECKPOINTS / "dtypes")
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    assert dtypes["dtypes/bfloat16"] is torch.bfloat16
    assert dtypes["dtypes/uint16"] is torch.uint16
    assert dtypes["dtypes/complex64"] is torch.complex64
    assert dtypes["dtypes/strings"] is bytes
    assert dtypes["global_step"] is torch.int64
    assert shapes["dtypes/scalar"] == [] and shapes["dtypes/empty"] == [0, 3]
    assert reader.get_tensor("dtypes/scalar").shape == ()
    assert reader.get_tensor("dtypes/empty").shape == (0, 3)
    assert reader.has_tensor("dtypes/deep/er/still/w") and not reader.has_tensor("dtypes")
    assert reader.keys() == sorted(shapes)


def test_partitioned_variables_are_reassembled_and_slices_not_listed():
    reader = ts.train.load_checkpoint(CHECKPOINTS / "partitioned")
    assert reader.keys() == ["embed/table", "embed/wide", "plain"]
    assert reader.get_variable_to_shape_map()["embed/table"] == [10, 4]
    assert reader.nbytes("embed/table") == 160 and reader.nbytes("embed/wide") == 96
    table = torch.zeros(10, 4)
    reader.read_into([("embed/table", table)])
    assert_identical(table, expected("partitioned")["embed/table"])


def test_sharded_checkpoint_reads_from_both_data_files():
    reader = ts.train.load_checkpoint(CHECKPOINTS / "sharded")
    assert reader._bundle.header.num_shards == 2
    shards = {e.shard_id for e in reader._bundle.entries.values()}
    assert shards == {0, 1}


def test_tf2_object_checkpoint_keys_are_listed_and_read():
    reader = ts.train.load_checkpoint(CHECKPOINTS / "tf2_object/model.ckpt")
    key = "model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert reader.has_tensor(key) and reader.has_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    assert isinstance(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"), bytes)


def test_list_variables_as_tensorflow():
    listed = ts.train.list_variables(CHECKPOINTS / "adam")
    assert listed[0] == ("beta1_power", [])
    assert ("mlp/hidden/kernel", [5, 6]) in listed and (
        "mlp/hidden/kernel/Adam_1",
        [5, 6],
    ) in listed
    assert [k for k, _ in listed] == sorted(k for k, _ in listed)


@pytest.mark.parametrize("form", ["folder", "prefix", "index", "data", "pathlib"], ids=lambda s: s)
def test_load_checkpoint_takes_a_folder_a_prefix_or_either_file(form):
    folder = CHECKPOINTS / "adam"
    path = {
        "folder": str(folder),
        "prefix": str(folder / "model.ckpt"),
        "index": str(folder / "model.ckpt.index"),
        "data": str(folder / "model.ckpt.data-00000-of-00001"),
        "pathlib": folder / "model.ckpt",
    }[form]
    reader = ts.train.load_checkpoint(path)
    assert reader.prefix == str(folder / "model.ckpt")


def test_latest_checkpoint(tmp_path):
    assert ts.train.latest_checkpoint(CHECKPOINTS / "adam") == str(CHECKPOINTS / "adam/model.ckpt")
    assert ts.train.latest_checkpoint(tmp_path) is None  # no state file
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone.ckpt"\n')
    assert ts.train.latest_checkpoint(tmp_path) is None  # names a checkpoint that is gone
    prefix = str(CHECKPOINTS / "adam/model.ckpt")
    (tmp_path / "checkpoint").write_text(f'model_checkpoint_path: "{prefix}"\n')  # absolute
    assert ts.train.latest_checkpoint(tmp_path) == prefix


def test_missing_checkpoints_say_so(tmp_path):
    with pytest.raises(ts.train.CheckpointError, match="no checkpoint in folder"):
        ts.train.load_checkpoint(tmp_path)
    with pytest.raises(ts.train.CheckpointError, match=r"not found \(no .*nope.index\)"):
        ts.train.load_checkpoint(tmp_path / "nope")
    (tmp_path / "v1.ckpt").write_bytes(b"old")
    with pytest.raises(ts.train.CheckpointError, match="is not a V2 checkpoint"):
        ts.train.load_checkpoint(tmp_path / "v1.ckpt")
    reader = ts.train.load_checkpoint(CHECKPOINTS / "adam")
    with pytest.raises(KeyError, match="'nope' not found in checkpoint"):
        reader.get_tensor("nope")


# -- damage ----------------------------------------------------------------------------------


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_a_checksum_error_naming_tensor_and_file(copy_of):
    folder = copy_of("adam")
    reader = ts.train.load_checkpoint(folder)
    entry = reader._bundle.entries["mlp/hidden/kernel"]
    _flip(folder / "model.ckpt.data-00000-of-00001", entry.offset + 5)
    reader = ts.train.load_checkpoint(folder)
    with pytest.raises(
        ts.train.CheckpointError,
        match=r"checksum mismatch for tensor 'mlp/hidden/kernel' in .*ckpt.data-00000-of-00001",
    ):
        reader.get_tensor("mlp/hidden/kernel")
    with pytest.raises(ts.train.CheckpointError, match="'mlp/hidden/kernel'"):
        reader.verify_all()
    reader.get_tensor("mlp/hidden/bias")  # the others are fine
    unchecked = ts.train.CheckpointReader(folder, verify=False)
    assert unchecked.get_tensor("mlp/hidden/kernel").shape == (5, 6)


def test_a_flipped_string_byte_is_a_checksum_error(copy_of):
    folder = copy_of("dtypes")
    entry = ts.train.load_checkpoint(folder)._bundle.entries["dtypes/strings"]
    _flip(folder / "model.ckpt.data-00000-of-00001", entry.offset + entry.size - 1)
    with pytest.raises(ts.train.CheckpointError, match="'dtypes/strings'"):
        ts.train.load_checkpoint(folder).get_tensor("dtypes/strings")


def test_truncated_and_missing_data_files(copy_of):
    folder = copy_of("adam")
    data = folder / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    reader = ts.train.load_checkpoint(folder)
    with pytest.raises(
        ts.train.CheckpointError, match=r"data-00000-of-00001 is truncated: tensor 'mlp/out/kernel'"
    ):
        reader.get_tensor("mlp/out/kernel")
    folder = copy_of("sharded")
    (folder / "model.ckpt.data-00001-of-00002").unlink()
    reader = ts.train.load_checkpoint(folder)
    on_second = [k for k, e in reader._bundle.entries.items() if e.shard_id == 1]
    with pytest.raises(
        ts.train.CheckpointError, match=r"data-00001-of-00002 of checkpoint .* is missing"
    ):
        reader.get_tensor(on_second[0])


def test_damaged_index(copy_of):
    folder = copy_of("adam")
    index = folder / "model.ckpt.index"
    _flip(index, 30)
    with pytest.raises(ts.train.CheckpointError, match="block checksum mismatch"):
        ts.train.load_checkpoint(folder)
    index.write_bytes(b"x" * 100)
    with pytest.raises(ts.train.CheckpointError, match="bad magic number"):
        ts.train.load_checkpoint(folder)
    index.write_bytes(b"x")
    with pytest.raises(ts.train.CheckpointError, match="too short"):
        ts.train.load_checkpoint(folder)


def _rewrite_header(folder, header: BundleHeader) -> None:
    index = folder / "model.ckpt.index"
    items = read_table(index.read_bytes(), str(index))
    with open(index, "wb") as f:
        write_table(f, [(b"", header.serialize()), *items[1:]])


def test_big_endian_and_future_versions_are_refused(copy_of):
    folder = copy_of("adam")
    _rewrite_header(folder, BundleHeader(big_endian=True))
    with pytest.raises(ts.train.CheckpointError, match="written big-endian"):
        ts.train.load_checkpoint(folder)
    _rewrite_header(folder, BundleHeader(producer=3, min_consumer=2))
    with pytest.raises(ts.train.CheckpointError, match="needs a reader of version 2 or later"):
        ts.train.load_checkpoint(folder)
    _rewrite_header(folder, BundleHeader())
    ts.train.load_checkpoint(folder).verify_all()


def test_read_into_is_all_or_nothing(copy_of):
    folder = copy_of("adam")
    reader = ts.train.load_checkpoint(folder)
    entry = reader._bundle.entries["mlp/out/kernel"]
    _flip(folder / "model.ckpt.data-00000-of-00001", entry.offset)
    targets = [("mlp/hidden/kernel", torch.zeros(5, 6)), ("mlp/out/kernel", torch.zeros(6, 2))]
    with pytest.raises(ts.train.CheckpointError, match="'mlp/out/kernel'"):
        ts.train.load_checkpoint(folder).read_into(targets)
    assert not targets[0][1].any()  # checked first, so nothing was written
    with pytest.raises(
        ValueError, match=r"is torch.float32 \[5, 6\]; it cannot fill a torch.float64"
    ):
        reader.read_into([("mlp/hidden/kernel", torch.zeros(5, 6, dtype=torch.float64))])


# -- writing --------------------------------------------------------------------------------------


def _every_dtype() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    values = {}
    for dtype in _bundle.DTYPES.values():
        if dtype.is_complex:
            t = torch.randn(3, 4, dtype=dtype)
        elif dtype.is_floating_point:
            t = torch.randn(3, 4).to(dtype)
        elif dtype == torch.bool:
            t = torch.rand(7) > 0.5
        else:
            t = torch.randint(0, 120, (2, 3)).to(dtype)
        values[f"v/{str(dtype).removeprefix('torch.')}"] = t
    values["special/nan_inf"] = torch.tensor([float("nan"), float("inf"), -0.0, -float("inf")])
    values["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    values["empty"] = torch.empty(0, 3)
    values["transposed"] = torch.arange(12.0).reshape(3, 4).t()  # not contiguous
    values["big"] = torch.randn(5_000_000)  # more than one 16 MiB chunk
    return values


def test_save_and_read_back_every_dtype_bit_exact(tmp_path):
    values = _every_dtype()
    writer = _writer.BundleWriter(str(tmp_path / "model.ckpt"))
    for key, value in values.items():
        writer.add(key, value)
    writer.add("words", [["a", "bé"], [b"\xff\x00", ""]])
    writer.finish()
    reader = ts.train.load_checkpoint(tmp_path / "model.ckpt")
    reader.verify_all()
    for key, value in values.items():
        assert_identical(reader.get_tensor(key), value.contiguous(), key)
    assert reader.get_tensor("words") == [[b"a", "bé".encode()], [b"\xff\x00", b""]]
    assert reader.get_variable_to_dtype_map()["words"] is bytes
    targets = {
        k: torch.empty_like(v, memory_format=torch.contiguous_format) for k, v in values.items()
    }
    reader.read_into(list(targets.items()))
    for key, value in values.items():
        assert_identical(targets[key], value.contiguous(), key)


@pytest.mark.parametrize("fallocate", ["works", "refused", "absent"])
@pytest.mark.parametrize("writev", [True, False])
def test_small_large_and_string_tensors_interleaved_keep_their_bytes(
    tmp_path, monkeypatch, fallocate, writev
):
    """Small tensors are written together (gathered, then one writev), large ones after
    the file's blocks are reserved; whatever the order, each tensor's bytes are its own."""

    def refuse(*args):
        raise OSError(95, "Operation not supported")

    if fallocate == "refused":
        monkeypatch.setattr(_writer, "_FALLOCATE", refuse)
    elif fallocate == "absent":
        monkeypatch.setattr(_writer, "_FALLOCATE", None)
    monkeypatch.setattr(_writer, "_WRITEV", writev)
    monkeypatch.setattr(_writer, "_GATHER", 5000)  # a flush every few small tensors
    monkeypatch.setattr(_writer, "_IOV_MAX", 3)
    gen = torch.Generator().manual_seed(0)
    values = {}
    for i in range(40):
        size = 300_000 if i % 7 == 3 else 1 + i * 37  # 1.2 MB every seventh
        values[f"t{i}"] = torch.randn(size, generator=gen)[::1]
        if i % 11 == 5:
            values[f"t{i}"] = values[f"t{i}"].to(torch.float64)  # a copy made in the writer
    writer = _writer.BundleWriter(str(tmp_path / "model.ckpt"))
    for i, (key, value) in enumerate(values.items()):
        writer.add(key, value)
        if i == 20:
            writer.add("words", [b"between", b"tensors"])
    writer.add("last", torch.arange(3))
    writer.finish()
    reader = ts.train.load_checkpoint(tmp_path / "model.ckpt")
    reader.verify_all()
    for key, value in values.items():
        assert_identical(reader.get_tensor(key), value, key)
    assert reader.get_tensor("words") == [b"between", b"tensors"]
    assert torch.equal(reader.get_tensor("last"), torch.arange(3))


def test_writer_refuses_bad_keys_and_values(tmp_path):
    writer = _writer.BundleWriter(str(tmp_path / "m"))
    writer.add("a", torch.ones(1))
    with pytest.raises(ValueError, match="'a' is empty or given twice"):
        writer.add("a", torch.ones(1))
    with pytest.raises(ValueError, match="empty or given twice"):
        writer.add("", torch.ones(1))
    with pytest.raises(ValueError, match="meta tensor has no values"):
        writer.add("m", torch.ones(1, device="meta"))
    with pytest.raises(ValueError, match="rectangular"):
        writer.add("s", [["a"], ["b", "c"]])
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_checksums_are_tensorflows():
    assert _crc.value(b"123456789") == 0xE3069283
    assert _crc.unmask(_crc.mask(0x12345678)) == 0x12345678
    assert _crc.mask(0) == 0xA282EAD8


# -- Saver --------------------------------------------------------------------------------------


def _model():
    with ts.variable_scope("mlp"):
        w = ts.get_variable("w", [3, 4])
        b = ts.get_variable("b", [4], initializer=ts.zeros_initializer())
    return w, b


def test_saver_keeps_max_to_keep_and_writes_the_state_file(tmp_path):
    w, _ = _model()
    step = ts.train.get_or_create_global_step()
    saver = ts.train.Saver(max_to_keep=2)
    paths = []
    for _ in range(3):
        with torch.no_grad():
            step += 1
            w += 1
        paths.append(saver.save(tmp_path / "model.ckpt", global_step=step))
    assert paths[-1] == str(tmp_path / "model.ckpt-3")
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint",
        "model.ckpt-2.data-00000-of-00001",
        "model.ckpt-2.index",
        "model.ckpt-3.data-00000-of-00001",
        "model.ckpt-3.index",
    ]
    state = (tmp_path / "checkpoint").read_text()
    assert state == (
        'model_checkpoint_path: "model.ckpt-3"\n'
        'all_model_checkpoint_paths: "model.ckpt-2"\n'
        'all_model_checkpoint_paths: "model.ckpt-3"\n'
    )
    assert saver.last_checkpoints == [str(tmp_path / "model.ckpt-2"), paths[-1]]
    assert ts.train.get_checkpoint_state(tmp_path)["model_checkpoint_path"] == [paths[-1]]
    saved = w.detach().clone()
    with torch.no_grad():
        w.zero_()
        step.zero_()
    saver.restore(tmp_path)  # the folder: its latest
    assert torch.equal(w, saved) and int(step) == 3


def test_saver_max_to_keep_none_keeps_every_file(tmp_path):
    _model()
    saver = ts.train.Saver(max_to_keep=None)
    for i in range(3):
        saver.save(tmp_path / "m", global_step=i)
    assert len([p for p in os.listdir(tmp_path) if p.endswith(".index")]) == 3
    assert "m-0" not in (tmp_path / "checkpoint").read_text()


def test_saver_var_list_forms(tmp_path):
    w, _ = _model()
    plain = torch.nn.Linear(2, 3)
    net = ts.ScopedModule(lambda x: x * ts.get_variable("scale", [1]), name="net")
    net(torch.ones(1))
    for var_list, keys in [
        (None, ["mlp/b", "mlp/w"]),
        (ts.get_default_store(), ["mlp/b", "mlp/w"]),
        ([w], ["mlp/w"]),
        ({"renamed/w": w}, ["renamed/w"]),
        (plain, ["bias", "weight"]),
        (net, ["net/scale"]),
    ]:
        path = ts.train.Saver(var_list).save(tmp_path / "m")
        assert ts.train.load_checkpoint(path).keys() == keys
    with pytest.raises(TypeError, match="var_list dict must map names to tensors"):
        ts.train.Saver({"a": 1})
    with pytest.raises(TypeError, match="var_list holds a str"):
        ts.train.Saver(["a"])


def test_saver_restore_refuses_missing_and_mismatched_variables(tmp_path):
    w, b = _model()
    path = ts.train.Saver([w]).save(tmp_path / "m")
    before = b.detach().clone()
    with pytest.raises(ValueError, match=r"lacks 1 of the 2 variables to restore: \['mlp/b'\]"):
        ts.train.Saver([w, b]).restore(path)
    assert torch.equal(b, before)
    with pytest.raises(
        ValueError,
        match=r"'mlp/w' is torch.float32 \[2\], but checkpoint .* holds it as .* \[3, 4\]",
    ):
        ts.train.Saver({"mlp/w": torch.zeros(2)}).restore(path)


def test_saver_restore_is_all_or_nothing_on_corruption(tmp_path):
    _, b = _model()
    path = ts.train.Saver().save(tmp_path / "m")
    reader = ts.train.load_checkpoint(path)
    entry = reader._bundle.entries["mlp/w"]  # b sorts first, so it would be written first
    _flip(tmp_path / "m.data-00000-of-00001", entry.offset)
    with torch.no_grad():
        b.fill_(7.0)
    with pytest.raises(ts.train.CheckpointError, match="'mlp/w'"):
        ts.train.Saver().restore(path)
    assert (b == 7.0).all()


@pytest.mark.parametrize("where", ["write", "writev"])
def test_an_exception_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, where):
    w, _ = _model()
    saver = ts.train.Saver()
    path = saver.save(tmp_path / "m")
    state = (tmp_path / "checkpoint").read_text()
    saved = w.detach().clone()
    with torch.no_grad():
        w += 1
    calls = []

    def fail(*args):
        calls.append(args)
        raise OSError("disk full (injected)")

    if where == "write":  # every byte through the file's write
        monkeypatch.setattr(_writer, "_WRITEV", False)
        monkeypatch.setattr(_writer.BundleWriter, "_write_all", fail)
    else:  # the small tensors' gathered write
        monkeypatch.setattr(_writer.os, "writev", fail)
    with pytest.raises(OSError, match="injected"):
        saver.save(tmp_path / "m")
    monkeypatch.undo()
    assert calls
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m.data-00000-of-00001", "m.index"]
    assert (tmp_path / "checkpoint").read_text() == state
    assert torch.equal(ts.train.load_checkpoint(path).get_tensor("mlp/w"), saved)
    # and one that fails while writing the index
    monkeypatch.setattr("torchscope.train._writer.write_table", lambda f, items: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        saver.save(tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m.data-00000-of-00001", "m.index"]
    assert torch.equal(ts.train.load_checkpoint(path).get_tensor("mlp/w"), saved)


def test_saver_restore_before_a_modules_first_call_says_what_to_do():
    net = ts.ScopedModule(lambda x: x * ts.get_variable("s", [1]))
    with pytest.raises(
        RuntimeError, match=r"init_from_checkpoint\(path, \{'/': '/'\}, store=module\)"
    ):
        ts.train.Saver(net).restore(CHECKPOINTS / "adam")


def test_saver_restores_what_tensorflow_wrote():
    with ts.variable_scope("mlp"):
        with ts.variable_scope("hidden"):
            kernel = ts.get_variable("kernel", [5, 6])
            ts.get_variable("bias", [6])
        with ts.variable_scope("out"):
            ts.get_variable("kernel", [6, 2])
            ts.get_variable("bias", [2])
    step = ts.train.get_or_create_global_step()
    ts.train.Saver().restore(CHECKPOINTS / "momentum")
    want = expected("momentum")
    assert_identical(kernel.detach(), want["mlp/hidden/kernel"])
    assert int(step) == int(want["global_step"])


def test_global_step():
    step = ts.train.get_or_create_global_step()
    assert ts.name_of(step) == "global_step" and step.dtype == torch.int64
    assert not step.requires_grad and step.shape == ()
    assert ts.get_collection(ts.GraphKeys.GLOBAL_STEP) == [step]
    assert ts.train.get_global_step() is step
    store = ts.VariableStore()
    other = ts.train.get_or_create_global_step(store)
    assert other is not step and store["global_step"] is other
    with pytest.raises(TypeError, match="global_step must be an int or a scalar tensor"):
        ts.train.Saver().save("/tmp/never", global_step=1.5)


# -- init_from_checkpoint --------------------------------------------------------------------


def _mlp(scope: str):
    with ts.variable_scope(scope):
        with ts.variable_scope("hidden"):
            ts.get_variable("kernel", [5, 6])
            ts.get_variable("bias", [6])
        with ts.variable_scope("out"):
            ts.get_variable("kernel", [6, 2])
            ts.get_variable("bias", [2])


ADAM = CHECKPOINTS / "adam"


@pytest.mark.parametrize(
    ("scope", "assignment_map"),
    [
        ("mlp", {"mlp/": "mlp/"}),
        ("net", {"mlp/": "net/"}),
        ("net/inner", {"mlp/": "net/inner/"}),
        ("", {"mlp/": "/"}),
        ("new/mlp", {"/": "new/"}),
    ],
    ids=["same", "renamed", "deeper", "to-root", "from-root"],
)
def test_init_from_checkpoint_scope_forms(scope, assignment_map):
    if scope:
        _mlp(scope)
    else:
        for part, shape in [("hidden", [5, 6]), ("out", [6, 2])]:
            with ts.variable_scope(part):
                ts.get_variable("kernel", shape)
                ts.get_variable("bias", shape[-1:])
    ts.train.init_from_checkpoint(ADAM, assignment_map)
    want = expected("adam")
    prefix = f"{scope}/" if scope else ""
    for part in ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]:
        assert_identical(ts.get_default_store()[prefix + part].detach(), want["mlp/" + part], part)


def test_init_from_checkpoint_single_variables_by_name_and_object():
    with ts.variable_scope("a"):
        k = ts.get_variable("k", [5, 6])
        b = ts.get_variable("b", [2])
    ts.train.init_from_checkpoint(ADAM, [("mlp/hidden/kernel", "a/k"), ("mlp/out/bias", b)])
    want = expected("adam")
    assert_identical(k.detach(), want["mlp/hidden/kernel"])
    assert_identical(b.detach(), want["mlp/out/bias"])


def test_init_from_checkpoint_partitioned_and_tf2_keys_into_one_variable():
    table = ts.get_variable("table", [10, 4])
    kernel = ts.get_variable("kernel", [3, 4])
    ts.train.init_from_checkpoint(CHECKPOINTS / "partitioned", {"embed/table": "table"})
    key = "model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE"
    ts.train.init_from_checkpoint(CHECKPOINTS / "tf2_object/model.ckpt", {key: kernel})
    assert_identical(table.detach(), expected("partitioned")["embed/table"])
    assert_identical(kernel.detach(), expected("tf2_object")[key])


@pytest.mark.parametrize(
    ("assignment_map", "message"),
    [
        (
            {"mlp/hidden/nope": "mlp/hidden/kernel"},
            r"tensor 'mlp/hidden/nope' \(for variable 'mlp/hidden/kernel'\) is not in checkpoint",
        ),
        ({"mlp/hidden/kernel": "nope/kernel"}, r"the store has no variable 'nope/kernel'"),
        (
            {"mlp/hidden/kernel": "mlp/out/kernel"},
            r"'mlp/out/kernel' is torch.float32 \[6, 2\], but checkpoint tensor "
            r"'mlp/hidden/kernel' is torch.float32 \[5, 6\]",
        ),
        (
            {"other/": "mlp/"},
            r"checkpoint tensor 'other/hidden/bias' \(for variable 'mlp/hidden/bias', by "
            r"assignment 'other/': 'mlp/'\) is not in checkpoint",
        ),
        (
            {"mlp/": "nothing/"},
            r"assignment_map\['mlp/'\] = 'nothing/' matches no variable of the store",
        ),
        ({"mlp/hidden/kernel": "mlp/"}, "maps a single name to a scope"),
        ({"mlp/hidden/kernel": ["mlp/hidden/kernel"]}, "never partitioned"),
        (
            {"global_step": "mlp/hidden/bias"},
            r"torch.float32 \[6\], but checkpoint tensor 'global_step' is torch.int64 \[\]",
        ),
    ],
    ids=[
        "missing-in-ckpt",
        "missing-variable",
        "shape",
        "scope-missing",
        "scope-empty",
        "name-to-scope",
        "list",
        "dtype",
    ],
)
def test_init_from_checkpoint_errors_name_both_sides_and_write_nothing(assignment_map, message):
    _mlp("mlp")
    store = ts.get_default_store()
    before = {k: v.detach().clone() for k, v in store.items()}
    full = {"mlp/out/": "mlp/out/", **assignment_map}  # a valid item too: nothing of it is written
    with pytest.raises((ValueError, TypeError), match=message):
        ts.train.init_from_checkpoint(ADAM, full)
    for key, value in before.items():
        assert torch.equal(store[key], value), key


def test_init_from_checkpoint_refuses_a_variable_filled_twice():
    _mlp("mlp")
    with pytest.raises(ValueError, match="fills variable 'mlp/out/bias' twice"):
        ts.train.init_from_checkpoint(ADAM, [("mlp/", "mlp/"), ("mlp/hidden/bias", "mlp/out/bias")])


def _mlp_fn(x):
    with ts.variable_scope("mlp"):
        with ts.variable_scope("hidden"):
            w = ts.get_variable("kernel", [5, 6])
            b = ts.get_variable("bias", [6])
        h = torch.relu(x @ w + b)
        with ts.variable_scope("out"):
            w = ts.get_variable("kernel", [6, 2])
            b = ts.get_variable("bias", [2], initializer=ts.zeros_initializer())
    return h @ w + b


def test_init_from_checkpoint_into_a_built_module():
    net = ts.ScopedModule(_mlp_fn)
    net(torch.ones(1, 5))
    ts.train.init_from_checkpoint(ADAM, {"mlp/": "mlp/"}, store=net)
    assert_identical(net.store["mlp/out/kernel"].detach(), expected("adam")["mlp/out/kernel"])


def test_init_from_checkpoint_before_the_first_call(recwarn):
    net = ts.ScopedModule(_mlp_fn)
    ts.train.init_from_checkpoint(ADAM, {"/": "/"}, store=net)
    # the variables exist now (an optimizer can be built), without the optimizer's slots
    assert sorted(net.store) == [
        "beta1_power", "beta2_power", "global_step",
        "mlp/hidden/bias", "mlp/hidden/kernel", "mlp/out/bias", "mlp/out/kernel",
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="did not ask for"):
        out = net(torch.ones(1, 5))
    want = expected("adam")
    assert sorted(net.store) == [
        "mlp/hidden/bias",
        "mlp/hidden/kernel",
        "mlp/out/bias",
        "mlp/out/kernel",
    ]
    x = torch.ones(1, 5)
    h = torch.relu(x @ want["mlp/hidden/kernel"] + want["mlp/hidden/bias"])
    torch.testing.assert_close(
        out, h @ want["mlp/out/kernel"] + want["mlp/out/bias"], rtol=0, atol=0
    )
    assert net.store["mlp/out/bias"].requires_grad


def test_init_from_checkpoint_before_the_first_call_with_scopes():
    net = ts.ScopedModule(_mlp_fn)
    ts.train.init_from_checkpoint(
        ADAM, {"mlp/hidden/": "mlp/hidden/", "mlp/out/kernel": "mlp/out/kernel"}, store=net
    )
    assert sorted(net.store) == ["mlp/hidden/bias", "mlp/hidden/kernel", "mlp/out/kernel"]
    with pytest.warns(UserWarning, match=r"lacked \['mlp/out/bias'\]; they were initialized fresh"):
        net(torch.ones(1, 5))
    assert not net.store["mlp/out/bias"].any()  # its zeros initializer
    assert_identical(net.store["mlp/hidden/bias"].detach(), expected("adam")["mlp/hidden/bias"])


# -- the command line -------------------------------------------------------------------------


def test_command_line_lists_a_checkpoint():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchscope.train",
            str(CHECKPOINTS / "dtypes"),
            "--tensor",
            "dtypes/int8",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].endswith("dtypes/model.ckpt: 17 tensors")
    assert any(line.split()[:3] == ["dtypes/bfloat16", "bfloat16", "[4]"] for line in lines)
    assert any(line.split()[:2] == ["dtypes/strings", "string"] for line in lines)
    assert ["total", "281"] in [line.split() for line in lines]
    assert "dtypes/int8:" in lines and "tensor(" in lines[-1]


def test_command_line_reports_errors(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "torchscope.train", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "error: checkpoint" in done.stderr


def test_packed_crc_fields_match_the_index():
    """Our writer's index entries are what TensorFlow writes for the same tensor."""
    reader = ts.train.load_checkpoint(ADAM)
    raw = (ADAM / "model.ckpt.index").read_bytes()
    entries = dict(read_table(raw, "adam"))
    entry = reader._bundle.entries["beta1_power"]
    assert entries[b"beta1_power"] == entry.serialize()
    assert struct.unpack("<I", entries[b"beta1_power"][-4:])[0] == entry.crc32c


def test_snappy_compressed_blocks_are_read():
    """TensorFlow writes index blocks uncompressed but can read Snappy-compressed ones."""
    from torchscope.train import _sstable

    # "abcabcabcabcX": the literal "abc", a copy of 9 bytes from 3 back, the literal "X"
    stream = bytes([13, (3 - 1) << 2]) + b"abc" + bytes([((9 - 4) << 2) | 1, 3, 0]) + b"X"
    assert _sstable._snappy_decompress(stream, "t") == b"abcabcabcabcX"
    long_literal = bytes([70, 60 << 2, 69]) + bytes(range(70))  # a literal with a length byte
    assert _sstable._snappy_decompress(long_literal, "t") == bytes(range(70))
    with pytest.raises(_sstable.TableError, match="damaged compressed block"):
        _sstable._snappy_decompress(bytes([5, 1 | (1 << 2), 9]), "t")  # copy before any data
    # a whole table whose data block is compressed
    block = _sstable._BlockBuilder()
    block.add(b"", b"header")
    block.add(b"key", b"value")
    raw = block.finish()
    compressed = bytes([len(raw), (len(raw) - 1) << 2]) + raw  # one literal (len(raw) < 60)
    trailer = bytes([1])
    crc = _crc.mask(_crc.extend(_crc.value(compressed), trailer))
    data = bytearray(compressed + trailer + struct.pack("<I", crc))
    index = _sstable._BlockBuilder()
    index.add(b"key", _sstable._handle((0, len(compressed))))
    meta = _sstable._BlockBuilder().finish()
    meta_at = len(data)
    data += meta + bytes([0]) + struct.pack("<I", _crc.mask(_crc.extend(_crc.value(meta), b"\0")))
    index_block = index.finish()
    index_at = len(data)
    data += index_block + b"\0"
    data += struct.pack("<I", _crc.mask(_crc.extend(_crc.value(index_block), b"\0")))
    footer = _sstable._handle((meta_at, len(meta))) + _sstable._handle((index_at, len(index_block)))
    data += footer + bytes(40 - len(footer)) + struct.pack("<Q", _sstable.MAGIC)
    assert read_table(bytes(data), "t") == [(b"", b"header"), (b"key", b"value")]


@pytest.mark.parametrize("where", ["big-first-chunk", "big-last-chunk", "small-in-a-batch"])
def test_checksums_are_checked_in_every_chunk_and_batch(tmp_path, where):
    """Large tensors are checked in 4 MiB chunks, runs of small ones in one read each."""
    big = torch.randn(3_000_000)  # 12 MB: three chunks
    small = {f"s/{i:03d}": torch.full((100,), float(i)) for i in range(50)}
    writer = _writer.BundleWriter(str(tmp_path / "m"))
    writer.add("big", big)
    for key, value in small.items():
        writer.add(key, value)
    writer.finish()
    entries = ts.train.load_checkpoint(tmp_path / "m")._bundle.entries
    offset = {
        "big-first-chunk": entries["big"].offset + 10,
        "big-last-chunk": entries["big"].offset + entries["big"].size - 1,
        "small-in-a-batch": entries["s/025"].offset + 3,
    }[where]
    _flip(tmp_path / "m.data-00000-of-00001", offset)
    victim = "'big'" if where.startswith("big") else "'s/025'"
    targets = [("big", torch.zeros(3_000_000))] + [(k, torch.zeros(100)) for k in small]
    with pytest.raises(ts.train.CheckpointError, match=f"checksum mismatch for tensor {victim}"):
        ts.train.load_checkpoint(tmp_path / "m").read_into(targets)
    assert all(not t.any() for _, t in targets)
    with pytest.raises(ts.train.CheckpointError, match=victim):
        ts.train.load_checkpoint(tmp_path / "m").verify_all()


# -- Saver with an optimizer ------------------------------------------------------------------

OPTIMIZERS = {
    "adam": lambda p: ts.train.AdamOptimizer(p, 0.01),
    "momentum": lambda p: ts.train.MomentumOptimizer(p, 0.05, momentum=0.9),
    "rmsprop": lambda p: ts.train.RMSPropOptimizer(p, 0.01),
}


def _fixture_model():
    _mlp("mlp")
    step = ts.train.get_or_create_global_step()
    return ts.get_default_store(), step


def _train(store, opt, x, y):
    opt.zero_grad()
    _loss(store, x, y).backward()
    opt.step()


def _loss(store, x, y):
    h = torch.relu(x @ store["mlp/hidden/kernel"] + store["mlp/hidden/bias"])
    return torch.mean((h @ store["mlp/out/kernel"] + store["mlp/out/bias"] - y) ** 2)


@pytest.mark.parametrize("folder", sorted(OPTIMIZERS))
def test_a_tensorflow_training_run_resumes_with_the_saver(folder):
    from tf_fixtures import train_data

    store, step = _fixture_model()
    opt = OPTIMIZERS[folder](store.parameters())  # the int64 global_step is left alone
    ts.train.Saver(store, optimizer=opt).restore(CHECKPOINTS / folder)
    data = train_data(folder)
    assert int(step) == 3
    loss = _loss(store, data["x"], data["y"])
    torch.testing.assert_close(loss.detach(), data["loss"], rtol=1e-6, atol=0)
    loss.backward()
    opt.step()
    for name in ["mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"]:
        assert (store[name].detach() - data[f"next/{name}"]).abs().max() <= 1e-6, name


@pytest.mark.parametrize(
    "make",
    [*OPTIMIZERS.values(), lambda p: torch.optim.Adam(p, 0.01)],
    ids=[*OPTIMIZERS, "torch-adam"],
)
def test_saving_and_restoring_optimizer_state_continues_the_same_run(tmp_path, make):
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 2)
    runs = []
    for resumed in (False, True):
        with ts.VariableStore().as_default():
            torch.manual_seed(1)
            store, _ = _fixture_model()
            opt = make([p for p in store.parameters() if p.requires_grad])
            saver = ts.train.Saver(store, optimizer=opt)

            for _ in range(3):
                _train(store, opt, x, y)
            if resumed:
                path = saver.save(tmp_path / "m")
                for p in store.parameters():  # wreck the state, then restore it
                    p.data.fill_(0.5)
                opt.state.clear()
                saver.restore(path)
            for _ in range(2):
                _train(store, opt, x, y)
            runs.append({k: v.detach().clone() for k, v in store.items()})
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_a_restore_with_missing_slots_changes_nothing(tmp_path):
    store, _ = _fixture_model()
    opt = ts.train.AdamOptimizer([p for p in store.parameters() if p.requires_grad], 0.01)
    path = ts.train.Saver(store).save(tmp_path / "m")  # no optimizer state in it
    with torch.no_grad():
        for p in store.parameters():
            p.fill_(7)
    with pytest.raises(ValueError, match=r"checkpoint key 'beta1_power' .* is missing"):
        ts.train.Saver(store, optimizer=opt).restore(path)
    assert all((p == 7).all() for p in store.parameters())
    assert not opt.state
