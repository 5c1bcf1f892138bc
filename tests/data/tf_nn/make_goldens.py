"""Writes the ``tf.nn`` goldens in this folder, for tests that run without TensorFlow.

Run with TensorFlow 2.21 (CPU) in a scratch venv (TensorFlow is not a dependency of the project):

    /tmp/tfvenv/bin/python tests/data/tf_nn/make_goldens.py [GROUP ...]

Eager TensorFlow calls the ``tf.compat.v1.nn`` functions (TensorFlow's default CPU kernels, oneDNN
included, as a user gets them). Each group writes ``<group>.npz`` (compressed; every array
little-endian) and its entry in ``cases.json``: a list of cases, each a dict of the arguments
(TensorFlow's spelling) and an ``id``; the case's arrays are ``<id>/<name>`` in the ``.npz``:

- the inputs, as passed to TensorFlow (``x``, ``filter``, ``labels``, ...);
- ``y`` (and the other outputs: ``mean``, ``variance``, ...);
- ``grad/<input>``: the gradient of ``sum(y * gy)`` with respect to each differentiable input,
  where the upstream gradient ``gy`` is not stored but computed from ``y``'s shape by ``upstream``
  below, in float64 then cast: ``cos(0.7 * i + 0.3)`` for the flat index ``i`` (the tests compute
  the same numbers with torch).

Data formats: a case with ``"data_format": "NCHW"`` was run by TensorFlow in NCHW (its CPU kernels
take NCHW for these ops through oneDNN; where one does not, the case says ``"nchw_by": "transpose"``
and its arrays are the NHWC case's, transposed). Inputs are drawn from ``numpy.random.RandomState``
with the seed in the case, so re-running this script writes the same files.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {}  # group -> {key: array}
CASES = {}  # group -> [case]


def upstream(shape, dtype):
    n = int(np.prod(shape))
    return np.cos(0.7 * np.arange(n, dtype=np.float64) + 0.3).reshape(shape).astype(dtype)


def upstream_nchw(shape, dtype):
    """For an NHWC ``y`` that stands for an NCHW one: the upstream gradient of the NCHW shape,
    in NHWC."""
    n, h, w, c = shape
    return np.transpose(upstream((n, c, h, w), dtype), (0, 2, 3, 1))


def run(fn, inputs, differentiable, outputs=("y",), gy_of=upstream):
    """Calls ``fn(**inputs)`` under a tape; returns {output name: array} and the gradients of
    sum(first output * gy_of(its shape)) with respect to the ``differentiable`` inputs."""
    tensors = {k: tf.constant(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        for k in differentiable:
            tape.watch(tensors[k])
        result = fn(**tensors)
    result = result if isinstance(result, tuple) else (result,)
    arrays = {name: r.numpy() for name, r in zip(outputs, result)}
    y = result[0]
    if differentiable:
        gy = tf.constant(gy_of(tuple(y.shape), y.dtype.as_numpy_dtype))
        grads = tape.gradient(y, [tensors[k] for k in differentiable], output_gradients=gy)
        for k, g in zip(differentiable, grads):
            arrays[f"grad/{k}"] = g.numpy()
    return arrays


def add(group, case, arrays):
    """Stores a case: its arguments in cases.json, its arrays under ``<id>/``."""
    case = dict(case, id=f"{group}{len(CASES.setdefault(group, []))}")
    CASES[group].append(case)
    for name, a in arrays.items():
        OUT.setdefault(group, {})[f"{case['id']}/{name}"] = np.ascontiguousarray(a)
    return case


def to_nchw(a):
    return np.transpose(a, (0, 3, 1, 2))


def rand(seed, *shape, dtype=np.float32):
    return np.random.RandomState(seed).randn(*shape).astype(dtype)


def nchw_too(group, case, inputs, images, fn, differentiable, outputs=("y",)):
    """The NCHW twin of an NHWC case: TensorFlow in NCHW where its CPU kernel runs, else the NHWC
    results transposed. ``images``: the inputs and outputs that are 4-D images."""
    nchw = dict(inputs)
    for k in images:
        if k in nchw:
            nchw[k] = to_nchw(nchw[k])
    try:
        arrays = run(fn, dict(nchw, data_format="NCHW"), differentiable, outputs)
        by = "tensorflow"
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        arrays = run(fn, dict(inputs, data_format="NHWC"), differentiable, outputs, upstream_nchw)
        for k in list(arrays):
            if k.split("/")[-1] in images:
                arrays[k] = to_nchw(arrays[k])
        by = "transpose"
    stored = {k: v for k, v in nchw.items() if isinstance(v, np.ndarray)}
    add(group, dict(case, data_format="NCHW", nchw_by=by), dict(stored, **arrays))


# ------------------------------------------------------------------ conv2d_transpose


def conv2d_transpose():
    """filter [h, w, out=2, in=2]; value = conv2d's output for an input of output_shape."""
    group = "conv2d_transpose"
    seed = 0
    plans = []
    for batch, (h, w), kernels in (
        (2, (7, 5), ((1, 1), (3, 3), (2, 4))),
        (1, (9, 11), ((3, 3), (5, 2))),
    ):
        for k in kernels:
            for s in (1, 2, 3):
                for padding in ("SAME", "VALID"):
                    plans.append((batch, h, w, k, s, 1, padding))
    for padding in ("SAME", "VALID"):
        for k in ((3, 3), (2, 3)):
            plans.append((1, 9, 11, k, 1, 2, padding))  # dilations (stride 1, as TF requires)
    plans.append((2, 7, 5, (3, 2), 2, 1, [[0, 0], [1, 2], [0, 1], [0, 0]]))
    plans.append((1, 9, 11, (3, 3), 3, 1, [[0, 0], [2, 0], [1, 1], [0, 0]]))
    for i, (batch, h, w, k, s, d, padding) in enumerate(plans):
        seed += 1
        f = rand(seed, k[0], k[1], 2, 2)
        # value's size: what conv2d maps (h, w) to
        probe = tf1.nn.conv2d(np.zeros((batch, h, w, 2), np.float32), f, [1, s, s, 1], padding,
                              dilations=[1, d, d, 1])
        value = rand(seed + 1000, *probe.shape[:3], 2)
        case = dict(strides=s, dilations=d, padding=padding, output_shape=[batch, h, w, 2])
        inputs = dict(value=value, filter=f)

        def fn(value, filter, data_format="NHWC", _case=case):
            shape = _case["output_shape"]
            pad = _case["padding"]
            if data_format == "NCHW":
                shape = [shape[0], shape[3], shape[1], shape[2]]
                pad = pad if isinstance(pad, str) else [pad[0], pad[3], pad[1], pad[2]]
            return tf1.nn.conv2d_transpose(value, filter, shape, _case["strides"], pad,
                                           data_format=data_format, dilations=_case["dilations"])

        add(group, dict(case, data_format="NHWC"), dict(inputs, **run(fn, inputs, ["value", "filter"])))
        if i % 4 == 0:  # an NCHW twin for every fourth case
            nchw_case = dict(case, output_shape=[batch, 2, h, w])
            if not isinstance(padding, str):
                nchw_case["padding"] = [padding[0], padding[3], padding[1], padding[2]]
            nchw_too(group, nchw_case, inputs, ["value", "y", "grad/value"], fn, ["value", "filter"])
    # float64 (TensorFlow's Eigen kernels)
    for s, padding in ((2, "SAME"), (3, "VALID")):
        seed += 1
        f = rand(seed, 3, 3, 2, 2, dtype=np.float64)
        probe = tf1.nn.conv2d(np.zeros((2, 7, 5, 2)), f, s, padding)
        value = rand(seed + 1000, *probe.shape[:3], 2, dtype=np.float64)
        case = dict(strides=s, dilations=1, padding=padding, output_shape=[2, 7, 5, 2])

        def fn64(value, filter, _case=case):
            return tf1.nn.conv2d_transpose(value, filter, _case["output_shape"], _case["strides"],
                                           _case["padding"])

        inputs = dict(value=value, filter=f)
        add(group, dict(case, data_format="NHWC"), dict(inputs, **run(fn64, inputs, ["value", "filter"])))


