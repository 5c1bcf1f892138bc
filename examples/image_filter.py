"""Sharing variables: the image filter of TensorFlow 1's "Sharing Variables" guide.

Ports the guide's ``conv_relu`` / ``my_image_filter`` line for line, ``tf.`` ->
``ts.``: two convolutions whose variables are made by ``get_variable`` under the
scopes ``conv1`` and ``conv2``. Calling the filter twice raises "already exists";
opening ``image_filters`` once and calling ``scope.reuse_variables()`` between the
two calls shares one set of 4 variables between two images. The example then prints
``ts.summary()`` and checks that the fused ``ts.nn.conv2d_bias_relu`` gives the
numbers of the unfused ``ts.nn.relu(ts.nn.bias_add(ts.nn.conv2d(...)))``.

Run it (a few seconds on a laptop CPU):

    python examples/image_filter.py
"""

from __future__ import annotations

import argparse
import sys

import torch

import torchscope as ts


def conv_relu(input, kernel_shape, bias_shape):
    # Create variable named "weights".
    weights = ts.get_variable("weights", kernel_shape, initializer=ts.random_normal_initializer())
    # Create variable named "biases".
    biases = ts.get_variable("biases", bias_shape, initializer=ts.constant_initializer(0.0))
    return ts.nn.conv2d_bias_relu(input, weights, biases, strides=[1, 1, 1, 1], padding="SAME")


def my_image_filter(input_images):
    with ts.variable_scope("conv1"):
        # Variables created here will be named "conv1/weights", "conv1/biases".
        relu1 = conv_relu(input_images, [5, 5, 32, 32], [32])
    with ts.variable_scope("conv2"):
        # Variables created here will be named "conv2/weights", "conv2/biases".
        return conv_relu(relu1, [5, 5, 32, 32], [32])


def unfused_image_filter(input_images):
    """The same filter written with three TensorFlow ops, reading the shared variables."""
    with ts.variable_scope("conv1", reuse=True):
        weights, biases = ts.get_variable("weights"), ts.get_variable("biases")
        conv = ts.nn.conv2d(input_images, weights, strides=[1, 1, 1, 1], padding="SAME")
        relu1 = ts.nn.relu(ts.nn.bias_add(conv, biases))
    with ts.variable_scope("conv2", reuse=True):
        weights, biases = ts.get_variable("weights"), ts.get_variable("biases")
        conv = ts.nn.conv2d(relu1, weights, strides=[1, 1, 1, 1], padding="SAME")
        return ts.nn.relu(ts.nn.bias_add(conv, biases))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image height and width")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    # Two NHWC images with 32 channels, as the guide's [5, 5, 32, 32] filters expect.
    image1 = torch.randn(1, args.size, args.size, 32)
    image2 = torch.randn(1, args.size, args.size, 32)

    # 1. Calling the filter twice tries to make a second set of variables.
    result1 = my_image_filter(image1)
    try:
        result2 = my_image_filter(image2)
    except ValueError as error:
        print("Second call without reuse raises ValueError:")
        print("   ", str(error).splitlines()[0])
    else:
        print("error: the second call should have raised 'already exists'")
        return 1
    ts.reset_default_store()  # as tf.reset_default_graph(): start again from an empty store

    # 2. Share them: one scope, reuse switched on between the two calls.
    with ts.variable_scope("image_filters") as scope:
        result1 = my_image_filter(image1)
        scope.reuse_variables()
        result2 = my_image_filter(image2)

    names = [ts.name_of(v) for v in ts.global_variables()]
    print(f"\nBoth images went through the same {len(names)} variables:")
    print(ts.summary())
    if names != [
        "image_filters/conv1/weights",
        "image_filters/conv1/biases",
        "image_filters/conv2/weights",
        "image_filters/conv2/biases",
    ]:
        print(f"error: unexpected variables {names}")
        return 1

    # 3. The fused op against conv2d -> bias_add -> relu, on both images.
    with ts.variable_scope("image_filters", reuse=True):
        expected1 = unfused_image_filter(image1)
        expected2 = unfused_image_filter(image2)
    # With N(0, 1) filters (the guide's initializer) the outputs reach the thousands, so the
    # comparison is relative to the largest output.
    difference = max(
        ((result1 - expected1).abs().max() / expected1.abs().max()).item(),
        ((result2 - expected2).abs().max() / expected2.abs().max()).item(),
    )
    native = "compiled" if ts.ops.native_available() else "pure-PyTorch fallback"
    print(f"\nresult shapes: {tuple(result1.shape)}, {tuple(result2.shape)}")
    print(
        f"fused conv2d_bias_relu ({native}) vs conv2d + bias_add + relu: "
        f"max relative difference {difference:.1e}"
    )
    if not difference < 1e-5:
        print("error: the fused op does not match the unfused ops")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
