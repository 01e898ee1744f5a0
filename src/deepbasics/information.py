"""Entropy, cross-entropy and KL divergence of discrete distributions (FAQ Q7, which the FAQ leaves empty).

For distributions ``p`` and ``q`` over the same ``K`` outcomes (probability vectors along ``dim``):

    H(p)       = -sum_k p_k log p_k                        entropy
    H(p, q)    = -sum_k p_k log q_k                        cross-entropy
    KL(p || q) =  sum_k p_k log(p_k / q_k)                 Kullback-Leibler divergence (relative entropy)
    H(p, q)    =  H(p) + KL(p || q)

with the conventions ``0 log 0 = 0`` and ``0 log(0 / q) = 0``; ``p log(p / 0) = +inf`` for ``p > 0``, so KL and
cross-entropy are ``+inf`` where ``q`` puts zero mass on an outcome that ``p`` can produce. KL is ``>= 0`` with
equality iff ``p = q`` (Gibbs' inequality), and it is not symmetric: ``KL(p || q) != KL(q || p)`` in general.
Because ``H(p)`` does not depend on ``q``, minimizing the cross-entropy over ``q`` minimizes ``KL(p || q)``,
and the minimizer is ``q = p`` (FAQ claim Q7.b): this is why a classifier trained with cross-entropy
estimates the label distribution.

Units are nats (natural log) by default; ``base=2`` gives bits (divide by ``log 2``).
The ``*_from_logits`` variants take unnormalized log-probabilities, use the stable
:func:`deepbasics.numerics.log_softmax`, and stay finite and accurate for logits as large as ``|1e4|``, where
``softmax`` would round small probabilities to 0 and ``log`` of them would be ``-inf``.

Reference: Cover & Thomas, *Elements of Information Theory*, 2nd ed. (2006), ch. 2: sec. 2.1 (entropy),
sec. 2.3 (relative entropy), Theorem 2.6.3 (information inequality ``D(p || q) >= 0``).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_dim, check_real, check_same_shape, check_tensor, fail
from .numerics import log_softmax, upcast, xlogy

__all__ = [
    "cross_entropy",
    "cross_entropy_from_logits",
    "entropy",
    "entropy_from_logits",
    "kl_divergence",
    "kl_divergence_from_logits",
]


def _sum_tolerance(dtype: torch.dtype) -> float:
    """How far a row sum may be from 1: ``sqrt(eps)`` of the dtype, but at least 1e-6.

    Far above rounding after a user's own ``p / p.sum()`` (a few eps), far below real mistakes (passing
    logits or counts). The 1e-6 floor accepts float32 probabilities converted to float64.
    """
    return max(math.sqrt(torch.finfo(dtype).eps), 1e-6)


def _row_index(bad: torch.Tensor) -> str:
    """Describe the first True entry of ``bad`` (the rows over the non-reduced dims)."""
    if bad.dim() == 0:
        return "the distribution"
    return f"row {tuple(int(i) for i in bad.nonzero()[0])} (index over the other dims)"


def _hint(call: str) -> str:
    return f"or use {call} if these are unnormalized scores (logits)"


def _check_distribution(p: object, name: str, dim: int, hint: str) -> tuple[torch.Tensor, int]:
    """Check that ``p`` holds finite, non-negative probabilities summing to 1 along ``dim``."""
    p = check_tensor(p, name, floating=True, min_dim=1)
    d = check_dim(p, dim)
    pm = upcast(p.detach()).movedim(d, -1)  # (..., K): one distribution per row
    nonfinite = ~torch.isfinite(pm).all(-1)
    negative = (pm < 0).any(-1)
    sums = pm.sum(-1)
    tol = _sum_tolerance(p.dtype)
    unnormalized = (sums - 1).abs() > tol
    bad = nonfinite | negative | unnormalized
    if bool(bad.any()):
        where = _row_index(bad)
        first = tuple(bad.nonzero()[0]) if bad.dim() else ()
        row = pm[first] if first else pm
        if bool(nonfinite[first]):
            got = f"inf or nan entries in {where}"
            fix = "Remove or mask the non-finite entries before calling."
        elif bool(negative[first]):
            got = f"a negative entry {float(row.min()):.4g} in {where}"
            fix = f"Probabilities must be >= 0: clamp them, {hint}."
        else:
            got = f"{where} summing to {float(sums[first]):.8g} (tolerance {tol:.1e})"
            fix = f"Normalize with {name} / {name}.sum({dim}, keepdim=True), {hint}."
        raise fail(ValueError, name, f"a probability distribution along dim {dim}", got, fix)
    return p, d


def _check_logits(logits: object, name: str, dim: int) -> tuple[torch.Tensor, int]:
    """Logits may be -inf (masked outcomes) but not nan or +inf, and each row needs one finite entry."""
    logits = check_tensor(logits, name, floating=True, min_dim=1)
    d = check_dim(logits, dim)
    lm = logits.detach()
    if bool((torch.isnan(lm) | (lm == math.inf)).any()):
        raise fail(ValueError, name, "logits without nan or +inf", "nan or +inf entries", "Clamp or fix the logits.")
    if bool((lm == -math.inf).all(d).any()):
        raise fail(
            ValueError, name, "at least one finite logit per row", "a row of all -inf", "Unmask one outcome per row."
        )
    return logits, d


def _log_base(base: float | None) -> float:
    """``log(base)`` to divide nats by (1.0 for nats)."""
    if base is None:
        return 1.0
    b = check_real(base, "base", low=0.0, low_inclusive=False)
    if b == 1.0:
        raise fail(ValueError, "base", "a logarithm base > 0 other than 1", base, "Use None (nats), 2 (bits) or 10.")
    return math.log(b)


def _pick(p: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` where ``p > 0``, else 0: the ``0 log 0 = 0`` convention without a nan gradient.

    ``value`` must already be finite where ``p == 0`` (callers zero their inputs there first).
    """
    return torch.where(p > 0, value, torch.zeros_like(value))


