"""Doctest set-up for ``pytest --doctest-modules torchscope``: every docstring example
sees ``ts`` and ``torch`` and runs on a fresh default store."""

import pytest
import torch
from _pytest.doctest import DoctestItem

import torchscope


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    if not isinstance(request.node, DoctestItem):
        yield
        return
    doctest_namespace["ts"] = torchscope
    doctest_namespace["torch"] = torch
    request.getfixturevalue("ts_store")
    yield
