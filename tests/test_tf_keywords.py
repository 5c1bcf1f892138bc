"""``get_variable``'s TensorFlow keywords (``collections``, ``custom_getter``,
``partitioner``, ``synchronization``, ...), checked against TensorFlow 2.21's
``tf.compat.v1.get_variable`` in graph mode (its answers are written beside each test)."""

from __future__ import annotations

import pytest
import torch
from tf_fixtures import CHECKPOINTS, expected

import torchscope as ts

K = ts.GraphKeys


def _names(items):
    return [ts.name_of(v) for v in items]


def test_collections_are_exactly_those_given_plus_trainable(ts_store):
    # TensorFlow: variables ['c'], trainable ['a', 'c', 'd'], local ['a'], mine ['b', 'c'],
    # other [] (collections are not changed on reuse)
    ts.get_variable("a", [1], collections=[K.LOCAL_VARIABLES])
    ts.get_variable("b", [1], collections=["mine"], trainable=False)
    ts.get_variable("c", [1], collections=["mine", K.GLOBAL_VARIABLES])
    ts.get_variable("d", [1], collections=[])
    ts.get_variable("e", [1])
    with ts.variable_scope(ts.get_variable_scope(), reuse=True):
        ts.get_variable("a", [1], collections=["other"])
    assert _names(ts.global_variables()) == ["c", "e"]
    assert _names(ts.trainable_variables()) == ["a", "c", "d", "e"]
    assert _names(ts.get_collection(K.LOCAL_VARIABLES)) == ["a"]
    assert _names(ts.get_collection("mine")) == ["b", "c"]
    assert ts.get_collection("other") == []
    assert list(ts_store) == ["a", "b", "c", "d", "e"]  # still stored and checkpointed


def test_a_failed_creation_leaves_no_collection_item(ts_store):
    with pytest.raises(ValueError, match="exists"), ts_store.transaction():
        ts.get_variable("a", [1], collections=["mine"])
        ts.get_variable("a", [1])
    assert ts.get_collection("mine") == [] and list(ts_store) == []
    assert _names(ts.global_variables()) == []
    ts.get_variable("a", [1])
    assert _names(ts.global_variables()) == ["a"]


def test_bad_collections_are_refused(ts_store):
    with pytest.raises(TypeError, match="collections of variable 'v' must be a list"):
        ts.get_variable("v", [1], collections="mine")
    with pytest.raises(TypeError, match="must hold str keys, got int 3"):
        ts.get_variable("v", [1], collections=[3])
    assert list(ts_store) == []


def test_a_call_custom_getter_replaces_the_scope_getter(ts_store):
    # TensorFlow: only g2 runs (VariableScope.get_variable: the call's getter, else the scope's)
    ran = []

    def g1(getter, name, *args, **kwargs):
        ran.append(("g1", name))
        return getter(name, *args, **kwargs)

    def g2(getter, name, *args, **kwargs):
        ran.append(("g2", name))
        return getter(name, *args, **kwargs)

    with ts.variable_scope("s", custom_getter=g1):
        x = ts.get_variable("x", [1], custom_getter=g2)
        ts.get_variable("y", [1])
    with ts.variable_scope("s", reuse=True):  # the reuse path runs it too
        assert ts.get_variable("x", [1], custom_getter=g2) is x
    assert ran == [("g2", "s/x"), ("g1", "s/y"), ("g2", "s/x")]
    with pytest.raises(ValueError, match="getter"):
        ts.get_variable("z", [1], custom_getter=3)


def test_a_getter_sees_the_tensorflow_keywords(ts_store):
    seen = {}

    def getter(getter, name, *args, **kwargs):
        seen.update(kwargs)
        return getter(name, *args, **kwargs)

    p = ts.fixed_size_partitioner(3)
    ts.get_variable("v", [6], collections=["mine"], partitioner=p, custom_getter=getter)
    assert seen["collections"] == ["mine"] and seen["partitioner"] is p
    assert _names(ts.get_collection("mine")) == ["v"]


@pytest.mark.parametrize(
    ("partitioner", "shape", "partitions"),
    [  # TensorFlow 2.21's answers for a float32 variable
        (ts.fixed_size_partitioner(3), (6, 2), [3, 1]),
        (ts.fixed_size_partitioner(2, axis=1), (3, 8), [1, 2]),
        (ts.fixed_size_partitioner(9), (6, 2), [6, 1]),
        (ts.variable_axis_size_partitioner(16), (6, 2), [3, 1]),
        (ts.variable_axis_size_partitioner(16, max_shards=2), (6, 2), [2, 1]),
        (ts.min_max_variable_partitioner(4, min_slice_size=16), (6, 2), [3, 1]),
        (ts.min_max_variable_partitioner(2, min_slice_size=16), (6, 2), [2, 1]),
    ],
)
def test_partitioners_answer_as_tensorflow_and_the_variable_is_whole(
    ts_store, partitioner, shape, partitions
):
    assert partitioner(shape, torch.float32) == partitions
    v = ts.get_variable("v", shape, partitioner=partitioner)
    assert v.shape == shape and list(ts_store) == ["v"]


