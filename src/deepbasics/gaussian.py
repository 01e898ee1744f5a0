r"""The Gaussian: its densities, why it is the default prior, and the central limit theorem (FAQ Q2, Q12).

The FAQ's densities, with ``x, mu`` real (or ``d``-vectors), ``sigma^2 > 0`` and ``Sigma`` symmetric
positive definite (SPD):

    p(x | mu, sigma^2) = 1 / sqrt(2 pi sigma^2) * exp(-(x - mu)^2 / (2 sigma^2))
    p(x | mu, Sigma)   = 1 / sqrt((2 pi)^d det Sigma) * exp(-1/2 (x - mu)^T Sigma^{-1} (x - mu))

The FAQ gives two reasons to default to it (Goodfellow, Bengio & Courville, 2016, sec. 3.9.3):

1. the central limit theorem: standardized sums of independent variables approach N(0, 1), with a
   distance that shrinks like ``1 / sqrt(n)`` (Berry-Esseen): :func:`standardized_sum`,
   :func:`ks_distance_to_normal`, :func:`berry_esseen_bound`;
2. maximum entropy: among all densities on the reals with variance ``sigma^2`` the normal has the largest
   differential entropy ``1/2 log(2 pi e sigma^2)`` (Cover & Thomas, 2006, thm. 8.6.5):
   :func:`normal_entropy`, :func:`max_entropy_table`.

Densities are computed in log space (a density underflows long before its log does); ``*_pdf`` is
``exp(*_logpdf)``. Entropies are in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._checks import check_generator, check_int, check_positive, check_real, check_tensor, fail

__all__ = [
    "DISTRIBUTIONS",
    "Distribution",
    "bernoulli",
    "berry_esseen_bound",
    "exponential",
    "ks_distance_to_normal",
    "laplace",
    "max_entropy_table",
    "mvn_logpdf",
    "mvn_pdf",
    "normal",
    "normal_entropy",
    "normal_logpdf",
    "normal_pdf",
    "standardized_sum",
    "uniform",
]

_LOG_2PI = math.log(2.0 * math.pi)
# Shevtsova (2011): the Berry-Esseen constant for iid sums is at most 0.4748.
BERRY_ESSEEN_C = 0.4748
# standardized_sum draws at most this many values at once (32 MiB in float64), summing in chunks over n.
_MAX_DRAWS_PER_CHUNK = 1 << 22


# ------------------------------------------------------------------------------------------- univariate
def _as_param(value: object, name: str, x: torch.Tensor) -> torch.Tensor:
    """A mean/variance argument as a tensor on ``x``'s device, broadcastable with ``x``."""
    if isinstance(value, torch.Tensor):
        check_tensor(value, name, floating=True)
        if value.device != x.device:
            raise fail(ValueError, name, f"a tensor on {x.device} like x", f"one on {value.device}", "Move it.")
    else:
        value = torch.as_tensor(check_real(value, name), dtype=x.dtype, device=x.device)
    try:
        torch.broadcast_shapes(x.shape, value.shape)
    except RuntimeError:
        raise fail(
            ValueError, name, f"a shape broadcastable with x {tuple(x.shape)}", tuple(value.shape), "Reshape it."
        ) from None
    return value


def _check_variance(var: torch.Tensor, name: str = "var") -> None:
    if not bool((var > 0).all()):
        raise fail(
            ValueError,
            name,
            "a variance > 0 everywhere",
            f"minimum {var.min().item():g}",
            "A normal needs sigma^2 > 0; pass the variance (std squared), not a log-variance.",
        )


def normal_logpdf(x: torch.Tensor, mean: float | torch.Tensor = 0.0, var: float | torch.Tensor = 1.0) -> torch.Tensor:
    r"""``log p(x | mu, sigma^2) = -1/2 [log(2 pi sigma^2) + (x - mu)^2 / sigma^2]``, elementwise.

    ``x``: any shape; ``mean``, ``var`` (``sigma^2`` > 0, not the std): numbers or tensors that broadcast
    with ``x``. Returns the broadcast shape. Raises ``ValueError`` if any ``var <= 0``.
    """
    x = check_tensor(x, "x", floating=True, nonempty=False)
    mean = _as_param(mean, "mean", x)
    var = _as_param(var, "var", x)
    try:
        torch.broadcast_shapes(x.shape, mean.shape, var.shape)
    except RuntimeError:
        raise fail(
            ValueError, "mean/var", "shapes that broadcast together", (tuple(mean.shape), tuple(var.shape)), "Reshape."
        ) from None
    _check_variance(var)
    return -0.5 * (_LOG_2PI + torch.log(var) + (x - mean).square() / var)


