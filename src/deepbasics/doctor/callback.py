"""The doctor as a callback of :func:`deepbasics.train.fit`: ``fit(..., callbacks=[DoctorCallback()])``.

Hooks (:class:`deepbasics.train.Callback`, each receiving the loop's :class:`~deepbasics.train.TrainState`):

- ``on_fit_start``: attach a :class:`~deepbasics.doctor.session.DoctorSession` to ``state.model`` with
  ``state.optimizer`` and ``state.loss_fn`` (continuing a state restored from a checkpoint);
- ``on_train_batch_end``: give the step's loss to the session (also a non-finite one, which ``fit`` skipped: it is a
  ``nonfinite`` finding), with the batch when the expensive extras are on;
- ``on_validation_epoch_end``: log the epoch's ``history.val_loss`` for the overfitting detector;
- ``on_fit_end``: detach, run every detector, keep the findings in :attr:`DoctorCallback.findings`, print the report
  (``verbose``).

The callback's ``state_dict`` is the session's (plain data), so :class:`~deepbasics.train.Checkpoint` saves it and
``fit(resume_from=...)`` continues the recorded trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..probe.layer_stats import DEFAULT_EVERY
from ..train.callbacks import Callback, TrainState
from .findings import Finding
from .schedule import DEFAULT_CHECK_EVERY
from .session import DoctorSession

__all__ = ["DoctorCallback"]


class DoctorCallback(Callback):
    """Watch a :func:`deepbasics.train.fit` run (module docstring). After ``fit``: :attr:`findings`, :attr:`session`.

    Args:
        every, layer_every, check_every, expensive_every, curvature, noise_scale: as
            :class:`~deepbasics.doctor.session.DoctorSession`.
        verbose: print the findings table at the end of ``fit``.
    """

    def __init__(
        self,
        *,
        every: int = 1,
        layer_every: int = DEFAULT_EVERY,
        check_every: int = DEFAULT_CHECK_EVERY,
        expensive_every: int | None = None,
        curvature: bool = False,
        noise_scale: bool = False,
        verbose: bool = False,
    ) -> None:
        self.settings = {
            "every": every,
            "layer_every": layer_every,
            "check_every": check_every,
            "expensive_every": expensive_every,
            "curvature": curvature,
            "noise_scale": noise_scale,
        }
        self.verbose = verbose
        self.session: DoctorSession | None = None
        self.findings: list[Finding] = []
        self._pending_state: dict[str, Any] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        """Once, before the first epoch: attach a session to the model."""
        self.session = DoctorSession(state.model, state.optimizer, loss_fn=state.loss_fn, **self.settings)
        if self._pending_state is not None:  # resumed from a checkpoint: continue the recorded trace
            self.session.load_state_dict(self._pending_state)
            self._pending_state = None
        self.session.attach()

    def on_train_batch_end(self, state: TrainState) -> None:
        """After every batch (stepped or skipped): the step's loss."""
        if self.session is not None and state.loss is not None:
            batch = state.batch if self.session.extras.enabled else None
            self.session.step(state.loss, batch=batch)

    def on_validation_epoch_end(self, state: TrainState) -> None:
        """After each validation pass: its loss, for the overfitting detector."""
        if self.session is not None and state.history.val_loss:
            self.session.log_val(state.history.val_loss[-1])

    def on_fit_end(self, state: TrainState) -> None:
        """Once, at the end: detach and judge."""
        if self.session is None:
            return
        self.session.detach()
        self.findings = self.session.finalize()
        if self.verbose:
            print(self.session.report())

    def state_dict(self) -> dict[str, Any]:
        """The session's state (plain data), for checkpoints."""
        return {} if self.session is None else self.session.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Keep a saved session state; it is loaded into the session created at the next ``on_fit_start``."""
        self._pending_state = dict(state_dict) if state_dict else None
