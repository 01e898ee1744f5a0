"""Crash-safe files and JSON data for the lab: atomic writes, and outputs turned into plain JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._files import atomic_write

__all__ = ["finite_or_none", "read_json", "to_jsonable", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part.

    Through :func:`deepbasics._files.atomic_write`: a run killed mid-write leaves no truncated cache entry.
    """
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: Path, data: Any, *, strict: bool = False) -> None:
    """Atomically write ``data`` as indented JSON; ``strict`` forbids NaN/inf (standard JSON)."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=not strict) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or ``None`` if it is missing or unreadable (a cache miss, never a crash)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def to_jsonable(obj: Any, where: str) -> Any:
    """Turn an experiment's output into plain JSON data (numpy and torch values become numbers and lists).

    ``where`` names the place for the error message (``"seed 0 output['curve']"``). Anything else is a
    ``TypeError``: outputs are cached and reported, so they must survive a JSON round trip unchanged.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: expected string keys, got {key!r}. Use str keys in returned dicts.")
            out[key] = to_jsonable(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors (any device)
    if callable(tolist) and type(obj).__module__.split(".")[0] in ("numpy", "torch"):
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
        return to_jsonable(obj.tolist(), where)
    raise TypeError(
        f"{where}: expected JSON data (numbers, strings, lists, dicts, numpy or torch values), "
        f"got {type(obj).__name__}. Convert it to a number or a list before returning it."
    )


def finite_or_none(obj: Any) -> Any:
    """Replace NaN and infinities by ``None`` (JSON ``null``) everywhere in ``obj``, for standard JSON files."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_or_none(v) for v in obj]
    return obj
