"""The HTML report, part 3: one :class:`Page` per kind of doctor result, from the records it already holds.

- :func:`session_page`: a :class:`~deepbasics.doctor.session.DoctorSession` (``watch``);
- :func:`script_page`: a :class:`~deepbasics.doctor.script.ScriptResult` (``deepbasics doctor SCRIPT``), one run per
  model the script trained, with the script's exit status and traceback;
- :func:`report_page`: a :class:`~deepbasics.doctor.report.Report` (``diagnose``);
- :func:`repair_page`: a :class:`~deepbasics.doctor.repairing.RepairResult`: the loss before and after, the fixes
  tried and kept, and both diagnoses.

A page holds no absolute local path except the script's path as the user gave it: traceback lines into other files
(torch, the standard library) are shortened to the part after ``site-packages`` (:func:`shorten_paths`).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .figures import Figure, left_margin, loss_figure, repair_figure, step_range
from .heatmaps import PANELS, layer_figure
from .view import SEVERITY_RANK, RunView, fmt_number, run_view

__all__ = ["Page", "repair_page", "report_page", "run_figures", "script_page", "session_page", "shorten_paths"]

#: How ``deepbasics doctor SCRIPT`` ended, in words (keys of ``deepbasics.doctor.script.EXIT_CODES``).
STATUS_WORDS = {
    "ok": "finished; no finding of severity error",
    "script_error": "the script raised an exception",
    "nonfinite": "stopped by the doctor at a non-finite loss",
    "error_findings": "finished, with findings of severity error",
}


@dataclass
class Page:
    """Everything the template shows.

    Attributes:
        kind: ``"watch"``, ``"script"``, ``"diagnose"`` or ``"repair"``. title, subtitle: the heading.
        level: ``"ok"``, ``"info"``, ``"warning"`` or ``"error"`` (the banner's colour). headline, details: the
        banner's text. facts: ``(label, text)`` rows about the whole run. error, traceback: how a script failed.
        runs: the runs (one per watched model; before and after for a repair). repair: the repair's own data.
        questions: the FAQ questions the findings refer to. practice: codes from practice among the findings.
    """

    kind: str
    title: str
    subtitle: str
    level: str
    headline: str
    details: list[str]
    facts: list[tuple[str, str]]
    runs: list[RunView]
    error: str | None = None
    traceback: str | None = None
    repair: dict[str, Any] | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)
    practice: list[str] = field(default_factory=list)
    generated: str = ""


# --- shared pieces ---------------------------------------------------------------------------------------------


def seconds(value: Any) -> str:
    """Wall time as text: ``850 ms``, ``12.3 s``, ``4 min 05 s``."""
    if value is None:
        return "n/a"
    s = float(value)
    if s < 1:
        return f"{1000 * s:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def model_facts(meta: Mapping[str, Any], *, parameters: int | None = None) -> list[tuple[str, str]]:
    """Model, parameters, optimizer and learning rate, steps, batch size from a run's ``meta``."""
    facts = []
    if meta.get("model"):
        facts.append(("Model", str(meta["model"])))
    params = parameters if parameters is not None else meta.get("parameters")
    if params is not None:
        facts.append(("Trainable parameters", f"{int(params):,}"))
    if meta.get("optimizer"):
        lr = meta.get("lr")
        facts.append(("Optimizer", f"{meta['optimizer']}" + (f", learning rate {fmt_number(lr)}" if lr is not None
                                                              else "")))  # fmt: skip
    else:
        facts.append(("Optimizer", "none seen stepping this model"))
    if "steps_run" in meta and "steps" in meta:
        facts.append(("Steps", f"{meta['steps_run']} of {meta['steps']} (probe run)"))
    elif meta.get("steps") is not None:
        facts.append(("Steps", f"{meta['steps']} training steps watched"))
    if meta.get("batch_size"):
        facts.append(("Batch size", str(meta["batch_size"])))
    if meta.get("device"):
        facts.append(("Device", str(meta["device"])))
    return facts


def _layer_fact(run: RunView) -> tuple[str, str]:
    layers = [k for k, rec in run.trace.layers.items() if rec.get("step")]
    steps = sorted({s for k in layers for s in run.trace.layers[k]["step"]})
    if not layers:
        return ("Layer statistics", "none recorded")
    every = f", every {steps[1] - steps[0]} steps" if len(steps) > 1 else ""
    return ("Layer statistics", f"{len(layers)} layers at {len(steps)} recorded steps{every}")


def run_figures(run: RunView) -> list[Figure]:
    """The loss figure and every layer panel with data, for one run (in page order), on one step range."""
    xlim, left = step_range(run.last_step()), left_margin([run])
    figures = [loss_figure(run, xlim, left)]
    figures += [layer_figure(run, panel, xlim, left) for panel in PANELS]
    return [f for f in figures if f is not None]


def _finish(run: RunView) -> RunView:
    run.facts.append(_layer_fact(run))
    run.figures = run_figures(run)
    return run


def _verdict(runs: Sequence[RunView]) -> tuple[str, str]:
    """The banner's level and headline from the findings of ``runs``."""
    counts = {s: sum(r.counts().get(s, 0) for r in runs) for s in SEVERITY_RANK}
    if not any(counts.values()):
        return "ok", "No findings: nothing the doctor checks for went wrong in this run."
    level = next(s for s in SEVERITY_RANK if counts[s])
    text = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    return level, f"{text}: {', '.join(dict.fromkeys(f.code for r in runs for f in r.findings))}"


def _questions(runs: Sequence[RunView]) -> tuple[list[dict[str, Any]], list[str]]:
    """The FAQ questions behind the findings (id, title, claims), and the practice codes."""
    from ...faq import QUESTIONS

    ids = dict.fromkeys(f.faq for r in runs for f in r.findings if not f.practice)
    questions = [
        {"id": q.id, "title": q.title, "claims": list(q.claims.items()), "codes": list(q.doctor)}
        for q in QUESTIONS
        if q.id in ids
    ]
    practice = list(dict.fromkeys(f.code for r in runs for f in r.findings if f.practice))
    return questions, practice


def _now() -> str:
    import torch

    from ..._version import __version__

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{stamp} · deepbasics {__version__} · torch {torch.__version__} · Python {platform.python_version()}"


def _page(kind: str, title: str, subtitle: str, runs: list[RunView], **extra: Any) -> Page:
    level, headline = _verdict(runs)
    questions, practice = _questions(runs)
    page = Page(kind, title, subtitle, level, headline, [], [], runs, questions=questions, practice=practice)
    page.generated = _now()
    for key, value in extra.items():
        setattr(page, key, value)
    return page


_FILE = re.compile(r'File "([^"\n]+)"')
_PACKAGE_ROOTS = ("site-packages", "dist-packages")


def shorten_paths(text: str, keep: Iterable[str] = ()) -> str:
    """``File "/abs/.../site-packages/torch/x.py"`` -> ``File "…/torch/x.py"`` in a traceback; the paths in
    ``keep`` (the script, as given) and relative paths stay. Other absolute paths keep their last two parts."""
    keep = set(keep)

    def short(match: re.Match[str]) -> str:
        path = match.group(1)
        if path in keep or not os.path.isabs(path):
            return match.group(0)
        parts = re.split(r"[\\/]+", path)
        roots = [i for i, p in enumerate(parts) if p in _PACKAGE_ROOTS]
        tail = parts[roots[-1] + 1 :] if roots else parts[-2:]
        return f'File "…/{"/".join(tail)}"'

    return _FILE.sub(short, text)


# --- the four kinds of results ----------------------------------------------------------------------------------


def session_page(session: Any, title: str | None = None) -> Page:
    """The page of a watched run (``with watch(model, optimizer) as session``)."""
    meta = session.meta()
    facts = [*model_facts(meta), ("Wall time watched", seconds(meta.get("seconds")))]
    run = _finish(run_view(meta.get("model") or "model", "run", session.trace(), session.findings, session.notes,
                           facts))  # fmt: skip
    return _page("watch", title or f"{meta.get('model') or 'model'} (watched)", "deepbasics doctor · watch", [run])


def script_page(result: Any, title: str | None = None) -> Page:
    """The page of ``deepbasics doctor SCRIPT``: the script's outcome, then one run per watched model."""
    runs = []
    for i, m in enumerate(result.models):
        meta = m.session.meta()
        run = run_view(m.name, f"model-{i + 1}", m.session.trace(), m.findings, m.session.notes,
                       model_facts(meta, parameters=m.parameters))  # fmt: skip
        if m.session.ranks_reported:
            run.facts.append(("Ranks reported", ", ".join(map(str, m.session.ranks_reported))))
        runs.append(_finish(run))
    args = " ".join(result.args)
    facts = [
        ("Script", result.script + (f" {args}" if args else "")),
        ("Exit status", f"{result.exit_code} ({STATUS_WORDS.get(result.status, result.status)})"),
        ("Wall time", seconds(result.seconds)),
        ("Losses seen", str(result.losses)),
        ("Models watched", ", ".join(m.name for m in result.models) or "none"),
    ]
    if result.world_size > 1:
        facts.append(("Distributed", f"rank {result.rank} of {result.world_size}"))
    page = _page("script", title or os.path.basename(result.script), "deepbasics doctor · script", runs,
                 facts=facts, error=result.error)  # fmt: skip
    if result.error_traceback:
        page.traceback = shorten_paths(result.error_traceback, keep=[result.script])
    if result.status in ("script_error", "nonfinite"):
        page.level = "error"
        page.details.append(f"The script did not finish: {result.error or STATUS_WORDS[result.status]}.")
    if not result.models:
        page.details.append("No model was trained: no module ran a forward pass with gradients enabled and "
                            "trainable parameters, so there is nothing to draw.")  # fmt: skip
    for r, other in sorted((result.ranks or {}).items()):
        if r != result.rank and other.get("status") != "ok":
            page.details.append(f"Rank {r}: {STATUS_WORDS.get(other['status'], other['status'])}"
                                + (f" ({other['error']})" if other.get("error") else "") + ".")  # fmt: skip
    return page


def _report_run(report: Any, title: str, anchor: str) -> RunView:
    meta = report.meta
    facts = [*model_facts(meta), ("Wall time", seconds(meta.get("seconds")))]
    static = {f.code for f in report.static_findings}
    return run_view(title, anchor, report.trace(), report.findings, report.notes, facts,
                    nonfinite=report.history.get("nonfinite"), before=static)  # fmt: skip


def report_page(report: Any, title: str | None = None) -> Page:
    """The page of a :func:`~deepbasics.doctor.diagnose` report."""
    name = report.meta.get("model") or "model"
    run = _finish(_report_run(report, f"{name} (diagnosed)", "run"))
    return _page("diagnose", title or f"{name} (diagnosed)", "deepbasics doctor · diagnose", [run])


def repair_page(result: Any, title: str | None = None) -> Page:
    """The page of a repair: before/after curves and metrics, the fixes tried and kept, both diagnoses."""
    before = _finish(_report_run(result.before, "Before the repair", "before"))
    after = _finish(_report_run(result.after, "After the repair", "after"))
    metrics = []
    for key in dict.fromkeys([*result.metrics_before, *result.metrics_after]):
        a, b = result.metrics_before.get(key), result.metrics_after.get(key)
        if isinstance(a, (int, float)) or isinstance(b, (int, float)):
            metrics.append((key, fmt_number(a), fmt_number(b), key == result.metric))
    attempts = [
        {
            "fix": a.fix,
            "target": a.target,
            "status": a.status,
            "reason": a.reason,
            "codes": ", ".join(a.codes) or "none",
            "metrics": ", ".join(f"{k} {fmt_number(v)}" for k, v in a.metrics.items() if isinstance(v, (int, float))),
            "seconds": seconds(a.seconds),
        }
        for a in result.attempts
    ]
    repair = {
        "success": result.success,
        "metric": result.metric,
        "split": result.metrics_after.get("split") or result.metrics_before.get("split") or "",
        "metrics": metrics,
        "applied": [f.name for f in result.applied],
        "resolved": sorted(result.resolved),
        "remaining": sorted(result.remaining),
        "code": result.code,
        "attempts": attempts,
        "figure": repair_figure(before, after),
    }
    name = result.before.meta.get("model") or "model"
    page = _page("repair", title or f"{name} (repair)", "deepbasics doctor · repair", [before, after], repair=repair)
    page.level, page.headline = _repair_verdict(result, before)
    return page


def _repair_verdict(result: Any, before: RunView) -> tuple[str, str]:
    kept = ", ".join(f.name for f in result.applied)
    if result.success:
        return "ok", f"Repaired: {', '.join(sorted(result.resolved)) or 'the findings'} gone with {kept}."
    if not before.findings:
        return "ok", "Nothing to repair: the diagnosis found nothing."
    if result.applied:
        still = ", ".join(sorted(result.remaining)) or "new findings"
        return "warning", f"Partly repaired with {kept}; still found: {still}."
    return "error", f"Not repaired: no fix removed {', '.join(sorted(result.before.codes()))} and improved the metric."


def figures_of(page: Page) -> list[Figure]:
    """Every figure on the page (for tests and size checks)."""
    out = [f for r in page.runs for f in r.figures]
    if page.repair and page.repair.get("figure") is not None:
        out.append(page.repair["figure"])
    return out
