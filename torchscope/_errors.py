"""Errors: the classes callers can catch, and their texts, kept in one place.

Each class subclasses the built-in type torchscope raised before it had classes
(``ValueError``), so ``except ValueError`` code keeps working. Each text says what
was asked, what was found and the fix.
"""

from __future__ import annotations

import sys

__all__ = [
    "DtypeMismatchError",
    "FrozenModuleError",
    "ShapeMismatchError",
    "VariableExistsError",
    "VariableNotFoundError",
    "ValueDoesNotFitError",
    "note",
]


class VariableExistsError(ValueError):
    """``get_variable`` would create a variable that exists, and the scope does not reuse."""


class VariableNotFoundError(ValueError):
    """``get_variable`` under ``reuse=True`` asked for a variable that does not exist."""


class ShapeMismatchError(ValueError):
    """A reused variable's shape is not the one ``get_variable`` asked for."""


class DtypeMismatchError(ValueError):
    """A reused variable's dtype is not the one ``get_variable`` asked for."""


class FrozenModuleError(ValueError):
    """A ``ScopedModule`` (or template) call after the first would create a variable."""


class ValueDoesNotFitError(TypeError, ValueError):
    """A value that the dtype it is given cannot hold exactly (a fraction made an integer,
    a value out of range...). Both a ``TypeError`` (as TensorFlow's ``constant_initializer``
    raises) and a ``ValueError`` (as ``get_variable(initializer=value)`` raised)."""


def note(error: BaseException, text: str) -> BaseException:
    """Adds ``text`` to ``error`` (``add_note`` on Python 3.11+, ``__notes__`` before: the
    error keeps its type, message and traceback) and returns it."""
    if sys.version_info >= (3, 11):
        error.add_note(text)
    else:  # PEP 678's attribute, shown by tools that know it
        notes = getattr(error, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            error.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(text)
    return error


ALREADY_EXISTS = (
    "Variable {name} already exists, disallowed. Did you mean to set reuse=True or "
    "reuse=ts.AUTO_REUSE in VarScope? (ts.variable_scope(..., reuse=True), or call "
    "scope.reuse_variables() before getting it again.) Originally defined at: {where}"
)

DOES_NOT_EXIST = (
    "Variable {name} does not exist, or was not created with ts.get_variable(). Did you "
    "mean to set reuse=ts.AUTO_REUSE in VarScope?"
)

SHAPE_MISMATCH = (
    "Trying to share variable {name}, but specified shape {shape} and found shape {found}."
)

DTYPE_MISMATCH = (
    "Trying to share variable {name}, but specified dtype {dtype} and found dtype {found}."
)

FROZEN = (
    "{owner} made its variables on its first call; this call would create a new variable "
    "{name}. Every call must ask for the same variables: create {name} on the first call "
    "(or build a new module)."
)

SHAPE_NOT_DEFINED = (
    "Shape of a new variable {name} must be fully defined, but instead was {shape}; give "
    "every dimension (None is only allowed when reusing)."
)

INITIALIZER_DTYPE_MISMATCH = (
    "Initializer type '{found}' and explicit dtype '{dtype}' don't match for variable {name!r}: "
    "the initializer is a value of dtype {found}. Convert it first (value.to({dtype})), or "
    "leave dtype out to create the variable from the value as it is."
)

VALUE_DOES_NOT_FIT = (
    "initializer of variable {name!r} holds values that dtype {dtype} cannot hold exactly: "
    "{example!r} would become {converted!r}. Give values of that type, or leave dtype out to "
    "use the value's own."
)

IMPROPER_NESTING = (
    "Improper nesting of {kind}: closing {closing}, which is not the innermost open scope "
    "(the current {what} is {current}, not {expected}); nothing was changed. Scopes close in "
    "the reverse order they were opened. (A generator that yields inside a scope must be "
    "finished, or closed, before the scopes open around the code that resumes it close.)"
)

CREATED_IN_BACKWARD = (
    "get_variable would create variable {name} while backward runs: a function that "
    "activation checkpointing recomputes (torch.utils.checkpoint.checkpoint) runs again "
    "outside the scopes, store and ScopedModule call it first ran in. Checkpoint scoped "
    "code with ts.checkpoint(fn, *args), which recomputes it in the same scope state."
)
