"""Atomic, resumable checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the model, optimizer and scheduler ``state_dict``\\ s, every callback's state, the history,
the epoch and every random-number stream the run draws from (the global torch/CUDA, Python and NumPy RNGs and
the run's own ``torch.Generator``\\ s for shuffling and augmentation). Restoring all of them at an epoch
boundary makes a run that was killed and resumed end at exactly the same parameters as an uninterrupted one
(the same guarantee Lightning's fault-tolerant training aims for; PyTorch "Reproducibility" notes).

Two rules make it safe:

- **Atomic write.** The file is written to a temporary file in the same directory, flushed and fsynced, then
  moved over the old one with ``os.replace`` (atomic on POSIX and Windows): a crash mid-save leaves the
  previous checkpoint intact, never a truncated one.
- **weights_only loading.** Checkpoints are read with ``torch.load(weights_only=True)``, which refuses
  arbitrary pickled objects (loading an untrusted pickle executes code). So everything saved is tensors,
  numbers, strings and plain lists/tuples/dicts; :func:`atomic_save` checks this before writing and names the
  offending entry.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_int, fail
from .._files import atomic_write
from .callbacks import DEFAULT_STOP_REASON, Callback, CallbackList, TrainState
from .history import History

__all__ = ["FORMAT", "Checkpoint", "atomic_save", "get_rng_state", "set_rng_state"]

FORMAT = "deepbasics.checkpoint/1"
_PLAIN = (bool, int, float, str, bytes, type(None), torch.Size, torch.dtype, torch.device)


def _check_plain(obj: object, where: str) -> None:
    # Exact types: subclasses such as numpy.float64, enum members or torch's TorchVersion (a str) are refused
    # by the weights_only unpickler, so they are refused here too, at save time, with the key that holds them.
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):  # type: ignore[arg-type]
            _check_plain(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():  # type: ignore[attr-defined]
            if type(k) not in (str, int):
                raise fail(TypeError, f"{where} key", "a str or int key", repr(k), "Use plain keys.")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise fail(
        TypeError,
        where,
        "tensors, numbers, strings, None or lists/tuples/dicts of them (torch.load(weights_only=True) refuses "
        "anything else, subclasses included)",
        type(obj).__name__,
        "Convert it in the state_dict (e.g. History.to_dict(), float(x), str(x), tensor.cpu()).",
    )


def atomic_save(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same directory and ``os.replace``.

    ``obj`` must hold only what ``torch.load(weights_only=True)`` accepts (checked first). On any error the
    temporary file is removed and the old ``path`` (if any) is untouched. Returns the path.
    """
    _check_plain(obj, "checkpoint")
    return atomic_write(path, lambda f: torch.save(obj, f))


def get_rng_state(generators: Iterable[torch.Generator] = ()) -> dict[str, Any]:
    """Every random stream as plain data: global torch CPU (and CUDA, if initialized), Python ``random``,
    legacy NumPy global state, and each of ``generators`` (in order)."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - we save/restore the legacy global state
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generators: Iterable[torch.Generator] = ()) -> None:
    """Inverse of :func:`get_rng_state`; ``generators`` must match the saved ones in number and order."""
    generators = list(generators)
    saved = list(state["generators"])
    if len(saved) != len(generators):
        raise fail(
            ValueError,
            "checkpoint",
            f"{len(generators)} generator state(s), one per random stream of this run",
            f"{len(saved)}",
            "Resume with the same kind of data (tensors vs DataLoader, same augmentation) as the saved run.",
        )
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_as_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": "MT19937",
            "state": {"key": npst["key"].cpu().numpy().astype(np.uint32), "pos": npst["pos"]},
            "has_gauss": npst["has_gauss"],
            "gauss": npst["gauss"],
        }
    )
    for g, s in zip(generators, saved, strict=True):
        g.set_state(s.cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(obj: Any) -> Any:
    return tuple(_as_tuple(o) for o in obj) if isinstance(obj, list | tuple) else obj


def training_state(state: TrainState) -> dict[str, Any]:
    """The checkpoint payload for the end of ``state.epoch`` (called by :class:`Checkpoint`)."""
    history = state.history.to_dict()
    if state.should_stop and history["stop_reason"] is None:  # fit records it only after the epoch-end hooks
        history["stop_reason"] = state.stop_reason or DEFAULT_STOP_REASON
    return {
        "format": FORMAT,
        "epoch": state.epoch,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": None if state.scheduler is None else state.scheduler.state_dict(),
        "callbacks": {} if state.callbacks is None else state.callbacks.state_dict(),
        "history": history,
        "should_stop": bool(state.should_stop),
        "stop_reason": state.stop_reason,
        "rng": get_rng_state(state.generators),
        "torch_version": str(torch.__version__),
    }


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True, map_location="cpu")`` and check its format."""
    path = Path(path)
    if not path.is_file():
        raise fail(FileNotFoundError, "resume_from", "an existing checkpoint file", str(path), "Check the path.")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise fail(ValueError, str(path), f"a {FORMAT!r} checkpoint", repr(got), "Save it with train.Checkpoint.")
    return payload


