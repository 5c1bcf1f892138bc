"""Every test starts with a fresh default store and no open scope."""

import pytest

import torchscope as ts


@pytest.fixture(autouse=True)
def fresh_default_store():
    """A new, empty default store before each test (the previous one is dropped)."""
    yield ts.reset_default_store()


# Scripts that made the TensorFlow fixtures need TensorFlow: not tests, not doctests.
collect_ignore_glob = ["data/*"]
