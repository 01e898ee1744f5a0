"""The lab's experiments: modules named by the FAQ section they measure, found automatically.

Naming, one scheme for every file (``ls`` lists them in the FAQ's order):

- ``q<NN>[_<M>]_<topic>.py`` for an FAQ question, ``NN`` with two digits: ``q02_gaussian.py``,
  ``q03_3_vanishing.py`` (question 3.3), ``q13_gradient_noise.py``;
- ``cnn_<topic>.py``, ``rnn_<topic>.py`` (and ``ref_<topic>.py`` for reproductions of published tables) for
  the sections beyond the FAQ: ``cnn_weight_sharing.py``, ``rnn_stability.py``;
- ``_<what>.py`` for helpers shared by several experiment modules (``_deepnets.py``, ``_cnn.py``). A module
  over 400 lines is split by claim into ``<section>_<topic>.py`` parts, with shared code in such a helper.

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
