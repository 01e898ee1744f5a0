"""deepbasics: deep-learning fundamentals as running evidence.

Layers (imports only point downwards):

- basics: :mod:`init`, :mod:`gaussian`, :mod:`numerics`, :mod:`information`, :mod:`activations`,
  :mod:`losses`, :mod:`autodiff`
- train: :mod:`optim`, :mod:`nn`, :mod:`train`, :mod:`data`
- probe: :mod:`probe`, :mod:`curvature`, :mod:`noise`, :mod:`nonfinite`
- doctor: :mod:`doctor`; lab: :mod:`lab`; face: :mod:`cli`

Submodules load on first attribute access (``import deepbasics as db; db.lab``), so ``import deepbasics``
stays cheap and never pulls in matplotlib or the report templates unless they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_SUBMODULES = (
    "init",
    "gaussian",
    "numerics",
    "information",
    "activations",
    "losses",
    "autodiff",
    "optim",
    "nn",
    "train",
    "data",
    "probe",
    "curvature",
    "noise",
    "nonfinite",
    "doctor",
    "lab",
    "faq",
    "cli",
)

__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'deepbasics' has no attribute {name!r}; available: {', '.join(_SUBMODULES)}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from . import (  # noqa: F401
        activations,
        autodiff,
        cli,
        curvature,
        data,
        doctor,
        faq,
        gaussian,
        information,
        init,
        lab,
        losses,
        nn,
        noise,
        nonfinite,
        numerics,
        optim,
        probe,
        train,
    )
