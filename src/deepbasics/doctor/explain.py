"""What each finding code means and what to do about it, in our words, citing the FAQ question.

:data:`EXPLANATIONS` maps a code to two or three sentences that give the FAQ's reasoning; :data:`FIXES` maps it to
a concrete action with a code snippet. :func:`make_finding` builds a :class:`~deepbasics.doctor.findings.Finding`
from a detector's numbers, appending a sentence about *this* run (``detail``) to the general explanation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .findings import CODES, FAQ_QUESTION, Finding, Severity

__all__ = ["EXPLANATIONS", "FIXES", "explain", "fix_for", "make_finding"]

EXPLANATIONS: Mapping[str, str] = {
    "nonfinite": (
        "A loss, gradient or activation became inf or nan. Floating point has a finite range: exp overflows above "
        "~88.7 in float32, log(0) is -inf, 0/0 is nan, and once one value is non-finite every later operation "
        "inherits it (FAQ Q8)."
    ),
    "exploding_gradient": (
        "Gradients grow as they travel back towards the input: each layer multiplies them by its weight matrix "
        "and activation slope, so weights that are too large make the product grow exponentially with depth, "
        "and updates overshoot (FAQ Q3.3.d)."
    ),
    "vanishing_gradient": (
        "The gradients of the input-side layers are orders of magnitude smaller than those of the output side: "
        "back-propagation multiplies by the activation's slope at every layer, at most 1/4 for a sigmoid, so "
        "early layers barely learn (FAQ Q3.3.a-c)."
    ),
    "dead_relu": (
        "Most units of a ReLU layer output 0 for every example. A ReLU's slope is 0 for negative inputs, so a "
        "unit that is negative on all data receives no gradient and never recovers; large learning rates and "
        "negative biases cause it (FAQ Q15.c)."
    ),
    "saturated_activation": (
        "Sigmoid/tanh units sit at their bounds, where the slope sigma'(z) = sigma(z)(1 - sigma(z)) is almost "
        "0, so almost no gradient passes them; pre-activations that are too large (big weights, unnormalized "
        "inputs) cause it (FAQ Q3.3.c)."
    ),
    "diverging_loss": (
        "The loss grows instead of falling. Gradient descent is only stable for learning rates below "
        "2 / lambda_max, lambda_max the largest Hessian eigenvalue; beyond it each step overshoots along the "
        "steepest direction by a growing amount (FAQ Q11.c)."
    ),
    "oscillating_loss": (
        "The loss jumps up and down without a downward trend while it is still high: steps overshoot the valley "
        "floor and bounce between its walls, the signature of a learning rate near or above 2 / lambda_max "
        "(FAQ Q3.1, Q11.c)."
    ),
    "slow_convergence": (
        "The loss has barely decreased over the training budget although it is not at a floor: the steps are too "
        "small for the curvature, or the problem is ill-conditioned (FAQ Q3.1)."
    ),
    "overfitting": (
        "The validation loss rises while the training loss keeps falling: the model fits the training examples' "
        "noise instead of what generalizes (FAQ Q10)."
    ),
    "ill_conditioned": (
        "The Hessian's eigenvalues span orders of magnitude: the loss is steep in some directions and flat in "
        "others, so a learning rate small enough for the steep ones crawls along the flat ones (FAQ Q3.1: the "
        "condition number is lambda_max / lambda_min)."
    ),
    "saddle_point": (
        "Training stalled at a point where the gradient is nearly zero but the Hessian has clearly negative "
        "eigenvalues: a saddle point, not a minimum. Plain gradient descent leaves a saddle slowly because the "
        "gradient that would push it off is tiny (FAQ Q3.2)."
    ),
    "bad_init_scale": (
        "Initial weights are far from the scale that keeps activation and gradient variance constant across "
        "layers (Glorot: Var(W) = 2 / (fan_in + fan_out) for tanh/linear units; He: 2 / fan_in for ReLU), so "
        "signals explode or die with depth (FAQ Q1.b-d)."
    ),
    "unnormalized_inputs": (
        "Input features are far from zero mean and unit variance. Large or unevenly scaled inputs make the "
        "Hessian ill-conditioned and saturate the first layer (FAQ Q3.1.d; LeCun et al. 1998)."
    ),
    "batchnorm_small_batch": (
        "BatchNorm normalizes with the mean and variance of the current batch; with fewer than 16 examples these "
        "estimates are noisy and differ from the running averages used at evaluation, which hurts accuracy "
        "(FAQ Q14.d)."
    ),
    "loss_activation_mismatch": (
        "The model's output activation does not match the loss: CrossEntropyLoss and BCEWithLogitsLoss expect "
        "raw logits and apply softmax/sigmoid themselves, and MSE on a sigmoid/softmax output gives vanishing "
        "gradients for confident wrong answers (FAQ Q5)."
    ),
    "naive_softmax": (
        "The model computes softmax as exp(x) / sum(exp(x)): exp overflows to inf for inputs above ~88.7 "
        "(float32) and the division gives nan. Subtracting max(x) first gives the same result without overflow "
        "(FAQ Q8.a)."
    ),
    "batch_size_advice": (
        "The gradient noise scale B_simple = tr(Sigma) / |G|^2 estimates the critical batch size: below it, "
        "larger batches cut the number of steps almost proportionally; far above it they only add compute "
        "(FAQ Q13; McCandlish et al. 2018)."
    ),
}

FIXES: Mapping[str, str] = {
    "nonfinite": (
        "Locate the first bad operation with deepbasics.nonfinite.locate_nonfinite(lambda: loss_fn(model(x), y)); "
        "use stable forms (F.log_softmax, F.cross_entropy, torch.logsumexp), add eps to denominators, lower the "
        "learning rate or clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)."
    ),
    "exploding_gradient": (
        "Clip the gradient norm before each step: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0); "
        "re-initialize with a variance-preserving scheme (deepbasics.init.he_normal_ for ReLU, glorot_uniform_ "
        "otherwise), lower the learning rate, or add normalization layers."
    ),
    "vanishing_gradient": (
        "Replace sigmoid/tanh hidden activations by ReLU (nn.ReLU()), initialize with deepbasics.init.he_normal_, "
        "add BatchNorm/LayerNorm between layers, or use residual connections (deepbasics.nn.resnet_mlp)."
    ),
    "dead_relu": (
        "Use a leaky variant (nn.LeakyReLU(0.01)) or ELU, lower the learning rate, and start biases at 0 with He "
        "init: nn.init.zeros_(layer.bias); deepbasics.init.he_normal_(layer.weight)."
    ),
    "saturated_activation": (
        "Standardize the inputs and re-initialize with Glorot scale (deepbasics.init.glorot_uniform_(w)); consider "
        "ReLU hidden units or a normalization layer before the activation."
    ),
    "diverging_loss": (
        "Lower the learning rate (e.g. by 10x): optimizer.param_groups[0]['lr'] *= 0.1; add gradient clipping "
        "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)) or a learning-rate warm-up."
    ),
    "oscillating_loss": (
        "Lower the learning rate (try 3-10x smaller) or use momentum/Adam with a smaller step; a decaying schedule "
        "such as torch.optim.lr_scheduler.CosineAnnealingLR also damps the bouncing."
    ),
    "slow_convergence": (
        "Raise the learning rate (try 10x) or switch to Adam: torch.optim.Adam(model.parameters(), lr=1e-3); "
        "standardize the inputs and check for vanishing gradients."
    ),
    "overfitting": (
        "Stop early at the best validation loss (deepbasics.train.EarlyStopping), add weight decay "
        "(torch.optim.AdamW(..., weight_decay=1e-2)) or dropout (nn.Dropout(0.2)), use data augmentation or "
        "more data, or a smaller model."
    ),
    "ill_conditioned": (
        "Standardize the inputs ((x - mean) / std per feature, deepbasics.data.Standardizer), use an adaptive "
        "optimizer (torch.optim.Adam) or momentum, and add normalization layers (BatchNorm/LayerNorm)."
    ),
    "saddle_point": (
        "Break the symmetry: re-initialize with random variance-preserving weights (deepbasics.init.orthogonal_ "
        "or glorot_uniform_) instead of (near-)zero ones, and use momentum or Adam, which leave saddles faster "
        "(FAQ Q3.2.c)."
    ),
    "bad_init_scale": (
        "Re-initialize each layer for its activation: deepbasics.init.he_normal_(layer.weight) before ReLU, "
        "deepbasics.init.glorot_uniform_(layer.weight) before tanh/sigmoid or at the output; biases at 0."
    ),
    "unnormalized_inputs": (
        "Standardize each feature with training-set statistics: mean, std = x_train.mean(0), x_train.std(0); "
        "x = (x - mean) / (std + 1e-8) (deepbasics.data.Standardizer does this)."
    ),
    "batchnorm_small_batch": (
        "Use batches of 16 or more, or a batch-independent normalization: nn.GroupNorm(num_groups, C) or "
        "nn.LayerNorm(features) (deepbasics.nn.GroupNorm, LayerNorm)."
    ),
    "loss_activation_mismatch": (
        "Return raw logits from the model: remove the final nn.Softmax before nn.CrossEntropyLoss, the final "
        "nn.Sigmoid before nn.BCEWithLogitsLoss, and train classifiers with cross-entropy instead of MSE."
    ),
    "naive_softmax": (
        "Use the stable forms: torch.softmax(x, dim) / F.log_softmax(x, dim), or subtract the max first: "
        "e = torch.exp(x - x.amax(dim, keepdim=True)); p = e / e.sum(dim, keepdim=True) "
        "(deepbasics.numerics.softmax)."
    ),
    "batch_size_advice": (
        "Move the batch size towards the critical batch size (scaling the learning rate with it), e.g. "
        "DataLoader(dataset, batch_size=B_crit); below it larger batches save steps, above it they waste compute."
    ),
}


def explain(code: str) -> str:
    """The general explanation of ``code`` (KeyError-free: unknown codes raise a ValueError naming the codes)."""
    _check_code(code)
    return EXPLANATIONS[code]


def fix_for(code: str) -> str:
    """The concrete fix for ``code``, with a code snippet."""
    _check_code(code)
    return FIXES[code]


def make_finding(
    code: str,
    severity: Severity | str,
    where: Iterable[str],
    evidence: Mapping[str, Any],
    *,
    detail: str = "",
    step: int | None = None,
) -> Finding:
    """A :class:`Finding` for ``code`` with the general explanation, followed by ``detail`` (this run's numbers)."""
    text = explain(code)
    if detail:
        text = f"{detail} {text}"
    return Finding(code, Severity(severity), tuple(where), dict(evidence), text, fix_for(code), step=step)


def _check_code(code: str) -> None:
    if code not in CODES:
        raise ValueError(f"code: expected one of {list(CODES)}, got {code!r}. Use a code from CODES.")


# Every code has text, and the FAQ question it cites is in FAQ_QUESTION (a new code must add all three).
if not set(EXPLANATIONS) == set(CODES) == set(FIXES) == set(FAQ_QUESTION):
    raise RuntimeError(
        f"deepbasics.doctor.explain: EXPLANATIONS/FIXES cover {sorted(set(EXPLANATIONS) ^ set(CODES))} differently "
        "from CODES. Give every code an explanation, a fix and a FAQ question."
    )
