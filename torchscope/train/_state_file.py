"""The ``checkpoint`` state file beside TensorFlow checkpoints, and finding the latest one.

It is a ``CheckpointState`` protocol buffer in text form::

    model_checkpoint_path: "model.ckpt-300"
    all_model_checkpoint_paths: "model.ckpt-200"
    all_model_checkpoint_paths: "model.ckpt-300"

Paths may be relative to the file's folder (what torchscope writes, and TensorFlow's
``CheckpointManager``) or absolute (TensorFlow 1's ``Saver`` by default).

>>> parse_state('model_checkpoint_path: "a\\\\"b"\\nall_model_checkpoint_paths: "x"\\n')
{'model_checkpoint_path': ['a"b'], 'all_model_checkpoint_paths': ['x']}
"""

from __future__ import annotations

import contextlib
import os
import re

__all__ = ["latest_checkpoint", "parse_state", "read_state", "write_state"]

STATE_FILE = "checkpoint"
_LINE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(".*"|\'.*\'|[^\s#]+)\s*(#.*)?$')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "a": "\a"}
_ESCAPES |= {"b": "\b", "f": "\f", "v": "\v", "?": "?"}


def _unquote(text: str) -> str:
    """A text-format string literal's value (C escapes; bytes as UTF-8)."""
    body = text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt].encode()
            i += 2
        elif nxt == "x":
            digits = re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2 :])
            if digits is None:
                raise ValueError(f"bad escape in {text}")
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif nxt.isdigit():
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :])
            if digits is None:
                raise ValueError(f"bad escape in {text}")
            out.append(int(digits.group(), 8))
            i += 1 + len(digits.group())
        else:
            raise ValueError(f"bad escape in {text}")
    return out.decode("utf-8", "surrogateescape")


def _quote(value: str) -> str:
    out = []
    for byte in value.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def parse_state(text: str) -> dict[str, list[str]]:
    """Field -> values of a state file's text (numbers kept as their text)."""
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"line {number} of a checkpoint state file is not 'field: value'")
        name, value = match.group(1), match.group(2)
        if value[0] in "\"'":
            value = _unquote(value)
        fields.setdefault(name, []).append(value)
    return fields


def read_state(directory: str, latest_filename: str | None = None) -> dict[str, list[str]] | None:
    """The state file of ``directory`` (None if there is none), paths made absolute."""
    path = os.path.join(directory, latest_filename or STATE_FILE)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fields = parse_state(text)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    for key in ("model_checkpoint_path", "all_model_checkpoint_paths"):
        if key in fields:
            fields[key] = [
                p if os.path.isabs(p) else os.path.join(directory, p) for p in fields[key]
            ]
    return fields


def write_state(directory: str, latest: str, all_paths: list[str]) -> None:
    """Writes the state file (atomically: a temporary file renamed over it). Paths inside
    ``directory`` are written relative to it."""

    def shown(path: str) -> str:
        relative = os.path.relpath(path, directory)
        return path if relative.startswith("..") else relative

    lines = [f"model_checkpoint_path: {_quote(shown(latest))}"]
    lines += [f"all_model_checkpoint_paths: {_quote(shown(p))}" for p in all_paths]
    path = os.path.join(directory, STATE_FILE)
    temp = f"{path}.tmp{os.getpid()}"
    try:
        with open(temp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The prefix of the newest checkpoint in ``checkpoint_dir`` (as its state file names it),
    or None if there is no state file or the checkpoint it names is gone; as
    ``tf.train.latest_checkpoint``.

    >>> latest_checkpoint("/nonexistent") is None
    True
    """
    state = read_state(os.fspath(checkpoint_dir), latest_filename)
    if not state or not state.get("model_checkpoint_path"):
        return None
    prefix = state["model_checkpoint_path"][-1]
    if os.path.exists(prefix + ".index") or os.path.exists(prefix):  # V2, or a V1 file
        return prefix
    return None
