"""``ts.layers`` as a user writes it with full type annotations: a small classifier of all
eight layers in a ``ScopedModule``. pyright checks this folder in strict mode
(``tests/test_typing.py``); ``tests/test_layers_api.py`` runs :func:`train`.
"""

from __future__ import annotations

import torch

import torchscope as ts


def classifier(images: torch.Tensor, training: bool = False) -> torch.Tensor:
    h: torch.Tensor = ts.layers.conv2d(images, 8, 3, padding="same", activation=torch.relu)
    h = ts.layers.batch_normalization(h, training=training)
    h = ts.layers.max_pooling2d(h, 2, 2)
    h = ts.layers.conv2d_transpose(h, 4, 3, strides=2, padding="same", name="up")
    h = ts.layers.average_pooling2d(h, 2, 2, padding="same")
    h = ts.layers.dropout(ts.layers.flatten(h), rate=0.25, training=training)
    return ts.layers.dense(h, 3, kernel_regularizer=lambda w: 1e-4 * (w * w).sum())


def train(steps: int = 3) -> list[str]:
    """A few training steps; returns the variable names."""
    model: ts.ScopedModule[[torch.Tensor, bool], torch.Tensor] = ts.ScopedModule(classifier)
    images, labels = torch.randn(4, 8, 8, 3), torch.tensor([0, 1, 2, 1])
    model(images, True)  # the first call makes the variables
    params = [p for p in model.parameters() if p.requires_grad]  # not the moving averages
    for _ in range(steps):
        logits = model(images, True)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss + model.store.regularization_losses()[0], params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(0.1 * g)
    return list(model.store)