def test_partitioner_errors(ts_store):
    with pytest.raises(ValueError, match="num_shards must be a positive int, got int 0"):
        ts.fixed_size_partitioner(0)
    with pytest.raises(ValueError, match="max_shard_bytes must be a positive int"):
        ts.variable_axis_size_partitioner(0)
    with pytest.raises(TypeError, match="partitioner of variable 'v' must be callable"):
        ts.get_variable("v", [2], partitioner=3)
    with pytest.raises(ValueError, match="'v' has a partitioner but no shape"):
        ts.get_variable("v", initializer=[1.0, 2.0], partitioner=ts.fixed_size_partitioner(2))
    with pytest.raises(ValueError, match=r"returned \[2\] for shape \[2, 2\]"):
        ts.get_variable("v", [2, 2], partitioner=lambda shape, dtype: [2])
    with pytest.raises(ValueError, match="Cannot partition variable along axis 2"):
        ts.get_variable("v", [2, 2], partitioner=ts.min_max_variable_partitioner(axis=2))
    assert list(ts_store) == []


def test_a_ported_partitioned_variable_restores_from_tensorflow(ts_store):
    # made by TensorFlow with get_variable("table", [10, 4], partitioner=fixed_size_partitioner(3))
    with ts.variable_scope("embed"):
        table = ts.get_variable("table", [10, 4], partitioner=ts.fixed_size_partitioner(3))
        wide = ts.get_variable("wide", [3, 8], partitioner=ts.fixed_size_partitioner(2, axis=1))
    plain = ts.get_variable("plain", [2])
    want = expected("partitioned")
    pairs = ((table, "embed/table"), (wide, "embed/wide"), (plain, "plain"))
    ts.train.Saver().restore(CHECKPOINTS / "partitioned" / "model.ckpt")
    for v, key in pairs:
        torch.testing.assert_close(v.detach(), torch.as_tensor(want[key]), rtol=0, atol=0)
    with torch.no_grad():
        table.zero_()
    ts.train.init_from_checkpoint(CHECKPOINTS / "partitioned", {"embed/": "embed/"})
    torch.testing.assert_close(table.detach(), torch.as_tensor(want["embed/table"]), rtol=0, atol=0)
    reader = ts.train.load_checkpoint(CHECKPOINTS / "partitioned")
    assert reader.get_variable_to_shape_map()["embed/wide"] == list(wide.shape)


def test_synchronization_and_aggregation(ts_store):
    # TensorFlow: ON_READ with trainable unset makes a non-trainable variable
    z = ts.get_variable(
        "z", [1], synchronization=ts.VariableSynchronization.ON_READ, trainable=None
    )
    assert not z.requires_grad and _names(ts.trainable_variables()) == []
    y = ts.get_variable(
        "y",
        [1],
        synchronization=ts.VariableSynchronization.ON_WRITE,
        aggregation=ts.VariableAggregation.MEAN,
    )
    assert y.requires_grad
    # TensorFlow: "Invalid variable synchronization mode: x for variable: q"
    with pytest.raises(ValueError, match=r"Invalid variable synchronization mode: 'x' .*'q'"):
        ts.get_variable("q", [1], synchronization="x")
    with pytest.raises(ValueError, match=r"Invalid variable aggregation mode: 1 .*'q'"):
        ts.get_variable("q", [1], aggregation=1)


def test_no_effect_keywords_are_accepted_and_checked(ts_store):
    v = ts.get_variable("v", [2], caching_device="/cpu:0", use_resource=True, validate_shape=False)
    assert v.shape == (2,)
    with pytest.raises(TypeError, match="use_resource of variable 'w' must be a bool"):
        ts.get_variable("w", [1], use_resource="yes")
    with pytest.raises(TypeError, match="validate_shape of variable 'w' must be a bool"):
        ts.get_variable("w", [1], validate_shape=1)
    with pytest.raises(TypeError, match="caching_device of variable 'w' must be a device"):
        ts.get_variable("w", [1], caching_device=3)
    assert list(ts_store) == ["v"]


def test_reuse_ignores_the_create_keywords(ts_store):
    v = ts.get_variable("v", [1])
    with ts.variable_scope(ts.get_variable_scope(), reuse=True):
        assert ts.get_variable("v", [1], collections=3, partitioner=4) is v


def test_scope_method_and_variable_scope_take_them(ts_store):
    with ts.variable_scope(
        "s",
        partitioner=ts.fixed_size_partitioner(2),
        use_resource=True,
        caching_device="/cpu:0",
    ) as scope:
        v = scope.get_variable("v", [4], collections=["mine"])
    assert _names(ts.get_collection("mine")) == ["s/v"] and v.shape == (4,)
    with pytest.raises(TypeError, match="variable_scope's partitioner must be callable"):
        ts.variable_scope("s", partitioner=3)
    with pytest.raises(TypeError, match="variable_scope's use_resource must be a bool"):
        ts.variable_scope("s", use_resource=1)