def entropy(p: torch.Tensor, dim: int = -1, base: float | None = None) -> torch.Tensor:
    """Shannon entropy ``H(p) = -sum_k p_k log p_k`` along ``dim`` (``0 log 0 = 0``).

    Args:
        p: probabilities, shape (..., K, ...) with the K outcomes along ``dim``; non-negative, finite, each
            distribution summing to 1 (within ``max(sqrt(eps), 1e-6)`` of the dtype), else ``ValueError``.
        dim: the outcome dimension (default last). base: None for nats, 2 for bits.

    Returns:
        ``p``'s shape without ``dim``; ``p``'s dtype and device. ``0 <= H(p) <= log K``.

    Reference: Cover & Thomas (2006), sec. 2.1, eq. (2.1).
    """
    p, d = _check_distribution(p, "p", dim, _hint("entropy_from_logits(logits)"))
    pc = upcast(p)
    return (-xlogy(pc, pc).sum(d) / _log_base(base)).to(p.dtype)


def cross_entropy(p: torch.Tensor, q: torch.Tensor, dim: int = -1, base: float | None = None) -> torch.Tensor:
    """Cross-entropy ``H(p, q) = -sum_k p_k log q_k = H(p) + KL(p || q)`` along ``dim``.

    ``+inf`` where some ``q_k = 0 < p_k``; terms with ``p_k = 0`` contribute 0. ``p`` is the data (target)
    distribution and ``q`` the model's. For class logits use :func:`cross_entropy_from_logits` or
    :func:`deepbasics.losses.cross_entropy`.

    Args:
        p, q: probability tensors of the same shape (checked like :func:`entropy`'s ``p``).
        dim: the outcome dimension (default last). base: None for nats, 2 for bits.

    Returns:
        ``p``'s shape without ``dim``; ``H(p, q) >= H(p)``.

    Reference: Cover & Thomas (2006), sec. 2.3 and eq. (2.26) for KL; the decomposition follows.
    """
    p, d = _check_distribution(p, "p", dim, _hint("cross_entropy_from_logits(p, logits_q)"))
    q, _ = _check_distribution(q, "q", dim, _hint("cross_entropy_from_logits(p, logits_q)"))
    check_same_shape(p, q, "p", "q")
    return (-xlogy(upcast(p), upcast(q)).sum(d) / _log_base(base)).to(p.dtype)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1, base: float | None = None) -> torch.Tensor:
    """Kullback-Leibler divergence ``KL(p || q) = sum_k p_k log(p_k / q_k)`` along ``dim``.

    ``KL >= 0`` with equality iff ``p = q`` (Gibbs' inequality; rounding may leave values of order
    ``-eps`` when ``p`` is close to ``q``; they are not clamped, so gradients stay honest). Not symmetric.
    ``+inf`` where ``q_k = 0 < p_k``; terms with ``p_k = 0`` are 0. Same as ``scipy.stats.entropy(p, q)``.

    Args:
        p, q: probability tensors of the same shape (checked like :func:`entropy`'s ``p``).
        dim: the outcome dimension (default last). base: None for nats, 2 for bits.

    Returns:
        ``p``'s shape without ``dim``.

    Reference: Cover & Thomas (2006), sec. 2.3, eq. (2.26); Theorem 2.6.3.
    """
    p, d = _check_distribution(p, "p", dim, _hint("kl_divergence_from_logits(logits_p, logits_q)"))
    q, _ = _check_distribution(q, "q", dim, _hint("kl_divergence_from_logits(logits_p, logits_q)"))
    check_same_shape(p, q, "p", "q")
    pc, qc = upcast(p), upcast(q)
    return ((xlogy(pc, pc) - xlogy(pc, qc)).sum(d) / _log_base(base)).to(p.dtype)