def restore(
    payload: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    callbacks: CallbackList | Iterable[Callback] = (),
) -> None:
    """Load model, optimizer, scheduler and callback states from a checkpoint payload (not the RNG)."""
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise fail(ValueError, "scheduler", "a checkpoint saved with a scheduler", "none saved", "Pass None.")
        scheduler.load_state_dict(payload["scheduler"])
    cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
    cbs.load_state_dict(payload["callbacks"])


class Checkpoint(Callback):
    """Save the whole training state to ``path`` at the end of every ``every``-th epoch (and the last one).

    Runs after all other callbacks in ``on_train_epoch_end`` (``runs_last``), so their states are saved as the
    next epoch will see them. The file is overwritten atomically (:func:`atomic_save`). Continue a killed run
    with ``fit(..., callbacks=[ckpt], resume_from=ckpt.path)`` and the same ``epochs`` (the total);
    in your own loop use :meth:`resume`.
    """

    runs_last = True

    def __init__(self, path: str | os.PathLike[str], every: int = 1):
        if not isinstance(path, str | os.PathLike):
            raise fail(TypeError, "path", "a str or os.PathLike", type(path).__name__, "Pass a file path.")
        self.path = Path(path)
        self.every = check_int(every, "every", low=1)
        self.saved_epochs: list[int] = []

    def on_train_epoch_end(self, state: TrainState) -> None:
        """Save when ``(epoch + 1) % every == 0``, at the last epoch, or when the run is about to stop."""
        last = state.epoch + 1 >= state.epochs
        if (state.epoch + 1) % self.every == 0 or last or state.should_stop:
            self.save(state)

    def save(self, state: TrainState) -> Path:
        """Write the checkpoint for the current epoch now."""
        atomic_save(training_state(state), self.path)
        self.saved_epochs.append(state.epoch)
        return self.path

    @staticmethod
    def load(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The raw payload (tensors on the CPU), read with ``torch.load(weights_only=True)``."""
        return load_checkpoint(path)

    @staticmethod
    def resume(
        path: str | os.PathLike[str],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        callbacks: Iterable[Callback] = (),
        generators: Iterable[torch.Generator] = (),
    ) -> tuple[int, History]:
        """Restore a run in place (states, RNG streams) and return ``(next_epoch, history)``.

        For hand-written loops; :func:`~deepbasics.train.fit` does this itself with ``resume_from``.
        """
        payload = load_checkpoint(path)
        generators = list(generators)
        if len(payload["rng"]["generators"]) != len(generators):
            set_rng_state(payload["rng"], generators)  # raises the explanatory error before anything is changed
        restore(payload, model, optimizer, scheduler, callbacks)
        set_rng_state(payload["rng"], generators)
        return int(payload["epoch"]) + 1, History.from_dict(payload["history"])
