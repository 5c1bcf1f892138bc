"""The README's tour (and its ``ts.train`` example) as a user writes it with full type
annotations. pyright checks this folder in strict mode (``[tool.pyright]`` in
pyproject.toml, run by ``tests/test_typing.py`` and ``.ci/run``): torchscope's public types
must let a strictly typed user script through. Importing it runs nothing;
``python tests/typed/tour.py`` runs it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import torch

import torchscope as ts


def conv_relu(input: torch.Tensor, kernel_shape: list[int], bias_shape: list[int]) -> torch.Tensor:
    weights = ts.get_variable("weights", kernel_shape, initializer=ts.random_normal_initializer())
    biases = ts.get_variable("biases", bias_shape, initializer=ts.constant_initializer(0.0))
    return ts.nn.conv2d_bias_relu(input, weights, biases, strides=[1, 1, 1, 1], padding="SAME")


def my_image_filter(input_images: torch.Tensor) -> torch.Tensor:
    with ts.variable_scope("conv1"):  # variables "conv1/weights", "conv1/biases"
        relu1 = conv_relu(input_images, [5, 5, 32, 32], [32])
    with ts.variable_scope("conv2"):
        return conv_relu(relu1, [5, 5, 32, 32], [32])


class Scale(ts.ScopedModule):
    """A ScopedModule subclass that overrides ``forward`` (no function): its calls are
    typed ``Any``, as ``nn.Module``'s are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * ts.get_variable("scale", [1], initializer=ts.ones_initializer())


def tour(folder: str) -> None:
    image1, image2 = torch.randn(2, 1, 64, 64, 32).unbind(0)  # NHWC, as in TensorFlow
    scope: ts.VariableScope
    with ts.variable_scope("image_filters") as scope:
        result1: torch.Tensor = my_image_filter(image1)
        scope.reuse_variables()  # without it: ValueError "... already exists, disallowed"
        result2: torch.Tensor = my_image_filter(image2)  # the same 4 variables
    assert result1.shape == result2.shape

    store: ts.VariableStore = ts.get_default_store()  # an nn.Module keyed by full name
    opt = torch.optim.Adam(store.parameters())  # any torch.optim optimizer
    torch.save(store.state_dict(), os.path.join(folder, "filters.pt"))
    assert opt.param_groups

    net: ts.ScopedModule[[torch.Tensor], torch.Tensor]
    net = ts.ScopedModule(my_image_filter, name="filter")  # a plain nn.Module
    out: torch.Tensor = net(image1)  # the first call creates the variables
    module_store: ts.VariableStore = net.store
    # torch.compile's own signature has parts pyright cannot know (torch's, not ours)
    fast: Callable[[torch.Tensor], torch.Tensor] = torch.compile(net, fullgraph=True)  # pyright: ignore[reportUnknownMemberType]
    assert out.shape == result1.shape and len(module_store) == 4 and callable(fast)

    scale = Scale(name="scale")
    scaled: torch.Tensor = scale(torch.ones(2))
    shared: ts.Template[[torch.Tensor], torch.Tensor]
    shared = ts.make_template("shared", my_image_filter)
    again: torch.Tensor = ts.checkpoint(shared, image1)
    assert scaled.shape == (2,) and again.shape == out.shape


def train_tour(folder: str) -> None:
    with ts.variable_scope("mlp"), ts.variable_scope("hidden"):  # the TF1 model, tf. -> ts.
        kernel: torch.nn.Parameter = ts.get_variable("kernel", [5, 6])
    step: torch.nn.Parameter = ts.train.get_or_create_global_step()
    opt = ts.train.AdamOptimizer(ts.trainable_variables(), learning_rate=0.01)  # TF1's Adam
    saver = ts.train.Saver(optimizer=opt, max_to_keep=5)
    path: str = saver.save(os.path.join(folder, "model.ckpt"), global_step=step)
    listed: list[tuple[str, list[int]]] = ts.train.list_variables(folder)
    assert ("mlp/hidden/kernel", list(kernel.shape)) in listed and path.endswith("-0")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        tour(tmp)
        ts.reset_default_store()
        train_tour(tmp)
    print("tour ran")
