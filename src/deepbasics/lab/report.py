"""The lab report: ``results.json`` (data), ``index.html`` (people, offline) and ``report.md`` (diffs, GitHub).

All three are rendered from the same list of :class:`~deepbasics.lab.result.Result` objects, so they
cannot disagree. The HTML has no scripts and no network fonts; figures are PNG files under ``figures/``
linked by relative path. The templates ship with the package (``deepbasics/lab/templates/``).

``results.json`` is a list with one object per claim ID: ``id``, ``question_id``, ``question``, ``claim``,
``verdict``, ``reason``, ``rule``, ``metric``, ``metrics`` (name -> per-seed list; NaN/inf as ``null``),
``figures`` (relative to the report folder), ``seconds``, ``error``, ``experiment``, ``method``, ``seeds``,
``mode``, ``cached``, and (since 0.2.0) ``scope`` (the tasks where a scoped ``holds`` held, else ``null``),
``sentence`` (the verdict over tasks in words), ``tasks`` (``null``, or task name -> ``label``, ``data``,
``applies``, ``why``, ``verdict``, ``reason``, ``metrics``, ``figures``, ``seconds``, ``key_number``,
``takeaway``, ``error``), ``key_number`` and ``takeaway`` (in words, from the measurement), ``rule_since``,
``rule_history`` (``changed_in``, ``what``, ``was``, ``reason``) and ``faq`` (the question's FAQ section
``key``, its Chinese ``text`` and the English ``gist``; ``null`` for questions beyond the FAQ).

The HTML and Markdown show, per question, the FAQ's answer (Chinese, folded) with its English gist; per
claim, the verdict (scoped to tasks where it applies), the takeaway, the key number in words, the per-task
table, the rule with the version it was declared in and its history of changes.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import re
import statistics
import urllib.parse
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .._version import __version__
from ._files import finite_or_none, write_json_atomic, write_text_atomic
from .result import Result
from .rules import Verdict

__all__ = ["LABELS", "broken_links", "fmt", "write_report"]

#: How each verdict is written for people.
LABELS: Mapping[str, str] = {
    Verdict.HOLDS.value: "holds",
    Verdict.DOES_NOT_HOLD.value: "does not hold",
    Verdict.INCONCLUSIVE.value: "inconclusive",
    Verdict.ERROR.value: "error",
}


def fmt(x: float) -> str:
    """A number for people: four significant digits (``1.234e-15``, ``12.35``)."""
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _mean_std(values: Sequence[float]) -> str:
    if not all(math.isfinite(v) for v in values):
        return ", ".join(fmt(v) for v in values)
    if len(values) == 1:
        return fmt(values[0])
    # statistics computes exactly: equal values give a std of 0, not 1e-18 of rounding noise
    return f"{fmt(statistics.fmean(values))} ± {fmt(statistics.stdev(values))}"


def _faq(question_id: str) -> dict[str, Any] | None:
    from ..faq_answers import answer

    found = answer(question_id)
    if found is None:
        return None
    return {"key": found.key, "title": found.title, "text": found.text, "gist": found.gist, "has_text": found.has_text}


def _plain(markdown: str) -> str:
    """The FAQ's Markdown for the HTML page, shown as text: bold markers and heading hashes dropped."""
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", markdown)
    return re.sub(r"^#{1,6}\s+", "", text, flags=re.M)


def _claim_view(r: Result) -> dict[str, Any]:
    return {
        "id": r.id,
        "claim": r.claim,
        "verdict": r.verdict.value,
        "label": r.label,
        "reason": r.reason,
        "rule": r.rule,
        "since": r.rule_since,
        "history": list(r.rule_history),
        "key": r.key_number or "-",
        "takeaway": r.takeaway,
        "sentence": r.sentence,
        "scoped": r.scope is not None,
        "tasks": [
            {
                "label": task.label,
                "applies": task.applies,
                "why": task.why,
                "verdict": task.verdict.value,
                "verdict_label": LABELS[task.verdict.value],
                "key": task.key_number.partition(": ")[2] or "-",
                "reason": task.reason,
            }
            for task in r.tasks
        ],
        "contradicts": r.contradicts_faq,
    }


def _metric_rows(metrics: Mapping[str, Sequence[float]], judged: set[str], task: str = "") -> list[dict[str, Any]]:
    return [
        {
            "task": task,
            "name": name,
            "summary": _mean_std(values),
            "per_seed": ", ".join(fmt(v) for v in values),
            "judged": name in judged,
        }
        for name, values in metrics.items()
    ]


