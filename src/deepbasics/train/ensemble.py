"""Ensemble prediction: combine the outputs of M independently trained models.

Averaging M models with errors of variance ``v`` and pairwise correlation ``c`` gives an expected squared
error ``c v + (1 - c) v / M``: it shrinks by up to a factor M when the errors are uncorrelated (Goodfellow,
Bengio & Courville, *Deep Learning*, 2016, section 7.11, "Bagging and other ensemble methods"; Dietterich,
"Ensemble methods in machine learning", 2000). FAQ claim Q10.a ("算法集成").

For classifiers with logits ``z_m`` of shape ``(N, C)``, ``reduce`` chooses the combination:

- ``"mean_prob"``:  ``p = (1/M) sum_m softmax(z_m)``            (average of predicted distributions)
- ``"mean_logit"``: ``z = (1/M) sum_m z_m``                      (geometric mean of the distributions, unnormalized)
- ``"vote"``:       ``v[n, c] = (1/M) #{m : argmax z_m[n] = c}``  (fraction of models voting for each class)

Each returns an ``(N, C)`` tensor whose ``argmax(-1)`` is the ensemble's class (votes tie to the lowest
class index). Binary models with a single logit per example (``(N,)`` or ``(N, 1)``) use the sigmoid instead of
the softmax and ``z > 0`` as the vote. For regression, ``"mean_logit"`` is the plain mean of the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_choice, check_module, check_tensor, fail

__all__ = ["ensemble_predict"]


@torch.no_grad()
def ensemble_predict(models: Sequence[nn.Module], inputs: torch.Tensor, reduce: str = "mean_prob") -> torch.Tensor:
    """Combine ``models``' predictions on ``inputs`` by ``reduce`` (see the module docstring).

    Every model runs in eval mode (dropout off, batch-norm running statistics) without gradients; each model's
    train/eval mode is restored afterwards. All models must return outputs of one shape. Returns a tensor of
    that shape (``"vote"`` and ``"mean_prob"`` in the outputs' float dtype).
    """
    check_choice(reduce, "reduce", ("mean_prob", "vote", "mean_logit"))
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or len(models) == 0:
        raise fail(
            TypeError if isinstance(models, nn.Module) else ValueError,
            "models",
            "a non-empty sequence of nn.Module",
            type(models).__name__ if isinstance(models, nn.Module) else repr(models),
            "Pass a list of trained models, e.g. [model_a, model_b].",
        )
    for i, m in enumerate(models):
        check_module(m, f"models[{i}]", has_params=False)
    inputs = check_tensor(inputs, "inputs")
    outputs = []
    for m in models:
        was_training = m.training
        m.eval()
        try:
            outputs.append(m(inputs))
        finally:
            m.train(was_training)
    shapes = {tuple(o.shape) for o in outputs}
    if len(shapes) > 1:
        raise fail(ValueError, "models", "outputs of one shape", sorted(shapes), "Ensemble models of one task only.")
    z = torch.stack(outputs)  # (M, N, C) or (M, N) / (M, N, 1) for binary
    binary = z.dim() == 2 or z.shape[-1] == 1
    if reduce == "mean_logit":
        return z.mean(dim=0)
    if reduce == "mean_prob":
        probs = torch.sigmoid(z) if binary else torch.softmax(z, dim=-1)
        return probs.mean(dim=0)
    # vote
    if binary:
        return (z > 0).to(z.dtype).mean(dim=0)
    num_classes = z.shape[-1]
    votes = torch.nn.functional.one_hot(z.argmax(dim=-1), num_classes)  # (M, N, C)
    return votes.to(z.dtype).mean(dim=0)
