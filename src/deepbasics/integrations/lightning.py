"""A PyTorch Lightning callback that watches ``fit`` with the doctor: ``Trainer(callbacks=[DoctorCallback()])``.

Hooks (Lightning's ``Callback`` API, same names and signatures):

- ``on_fit_start(trainer, pl_module)``: attach a :class:`~deepbasics.doctor.watch.DoctorSession` to ``pl_module``
  (its optimizer is taken from ``trainer.optimizers`` when there is exactly one);
- ``on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)``: feed the batch's loss
  (``outputs["loss"]``, or ``outputs`` itself when it is a tensor) to ``session.step``;
- ``on_validation_epoch_end(trainer, pl_module)``: log ``trainer.callback_metrics["val_loss"]`` when present
  (for the overfitting detector; without it, the validation losses the module computes with ``torch.nn`` losses in
  ``validation_step`` are seen by the session's loss tap, one pass per validation epoch);
- ``on_fit_end(trainer, pl_module)``: detach, run every detector, keep the findings in ``self.findings``, print
  the report (``verbose``) and log ``doctor/<severity>`` counts through ``pl_module.log`` when possible.

Lightning is an optional extra, imported only when the callback is created: without it, construction raises an
``ImportError`` that names ``pip install deepbasics[lightning]``. Reference: Lightning docs, "Callback" (hook
order and signatures). ``tests/test_integrations.py`` runs it inside the real ``lightning.pytorch.Trainer``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..doctor.findings import Finding, Severity
from ..doctor.session import DoctorSession

__all__ = ["DoctorCallback", "lightning_callback_base"]

_INSTALL = "pip install deepbasics[lightning]"


def lightning_callback_base() -> type:
    """Lightning's ``Callback`` class (``lightning.pytorch``, else the older ``pytorch_lightning``).

    Raises ``ImportError`` naming ``pip install deepbasics[lightning]`` when neither is installed.
    """
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name).Callback
        except ImportError:
            continue
    raise ImportError(
        "DoctorCallback: expected PyTorch Lightning to be installed, got neither `lightning` nor "
        f"`pytorch_lightning`. Install the extra with `{_INSTALL}`."
    )


class DoctorCallback:
    """Watch a Lightning ``fit`` (module docstring). After ``fit``: ``callback.findings`` and ``callback.session``.

    Args:
        every, layer_every, check_every: as :class:`~deepbasics.doctor.watch.DoctorSession`.
        verbose: print the findings table at the end of ``fit``.

    The instance is also a real ``lightning.pytorch.Callback`` (its class is rebuilt on that base at
    construction), so ``Trainer(callbacks=[DoctorCallback()])`` accepts it.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> DoctorCallback:
        base = lightning_callback_base()  # ImportError with the install hint when Lightning is missing
        if not issubclass(cls, base):
            cls = _with_base(cls, base)
        return object.__new__(cls)

    def __init__(self, *, every: int = 1, layer_every: int = 10, check_every: int = 100, verbose: bool = True):
        self.every, self.layer_every, self.check_every = every, layer_every, check_every
        self.verbose = verbose
        self.session: DoctorSession | None = None
        self.findings: list[Finding] = []
        self._pending_state: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Called when ``fit`` begins: attach a session to ``pl_module``."""
        optimizers = list(getattr(trainer, "optimizers", None) or [])
        optimizer = optimizers[0] if len(optimizers) == 1 else None
        self.session = DoctorSession(
            pl_module, optimizer, every=self.every, layer_every=self.layer_every, check_every=self.check_every
        )
        if self._pending_state is not None:  # resumed from a checkpoint: continue the recorded trace
            self.session.load_state_dict(self._pending_state)
            self._pending_state = None
        self.session.attach()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each training batch: give its loss to the session."""
        if self.session is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.session.step(loss)  # a tensor (kept without a host sync), a float, or None (counted, not recorded)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Called after each validation epoch: log ``val_loss`` from ``trainer.callback_metrics`` if present."""
        metrics = getattr(trainer, "callback_metrics", None) or {}
        if self.session is not None and "val_loss" in metrics and not getattr(trainer, "sanity_checking", False):
            self.session.log_val(metrics["val_loss"])

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Called when ``fit`` ends: detach, run the detectors, report."""
        if self.session is None:
            return
        self.session.detach()
        self.findings = self.session.finalize()
        logger = getattr(trainer, "logger", None)
        if logger is not None and hasattr(logger, "log_metrics"):
            counts = {f"doctor/{s.value}": float(sum(f.severity == s for f in self.findings)) for s in Severity}
            logger.log_metrics(counts, step=getattr(trainer, "global_step", 0))
        if self.verbose:
            print(self.session.report())

    def state_dict(self) -> dict[str, Any]:
        """The session's state (Lightning saves it in checkpoints)."""
        return {} if self.session is None else self.session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a saved session state; it is loaded into the session created at the next ``on_fit_start``."""
        self._pending_state = dict(state_dict)


_CLASSES: dict[tuple[type, type], type] = {}


def _with_base(cls: type, base: type) -> type:
    key = (cls, base)
    if key not in _CLASSES:
        _CLASSES[key] = type(
            cls.__name__, (cls, base), {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        )
    return _CLASSES[key]
