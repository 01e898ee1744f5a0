"""The expensive extras of a watched run: Hessian extremes and the gradient noise scale, read-only.

:class:`Extras` runs, when the schedule says so (every ``expensive_every`` steps and at the end, only when asked):

- curvature: the extreme Hessian eigenvalues through :mod:`deepbasics.curvature` (:func:`.measure.measure_curvature`)
  on the last batch given to ``session.step(loss, batch=(x, y))``, with the session's ``loss_fn``;
- the gradient noise scale B_simple (McCandlish et al. 2018): on a data-parallel model from DDP's own gradient
  all-reduce (:class:`deepbasics.noise.DDPNoiseScale`: local norm before, global norm after, at almost no cost),
  else from gradients at two batch sizes on the last batch (:func:`.measure.measure_noise_scale`).

Guarantees: the model is evaluated in eval mode and restored, gradients come from ``torch.autograd.grad``
(``.grad`` untouched), every random draw happens under ``torch.random.fork_rng`` with a private generator, and the
loss calls these measurements make are hidden from the loss tap (:func:`.losstap.suspended`). A measurement that
fails or is skipped leaves a note instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .losstap import suspended

__all__ = ["Extras"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Extras:
    """Curvature and noise-scale measurements of one watched model (module docstring).

    Args:
        model: the (unwrapped) module. wrapper: what the user passed (a ``DistributedDataParallel`` enables the
            all-reduce noise scale). curvature, noise_scale: which extras to measure. loss_fn: ``loss_fn(model(x),
            y)`` -> scalar mean loss. notes: the session's notes, appended to.
    """

    def __init__(
        self,
        model: nn.Module,
        wrapper: nn.Module,
        *,
        curvature: bool,
        noise_scale: bool,
        loss_fn: LossFn | None,
        notes: list[str],
    ) -> None:
        self.model, self.wrapper = model, wrapper
        self.curvature, self.noise_scale = bool(curvature), bool(noise_scale)
        self.loss_fn = loss_fn
        self.notes = notes
        self.batch: tuple[Any, Any] | None = None
        self.curvature_result: dict[str, Any] | None = None
        self.noise_result: dict[str, Any] | None = None
        self._ddp_noise: Any = None  # deepbasics.noise.DDPNoiseScale (DDP model, noise_scale=True)

    @property
    def enabled(self) -> bool:
        """Whether any extra is measured."""
        return self.curvature or self.noise_scale

    def attach(self) -> None:
        """On a DDP model with ``noise_scale``: read the noise scale from DDP's all-reduce."""
        ddp = isinstance(self.wrapper, nn.parallel.DistributedDataParallel)
        if self.noise_scale and self._ddp_noise is None and ddp:
            from ..noise import DDPNoiseScale  # lazy: data-parallel runs only

            try:
                self._ddp_noise = DDPNoiseScale(self.wrapper)
            except (RuntimeError, ValueError) as error:  # DDP takes one communication hook, e.g. the script's own
                self._note(
                    f"noise scale from DDP's all-reduce skipped ({error}); with loss_fn and session.step(loss, "
                    "batch=(x, y)) it is measured on the batches instead."
                )

    def detach(self) -> None:
        """Stop feeding the DDP noise estimate (DDP keeps the hook; it now only averages)."""
        if self._ddp_noise is not None:
            self._ddp_noise.remove()

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def run(self, batch_size: int | None) -> None:
        """Measure the enabled extras now (module docstring)."""
        if not self.enabled:
            return
        if self.noise_scale and self._ddp_noise is not None:
            self._read_ddp_noise()
            if not self.curvature:
                return
        if self.loss_fn is None or self.batch is None:
            self._note(
                "curvature/noise-scale checks skipped: pass loss_fn to watch() and batch=(x, y) to session.step()."
            )
            return
        from .measure import measure_curvature, measure_noise_scale  # lazy: curvature/noise only when used

        x, y = self.batch
        device = next(self.model.parameters()).device
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), suspended():
            if self.curvature:
                result, note = measure_curvature(self.model, self.loss_fn, x, y)
                self.curvature_result = result or self.curvature_result
                if note:
                    self.notes.append(note)
            if self.noise_scale and self._ddp_noise is None:
                result, note = measure_noise_scale(self.model, self.loss_fn, x, y, batch_size)
                self.noise_result = result or self.noise_result
                if note:
                    self.notes.append(note)

    def _read_ddp_noise(self) -> None:
        """B_simple from DDP's all-reduce (:class:`deepbasics.noise.DDPNoiseScale`): no extra forward or backward."""
        try:
            scale = self._ddp_noise.estimate()
        except ValueError as error:  # fewer measured steps than one exchange
            self._note(f"noise scale skipped: {error}")
            return
        from .measure import noise_numbers

        self.noise_result = noise_numbers(scale, scale.b_big, source="ddp_allreduce")