def normal_pdf(x: torch.Tensor, mean: float | torch.Tensor = 0.0, var: float | torch.Tensor = 1.0) -> torch.Tensor:
    r"""The FAQ's ``p(x | mu, sigma^2) = exp(-(x - mu)^2 / (2 sigma^2)) / sqrt(2 pi sigma^2)``.

    Arguments, shapes and errors as in :func:`normal_logpdf`; computed as its ``exp``.
    """
    return normal_logpdf(x, mean, var).exp()


# ----------------------------------------------------------------------------------------- multivariate
def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor ``L`` (``cov = L L^T``) of an SPD (..., d, d) matrix, or a ValueError saying why not."""
    scale = cov.abs().amax().item()
    asym = (cov - cov.mT).abs().amax().item()
    # cholesky reads only the lower triangle, so an asymmetric matrix would be silently misread
    symmetric = asym <= 100 * torch.finfo(cov.dtype).eps * scale  # relative: rounding-level asymmetry is fine
    chol, info = torch.linalg.cholesky_ex(cov)
    if symmetric and not bool((info != 0).any()):
        return chol
    min_eig = torch.linalg.eigvalsh(0.5 * (cov + cov.mT)).amin().item()
    fixes = []
    if not symmetric:
        fixes.append("Symmetrize it: cov = (cov + cov.mT) / 2 (Cholesky reads only the lower triangle).")
    if min_eig <= 0 or symmetric:  # symmetric but Cholesky failed: singular to working precision
        jitter = max(-min_eig, 0.0) + 1e-6 * (scale if scale > 0 else 1.0)
        fixes.append(
            f"Make it positive definite: add jitter to the diagonal, cov + eps * I with eps >= {jitter:.3g}, "
            "or estimate it from more samples than dimensions."
        )
    raise fail(
        ValueError,
        "cov",
        "a symmetric positive-definite covariance matrix",
        f"smallest eigenvalue {min_eig:.3g} and max |cov - cov^T| = {asym:.3g}",
        " ".join(fixes),
    )


def mvn_logpdf(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    r"""``log p(x | mu, Sigma) = -1/2 [d log(2 pi) + log det Sigma + (x - mu)^T Sigma^{-1} (x - mu)]``.

    Computed through the Cholesky factor ``Sigma = L L^T`` (never an explicit inverse or determinant):
    ``log det Sigma = 2 sum_i log L_ii`` and the Mahalanobis term is ``||z||^2`` with ``L z = x - mu``
    (one triangular solve). Shapes: ``x`` (..., d); ``mean`` (d,) or broadcastable to ``x``; ``cov``
    (d, d), or a batch (..., d, d) broadcastable with ``x``'s batch. Returns the broadcast batch shape (...)
    in ``x``'s dtype (half precision is computed in float32: LAPACK has no half Cholesky).
    Raises ``ValueError`` if ``cov`` is not SPD (naming its smallest eigenvalue and asymmetry) or shapes
    disagree. Reference: Bishop (2006), sec. 2.3, eq. 2.43; Golub & Van Loan (2013), sec. 4.2.
    """
    x = check_tensor(x, "x", floating=True, min_dim=1)
    mean = check_tensor(mean, "mean", floating=True, min_dim=1)
    cov = check_tensor(cov, "cov", floating=True, min_dim=2, finite=True)
    d = x.shape[-1]
    if cov.shape[-2:] != (d, d):
        raise fail(
            ValueError,
            "cov",
            f"shape (..., {d}, {d}) to match x's last dimension d={d}",
            tuple(cov.shape),
            "Pass the d x d covariance of the variables along x's last dimension.",
        )
    if mean.shape[-1] != d:
        raise fail(ValueError, "mean", f"shape (..., {d}) like x", tuple(mean.shape), "Pass one mean per dimension.")
    try:
        batch = torch.broadcast_shapes(x.shape[:-1], mean.shape[:-1], cov.shape[:-2])
    except RuntimeError:
        raise fail(
            ValueError,
            "x/mean/cov",
            "broadcastable batch shapes",
            f"x {tuple(x.shape)}, mean {tuple(mean.shape)}, cov {tuple(cov.shape)}",
            "Give mean shape (d,) and cov (d, d), or matching batch dimensions.",
        ) from None
    # LAPACK has no half-precision Cholesky: compute in float32 at least, return the inputs' dtype.
    work = torch.promote_types(torch.promote_types(x.dtype, mean.dtype), torch.promote_types(cov.dtype, torch.float32))
    chol = _cholesky(cov.to(work))  # (..., d, d) lower
    diff = (x.to(work) - mean.to(work)).unsqueeze(-1)  # (..., d, 1)
    z = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)  # L z = x - mu, batches broadcast: (..., d)
    mahalanobis = z.square().sum(-1)  # (...)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # cov's batch shape
    out = (-0.5 * (d * _LOG_2PI + log_det + mahalanobis)).expand(batch)  # (...)
    return out.to(torch.promote_types(x.dtype, mean.dtype))


def mvn_pdf(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    r"""The FAQ's ``p(x | mu, Sigma) = exp(-1/2 (x-mu)^T Sigma^{-1} (x-mu)) / sqrt((2 pi)^d det Sigma)``.

    Shapes and errors as in :func:`mvn_logpdf`; computed as its ``exp``.
    """
    return mvn_logpdf(x, mean, cov).exp()


# ------------------------------------------------------------------------------------ maximum entropy
def normal_entropy(var: float | torch.Tensor) -> float | torch.Tensor:
    r"""Differential entropy of ``N(mu, sigma^2)`` in nats: ``h = 1/2 log(2 pi e sigma^2)`` (independent of mu).

    ``var``: a number (returns a float) or a tensor (returns a tensor of the same shape); must be > 0.
    """
    if isinstance(var, torch.Tensor):
        check_tensor(var, "var", floating=True)
        _check_variance(var)
        return 0.5 * (_LOG_2PI + 1.0 + torch.log(var))
    return 0.5 * (_LOG_2PI + 1.0 + math.log(check_positive(var, "var")))


def max_entropy_table(var: float = 1.0) -> dict[str, float]:
    r"""Differential entropies (nats) of five symmetric distributions, all with variance ``sigma^2 = var``.

    ============  ============================  =======================  ====================
    distribution  scale giving variance sigma^2  entropy h                ~ value
    ============  ============================  =======================  ====================
    normal        std sigma                     1/2 log(2 pi e sigma^2)  1.4189 + log sigma
    logistic      s = sqrt(3) sigma / pi        log s + 2                1.4046 + log sigma
    triangular    half-width c = sqrt(6) sigma  1/2 + log c              1.3959 + log sigma
    laplace       b = sigma / sqrt(2)           1 + log(2 b)             1.3466 + log sigma
    uniform       width w = sqrt(12) sigma      log w                    1.2425 + log sigma
    ============  ============================  =======================  ====================

    The normal comes first: it maximizes entropy at fixed variance (FAQ Q2.b; Cover & Thomas, 2006,
    thm. 8.6.5), since ``h(N) - h(p) = KL(p || N) >= 0`` for any ``p`` with the same variance.
    Returns ``{name: entropy}``, largest first.
    """
    var = check_positive(var, "var")
    sigma = math.sqrt(var)
    table = {
        "normal": 0.5 * math.log(2.0 * math.pi * math.e * var),
        "logistic": math.log(math.sqrt(3.0) * sigma / math.pi) + 2.0,
        "triangular": 0.5 + math.log(math.sqrt(6.0) * sigma),
        "laplace": 1.0 + math.log(2.0 * sigma / math.sqrt(2.0)),
        "uniform": math.log(math.sqrt(12.0) * sigma),
    }
    return dict(sorted(table.items(), key=lambda kv: -kv[1]))


# ------------------------------------------------------------------------------ central limit theorem
Sampler = Callable[[tuple[int, ...], "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class Distribution:
    """A sampler with known moments, for the central limit theorem.

    ``sample(shape, generator)`` returns iid float64 draws of that shape (on the generator's device, CPU if
    none); ``mean``, ``var`` are the population moments; ``abs3`` is ``E|X - mean|^3`` (for Berry-Esseen).
    """

    name: str
    mean: float
    var: float
    abs3: float
    sample: Sampler

    def __call__(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample(shape, generator)


def _empty(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.empty(shape, dtype=torch.float64, device=device)


def uniform(low: float = 0.0, high: float = 1.0) -> Distribution:
    """``U(low, high)``: mean ``(low + high) / 2``, var ``w^2 / 12``, ``E|X - mean|^3 = w^3 / 32``.

    Here ``w = high - low``.
    """
    low, high = check_real(low, "low"), check_real(high, "high", low=low, low_inclusive=False)
    w = high - low
    return Distribution(
        f"uniform({low:g}, {high:g})",
        (low + high) / 2,
        w**2 / 12,
        w**3 / 32,
        lambda s, g: _empty(s, g).uniform_(low, high, generator=g),
    )


def exponential(rate: float = 1.0) -> Distribution:
    """``Exp(rate)``: mean ``1/rate``, var ``1/rate^2``, ``E|X - mean|^3 = (12/e - 2) / rate^3``; skewness 2."""
    rate = check_positive(rate, "rate")
    return Distribution(
        f"exponential({rate:g})",
        1 / rate,
        1 / rate**2,
        (12 / math.e - 2) / rate**3,
        lambda s, g: _empty(s, g).exponential_(rate, generator=g),
    )


def bernoulli(p: float = 0.5) -> Distribution:
    """``Bernoulli(p)`` on {0, 1}: mean ``p``, var ``p q``, ``E|X - p|^3 = p q (p^2 + q^2)`` with ``q = 1 - p``."""
    p = check_real(p, "p", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    q = 1 - p
    return Distribution(
        f"bernoulli({p:g})",
        p,
        p * q,
        p * q * (p**2 + q**2),
        lambda s, g: (_empty(s, g).uniform_(generator=g) < p).double(),
    )


def laplace(scale: float = 1.0) -> Distribution:
    """``Laplace(0, b)`` as ``b (E1 - E2)`` with ``E1, E2 ~ Exp(1)``: var ``2 b^2``, ``E|X|^3 = 6 b^3``."""
    b = check_positive(scale, "scale")

    def sample(s: tuple[int, ...], g: torch.Generator | None) -> torch.Tensor:
        return b * (_empty(s, g).exponential_(generator=g) - _empty(s, g).exponential_(generator=g))

    return Distribution(f"laplace({b:g})", 0.0, 2 * b**2, 6 * b**3, sample)


def normal(mean: float = 0.0, std: float = 1.0) -> Distribution:
    """``N(mean, std^2)``, ``E|X - mean|^3 = 2 sqrt(2 / pi) std^3``.

    The control: its standardized sums are exactly N(0, 1) for every n.
    """
    mean, std = check_real(mean, "mean"), check_positive(std, "std")
    return Distribution(
        f"normal({mean:g}, {std:g})",
        mean,
        std**2,
        2 * math.sqrt(2 / math.pi) * std**3,
        lambda s, g: _empty(s, g).normal_(mean, std, generator=g),
    )


DISTRIBUTIONS: dict[str, Callable[[], Distribution]] = {
    "uniform": uniform,
    "exponential": exponential,
    "bernoulli": bernoulli,
    "laplace": laplace,
    "normal": normal,
}


def _resolve(
    sampler: Distribution | str | Sampler, mean: float | None, std: float | None
) -> tuple[Sampler, float, float]:
    if isinstance(sampler, str):
        if sampler not in DISTRIBUTIONS:
            raise fail(ValueError, "sampler", f"one of {list(DISTRIBUTIONS)}", repr(sampler), "Or pass a Distribution.")
        sampler = DISTRIBUTIONS[sampler]()
    if isinstance(sampler, Distribution):
        if mean is not None or std is not None:
            raise fail(
                ValueError, "mean/std", "None with a Distribution (it knows its moments)", (mean, std), "Drop them."
            )
        return sampler.sample, sampler.mean, math.sqrt(sampler.var)
    if not callable(sampler):
        raise fail(
            TypeError, "sampler", "a distribution name, a Distribution or a callable", type(sampler).__name__, ""
        )
    if mean is None or std is None:
        raise fail(
            ValueError,
            "mean/std",
            "the population mean and std of a callable sampler",
            (mean, std),
            "Pass mean=... and std=..., or use a Distribution such as gaussian.exponential().",
        )
    return sampler, check_real(mean, "mean"), check_positive(std, "std")


def standardized_sum(
    sampler: Distribution | str | Sampler,
    n: int,
    num_samples: int,
    generator: torch.Generator | None = None,
    *,
    mean: float | None = None,
    std: float | None = None,
) -> torch.Tensor:
    r"""``num_samples`` draws of ``Z_n = (X_1 + ... + X_n - n mu) / (sqrt(n) sigma)`` with ``X_i`` iid.

    By the central limit theorem ``Z_n -> N(0, 1)`` in distribution; for any n, ``E Z_n = 0`` and
    ``Var Z_n = 1`` exactly (Feller, 1971, vol. II, sec. VIII.4). ``sampler`` is a name from
    :data:`DISTRIBUTIONS`, a :class:`Distribution`, or a callable ``sampler(shape, generator) -> Tensor``
    of iid draws, in which case its population ``mean`` and ``std`` must be given. Draws are made in
    chunks of shape ``(num_samples, k)`` and summed, so memory stays bounded for large ``n``.
    Returns shape ``(num_samples,)``, in float64 (or the sampler's floating dtype).
    """
    n = check_int(n, "n", low=1)
    num_samples = check_int(num_samples, "num_samples", low=1)
    generator = check_generator(generator)
    draw, mu, sigma = _resolve(sampler, mean, std)
    total: float | torch.Tensor = 0.0
    chunk = max(1, min(n, _MAX_DRAWS_PER_CHUNK // num_samples))
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        xs = draw((num_samples, k), generator)  # (num_samples, k)
        if not isinstance(xs, torch.Tensor) or tuple(xs.shape) != (num_samples, k):
            got = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
            raise fail(
                ValueError, "sampler", f"a tensor of shape {(num_samples, k)}", got, "Honour the shape argument."
            )
        if not xs.is_floating_point():
            xs = xs.double()
        part = xs.sum(dim=1)  # (num_samples,)
        total = total + part
    return (total - n * mu) / (math.sqrt(n) * sigma)


def ks_distance_to_normal(samples: torch.Tensor) -> float:
    r"""Kolmogorov-Smirnov distance ``D = sup_x |F_N(x) - Phi(x)|`` between the empirical CDF of ``samples``
    (1-D, N values) and the standard normal CDF ``Phi``.

    With sorted values ``x_(1) <= ... <= x_(N)``: ``D = max_i max(i/N - Phi(x_(i)), Phi(x_(i)) - (i-1)/N)``
    (exact also with ties). Equals ``scipy.stats.kstest(samples, "norm").statistic``. For a sample of Z_n
    this estimates the CLT distance, which Berry-Esseen bounds by ``C rho / (sigma^3 sqrt(n))``, plus the
    sampling noise of ``D`` itself, about ``0.9 / sqrt(N)`` (Kolmogorov).
    """
    x = check_tensor(samples, "samples", floating=True, ndim=1, finite=True)
    x, _ = torch.sort(x.to(torch.promote_types(x.dtype, torch.float32)))
    n = x.numel()
    cdf = torch.special.ndtr(x)  # (N,)
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    d_plus = (i / n - cdf).amax()
    d_minus = (cdf - (i - 1) / n).amax()
    return torch.maximum(d_plus, d_minus).item()


def berry_esseen_bound(dist: Distribution, n: int) -> float:
    r"""Berry-Esseen bound ``sup |P(Z_n <= x) - Phi(x)| <= C rho / (sigma^3 sqrt(n))`` with ``rho = E|X-mu|^3``.

    ``C = 0.4748`` (Shevtsova, 2011). The distance to the normal falls at least like ``1/sqrt(n)`` (FAQ Q2.a).
    """
    if not isinstance(dist, Distribution):
        raise fail(TypeError, "dist", "a Distribution", type(dist).__name__, "Use e.g. gaussian.exponential().")
    n = check_int(n, "n", low=1)
    return BERRY_ESSEEN_C * dist.abs3 / (dist.var**1.5 * math.sqrt(n))
