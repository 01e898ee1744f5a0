"""The lab's experiments: one module per FAQ question (``q2_gaussian.py``, ``q3_3_gradients.py``, ...).

Every module in this folder whose name does not start with ``_`` is imported by :func:`discover`, which
:func:`deepbasics.lab.experiments` and :func:`deepbasics.lab.run` call first; importing a module runs its
``@experiment(...)`` decorators, which register the experiments. A new file needs no other change.
How to write one: see the docstring of :mod:`deepbasics.lab`.

Importing this package alone imports no experiment module, so ``import deepbasics.lab`` stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["discover"]


def discover() -> list[str]:
    """Import every experiment module of this package (idempotent); return their names.

    Raises:
        ImportError: a module failed to import; the message names it. A broken module is a bug to fix,
            not an experiment to skip silently.
    """
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ImportError(
                f"deepbasics.lab: expected every module in lab/experiments/ to import, but {name} raised "
                f"{type(exc).__name__}: {exc}. Fix the module, or prefix its file name with '_' to leave it out."
            ) from exc
        names.append(name)
    return names
