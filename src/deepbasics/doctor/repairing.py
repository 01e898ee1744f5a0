"""Repair: diagnose, try the catalogue's fixes on copies, retrain each for the same budget, keep what is proven.

For a setup ``S`` with findings ``F(S)`` and validation metric ``m(S)``, :func:`repair` walks the findings in
root-cause order (:data:`ORDER`, the rows of :data:`deepbasics.doctor.codes.TABLE`: a wrong loss/activation
pairing or unnormalized inputs explain many later symptoms) and, for each code ``c`` still present, tries the
candidate fixes of :data:`deepbasics.doctor.fixes.CANDIDATES` (the table's ``candidates``) in order. A candidate
``f`` is applied to a deep copy, the copy is retrained for the same number of steps (same seed, same batches)
and diagnosed again; it is kept when

    c not in F(f(S))   and   m(f(S)) improves on m(S)

and the next code is tried on ``f(S)``. The metric is declared up front (:func:`improved`): for classification the
validation accuracy must rise by more than its binomial standard error, or stay within it while the validation
loss drops by 1% or more; for regression the validation loss must drop by 1% or more. A repair is a *success*
when at least one fix was kept, no code of the first diagnosis remains, no new warning/error appeared and the
metric improved overall.

The user's model, optimizer and data are never modified: every trial works on copies.

Reference: the detect -> repair -> verify loop of AUTOTRAINER (Zhang et al., ICSE 2021, section 4), with
verification by retraining as in its "repair" step; the fixes and their sources are listed in
:mod:`deepbasics.doctor.fixes`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import check_choice, check_generator, check_int, fail
from .case import TASKS, Case, diagnose_case, evaluate_case, make_case, train_case
from .findings import CODES, Severity
from .fixes import Fix, NotApplicable, candidates_for, get_fix
from .report import Report

__all__ = [
    "ORDER",
    "Attempt",
    "RepairResult",
    "diagnose_case",
    "evaluate_case",
    "improved",
    "repair",
    "repair_case",
    "train_case",
]

#: Codes in the order they are treated: causes before the symptoms they produce (the code table's row order).
ORDER: tuple[str, ...] = CODES
#: A validation loss counts as improved when it drops by at least this fraction (ours: seed-to-seed spread of
#: the zoo's healthy runs is below 1%, the fixes' gains are 5% or more).
MIN_LOSS_GAIN = 0.01
#: When a fix removes its finding but brings a new one, this many fixes for the new code are tried with it.
FOLLOW_UPS = 2
#: Step-size re-tuning tried after a model/data fix that removed its finding but did not improve the metric.
RETUNE: tuple[str, ...] = ("lr_up", "adam")
#: Fixes that change the optimizer (never followed by a re-tuning of it).
OPTIMIZER_FIXES = frozenset(
    {"lr_up", "lr_down", "lr_halve", "adam", "clip_gradients", "weight_decay", "larger_batch", "early_stopping"}
)


@dataclass(frozen=True)
class Attempt:
    """One candidate tried: which fix, for which code, and what the retrained copy showed.

    ``status``: ``"kept"``, ``"rejected"`` (ran, but the finding stayed or the metric did not improve),
    ``"not_applicable"`` or ``"failed"`` (raised an error; ``reason`` has it).
    """

    fix: str
    target: str
    status: str
    resolved: bool = False
    improved: bool = False
    codes: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "fix": self.fix,
            "target": self.target,
            "status": self.status,
            "resolved": self.resolved,
            "improved": self.improved,
            "codes": list(self.codes),
            "metrics": dict(self.metrics),
            "reason": self.reason,
            "seconds": self.seconds,
        }


@dataclass
class RepairResult:
    """What :func:`repair` did and proved.

    Attributes:
        before, after: the :class:`~deepbasics.doctor.report.Report` of the original and of the repaired setup.
        applied: the fixes kept, in order.
        metrics_before, metrics_after: ``{"val_loss", "val_accuracy" (classification), "split"}`` of a copy trained
            for the budget (``"split"`` says whether they are validation or, without val data, training numbers).
        metric: the declared metric, ``"val_accuracy"`` or ``"val_loss"``.
        model: the repaired copy, trained for the budget (``None`` when nothing was kept).
        case: the repaired setup (model untrained copy, loss, data, optimizer factory, batch size, steps).
        code: the kept changes as a code snippet.
        success: see the module docstring. attempts: every candidate tried.
    """

    before: Report
    after: Report
    applied: list[Fix]
    metrics_before: dict[str, Any]
    metrics_after: dict[str, Any]
    metric: str
    model: nn.Module | None
    case: Case
    code: str
    success: bool
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def resolved(self) -> set[str]:
        """Codes of the first diagnosis that are gone after the repair."""
        return self.before.codes() - self.after.codes()

    @property
    def remaining(self) -> set[str]:
        """Codes of the first diagnosis still present after the repair."""
        return self.before.codes() & self.after.codes()

    def summary(self) -> str:
        """Plain text: before/after codes and metrics, the kept fixes and their code."""
        fmt = _format_metrics
        lines = [
            f"repair: {'SUCCESS' if self.success else 'NOT REPAIRED'}",
            f"  before: {sorted(self.before.codes()) or 'no findings'}; {fmt(self.metrics_before)}",
            f"  after:  {sorted(self.after.codes()) or 'no findings'}; {fmt(self.metrics_after)}",
            f"  fixes kept: {', '.join(f.name for f in self.applied) or 'none'} "
            f"({len(self.attempts)} tried; metric: {self.metric})",
        ]
        if self.code:
            lines += ["  code:", *("    " + line for line in self.code.splitlines())]
        return "\n".join(lines)

    def _html_page(self, title: str | None) -> Any:
        """This result's HTML page (:func:`deepbasics.doctor.html.page_of` calls it)."""
        from .html.pages import repair_page  # lazy: matplotlib and jinja2 load only when a report is drawn

        return repair_page(self, title)

    def to_html(self, path: str | os.PathLike[str] = "doctor.html", *, title: str | None = None) -> Path:
        """Write the repair as one self-contained HTML page: the loss before and after, the metrics, the fixes tried
        and kept (with their code) and both diagnoses (:mod:`deepbasics.doctor.html`). Returns the path."""
        from .html import write_html  # lazy: matplotlib and jinja2 load only when a report is drawn

        return write_html(self, path, title=title)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (reports as dicts, fixes by name)."""
        return {
            "success": self.success,
            "metric": self.metric,
            "applied": [f.name for f in self.applied],
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "metrics_before": self.metrics_before,
            "metrics_after": self.metrics_after,
            "code": self.code,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def _format_metrics(m: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)]
    return ", ".join(parts) + (f" ({m['split']})" if "split" in m else "")


# --- training and the metric ---------------------------------------------------------------------------------


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def improved(before: dict[str, Any], after: dict[str, Any], task: str, n_val: int) -> bool:
    """The declared metric (module docstring): did ``after`` improve on ``before``?

    With ``p`` the accuracy before, ``n = n_val`` and ``se = max(sqrt(p (1 - p) / n), 1 / n)`` (the binomial
    standard error of an accuracy measured on ``n`` examples, at least one example):

    - classification/binary: ``acc_after - p >= se`` (better beyond the noise of ``n`` examples), or
      ``acc_after - p > -se`` (not significantly worse) with the validation loss lower by ``MIN_LOSS_GAIN``;
    - regression: the validation loss lower by ``MIN_LOSS_GAIN``.

    A non-finite loss counts as ``+inf``. The rule asks for a change that is large *and* beyond the noise, as
    asv's ``compare`` does for benchmarks.
    """
    check_choice(task, "task", TASKS)
    lb, la = _finite_or_inf(before["val_loss"]), _finite_or_inf(after["val_loss"])
    loss_better = la < lb * (1 - MIN_LOSS_GAIN) if math.isfinite(lb) else math.isfinite(la)
    if task == "regression":
        return loss_better
    n = max(int(n_val), 1)
    p = float(before["val_accuracy"])
    se = max(math.sqrt(max(p * (1 - p), 0.0) / n), 1.0 / n)
    gain = after["val_accuracy"] - p
    return gain >= se - 1e-12 or (gain > -se and loss_better)


def _best_step(report: Report) -> int | None:
    val = [(s, v) for s, v in report.history.get("val_losses") or [] if v == v]
    return min(val, key=lambda sv: sv[1])[0] if val else None


def _try(
    fix: Fix,
    code: str,
    current: Case,
    report: Report,
    metrics: dict[str, Any],
    seed: int,
    device: Any,
    curvature: bool,
    n_val: int,
    cache: dict[str, tuple[Case, Report, dict[str, Any]]],
) -> tuple[Attempt, Case, Report | None]:
    """Apply ``fix`` to a copy of ``current``, retrain and diagnose it, and judge it against ``metrics``.

    ``cache`` holds the runs already made from ``current`` (fix name -> trial, report, metrics): the same fix on
    the same state gives the same run, so it is judged again for ``code`` without retraining."""
    start = time.perf_counter()
    if fix.name in cache:
        trial, rep, met = cache[fix.name]
        return _judge(fix, code, current, rep, met, metrics, n_val, start), trial, rep
    trial = current.replace(model=copy.deepcopy(current.model), best_step=_best_step(report))
    try:
        with torch.random.fork_rng(devices=[]):  # re-initializations draw the same weights on every run
            torch.manual_seed(seed)
            trial = fix.apply(trial)
    except NotApplicable as exc:
        return Attempt(fix.name, code, "not_applicable", reason=str(exc)), trial, None
    except Exception as exc:  # a fix that cannot handle this model is reported, not raised
        return Attempt(fix.name, code, "failed", reason=f"{type(exc).__name__}: {exc}"), trial, None
    try:
        rep = diagnose_case(trial, seed, device, curvature)
        met = evaluate_case(train_case(trial, seed, device), trial)
    except Exception as exc:  # a fix that breaks the run is reported, not raised
        return Attempt(fix.name, code, "failed", reason=f"{type(exc).__name__}: {exc}"), trial, None
    cache[fix.name] = (trial, rep, met)
    return _judge(fix, code, current, rep, met, metrics, n_val, start), trial, rep


def _judge(
    fix: Fix,
    code: str,
    current: Case,
    rep: Report,
    met: dict[str, Any],
    metrics: dict[str, Any],
    n_val: int,
    start: float,
) -> Attempt:
    """Keep ``fix`` for ``code`` when the code is gone from ``rep`` and ``met`` improves on ``metrics``."""
    resolved, better = code not in rep.codes(), improved(metrics, met, current.task, n_val)
    why = ([] if resolved else [f"{code} still found"]) + ([] if better else ["the metric did not improve"])
    return Attempt(
        fix.name,
        code,
        "kept" if resolved and better else "rejected",
        resolved,
        better,
        tuple(sorted(rep.codes())),
        met,
        "; ".join(why),
        time.perf_counter() - start,
    )


# --- the search --------------------------------------------------------------------------------------------


def _serious(report: Report) -> set[str]:
    return {f.code for f in report.by_severity(Severity.WARNING)}


def repair_case(
    case: Case,
    *,
    report: Report | None = None,
    candidates: Iterable[str | Fix] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    curvature: bool = True,
    max_attempts: int = 16,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> RepairResult:
    """Repair a :class:`~deepbasics.doctor.zoo.Case` (see the module docstring); ``case`` is not modified.

    Args:
        report: the diagnosis of ``case`` if already made (else ``diagnose`` runs first).
        candidates: restrict the search to these fixes (names or :class:`Fix` objects), in this order of
            preference; ``None``: the catalogue's candidates for each code.
        seed: seeds every training run (the same batches and initial draws for each candidate).
        max_attempts: the most candidate runs (each costs one ``diagnose`` and one training run).
        on_attempt: called with each :class:`Attempt` as it finishes (progress display).
    """
    seed = check_int(seed, "seed", low=0)
    max_attempts = check_int(max_attempts, "max_attempts", low=1)
    allowed = None if candidates is None else [c if isinstance(c, Fix) else get_fix(c) for c in candidates]
    original = case.replace(model=copy.deepcopy(case.model))
    before = report if report is not None else diagnose_case(original, seed, device, curvature)
    if not isinstance(before, Report):
        raise fail(TypeError, "report", "a Report from diagnose", type(before).__name__, "Pass diagnose(...)'s result.")
    metric = "val_loss" if case.task == "regression" else "val_accuracy"
    n_val = len((case.val_data or case.train_data)[0])
    metrics_before = evaluate_case(train_case(original, seed, device), original)

    current, cur_report, cur_metrics = original, before, metrics_before
    applied: list[Fix] = []
    snippets: list[str] = []
    attempts: list[Attempt] = []
    cache: dict[str, tuple[Case, Report, dict[str, Any]]] = {}
    done: set[str] = set()  # each code gets one pass over its candidates
    while len(attempts) < max_attempts:
        code = next((c for c in ORDER if c in cur_report.codes() and c not in done), None)
        if code is None:
            break
        done.add(code)
        pool = candidates_for(code, current) if allowed is None else [f for f in allowed if code in f.applies_to]
        queue = list(pool)
        while queue and len(attempts) < max_attempts:
            fix = queue.pop(0)
            attempt, trial, rep = _try(
                fix, code, current, cur_report, cur_metrics, seed, device, curvature, n_val, cache
            )
            attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.status == "kept":
                applied.append(fix)
                snippets.append(f"# {fix.name}: {fix.description}\n{fix.snippet(current)}")
                current, cur_report, cur_metrics = trial, rep, attempt.metrics
                cache = {}
                break
            if attempt.resolved and rep is not None and "+" not in fix.name:
                # the fix removed its finding but exposed another, or no longer suits the old learning rate
                # (standardized inputs learn too slowly at it): try it with follow-ups, next in line
                queue[:0] = [f for f in _follow_ups(fix, rep, cur_report, current, allowed) if f.name not in cache]

    first = before.codes()
    new_serious = _serious(cur_report) - _serious(before)
    success = bool(applied) and not (first & cur_report.codes()) and not new_serious
    success = success and improved(metrics_before, cur_metrics, case.task, n_val)
    code_text = "\n".join(snippets)
    model = train_case(current, seed, device) if applied else None
    return RepairResult(
        before=before,
        after=cur_report,
        applied=applied,
        metrics_before=metrics_before,
        metrics_after=cur_metrics,
        metric=metric,
        model=model,
        case=current,
        code=code_text,
        success=success,
        attempts=attempts,
    )


def _follow_ups(fix: Fix, rep: Report, before: Report, case: Case, allowed: list[Fix] | None) -> list[Fix]:
    """Fixes to try together with ``fix``, which removed its finding without (enough) improvement.

    ``fix`` composed with the first :data:`FOLLOW_UPS` candidates for the first code it introduced; if it
    introduced none and changed the model or the data (not the optimizer), ``fix`` plus a re-tuned step size
    (:data:`RETUNE`): a change of scale moves the stable learning-rate range (LeCun et al. 1998, sec. 4.3-4.7).
    """
    new = [c for c in ORDER if c in rep.codes() - before.codes()]
    if new:
        pool = candidates_for(new[0], case) if allowed is None else [f for f in allowed if new[0] in f.applies_to]
    elif not set(fix.parts) & OPTIMIZER_FIXES:
        pool = [get_fix(n) for n in RETUNE] if allowed is None else [f for f in allowed if f.name in RETUNE]
    else:
        return []
    return [fix.then(g) for g in pool[:FOLLOW_UPS] if g.name != fix.name]


def repair(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train_data: object,
    val_data: object = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    steps: int = 200,
    batch_size: int | None = 32,
    report: Report | None = None,
    candidates: Iterable[str | Fix] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    task: str | None = None,
    architecture: str | None = None,
    curvature: bool = True,
    max_attempts: int = 16,
) -> RepairResult:
    """Diagnose a training setup, try fixes on copies, retrain and verify each; return a :class:`RepairResult`.

    Args:
        model, loss_fn: ``loss_fn(model(x), y)`` is the scalar mean loss. The model is never modified.
        train_data, val_data: ``(inputs, targets)`` pairs of tensors (or ``TensorDataset``\\ s); the metric is
            measured on ``val_data`` (on ``train_data`` without it).
        optimizer: the optimizer you train with (rebuilt from its class and hyperparameters for every copy), or
            ``make_optimizer(params) -> Optimizer``; neither: ``Adam(lr=1e-3)``.
        steps, batch_size: the training budget of every run (``batch_size=None``: full batch).
        report: a :func:`~deepbasics.doctor.diagnose.diagnose` report of this setup, to skip the first diagnosis.
        candidates: restrict and order the fixes (names from :data:`deepbasics.doctor.fixes.FIXES`).
        generator: its initial seed seeds every run (default 0), so each candidate sees the same batches.
        task: "classification", "binary" or "regression" (default: inferred from the targets and the loss).
        architecture: one of "mlp", "cnn", "lstm", "residual" (default: inferred from the layers).

    Returns the fixes kept, the reports and metrics before and after, the repaired (trained) copy and the change
    as code. See the module docstring for the acceptance rule and the declared metric.
    """
    check_generator(generator)
    seed = 0 if generator is None else int(generator.initial_seed()) % 2**31
    case = make_case(
        model,
        loss_fn,
        train_data,
        val_data,
        optimizer,
        make_optimizer=make_optimizer,
        steps=steps,
        batch_size=batch_size,
        task=task,
        architecture=architecture,
    )
    return repair_case(
        case,
        report=report,
        candidates=candidates,
        seed=seed,
        device=device,
        curvature=curvature,
        max_attempts=max_attempts,
    )