def entropy_from_logits(logits: torch.Tensor, dim: int = -1, base: float | None = None) -> torch.Tensor:
    """``H(softmax(logits))`` computed as ``-sum_k p_k log p_k`` with ``log p = log_softmax(logits)``.

    Finite and accurate for ``|logit|`` up to 1e4 and beyond: ``log p`` never comes from ``log`` of an
    underflowed probability. ``-inf`` logits mark impossible outcomes (they contribute 0); nan or ``+inf``
    logits raise.

    Args:
        logits: unnormalized log-probabilities, shape (..., K, ...); dim: the class dimension; base as above.

    Returns:
        ``logits``' shape without ``dim``; its dtype and device.
    """
    logits, d = _check_logits(logits, "logits", dim)
    logp = log_softmax(upcast(logits), d)
    p = logp.exp()
    safe_logp = _pick(p, logp)  # -inf logits: p = 0 and log p = -inf; keep 0 * (-inf) out of the graph
    return (-_pick(p, p * safe_logp).sum(d) / _log_base(base)).to(logits.dtype)


def cross_entropy_from_logits(
    p: torch.Tensor, logits_q: torch.Tensor, dim: int = -1, base: float | None = None
) -> torch.Tensor:
    """``H(p, softmax(logits_q)) = -sum_k p_k log_softmax(logits_q)_k`` along ``dim``.

    ``p`` is a probability tensor (checked as in :func:`entropy`), ``logits_q`` the model's logits of the same
    shape. Finite for ``|logit|`` up to 1e4; ``+inf`` only where a ``-inf`` logit meets ``p_k > 0``.
    This is the soft-label cross-entropy loss per row (``torch.nn.functional.cross_entropy`` with
    probability targets, without the reduction).
    """
    p, d = _check_distribution(p, "p", dim, "or pass softmax(scores) if p holds unnormalized scores")
    logits_q, _ = _check_logits(logits_q, "logits_q", dim)
    check_same_shape(p, logits_q, "p", "logits_q")
    pc = upcast(p)
    logq = log_softmax(upcast(logits_q), d)
    term = pc * _pick(pc, logq)  # p_k = 0 meets log q_k = -inf: 0, not nan
    return (-term.sum(d) / _log_base(base)).to(torch.promote_types(p.dtype, logits_q.dtype))


def kl_divergence_from_logits(
    logits_p: torch.Tensor, logits_q: torch.Tensor, dim: int = -1, base: float | None = None
) -> torch.Tensor:
    """``KL(softmax(logits_p) || softmax(logits_q)) = sum_k p_k (log p_k - log q_k)`` with stable logs.

    Both log-probabilities come from :func:`deepbasics.numerics.log_softmax`, so the result is finite and
    accurate for ``|logit|`` up to 1e4 (where probabilities round to 0 and the probability version would
    see ``0 log 0`` or ``log(p / 0)``). ``+inf`` only where ``logits_q`` is ``-inf`` and ``p_k > 0``.
    """
    logits_p, d = _check_logits(logits_p, "logits_p", dim)
    logits_q, _ = _check_logits(logits_q, "logits_q", dim)
    check_same_shape(logits_p, logits_q, "logits_p", "logits_q")
    logp = log_softmax(upcast(logits_p), d)
    logq = log_softmax(upcast(logits_q), d)
    p = logp.exp()
    diff = _pick(p, logp) - _pick(p, logq)  # both zeroed where p = 0: no (-inf) - (-inf) = nan
    dtype = torch.promote_types(logits_p.dtype, logits_q.dtype)
    return (_pick(p, p * diff).sum(d) / _log_base(base)).to(dtype)
