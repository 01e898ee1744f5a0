"""The gradient noise scale and the critical batch size (FAQ Q13.f; McCandlish et al. 2018).

For per-example gradients g_n with mean G = E[g_n] and covariance Sigma = Cov[g_n], a mean gradient over a batch
of B examples drawn with replacement satisfies

    E |G_B|^2 = |G|^2 + tr(Sigma) / B.

Measuring |G_B|^2 at two batch sizes B_small < B_big gives unbiased estimates of both terms
(McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018, appendix A.1):

    |G|^2     ≈ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma) ≈ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)

Each is averaged *separately* over many measurements (the ratio of single measurements is badly biased) and
then

    B_simple = tr(Sigma) / |G|^2,

the batch size at which the gradient's noise and signal are equal. The critical batch size is B_crit ≈ B_simple
(exact when the Hessian is a multiple of the identity, §2.2 of the paper): below it doubling the batch nearly
halves the steps needed, above it the steps barely fall. The uncertainty is propagated with the delta method:
for paired per-measurement estimates (S_i, G_i) with means (S, G) and effective count n,

    Var(S / G) ≈ (1/n) [Var S / G^2 - 2 S Cov(S, G) / G^3 + S^2 Var G / G^4].

``NoiseScaleEstimator`` keeps these statistics in a stream (plain or exponentially weighted means), with
``state_dict`` / ``load_state_dict``. A data-parallel run measures both norms for free (appendix A.1 of the paper):
each rank's gradient *before* the all-reduce is a mean over B_small = B_local examples, the all-reduced one a
mean over B_big = W * B_local examples (W ranks). :func:`ddp_noise_scale` is that estimate from recorded norms;
:class:`DDPNoiseScale` records them with a ``DistributedDataParallel`` communication hook.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._checks import check_generator, check_int, check_real, check_tensor, fail
from .autodiff import _mean_loss, flatten_params, model_mode, trainable_parameters

__all__ = [
    "BatchSizeAdvice",
    "DDPNoiseScale",
    "NoiseScale",
    "NoiseScaleEstimator",
    "critical_batch_size",
    "ddp_noise_scale",
    "gradient_noise_scale",
    "noise_scale_from_norms",
]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile, for the advice's range


@dataclass(frozen=True)
class NoiseScale:
    """A gradient-noise-scale estimate.

    Attributes:
        b_simple: tr(Sigma) / |G|^2 (``inf`` when the |G|^2 estimate is <= 0: the signal is not resolved; negative
            when the tr(Sigma) estimate is, which only noise produces).
        g2, trace_sigma: the averaged estimates of |G|^2 and tr(Sigma).
        stderr: delta-method standard error of ``b_simple`` (``inf`` with fewer than two measurements).
        num_measurements: measurements averaged; b_small, b_big: the two batch sizes.
    """

    b_simple: float
    g2: float
    trace_sigma: float
    stderr: float
    num_measurements: int
    b_small: int
    b_big: int


def _check_sizes(b_small: object, b_big: object) -> tuple[int, int]:
    b_small = check_int(b_small, "b_small", low=1)
    b_big = check_int(b_big, "b_big", low=2)
    if b_small >= b_big:
        raise fail(
            ValueError,
            "b_small/b_big",
            "b_small < b_big",
            f"b_small={b_small}, b_big={b_big}",
            "Measure the gradient at two different batch sizes, the smaller first.",
        )
    return b_small, b_big


class NoiseScaleEstimator:
    """Streaming B_simple from pairs of squared gradient norms (|G_small|^2, |G_big|^2).

    Args:
        b_small, b_big: the batch sizes the norms are measured at (b_small < b_big).
        decay: None for plain means over all measurements; a value in (0, 1) for exponential moving averages with
            that decay (McCandlish et al. use EMAs as the parameters move during training). The first 1/(1-decay)
            updates are plain means, so there is no start-up bias; the effective count is then
            min(n, (1 + decay) / (1 - decay)).

    Means and (co)variances of the per-measurement estimates (S_i, G_i) are kept with West's/Finch's incremental
    weighted update, which avoids the cancellation of E[x^2] - E[x]^2.
    """

    def __init__(self, b_small: int, b_big: int, *, decay: float | None = None) -> None:
        self.b_small, self.b_big = _check_sizes(b_small, b_big)
        if decay is not None:
            decay = check_real(decay, "decay", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        self.decay = decay
        self.count = 0
        self.mean_s = self.mean_g = 0.0
        self.cov_ss = self.cov_gg = self.cov_sg = 0.0  # weighted population (co)variances

    def update(self, sq_norm_small: object, sq_norm_big: object) -> None:
        """Add one measurement (floats or 0-d tensors) or several (1-D tensors/sequences of equal length).

        The statistics are plain float64 numbers on the host (that is what ``state_dict`` saves), so a device tensor
        costs one synchronisation per call.
        """
        small = torch.as_tensor(sq_norm_small, dtype=torch.float64).detach().reshape(-1).cpu()
        big = torch.as_tensor(sq_norm_big, dtype=torch.float64).detach().reshape(-1).cpu()
        if small.shape != big.shape or small.numel() == 0:
            raise fail(
                ValueError,
                "sq_norm_small/sq_norm_big",
                "the same non-zero number of measurements",
                f"{small.numel()} and {big.numel()}",
                "Pass one pair of norms per measurement.",
            )
        check_tensor(torch.cat([small, big]), "squared norms", finite=True)
        if bool((small < 0).any() or (big < 0).any()):
            raise fail(ValueError, "squared norms", "values >= 0", "a negative value", "Pass |g|^2, not g.")
        bs, bb = self.b_small, self.b_big
        g_est = (bb * big - bs * small) / (bb - bs)  # (n,) per-measurement |G|^2
        s_est = (small - big) / (1.0 / bs - 1.0 / bb)  # (n,) per-measurement tr(Sigma)
        for s, g in zip(s_est.tolist(), g_est.tolist(), strict=True):
            self.count += 1
            alpha = 1.0 / self.count if self.decay is None else max(1.0 - self.decay, 1.0 / self.count)
            ds, dg = s - self.mean_s, g - self.mean_g
            self.mean_s += alpha * ds
            self.mean_g += alpha * dg
            self.cov_ss = (1 - alpha) * (self.cov_ss + alpha * ds * ds)
            self.cov_gg = (1 - alpha) * (self.cov_gg + alpha * dg * dg)
            self.cov_sg = (1 - alpha) * (self.cov_sg + alpha * ds * dg)

    @property
    def effective_count(self) -> float:
        if self.decay is None:
            return float(self.count)
        return min(float(self.count), (1 + self.decay) / (1 - self.decay))

    def estimate(self) -> NoiseScale:
        """The current :class:`NoiseScale`; ValueError before the first update."""
        if self.count == 0:
            raise fail(
                ValueError,
                "NoiseScaleEstimator",
                "at least one measurement",
                "none",
                "Call update(sq_norm_small, sq_norm_big) first.",
            )
        s, g, n = self.mean_s, self.mean_g, self.effective_count
        b_simple = s / g if g > 0 else math.inf
        if n > 1 and g > 0:
            fix = n / (n - 1)  # population -> sample (co)variance
            var = (self.cov_ss / g**2 - 2 * s * self.cov_sg / g**3 + s * s * self.cov_gg / g**4) * fix / n
            stderr = math.sqrt(max(var, 0.0))
        else:
            stderr = math.inf
        return NoiseScale(b_simple, g, s, stderr, self.count, self.b_small, self.b_big)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (floats and ints) for checkpoints."""
        keys = ("b_small", "b_big", "decay", "count", "mean_s", "mean_g", "cov_ss", "cov_gg", "cov_sg")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`; unknown or missing keys raise ValueError."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise fail(
                ValueError,
                "state",
                f"the keys {sorted(expected)}",
                sorted(state),
                "Pass a dict made by NoiseScaleEstimator.state_dict().",
            )
        _check_sizes(state["b_small"], state["b_big"])
        for key, value in state.items():
            setattr(self, key, value)


def noise_scale_from_norms(
    sq_norm_small: Sequence[float] | torch.Tensor,
    sq_norm_big: Sequence[float] | torch.Tensor,
    b_small: int,
    b_big: int,
) -> NoiseScale:
    """B_simple from paired measurements of |G_small|^2 and |G_big|^2 (plain means; see the module docstring).

    Args:
        sq_norm_small, sq_norm_big: (n,) squared norms of mean gradients over b_small and b_big examples.
        b_small, b_big: the batch sizes, b_small < b_big.
    """
    estimator = NoiseScaleEstimator(b_small, b_big)
    estimator.update(sq_norm_small, sq_norm_big)
    return estimator.estimate()


def _batch_iterator(data: object, num_examples_needed: int, generator: torch.Generator | None):
    """Yield (inputs, targets) big batches: random rows (with replacement) of a tensor pair, or a loader's batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        inputs = check_tensor(data[0], "data inputs", min_dim=1)
        targets = data[1]
        if isinstance(targets, torch.Tensor) and (targets.dim() == 0 or targets.shape[0] != inputs.shape[0]):
            raise fail(
                ValueError,
                "data targets",
                f"{inputs.shape[0]} rows",
                f"shape {tuple(targets.shape)}",
                "Pass (inputs, targets) of the same examples.",
            )
        where = generator.device if generator is not None else inputs.device
        while True:
            rows = torch.randint(0, inputs.shape[0], (num_examples_needed,), generator=generator, device=where)
            rows = rows.to(inputs.device)
            yield inputs[rows], (targets[rows] if isinstance(targets, torch.Tensor) else targets)
    if not isinstance(data, Iterable):
        raise fail(
            TypeError,
            "data",
            "(inputs, targets) tensors or an iterable of batches",
            type(data).__name__,
            "Pass (x, y) or a DataLoader.",
        )
    while True:
        produced = usable = False
        for batch in data:
            produced = True
            x, y = batch
            x = check_tensor(x, "batch inputs", min_dim=1, nonempty=False)
            if x.shape[0] < num_examples_needed:  # e.g. the short last batch of an epoch
                continue
            usable = True
            yield x[:num_examples_needed], (y[:num_examples_needed] if isinstance(y, torch.Tensor) else y)
        if not produced:
            raise fail(ValueError, "data", "at least one batch", "an empty iterable", "Pass a non-empty DataLoader.")
        if not usable:
            raise fail(
                ValueError,
                "data",
                f"batches of at least b_big={num_examples_needed} examples",
                "only smaller ones",
                "Raise the loader's batch_size or lower b_big.",
            )


def gradient_noise_scale(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: object,
    b_small: int,
    b_big: int,
    num_batches: int = 50,
    generator: torch.Generator | None = None,
    *,
    train_mode: bool = False,
) -> NoiseScale:
    """Measure B_simple of ``model`` at its current parameters (read-only: nothing is updated).

    Each of ``num_batches`` measurements takes a batch of ``b_big`` examples, computes the mean-loss gradient over
    its first ``b_small`` examples (G_small) and over the rest (G_rest), and forms
    G_big = (b_small G_small + (b_big - b_small) G_rest) / b_big, so one measurement costs one pass over b_big
    examples. The squared norms feed :class:`NoiseScaleEstimator` (plain means).

    Args:
        model: the network (trainable parameters only); eval mode unless ``train_mode=True``; left as it was.
        loss_fn: returns the *mean* loss over its batch (torch.nn default), so batch gradients are means.
        data: ``(inputs, targets)`` tensors, from which batches are drawn uniformly with replacement (the setting
            in which the formulas are exact), or an iterable of batches (a DataLoader with batch_size >= b_big,
            cycled as needed, the first b_big examples of each batch used and shorter batches skipped; sampling
            without replacement shrinks the noise term by (N - B)/(N - 1), negligible when N >> b_big).
        b_small, b_big: the two batch sizes, b_small < b_big.
        num_batches: measurements (>= 2 for a standard error).
        generator: seeds the batch draws for tensor data.
    """
    _, params = trainable_parameters(model)
    b_small, b_big = _check_sizes(b_small, b_big)
    num_batches = check_int(num_batches, "num_batches", low=1)
    check_generator(generator)
    estimator = NoiseScaleEstimator(b_small, b_big)
    batches = _batch_iterator(data, b_big, generator)
    device = params[0].device

    def mean_gradient(x: torch.Tensor, y: object) -> torch.Tensor:
        y = y.to(device) if isinstance(y, torch.Tensor) else y
        loss = _mean_loss(loss_fn(model(x.to(device)), y))
        return flatten_params(torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True))

    with model_mode(model, train=train_mode):
        for _ in range(num_batches):
            x, y = next(batches)
            rest_y = y[b_small:] if isinstance(y, torch.Tensor) else y
            small_y = y[:b_small] if isinstance(y, torch.Tensor) else y
            g_small = mean_gradient(x[:b_small], small_y)  # (P,)
            g_big = (b_small * g_small + (b_big - b_small) * mean_gradient(x[b_small:], rest_y)) / b_big  # (P,)
            estimator.update(g_small.square().sum(), g_big.square().sum())
    return estimator.estimate()


@dataclass(frozen=True)
class BatchSizeAdvice:
    """Critical-batch-size advice: ``value`` ≈ B_simple, a 95% ``low``-``high`` range from its standard error
    (``low`` >= 1), and a ``message`` for people."""

    value: float
    low: float
    high: float
    message: str


def critical_batch_size(noise_scale: NoiseScale | float) -> BatchSizeAdvice:
    """B_crit ≈ B_simple (McCandlish et al. 2018, §2.2 and eq. 2.12), with a range from the estimate's stderr.

    Below B_crit, doubling the batch nearly halves the number of optimizer steps to a given loss (perfect
    scaling); well above it, a larger batch costs more compute per step but saves almost no steps.
    """
    if isinstance(noise_scale, NoiseScale):
        value, stderr = noise_scale.b_simple, noise_scale.stderr
    else:
        value, stderr = check_real(noise_scale, "noise_scale", finite=False), math.inf
    if math.isnan(value):
        raise fail(ValueError, "noise_scale", "a number", "nan", "Pass a NoiseScale from gradient_noise_scale.")
    if math.isinf(value) or value <= 0:
        why = "the |G|^2 estimate is not positive" if value > 0 else "the tr(Sigma) estimate is not positive"
        return BatchSizeAdvice(
            value,
            1.0,
            math.inf,
            f"The noise scale is not resolved ({why}): the gradient signal and noise cannot be told apart with "
            "these measurements. Take more measurements (num_batches) or a larger b_big.",
        )
    low = max(1.0, value - Z_95 * stderr) if math.isfinite(stderr) else 1.0
    high = value + Z_95 * stderr
    spread = f"95% range {low:.0f} to {high:.0f}" if math.isfinite(high) else "uncertainty unknown"
    return BatchSizeAdvice(
        value,
        low,
        high,
        f"Critical batch size ≈ {value:.0f} ({spread}; B_simple, McCandlish et al. 2018): below it, doubling the "
        "batch nearly halves the steps to a given loss; well above it, larger batches add compute per step but "
        "save few steps.",
    )


# ----------------------------------------------------------------------------------------------- data parallel
def ddp_noise_scale(
    sq_norm_local: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor,
    sq_norm_global: Sequence[float] | torch.Tensor,
    b_local: int,
    world_size: int,
) -> NoiseScale:
    """B_simple of a data-parallel run from each step's local and all-reduced squared gradient norms.

    With W ranks each computing the mean gradient G_r over its own B_local examples, the all-reduce returns
    G = (1/W) sum_r G_r, the mean gradient over W B_local examples. Per step (McCandlish et al. 2018, appendix A.1)

        |G_small|^2 = (1/W) sum_r |G_r|^2    at B_small = B_local       (the ranks' average: W measurements)
        |G_big|^2   = |G|^2                  at B_big   = W B_local

    and the pairs go to :func:`noise_scale_from_norms` (|G|^2 and tr(Sigma) averaged separately over steps).

    Args:
        sq_norm_local: (n,) the ranks' average of |G_r|^2 per step, or (W, n) one row per rank (averaged here).
        sq_norm_global: (n,) |G|^2 of the all-reduced gradient per step.
        b_local: examples per rank per step (the same on every rank).
        world_size: the number of ranks W (>= 2).
    """
    b_local = check_int(b_local, "b_local", low=1)
    world_size = check_int(world_size, "world_size", low=2)
    local = torch.as_tensor(sq_norm_local, dtype=torch.float64)
    if local.dim() == 2 and local.shape[0] == world_size:
        local = local.mean(0)  # (W, n) -> (n,)
    elif local.dim() != 1:
        raise fail(
            ValueError,
            "sq_norm_local",
            f"shape (n,) or (world_size={world_size}, n)",
            f"shape {tuple(local.shape)}",
            "Pass one row of per-step norms per rank, or their average over ranks.",
        )
    return noise_scale_from_norms(local, sq_norm_global, b_local, world_size * b_local)


def _norm(t: torch.Tensor) -> torch.Tensor:
    """|t| as a 0-d tensor on t's device (one kernel; squared and summed in float64 later). Half-precision buckets
    are reduced in float32, so the norm cannot overflow."""
    return torch.linalg.vector_norm(t, dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None)


def _sum_squares(norms: list[list[torch.Tensor]]) -> torch.Tensor:
    """(n,) float64: sum_b |b|^2 per step from per-step lists of bucket norms (a few kernels for all n steps)."""
    flat = torch.stack([x for parts in norms for x in parts]).to(torch.float64).square()  # (total buckets,)
    owner = torch.tensor([i for i, parts in enumerate(norms) for _ in parts], device=flat.device)  # (total,)
    return torch.zeros(len(norms), dtype=torch.float64, device=flat.device).index_add_(0, owner, flat)


# No annotations: under ``from __future__ import annotations`` they would be strings, which DDP's check rejects.
def _noise_scale_hook(state, bucket):
    """The communication hook :class:`DDPNoiseScale` registers: ``state`` is the DDPNoiseScale."""
    return state._on_bucket(bucket)


#: Measured steps whose local norms are all-reduced together: one extra collective per this many steps, in place
#: of one per step (an all-reduce of 3 numbers costs about as much as the hook's other work on a small CPU model).
DDP_EXCHANGE_EVERY = 20
#: Exchanged steps kept on the device before they are copied to the host without being asked.
DDP_MAX_PENDING = 1000


class DDPNoiseScale:
    """B_simple of a ``DistributedDataParallel`` run, measured by a communication hook at almost no cost.

    The hook wraps ``hook`` (default: DDP's own averaging, ``allreduce_hook``). For every gradient bucket b it
    takes |b_r|^2 of the local bucket *before* the all-reduce and |mean_r b_r|^2 of the averaged bucket *after* it
    (in the future's callback, which DDP waits for). Per synchronised backward ("step") that gives this rank's
    |G_r|^2 = sum_b |b_r|^2 at B_local examples and the global |G|^2 = sum_b |mean_r b_r|^2 at W B_local. Every
    ``exchange_every`` measured steps, the last bucket's hook all-reduces the per-step |G_r|^2, B_r and B_r^2 of
    those steps in one small collective, so that every rank holds the same statistics and :meth:`estimate` needs
    no communication. Then per step

        |G_small|^2 = (1/W) sum_r |G_r|^2  (B_small = B_local),    |G_big|^2 = |G|^2  (B_big = W B_local)

    feed a :class:`NoiseScaleEstimator` (:func:`ddp_noise_scale`'s estimate, streamed). A step is dropped on every
    rank alike when the ranks' batch sizes differ (sum B_r^2 != (sum B_r)^2 / W), a norm is not finite, or the
    batch size changed since the first measurement; :attr:`skipped` counts why. The last measured steps, fewer than
    ``exchange_every``, wait for the next exchange (:attr:`num_pending`).

    Cost of a measured step: one norm kernel per bucket before and one after the reduction (on the gradient's
    device), one Python callback per bucket (with the default hook, ``allreduce_hook``'s divide and all-reduce run
    inline, so its own callback is replaced rather than chained), and 1/``exchange_every`` of an all-reduce of
    3 ``exchange_every`` numbers; no host synchronisation until :meth:`estimate`. A Python communication hook
    costs a little more than DDP's built-in C++ reduction, also on the steps it does not measure
    (``benchmarks/ddp_overhead.py``).

    Numerics: each bucket is divided by W and then summed, as ``allreduce_hook`` does, which PyTorch documents as
    matching DDP without a hook (bit for bit when W is a power of two; otherwise up to rounding).

    Args:
        ddp_model: a ``DistributedDataParallel`` without a communication hook. DDP accepts one hook, for good;
            :meth:`remove` turns the measurement off (the hook then only runs ``hook``).
        batch_size: B_local, examples per rank per step. None: counted by a forward pre-hook on ``ddp_model`` (dim
            0 of the first tensor argument of every training forward since the last synchronised backward, so the
            micro-batches of gradient accumulation under ``no_sync()`` add up).
        every: measure every ``every``-th synchronised backward (the others run ``hook`` alone).
        exchange_every: measured steps per exchange of the local norms (default :data:`DDP_EXCHANGE_EVERY`).
        decay: None for plain means over all steps, else the EMA decay of :class:`NoiseScaleEstimator`.
        hook, hook_state: the communication hook that averages a bucket, and its state (default ``allreduce_hook``
            on the model's process group); e.g. ``fp16_compress_hook`` for compressed gradients.

    Reference: McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018, app. A.1.
    """

    def __init__(
        self,
        ddp_model: nn.Module,
        batch_size: int | None = None,
        *,
        every: int = 1,
        exchange_every: int = DDP_EXCHANGE_EVERY,
        decay: float | None = None,
        hook: Callable[[Any, Any], torch.futures.Future] | None = None,
        hook_state: Any = None,
    ) -> None:
        import torch.distributed as dist  # lazy: only data-parallel runs need it
        from torch.nn.parallel import DistributedDataParallel

        if not isinstance(ddp_model, DistributedDataParallel):
            raise fail(
                TypeError,
                "ddp_model",
                "a torch.nn.parallel.DistributedDataParallel",
                type(ddp_model).__name__,
                "Wrap the model first (DistributedDataParallel(model)); in one process use gradient_noise_scale.",
            )
        self.batch_size = None if batch_size is None else check_int(batch_size, "batch_size", low=1)
        self.every = check_int(every, "every", low=1)
        self.exchange_every = check_int(exchange_every, "exchange_every", low=1)
        if decay is not None:
            decay = check_real(decay, "decay", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        self.decay = decay
        self._default_hook = hook is None
        if hook is None:
            from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

            hook, hook_state = allreduce_hook, ddp_model.process_group
        elif not callable(hook):
            raise fail(TypeError, "hook", "a DDP communication hook (state, bucket) -> Future", type(hook).__name__,
                       "Pass e.g. default_hooks.fp16_compress_hook, or None for plain averaging.")  # fmt: skip
        self.hook, self.hook_state = hook, hook_state
        self.process_group = ddp_model.process_group
        self.world_size = dist.get_world_size(self.process_group)
        if self.world_size < 2:
            raise fail(ValueError, "ddp_model", "a process group of at least 2 ranks", f"{self.world_size} rank",
                       "With one rank there is one batch size only: use gradient_noise_scale.")  # fmt: skip
        self.active = True
        self.syncs = 0  # synchronised backwards seen (the same count on every rank)
        self.skipped: Counter[str] = Counter()
        self.estimator: NoiseScaleEstimator | None = None
        self._all_reduce = dist.all_reduce
        self._samples = 0
        self._bucket_local: list[torch.Tensor] = []  # this step's local bucket norms |b_r|
        self._step_global: list[torch.Tensor] = []  # this step's averaged bucket norms (filled by callbacks)
        self._local: list[list[torch.Tensor]] = []  # per measured step, not yet exchanged: local bucket norms
        self._global: list[list[torch.Tensor]] = []  # per measured step, not yet exchanged: averaged bucket norms
        self._sizes: list[int] = []  # per measured step, not yet exchanged: B_r
        self._exchanged: list[tuple[torch.Tensor, torch.futures.Future, list[list[torch.Tensor]]]] = []
        self._handle = ddp_model.register_forward_pre_hook(self._on_forward) if batch_size is None else None
        ddp_model.register_comm_hook(self, _noise_scale_hook)

    def _on_forward(self, module: nn.Module, args: Any) -> None:
        x = args[0] if args else None
        if module.training and torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dim() > 0:
            self._samples += int(x.shape[0])

    def _on_bucket(self, bucket: Any) -> torch.futures.Future:
        step, last = self.syncs, bucket.is_last()
        if last:
            self.syncs += 1
            samples, self._samples = self._samples, 0
        if not self.active or step % self.every:
            return self.hook(self.hook_state, bucket)
        buffer = bucket.buffer()
        self._bucket_local.append(_norm(buffer))  # before the reduction, which divides the buffer in place
        norms = self._step_global

        def after(fut: torch.futures.Future) -> torch.Tensor:
            value = fut.value()
            tensor = value[0] if isinstance(value, list) else value
            norms.append(_norm(tensor))  # DDP waits for this future: done when backward returns
            return tensor

        if self._default_hook:  # allreduce_hook's two steps, with our callback in place of its own
            buffer.div_(self.world_size)
            fut = self._all_reduce(buffer, group=self.process_group, async_op=True).get_future().then(after)
        else:
            fut = self.hook(self.hook_state, bucket).then(after)
        if last:
            self._local.append(self._bucket_local)
            self._global.append(norms)
            self._sizes.append(self.batch_size if self.batch_size is not None else samples)
            self._bucket_local, self._step_global = [], []
            if len(self._local) >= self.exchange_every:
                self._exchange()
        return fut

    def _exchange(self) -> None:
        """Start the all-reduce of the pending steps' (|G_r|^2, B_r, B_r^2): issued on every rank at the same step."""
        local = _sum_squares(self._local)  # (n,)
        sizes = torch.tensor(self._sizes, dtype=torch.float64)
        stats = torch.cat([local, torch.cat([sizes, sizes * sizes]).to(local.device)])  # (3n,)
        work = self._all_reduce(stats, group=self.process_group, async_op=True)
        if sum(len(norms) for _, _, norms in self._exchanged) >= DDP_MAX_PENDING:
            self._flush()  # bounds the memory of a long run: one host copy per DDP_MAX_PENDING steps
        self._exchanged.append((stats, work.get_future(), self._global))
        self._local, self._global, self._sizes = [], [], []

    def _flush(self) -> None:
        """Copy the exchanged steps' norms to the host (one copy) and feed the estimator."""
        if not self._exchanged:
            return
        rows = []
        for stats, fut, norms in self._exchanged:
            fut.wait()
            n = len(norms)
            big = _sum_squares(norms)  # (n,)
            rows.append(torch.stack([stats[:n], stats[n : 2 * n], stats[2 * n :], big], dim=1))  # (n, 4)
        self._exchanged = []
        small, big = [], []
        w = self.world_size
        for local_sum, b_sum, b2_sum, global_sq in torch.cat(rows).tolist():
            b = round(b_sum / w)
            if b < 1 or abs(b2_sum * w - b_sum * b_sum) > 0.5:
                self.skipped["unequal_batches"] += 1
            elif not (math.isfinite(local_sum) and math.isfinite(global_sq)):
                self.skipped["nonfinite"] += 1
            elif self.estimator is not None and self.estimator.b_small != b:
                self.skipped["batch_size_changed"] += 1
            else:
                if self.estimator is None:
                    self.estimator = NoiseScaleEstimator(b, w * b, decay=self.decay)
                small.append(local_sum / w)
                big.append(global_sq)
        if small:
            self.estimator.update(small, big)

    @property
    def num_measurements(self) -> int:
        """Steps that reached the estimator so far (copies exchanged norms to the host)."""
        self._flush()
        return 0 if self.estimator is None else self.estimator.count

    @property
    def num_pending(self) -> int:
        """Measured steps waiting for the next exchange (fewer than ``exchange_every``)."""
        return len(self._local)

    def estimate(self) -> NoiseScale:
        """The current :class:`NoiseScale`, the same on every rank; ValueError before the first exchange."""
        self._flush()
        if self.estimator is None:
            raise fail(
                ValueError,
                "DDPNoiseScale",
                "at least one exchanged measurement",
                f"none ({self.syncs} synchronised backwards, {self.num_pending} pending, skipped: "
                f"{dict(self.skipped) or 'none'})",
                f"Train for at least exchange_every={self.exchange_every} measured steps on every rank.",
            )
        return self.estimator.estimate()

    def remove(self) -> None:
        """Stop measuring (the registered hook then only runs ``hook``) and remove the forward pre-hook."""
        self.active = False
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
