"""Names: validating, joining and making unique.

Every name torchscope hands out goes through this module. Full variable names
follow TensorFlow's op-name rule, without ``.`` (PyTorch forbids it in parameter
names): the first character is a letter or digit, the rest letters, digits and
``_ - / > \\``, and no path component is empty. A scope name follows the same rule
where it begins a full name (at the root, as TensorFlow checks it against its op-name
rule there); below the root it may also begin with ``_ - > \\``. The full name is also the
variable's key in its store's ``ParameterDict`` and in ``state_dict()``, so the
mapping from names to keys is the identity.

Uniqueness ("foo", then "foo_1") is TensorFlow's rule, case-insensitive, over
one counter table. Each scope *entry* owns the table of the names opened directly
inside it, and the table is dropped when that entry closes; see
:func:`unique_name`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ._compile_hooks import when_dynamo_loads

__all__ = [
    "check_scope_name",
    "check_variable_name",
    "is_checked_scope_name",
    "join",
    "mark_used",
    "unique_name",
]

_ALLOWED = "letters, digits and '_', '-', '/', '>', '\\'"
_NOT_FIRST_AT_ROOT = "_->\\"  # allowed in a scope name, but not as a full name's first character
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-/>\\]*")
_SCOPE_NAME = re.compile(r"[A-Za-z0-9_\-/>\\]+")


def join(prefix: str, name: str) -> str:
    """Joins a scope name and a relative name with ``/``.

    >>> join("foo/bar", "v"), join("", "v")
    ('foo/bar/v', 'v')
    """
    return f"{prefix}/{name}" if prefix else name


def _check_components(kind: str, name: str) -> None:
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValueError(
            f"{kind} name {name!r} has an empty path component (a leading, trailing or "
            "doubled '/'); use names like 'conv1/weights'."
        )


def check_variable_name(full_name: str) -> str:
    """Returns ``full_name`` if it is a valid full variable name, else raises ValueError.

    >>> check_variable_name("conv1/weights")
    'conv1/weights'
    >>> check_variable_name("conv1.weights")
    Traceback (most recent call last):
    ...
    ValueError: variable name 'conv1.weights' is not valid: ...
    """
    if not isinstance(full_name, str):
        raise TypeError(
            f"variable name must be a str, got {type(full_name).__name__}: {full_name!r}"
        )
    if not _VARIABLE_NAME.fullmatch(full_name):
        if not full_name:
            raise ValueError(
                "variable name is empty; give get_variable a non-empty name such as 'w'."
            )
        raise ValueError(
            f"variable name {full_name!r} is not valid: a full name starts with a letter or digit "
            f"and holds only {_ALLOWED} ('.' is not allowed: PyTorch reserves it in parameter "
            "names)."
        )
    _check_components("variable", full_name)
    return full_name


# Names seen that are valid anywhere, the root included (a forward re-checks the same few).
# Names valid only below the root are not kept: their check depends on where they are opened.
_CHECKED_SCOPE_NAMES: dict[str, None] = {}


def is_checked_scope_name(name: Any) -> bool:
    """Whether ``name`` is a scope name already found valid, at the root too: the scopes'
    fast path.

    ``torch.compile`` takes the answer as a constant (a valid name stays valid) instead
    of guarding on the table's contents (guards on every scope name, every call).
    """
    return type(name) is str and name in _CHECKED_SCOPE_NAMES


when_dynamo_loads(lambda: torch.compiler.assume_constant_result(is_checked_scope_name))


def check_scope_name(name: str, kind: str = "scope", *, root: bool = False) -> str:
    """Returns ``name`` if it is a valid (relative) scope name, else raises ValueError.

    With ``root``, the name begins a full name (it is opened at the root, or it is an
    absolute name), and must start with a letter or digit, as a full name does.

    >>> check_scope_name("layer_1/conv"), check_scope_name("_private")
    ('layer_1/conv', '_private')
    >>> check_scope_name("_private", "variable_scope", root=True)
    Traceback (most recent call last):
    ...
    ValueError: variable_scope name '_private' is not valid at the root: ...
    """
    if type(name) is str and name in _CHECKED_SCOPE_NAMES:
        return name
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
    if not _SCOPE_NAME.fullmatch(name):
        if not name:
            raise ValueError(f"{kind} name is empty; give a non-empty name such as 'layer'.")
        raise ValueError(
            f"{kind} name {name!r} is not valid: scope names hold only {_ALLOWED} "
            "('.' is not allowed: PyTorch reserves it in parameter names)."
        )
    _check_components(kind, name)
    if name[0] in _NOT_FIRST_AT_ROOT:
        if root:
            raise ValueError(
                f"{kind} name {name!r} is not valid at the root: a scope opened there begins "
                "the full names of what it holds, which start with a letter or digit (below "
                f"the root a scope name may also start with '_', '-', '>' or '\\'); rename "
                f"it, for example {name.lstrip(_NOT_FIRST_AT_ROOT) or 'scope'!r}."
            )
        return name  # not cached: valid only below the root
    if len(_CHECKED_SCOPE_NAMES) >= 4096:  # bounded: names made in a loop do not pile up
        _CHECKED_SCOPE_NAMES.clear()
    _CHECKED_SCOPE_NAMES[name] = None
    return name


def mark_used(counts: dict[str, int], name: str) -> None:
    """Records that ``name`` is taken among its siblings (a variable scope's name scope).

    Only the first use writes: re-entering the same scope every step leaves the
    table as it was, so ``torch.compile`` sees the same state on every call.
    """
    key = name.lower()
    if key not in counts:
        counts[key] = 1


def _is_used(counts: dict[str, int], key: str) -> bool:
    """Whether ``key`` was opened, or minted by :func:`unique_name`, among these siblings.

    Minted names (``foo_3``) are not stored: they are recognised from the counter of
    their base name, so the table holds one entry per distinct requested name and a
    loop that re-opens ``foo`` does not grow it.
    """
    if counts.get(key, 0) > 0:
        return True
    base, sep, suffix = key.rpartition("_")
    return bool(sep) and suffix.isdigit() and suffix[0] != "0" and counts.get(base, 0) > int(suffix)


def unique_name(counts: dict[str, int], name: str, mark: bool = True) -> str:
    """Returns ``name`` made unique among siblings, TensorFlow's way.

    The first ``foo`` stays ``foo``; later ones become ``foo_1``, ``foo_2``, ...,
    skipping names already taken. Comparison ignores case, as in TensorFlow.

    >>> counts = {}
    >>> [unique_name(counts, "foo") for _ in range(3)]
    ['foo', 'foo_1', 'foo_2']
    >>> unique_name(counts, "foo_1")
    'foo_1_1'
    """
    key = name.lower()
    if not _is_used(counts, key):
        if mark:
            counts[key] = counts.get(key, 0) + 1
        return name
    i = max(counts.get(key, 0), 1)
    while _is_used(counts, f"{key}_{i}"):
        i += 1
    if mark:
        counts[key] = i + 1
    return f"{name}_{i}"
