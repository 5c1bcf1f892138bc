"""torchscope's pytest plugin as installed (entry point ``pytest11``): the ``ts_store``
fixture of :mod:`torchscope.pytest_plugin`, declared here without importing torch or
torchscope, which load only when a test asks for the fixture. Every pytest run in an
environment where torchscope is installed loads this module; one that never uses the
fixture should not pay for importing torch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def ts_store() -> Iterator[Any]:
    """A fresh default ``torchscope.VariableStore`` with an empty scope stack, for one
    test (see :mod:`torchscope.pytest_plugin`)."""
    from torchscope.pytest_plugin import fresh_store

    yield from fresh_store()