# ------------------------------------------------------------------ pooling


def pool():
    group = "pool"
    seed = 100
    i = 0
    for op in ("max_pool", "avg_pool"):
        for batch, (h, w), c in ((2, (7, 5), 2), (1, (9, 11), 1)):
            for k in ((2, 2), (3, 3), (3, 2)):
                for s in (1, 2, 3):
                    for padding in ("SAME", "VALID"):
                        seed += 1
                        x = rand(seed, batch, h, w, c)
                        case = dict(op=op, ksize=list(k), strides=s, padding=padding)

                        def fn(value, data_format="NHWC", _case=case):
                            f = getattr(tf1.nn, _case["op"])
                            return f(value, _case["ksize"], _case["strides"], _case["padding"],
                                     data_format=data_format)

                        inputs = dict(value=x)
                        add(group, dict(case, data_format="NHWC"), dict(inputs, **run(fn, inputs, ["value"])))
                        if i % 4 == 0:
                            nchw_too(group, case, inputs, ["value", "y", "grad/value"], fn, ["value"])
                        i += 1
    for padding in ([[0, 0], [1, 0], [2, 1], [0, 0]], [[0, 0], [0, 2], [1, 1], [0, 0]]):
        seed += 1
        x = rand(seed, 2, 7, 5, 2)
        case = dict(op="max_pool", ksize=[3, 3], strides=2, padding=padding)

        def fnx(value, _case=case):
            return tf1.nn.max_pool(value, _case["ksize"], _case["strides"], _case["padding"])

        add(group, dict(case, data_format="NHWC"), dict(value=x, **run(fnx, dict(value=x), ["value"])))
    for op in ("max_pool", "avg_pool"):
        seed += 1
        x = rand(seed, 2, 7, 5, 2, dtype=np.float64)
        case = dict(op=op, ksize=[3, 3], strides=2, padding="SAME")

        def fn64(value, _case=case):
            return getattr(tf1.nn, _case["op"])(value, _case["ksize"], _case["strides"], _case["padding"])

        add(group, dict(case, data_format="NHWC"), dict(value=x, **run(fn64, dict(value=x), ["value"])))


GROUPS = {"conv2d_transpose": conv2d_transpose, "pool": pool}


def main(groups):
    path = os.path.join(HERE, "cases.json")
    cases = json.load(open(path)) if os.path.exists(path) else {}
    for name in groups:
        GROUPS[name]()
        np.savez_compressed(os.path.join(HERE, f"{name}.npz"), **OUT[name])
        cases[name] = CASES[name]
    with open(path, "w") as f:  # one case a line
        groups = [
            f'"{g}": [\n' + ",\n".join(json.dumps(c) for c in cases[g]) + "\n]" for g in sorted(cases)
        ]
        f.write("{\n" + ",\n".join(groups) + "\n}\n")


if __name__ == "__main__":
    main(sys.argv[1:] or list(GROUPS))
