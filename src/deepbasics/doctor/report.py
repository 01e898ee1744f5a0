"""The doctor's report: findings plus the numbers behind them, as JSON and as rich-formatted text.

:class:`Report` is what :func:`deepbasics.doctor.diagnose` returns: the static findings (before training), the
findings of the probe run, the history (losses, validation losses, per-layer statistics, curvature, noise
scale) and notes (checks skipped and why, observations without a finding code). :func:`render_findings` turns
any list of findings into a table with ``rich`` (the watch session's ``report()`` uses it too).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codes import PRACTICE
from .findings import Finding, Severity
from .records import RunTrace

__all__ = ["Report", "render_findings"]

_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_ORDER[f.severity], f.step if f.step is not None else -1))


def render_findings(
    findings: Iterable[Finding], *, title: str = "deepbasics doctor", notes: Iterable[str] = (), width: int = 110
) -> str:
    """A rich table of ``findings`` (most severe first) with explanation and fix, rendered to plain text.

    The text has no ANSI colour codes (it is meant for logs, files and ``print``); print the same table in
    colour with ``rich.print`` on :meth:`Report.summary`'s output if wanted.
    """
    from rich.console import Console  # lazy: rich is only needed when a report is rendered
    from rich.table import Table

    findings = _sorted(findings)
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    if not findings:
        console.print(f"{title}: no findings.")
    else:
        counts = {s: sum(f.severity == s for f in findings) for s in Severity}
        head = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
        table = Table(title=f"{title}: {head}", show_lines=True, expand=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("code / where", min_width=24, overflow="fold")
        table.add_column("what and why", ratio=3, overflow="fold")
        table.add_column("fix", ratio=2, overflow="fold")  # code snippets must never be cut with an ellipsis
        for f in findings:
            where = ", ".join(f.where) if f.where else "model"
            step = f"\nstep {f.step}" if f.step is not None else ""
            table.add_row(
                f"[{_STYLE[f.severity]}]{f.severity.value}[/]",
                f"{f.code}\n{where}{step}\n{'practice' if f.faq == PRACTICE else f'FAQ {f.faq}'}",
                f.explanation,
                f.fix,
            )
        console.print(table)
    for note in notes:
        console.print(f"note: {note}")
    return console.file.getvalue()  # type: ignore[attr-defined]


@dataclass
class Report:
    """The result of :func:`deepbasics.doctor.diagnose`.

    Attributes:
        findings: every finding (static ones first), deduplicated per ``(code, where)``.
        static_findings: the subset found before training (model, loss and data checks).
        history: ``{"losses": [(step, loss)], "val_losses": [(step, loss)], "layers": {...}, "order": [...],
            "curvature": {...} | None, "noise": {...} | None, "nonfinite": {...} | None, ...}``.
        notes: checks that were skipped and why, and observations without a finding code.
        meta: the run's settings (steps, batch size, optimizer, learning rate, device, parameters, seconds).
    """

    findings: list[Finding] = field(default_factory=list)
    static_findings: list[Finding] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def trace(self) -> RunTrace:
        """The probe run's records as a :class:`~deepbasics.doctor.records.RunTrace`, the same records a watched
        run gives (losses, validation losses, per-layer statistics, curvature, noise scale)."""
        h = self.history
        return RunTrace(
            losses=[(int(s), float(v)) for s, v in h.get("losses") or []],
            val_losses=[(int(s), float(v)) for s, v in h.get("val_losses") or []],
            layers=dict(h.get("layers") or {}),
            order=list(h.get("order") or []),
            kinds=dict(h.get("kinds") or {}),
            batch_size=self.meta.get("batch_size"),
            curvature=h.get("curvature"),
            noise=h.get("noise"),
        )

    def codes(self) -> set[str]:
        """The set of finding codes."""
        return {f.code for f in self.findings}

    def has(self, code: str) -> bool:
        """Whether a finding with ``code`` was made."""
        return any(f.code == code for f in self.findings)

    def by_severity(self, at_least: Severity | str = Severity.INFO) -> list[Finding]:
        """Findings of severity ``at_least`` or more severe (``"warning"`` returns warnings and errors)."""
        level = _ORDER[Severity(at_least)]
        return [f for f in self.findings if _ORDER[f.severity] <= level]

    @property
    def ok(self) -> bool:
        """True when there is no finding of severity warning or error."""
        return not self.by_severity(Severity.WARNING)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: findings (with the FAQ question), static codes, history, notes, meta."""
        data = {
            "findings": [f.to_dict() for f in self.findings],
            "static_codes": sorted({f.code for f in self.static_findings}),
            "history": self.history,
            "notes": list(self.notes),
            "meta": self.meta,
        }
        return json.loads(json.dumps(data, default=_jsonable))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Inverse of :meth:`to_dict` (static findings are those whose code is in ``static_codes``)."""
        findings = [Finding.from_dict(f) for f in data.get("findings", [])]
        static = set(data.get("static_codes", []))
        return cls(
            findings=findings,
            static_findings=[f for f in findings if f.code in static and f.step is None],
            history=dict(data.get("history", {})),
            notes=list(data.get("notes", [])),
            meta=dict(data.get("meta", {})),
        )

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given (parent folders created)."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=True)
        if path is not None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8")
        return text

    def _html_page(self, title: str | None) -> Any:
        """This result's HTML page (:func:`deepbasics.doctor.html.page_of` calls it)."""
        from .html.pages import report_page  # lazy: matplotlib and jinja2 load only when a report is drawn

        return report_page(self, title)

    def to_html(self, path: str | os.PathLike[str] = "doctor.html", *, title: str | None = None) -> Path:
        """Write the report as one self-contained HTML page (loss curve with the findings marked, per-layer
        heatmaps, each finding with its evidence, fix and FAQ question): :mod:`deepbasics.doctor.html`."""
        from .html import write_html  # lazy: matplotlib and jinja2 load only when a report is drawn

        return write_html(self, path, title=title)

    def summary(self, *, width: int = 110) -> str:
        """Rich-formatted text: the findings table, a one-line run summary and the notes."""
        losses = self.history.get("losses") or []
        line = []
        if "steps" in self.meta:
            line.append(f"{self.meta.get('steps_run', self.meta['steps'])} of {self.meta['steps']} steps")
        finite = [v for _, v in losses if v == v and abs(v) != float("inf")]
        if finite:
            line.append(f"loss {finite[0]:.4g} -> {finite[-1]:.4g}")
        if self.meta.get("optimizer"):
            line.append(f"{self.meta['optimizer']} lr={self.meta.get('lr')}")
        title = "deepbasics doctor" + (f" ({'; '.join(line)})" if line else "")
        return render_findings(self.findings, title=title, notes=self.notes, width=width)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"Report(codes={sorted(self.codes())}, findings={len(self.findings)}, notes={len(self.notes)})"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