def _experiment_view(group: list[Result]) -> dict[str, Any]:
    first = group[0]
    judged = {r.metric for r in group}
    if first.tasks:
        metrics = [row for task in first.tasks for row in _metric_rows(task.metrics, judged, task.label)]
        figures = [{"task": task.label, "path": f} for task in first.tasks for f in task.figures]
    else:
        metrics = _metric_rows(first.metrics, judged)
        figures = [{"task": "", "path": f} for f in first.figures]
    return {
        "id": first.experiment,
        "ids": [r.id for r in group],
        "method": first.method,
        "figures": figures,
        "claims": [_claim_view(r) for r in group],
        "tasks": [
            {"label": t.label, "data": t.data, "applies": t.applies, "why": t.why, "seconds": t.seconds}
            for t in first.tasks
        ],
        "metrics": metrics,
        "seconds": first.seconds,
        "cached": first.cached,
        "seeds": len(first.seeds),
        "error": first.error if first.verdict is Verdict.ERROR else None,
    }


def _context(results: Sequence[Result], meta: Mapping[str, Any]) -> dict[str, Any]:
    questions: dict[str, dict[str, Any]] = {}
    experiments: dict[str, list[Result]] = {}
    for r in results:
        questions.setdefault(
            r.question_id, {"id": r.question_id, "title": r.question, "experiments": [], "faq": _faq(r.question_id)}
        )
        experiments.setdefault(r.experiment, []).append(r)
    for group in experiments.values():
        questions[group[0].question_id]["experiments"].append(_experiment_view(group))
    for q in questions.values():
        q["claims"] = [c for e in q["experiments"] for c in e["claims"]]
        q["contradicted"] = [c["id"] for c in q["claims"] if c["contradicts"]]
        q["scoped"] = [c for c in q["claims"] if c["scoped"]]
    counts = {v: sum(r.verdict.value == v for r in results) for v in LABELS}
    import torch

    meta = {
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "deepbasics": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        **meta,
    }
    return {
        "questions": list(questions.values()),
        "counts": counts,
        "scoped": sum(r.scope is not None for r in results),
        "labels": LABELS,
        "meta": meta,
        "n": len(results),
    }


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("deepbasics.lab", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = lambda s: f"{s:.1f} s" if s >= 0.1 else f"{1000 * s:.0f} ms"
    env.filters["url"] = lambda path: urllib.parse.quote(str(path))  # a relative link, spaces and all
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    env.filters["plain"] = _plain
    return env


def write_report(results: Sequence[Result], out: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``index.html`` and ``report.md`` into ``out``; return their paths.

    ``meta`` adds run facts to the header (``mode``, ``jobs``, ``seeds``, ``wall_seconds``, ``cpu_seconds``).
    Every file is written atomically, so an interrupted write leaves the previous report intact.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "html": out / "index.html", "markdown": out / "report.md"}
    rows = [{**finite_or_none(r.to_dict()), "faq": _faq(r.question_id)} for r in results]
    write_json_atomic(paths["json"], rows, strict=True)
    env, context = _environment(), _context(results, meta or {})
    write_text_atomic(paths["html"], env.get_template("report.html").render(**context))
    write_text_atomic(paths["markdown"], env.get_template("report.md").render(**context))
    return paths


class _Links(HTMLParser):
    """Collects the ``src`` and ``href`` attributes of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(folder: str | Path) -> list[str]:
    """The local links of ``folder/index.html`` and ``folder/report.md`` that do not resolve to an existing file.

    A report must survive being moved or zipped as a folder, so every local ``src``/``href`` (and every Markdown
    link) is resolved from the report's own folder; anchors (``#Q1``) and absolute URLs (``https:``, ``data:``)
    are skipped. A missing ``index.html`` is itself reported. Returns ``"file: link"`` strings, empty when all is well.
    """
    folder = Path(folder)
    page = folder / "index.html"
    if not page.is_file():
        return [f"{page}: missing"]
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    found = [("index.html", link) for link in parser.links]
    markdown = folder / "report.md"
    if markdown.is_file():
        found += [("report.md", link) for link in _MARKDOWN_LINK.findall(markdown.read_text(encoding="utf-8"))]
    broken = []
    for name, link in found:
        parts = urllib.parse.urlsplit(link)
        if parts.scheme or parts.netloc or not parts.path:  # absolute URL, or an anchor in the page itself
            continue
        target = folder / urllib.parse.unquote(parts.path)
        if Path(parts.path).is_absolute() or not target.is_file():
            broken.append(f"{name}: {link}")
    return broken
