"""Writes the ``tf.nn`` goldens in this folder, for tests that run without TensorFlow.

Run with TensorFlow 2.21 (CPU) in a scratch venv (TensorFlow is not a dependency of the project):

    /tmp/tfvenv/bin/python tests/data/tf_nn/make_goldens.py [GROUP ...]

Eager TensorFlow calls the ``tf.compat.v1.nn`` functions (TensorFlow's default CPU kernels, oneDNN
included, as a user gets them). Each group writes ``<group>.npz`` (compressed; every array
little-endian) and its entry in ``cases.json``: a list of cases, each a dict of the arguments
(TensorFlow's spelling) and an ``id``; the case's arrays are ``<id>/<name>`` in the ``.npz``:

- the inputs, as passed to TensorFlow (``x``, ``filter``, ``labels``, ...);
- ``y`` (and the other outputs: ``mean``, ``variance``, ...);
- ``grad/<input>``: the gradient of ``sum(y * gy)`` with respect to each differentiable input
  (for ``moments``: of ``sum(mean * gmean) + sum(variance * gvariance)``; for
  ``fused_batch_norm``: through ``y`` only, as TensorFlow has no gradient through the returned
  statistics), where the upstream gradient ``gy`` is not stored but computed from ``y``'s shape by
  ``upstream`` below, in float64 then cast: ``cos(0.7 * i + 0.3)`` for the flat index ``i`` (the
  tests compute the same numbers with torch).

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


def run(fn, inputs, differentiable, outputs=("y",), gy_of=upstream, through=1):
    """Calls ``fn(**inputs)`` under a tape; returns {output name: array} and the gradients of
    the sum of (output * gy_of(its shape)) over the first ``through`` outputs with respect to the
    ``differentiable`` inputs."""
    tensors = {k: tf.constant(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        for k in differentiable:
            tape.watch(tensors[k])
        result = fn(**tensors)
    result = result if isinstance(result, tuple) else (result,)
    arrays = {name: r.numpy() for name, r in zip(outputs, result)}
    ys = list(result[:through])
    if differentiable:
        gys = [tf.constant(gy_of(tuple(y.shape), y.dtype.as_numpy_dtype)) for y in ys]
        grads = tape.gradient(ys, [tensors[k] for k in differentiable], output_gradients=gys)
        for k, g in zip(differentiable, grads):
            arrays[f"grad/{k}"] = g.numpy()
    return arrays


def add(group, case, arrays):
    """Stores a case: its arguments in cases.json, its arrays under ``<id>/``."""
    case = dict(case, id=f"{group}{len(CASES.setdefault(group, []))}")
    CASES[group].append(case)
    for name, a in arrays.items():
        OUT.setdefault(group, {})[f"{case['id']}/{name}"] = np.array(a, order="C")  # 0-D stays 0-D
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
            for k in ((2, 2), (3, 2)):
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


# ------------------------------------------------------------------ depthwise_conv2d


def depthwise_conv2d():
    """filter [h, w, in, multiplier 2]."""
    group = "depthwise_conv2d"
    seed = 200
    plans = []
    for batch, (h, w), c, kernels in ((2, (7, 5), 2, ((3, 3), (2, 4))), (1, (9, 11), 2, ((3, 2),))):
        for k in kernels:
            for s in (1, 2, 3):
                for padding in ("SAME", "VALID"):
                    plans.append((batch, h, w, c, k, s, 1, padding))
    for padding in ("SAME", "VALID", [[0, 0], [1, 2], [0, 1], [0, 0]]):
        plans.append((1, 9, 11, 2, (3, 3), 1, 2, padding))  # rate 2 (stride 1, as TF requires)
    plans.append((2, 7, 5, 2, (3, 2), 2, 1, [[0, 0], [2, 0], [1, 1], [0, 0]]))
    for i, (batch, h, w, c, k, s, d, padding) in enumerate(plans):
        seed += 1
        x = rand(seed, batch, h, w, c)
        f = rand(seed + 1000, k[0], k[1], c, 2)
        case = dict(strides=[1, s, s, 1], rate=[d, d], padding=padding)

        def fn(input, filter, data_format="NHWC", _case=case):
            strides, pad = _case["strides"], _case["padding"]
            if data_format == "NCHW":
                strides = [1, 1, strides[1], strides[2]]
                pad = pad if isinstance(pad, str) else [pad[0], pad[3], pad[1], pad[2]]
            return tf1.nn.depthwise_conv2d(input, filter, strides, pad, rate=_case["rate"],
                                           data_format=data_format)

        inputs = dict(input=x, filter=f)
        add(group, dict(case, data_format="NHWC"), dict(inputs, **run(fn, inputs, ["input", "filter"])))
        if i % 4 == 0:
            nchw_case = dict(case, strides=[1, 1, s, s])
            if not isinstance(padding, str):
                nchw_case["padding"] = [padding[0], padding[3], padding[1], padding[2]]
            nchw_too(group, nchw_case, inputs, ["input", "y", "grad/input"], fn, ["input", "filter"])
    seed += 1
    x, f = rand(seed, 2, 7, 5, 2, dtype=np.float64), rand(seed + 1, 3, 3, 2, 2, dtype=np.float64)
    case = dict(strides=[1, 2, 2, 1], rate=[1, 1], padding="SAME")
    fn64 = lambda input, filter: tf1.nn.depthwise_conv2d(input, filter, [1, 2, 2, 1], "SAME")
    add(group, dict(case, data_format="NHWC"),
        dict(input=x, filter=f, **run(fn64, dict(input=x, filter=f), ["input", "filter"])))


# ------------------------------------------------------------------ normalisation


def norm():
    group = "norm"
    seed = 300
    # moments
    for axes, keep, dtype in (([0, 1, 2], False, np.float32), ([1, 2], True, np.float32),
                              ([-1], False, np.float32), ([0], False, np.float64)):
        seed += 1
        x = rand(seed, 2, 7, 5, 3, dtype=dtype) * 3 + 1
        case = dict(op="moments", axes=axes, keep_dims=keep)
        fn = lambda x, _c=case: tf1.nn.moments(x, _c["axes"], keep_dims=_c["keep_dims"])
        add(group, case, dict(x=x, **run(fn, dict(x=x), ["x"], ("mean", "variance"), through=2)))
    # batch_normalization: per-channel statistics, or moments(keep_dims=True)'s shape
    for stats_shape, with_offset, with_scale in (((3,), True, True), ((1, 1, 1, 3), True, True),
                                                 ((3,), False, True), ((3,), True, False)):
        seed += 1
        arrays = dict(x=rand(seed, 2, 7, 5, 3), mean=rand(seed + 1, *stats_shape),
                      variance=np.abs(rand(seed + 2, *stats_shape)) + 0.1)
        if with_offset:
            arrays["offset"] = rand(seed + 3, 3)
        if with_scale:
            arrays["scale"] = rand(seed + 4, 3)
        case = dict(op="batch_normalization", variance_epsilon=0.001)

        def fn(x, mean, variance, offset=None, scale=None):
            return tf1.nn.batch_normalization(x, mean, variance, offset, scale, 0.001)

        add(group, case, dict(arrays, **run(fn, arrays, list(arrays))))
    # fused_batch_norm
    plans = [
        dict(is_training=True, exponential_avg_factor=1.0, epsilon=0.001, data_format="NHWC"),
        dict(is_training=True, exponential_avg_factor=1.0, epsilon=1e-7, data_format="NCHW"),
        dict(is_training=True, exponential_avg_factor=0.3, epsilon=0.001, data_format="NHWC"),
        dict(is_training=True, exponential_avg_factor=0.3, epsilon=0.001, data_format="NCHW"),
        dict(is_training=False, exponential_avg_factor=1.0, epsilon=0.01, data_format="NHWC"),
        dict(is_training=False, exponential_avg_factor=1.0, epsilon=0.001, data_format="NCHW"),
        dict(is_training=True, exponential_avg_factor=1.0, epsilon=0.001, data_format="NDHWC"),
    ]
    for case in plans:
        seed += 1
        shape = {"NHWC": (2, 7, 5, 3), "NCHW": (2, 3, 7, 5), "NDHWC": (2, 3, 4, 5, 3)}
        arrays = dict(x=rand(seed, *shape[case["data_format"]]) * 2 + 0.5,
                      scale=rand(seed + 1, 3), offset=rand(seed + 2, 3),
                      mean=rand(seed + 3, 3), variance=np.abs(rand(seed + 4, 3)) + 0.5)
        case = dict(case, op="fused_batch_norm")

        def fn(x, scale, offset, mean, variance, _c=case):
            return tf1.nn.fused_batch_norm(
                x, scale, offset, mean, variance, epsilon=_c["epsilon"],
                data_format=_c["data_format"], is_training=_c["is_training"],
                exponential_avg_factor=_c["exponential_avg_factor"])

        outputs = ("y", "batch_mean", "batch_variance")
        add(group, case, dict(arrays, **run(fn, arrays, ["x", "scale", "offset"], outputs)))


# ------------------------------------------------------------------ losses


def losses():
    group = "losses"
    seed = 400
    x = rand(seed, 7, 5)
    add(group, dict(op="l2_loss"), dict(t=x, **run(lambda t: tf.nn.l2_loss(t), dict(t=x), ["t"])))
    x64 = rand(seed + 1, 3, 4, dtype=np.float64)
    add(group, dict(op="l2_loss"), dict(t=x64, **run(lambda t: tf.nn.l2_loss(t), dict(t=x64), ["t"])))

    def softmax(a, axis=-1):
        e = np.exp(a - a.max(axis, keepdims=True))
        return (e / e.sum(axis, keepdims=True)).astype(a.dtype)

    plans = [  # labels shape, logits shape, axis, labels kind
        ((6, 5), (6, 5), -1, "distribution"),
        ((6, 5), (6, 5), -1, "unnormalised"),
        ((4, 6), (4, 6), 0, "distribution"),
        ((1, 5), (3, 5), -1, "distribution"),
        ((2, 3, 4), (2, 3, 4), 1, "distribution"),
        ((5,), (5,), -1, "distribution"),
    ]
    for labels_shape, logits_shape, axis, kind in plans:
        seed += 2
        logits = rand(seed, *logits_shape) * 3
        raw = rand(seed + 1, *labels_shape)
        labels = softmax(raw, axis) if kind == "distribution" else np.abs(raw)
        case = dict(op="softmax_cross_entropy_with_logits_v2", axis=axis, labels_kind=kind)
        fn = lambda labels, logits, _c=case: tf1.nn.softmax_cross_entropy_with_logits_v2(
            labels, logits, axis=_c["axis"])
        arrays = dict(labels=labels, logits=logits)
        # TensorFlow's gradient for broadcast labels fails (a reshape to labels' shape): logits only
        differentiable = ["labels", "logits"] if labels_shape == logits_shape else ["logits"]
        add(group, case, dict(arrays, **run(fn, arrays, differentiable)))
    for labels_shape, classes, dtype in (((6,), 5, np.int32), ((2, 3), 4, np.int64), ((), 7, np.int32)):
        seed += 2
        logits = rand(seed, *labels_shape, classes) * 3
        labels = np.random.RandomState(seed + 1).randint(0, classes, labels_shape).astype(dtype)
        case = dict(op="sparse_softmax_cross_entropy_with_logits")
        fn = lambda labels, logits: tf1.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits)
        arrays = dict(labels=np.asarray(labels), logits=logits)
        add(group, case, dict(arrays, **run(fn, arrays, ["logits"])))
    for dtype in (np.float32, np.float64):
        seed += 2
        logits = rand(seed, 4, 6, dtype=dtype) * 4
        logits[0, :4] = [0.0, 40.0, -40.0, 0.0]  # 0 (the kink of max and abs), far out
        labels = np.random.RandomState(seed + 1).uniform(size=(4, 6)).astype(dtype)
        labels[1, :2] = [0.0, 1.0]
        case = dict(op="sigmoid_cross_entropy_with_logits")
        fn = lambda labels, logits: tf1.nn.sigmoid_cross_entropy_with_logits(
            labels=labels, logits=logits)
        arrays = dict(labels=labels, logits=logits)
        add(group, case, dict(arrays, **run(fn, arrays, ["labels", "logits"])))


GROUPS = {
    "conv2d_transpose": conv2d_transpose,
    "pool": pool,
    "depthwise_conv2d": depthwise_conv2d,
    "norm": norm,
    "losses": losses,
}


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
