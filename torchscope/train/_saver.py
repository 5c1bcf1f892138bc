"""``Saver``: TensorFlow 1's checkpoint saver without the session, and the global step."""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._graph_keys import GraphKeys
from .._initializers import zeros_initializer
from .._lookup import get_variable
from .._module import ScopedModule
from .._registry import get_default_store, name_of
from .._store import VariableStore
from .._types import PathLike
from ._reader import CheckpointReader, checkpoint_prefix
from ._state_file import read_state, write_state
from ._writer import BundleWriter

__all__ = ["Saver", "get_checkpoint_state", "get_global_step", "get_or_create_global_step"]

VarList = VariableStore | nn.Module | Mapping[str, torch.Tensor] | list[torch.Tensor] | None


class Saver:
    """Saves and restores variables as TensorFlow checkpoints, as ``tf.compat.v1.train.Saver``.

    What it writes TensorFlow reads (``tf.train.load_checkpoint``, a TF1 ``Saver.restore``
    into a graph with the same variables), and it restores what TensorFlow wrote.

    Args:
        var_list: what to save, by checkpoint key: a ``VariableStore`` or ``ScopedModule``
            (full variable names), another ``nn.Module`` (its ``state_dict`` keys), a dict
            name -> tensor, or a list of variables (named by their store). Default: the
            store that is current when the ``Saver`` is made. Stores and modules are read
            at each save and restore, so a ``Saver`` made before a module's first call
            saves the variables that call makes.
        optimizer: an optimizer whose state is saved and restored with the variables, under
            TensorFlow's slot names (``<var>/Adam``, ``beta1_power``, ...; see
            ``ts.train.AdamOptimizer``).
        max_to_keep: how many recent checkpoints to keep; older ones are deleted as new
            ones are saved. ``None`` or 0: keep all (the state file then names the latest).

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with ts.variable_scope("dense"):
    ...     w = ts.get_variable("w", [2, 2])
    >>> saver = ts.train.Saver()
    >>> path = saver.save(os.path.join(folder, "model.ckpt"), global_step=100)
    >>> os.path.basename(path), ts.train.list_variables(folder)
    ('model.ckpt-100', [('dense/w', [2, 2])])
    >>> saver.restore(path)
    """

    def __init__(
        self,
        var_list: VarList = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        max_to_keep: int | None = 5,
    ) -> None:
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 0):
            raise ValueError(f"max_to_keep must be None or an int >= 0, got {max_to_keep!r}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
        self._var_list = get_default_store() if var_list is None else var_list
        self._variables()  # checks the form now
        self.optimizer = optimizer
        self.max_to_keep = max_to_keep
        self._last: list[str] = []

    @property
    def last_checkpoints(self) -> list[str]:
        """The prefixes of the checkpoints kept, oldest first."""
        return list(self._last)

    def _variables(self) -> dict[str, torch.Tensor]:
        var_list = self._var_list
        if isinstance(var_list, ScopedModule):
            return dict(var_list.store.items())
        if isinstance(var_list, VariableStore):
            return dict(var_list.items())
        if isinstance(var_list, nn.Module):
            return var_list.state_dict(keep_vars=True)
        if isinstance(var_list, Mapping):
            for key, value in var_list.items():
                if not isinstance(key, str) or not isinstance(value, torch.Tensor):
                    raise TypeError(
                        f"Saver's var_list dict must map names to tensors; {key!r} maps to "
                        f"{type(value).__name__}"
                    )
            return dict(var_list)
        if isinstance(var_list, (list, tuple)):
            named = {}
            for variable in var_list:
                if not isinstance(variable, torch.Tensor):
                    raise TypeError(
                        f"Saver's var_list holds a {type(variable).__name__}; give variables"
                    )
                named[name_of(variable)] = variable
            return named
        raise TypeError(
            "Saver's var_list must be a VariableStore, an nn.Module, a dict name -> tensor or "
            f"a list of variables, got {type(var_list).__name__}"
        )

    def _entries(self) -> dict[str, Any]:
        variables = self._variables()
        entries: dict[str, Any] = dict(variables)
        if self.optimizer is not None:
            from ._slots import optimizer_slots

            slots = optimizer_slots(self.optimizer, variables)
            clash = sorted(set(slots) & set(entries))
            if clash:
                raise ValueError(f"optimizer slot names {clash[:5]} are also variable names")
            entries.update(slots)
        return entries

    def save(self, save_path: PathLike, global_step: int | torch.Tensor | None = None) -> str:
        """Writes a checkpoint and returns its prefix (``save_path``, with ``-<step>``
        appended when ``global_step`` is given: an int or a scalar tensor). The folder's
        ``checkpoint`` state file names it as the latest. A failure leaves the checkpoints
        already there, and the state file, as they were."""
        prefix = os.fspath(save_path)
        if global_step is not None:
            prefix = f"{prefix}-{_step(global_step)}"
        entries = self._entries()
        if not entries:
            raise ValueError("nothing to save: the Saver's var_list holds no variables")
        directory = os.path.dirname(os.path.abspath(prefix))
        os.makedirs(directory, exist_ok=True)
        writer = BundleWriter(prefix)
        try:
            for key in sorted(entries):
                writer.add(key, entries[key])
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        self._record(os.path.abspath(prefix), directory)
        return prefix

    def _record(self, prefix: str, directory: str) -> None:
        if prefix in self._last:
            self._last.remove(prefix)
        self._last.append(prefix)
        if not self.max_to_keep:
            write_state(directory, prefix, [prefix])
            return
        dropped = self._last[: -self.max_to_keep]
        self._last = self._last[-self.max_to_keep :]
        write_state(directory, prefix, self._last)  # before deleting: it never names a gone one
        for old in dropped:
            _delete(old)

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        """Takes over checkpoints an earlier Saver made (e.g. after a restart), so that they
        are deleted in turn as new ones are saved; as TensorFlow's. ``checkpoint_paths``:
        prefixes, oldest first (a folder's state file lists them:
        ``ts.train.get_checkpoint_state(folder)``)."""
        self._last = [os.path.abspath(os.fspath(p)) for p in checkpoint_paths]

    def restore(self, save_path: PathLike) -> None:
        """Fills the variables (and the optimizer's state) from a checkpoint.

        Every variable must be in it, with its shape and dtype. All of that, the
        files and every CRC are checked before anything is written: a failed restore
        leaves the variables and the optimizer as they were."""
        var_list = self._var_list
        if isinstance(var_list, ScopedModule) and not var_list.built:
            raise RuntimeError(
                f"{var_list._describe()} has not made its variables yet: call it "
                "once first, or make them from the checkpoint with "
                "ts.train.init_from_checkpoint(path, {'/': '/'}, store=module)"
            )
        reader = CheckpointReader(checkpoint_prefix(save_path))
        variables = self._variables()
        missing = [name for name in variables if not reader.has_tensor(name)]
        if missing:
            raise ValueError(
                f"checkpoint {reader.prefix} lacks {len(missing)} of the {len(variables)} "
                f"variables to restore: {missing[:10]}{' ...' if len(missing) > 10 else ''}"
            )
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        for name, variable in variables.items():
            if list(variable.shape) != shapes[name] or variable.dtype != dtypes[name]:
                raise ValueError(
                    f"variable {name!r} is {variable.dtype} {list(variable.shape)}, but "
                    f"checkpoint {reader.prefix} holds it as {dtypes[name]} {shapes[name]}"
                )
        if self.optimizer is None:
            reader.read_into(list(variables.items()))
            return
        from ._slots import load_optimizer_slots

        reader.verify_all()  # every CRC, before anything is written
        unverified = CheckpointReader(reader.prefix, verify=False)
        # Checks every slot before it changes the optimizer; the variables were checked above.
        load_optimizer_slots(self.optimizer, variables, unverified)
        unverified.read_into(list(variables.items()))


def _step(global_step: Any) -> int:
    if isinstance(global_step, torch.Tensor):
        if global_step.numel() != 1:
            raise ValueError(f"global_step must be a scalar, got shape {list(global_step.shape)}")
        return int(global_step.item())
    if isinstance(global_step, bool) or not hasattr(global_step, "__index__"):
        raise TypeError(f"global_step must be an int or a scalar tensor, got {global_step!r}")
    return int(global_step)


def _delete(prefix: str) -> None:
    for path in [prefix + ".index", prefix + ".meta", *glob.glob(glob.escape(prefix) + ".data-*")]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def get_checkpoint_state(checkpoint_dir: PathLike) -> dict[str, list[str]] | None:
    """The folder's state file: ``{"model_checkpoint_path": [...],
    "all_model_checkpoint_paths": [...]}`` (absolute paths), or None; as
    ``tf.train.get_checkpoint_state``."""
    return read_state(os.fspath(checkpoint_dir))


def get_global_step(store: VariableStore | None = None) -> torch.nn.Parameter | None:
    """The store's global step (its ``GraphKeys.GLOBAL_STEP`` collection, else a variable
    named ``global_step``), or None."""
    store = get_default_store() if store is None else store
    found = store.get_collection(GraphKeys.GLOBAL_STEP)
    if len(found) > 1:
        raise ValueError(f"the store's {GraphKeys.GLOBAL_STEP!r} collection holds {len(found)}")
    if found:
        return found[0]
    return store.get("global_step")


def get_or_create_global_step(store: VariableStore | None = None) -> torch.nn.Parameter:
    """The step counter of TensorFlow 1 training scripts: a non-trainable int64 scalar
    variable ``global_step``, created (zero) in the current scope if the store has none, as
    ``tf.compat.v1.train.get_or_create_global_step``. Increment it in place
    (``with torch.no_grad(): step += 1``) and pass it to ``Saver.save``.

    >>> step = ts.train.get_or_create_global_step()
    >>> ts.name_of(step), step.dtype, step.requires_grad, int(step)
    ('global_step', torch.int64, False, 0)
    >>> ts.train.get_or_create_global_step() is step
    True
    """
    found = get_global_step(store)
    if found is not None:
        return found
    context = store.as_default() if store is not None else contextlib.nullcontext()
    with context:
        step = get_variable(
            GraphKeys.GLOBAL_STEP,
            [],
            dtype=torch.int64,
            initializer=zeros_initializer(),
            trainable=False,
        )
        get_default_store().add_to_collection(GraphKeys.GLOBAL_STEP, step)
    return step
