"""Adapters that attach the doctor to other training frameworks (optional extras, imported lazily).

- :mod:`.lightning`: :class:`~deepbasics.integrations.lightning.DoctorCallback` for PyTorch Lightning
  (``pip install deepbasics[lightning]``).

Nothing here is imported by ``import deepbasics``; each adapter imports its framework only when used.
"""

from __future__ import annotations

__all__ = ["lightning"]
