"""torchscope._naming: joining, validating and making names unique (examples; the
round-trip properties are in test_properties.py)."""

import pytest

from torchscope import _naming


def test_join():
    assert _naming.join("", "v") == "v"
    assert _naming.join("foo/bar", "v") == "foo/bar/v"


def test_unique_name_sequence():
    counts = {}
    assert [_naming.unique_name(counts, "foo") for _ in range(4)] == [
        "foo",
        "foo_1",
        "foo_2",
        "foo_3",
    ]


def test_unique_name_skips_names_taken_explicitly():
    counts = {}
    assert _naming.unique_name(counts, "foo_1") == "foo_1"
    assert _naming.unique_name(counts, "foo") == "foo"
    assert _naming.unique_name(counts, "foo") == "foo_2"
    assert _naming.unique_name(counts, "foo_1") == "foo_1_1"


def test_unique_name_is_case_insensitive_and_keeps_case():
    counts = {}
    assert _naming.unique_name(counts, "Foo") == "Foo"
    assert _naming.unique_name(counts, "FOO") == "FOO_1"
    assert _naming.unique_name(counts, "foo") == "foo_2"


def test_unique_name_without_marking():
    counts = {}
    assert _naming.unique_name(counts, "foo", mark=False) == "foo"
    assert counts == {}
    _naming.unique_name(counts, "foo")
    assert _naming.unique_name(counts, "foo", mark=False) == "foo_1"
    assert _naming.unique_name(counts, "foo", mark=False) == "foo_1"


def test_minted_names_are_not_stored():
    counts = {}
    for _ in range(1000):
        _naming.unique_name(counts, "foo")
    assert counts == {"foo": 1000}


def test_mark_used_writes_once():
    counts = {}
    _naming.mark_used(counts, "Model")
    _naming.mark_used(counts, "model")
    assert counts == {"model": 1}
    assert _naming.unique_name(counts, "model") == "model_1"
    _naming.mark_used(counts, "model")
    assert counts["model"] == 2


@pytest.mark.parametrize("name", ["w", "conv1/weights", "0", "a-b_c>d\\e", "A/b/C"])
def test_valid_variable_names(name):
    assert _naming.check_variable_name(name) == name


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "variable name is empty"),
        ("a.b", r"'\.' is not allowed"),
        ("_a", "starts with a letter or digit"),
        ("/a", "starts with a letter or digit"),
        ("a/", "empty path component"),
        ("a//b", "empty path component"),
        ("a b", "is not valid"),
        ("a:0", "is not valid"),
    ],
)
def test_invalid_variable_names(name, match):
    with pytest.raises(ValueError, match=match):
        _naming.check_variable_name(name)


def test_variable_name_must_be_str():
    with pytest.raises(TypeError, match=r"variable name must be a str, got int"):
        _naming.check_variable_name(3)


@pytest.mark.parametrize("name", ["layer", "_private", "a/b", "x-1"])
def test_valid_scope_names(name):
    assert _naming.check_scope_name(name) == name


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "scope name is empty"),
        ("a.b", "is not valid"),
        ("a/", "empty path"),
        ("/a", "empty path"),
    ],
)
def test_invalid_scope_names(name, match):
    with pytest.raises(ValueError, match=match):
        _naming.check_scope_name(name)


def test_scope_name_kind_in_message():
    with pytest.raises(ValueError, match=r"name_scope name 'a b'"):
        _naming.check_scope_name("a b", "name_scope")
    with pytest.raises(TypeError, match=r"scope name must be a str"):
        _naming.check_scope_name(None)


@pytest.mark.parametrize("name", ["_private", "-x", ">x", "\\x", "_"])
def test_scope_names_valid_only_below_the_root(name):
    assert _naming.check_scope_name(name) == name
    with pytest.raises(
        ValueError,
        match=r"^variable_scope name .* is not valid at the root: .*start with a letter or digit",
    ):
        _naming.check_scope_name(name, "variable_scope", root=True)
    # Never cached as checked: the scopes' fast path skips checks for cached names.
    assert not _naming.is_checked_scope_name(name)


@pytest.mark.parametrize("name", ["layer", "a_b/-c", "0x", "A/_b"])
def test_scope_names_valid_at_the_root(name):
    assert _naming.check_scope_name(name, root=True) == name
    assert _naming.is_checked_scope_name(name)
    # A name valid at the root is a valid start of a full variable name.
    assert _naming.check_variable_name(f"{name}/v") == f"{name}/v"


def test_root_scope_name_error_suggests_a_fix():
    with pytest.raises(ValueError, match=r"rename it, for example 'x'"):
        _naming.check_scope_name("_x", "name_scope", root=True)
