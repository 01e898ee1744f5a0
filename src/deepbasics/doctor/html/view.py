"""The HTML report, part 1: what one run recorded, turned into plain data for the page (no drawing, no markup).

A :class:`RunView` is built from the records every doctor entry point already keeps -- a
:class:`~deepbasics.doctor.records.RunTrace` (losses, validation losses, ``LayerStats`` records, layer kinds), the
findings and the notes -- plus a few facts (model, optimizer, steps, wall time). Nothing here runs a model or adds a
hook: a report is drawn after training from what was recorded during it.

What the numbers say is also put in words (:attr:`RunView.words`), because a figure cannot say "the loss became NaN
at step 37" or "no per-layer statistics were recorded": non-finite losses and layer statistics (drawn as gaps),
records that are missing, the location of the first non-finite operation when ``diagnose`` found it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..codes import PRACTICE, spec
from ..findings import Finding, Severity
from ..records import RunTrace
from .onset import first_seen

__all__ = ["Curve", "FindingView", "RunView", "fmt_number", "fmt_value", "layer_matrix", "named_rows", "run_view"]

#: Findings are listed most severe first, then by the step they were first seen.
SEVERITY_RANK = {Severity.ERROR.value: 0, Severity.WARNING.value: 1, Severity.INFO.value: 2}
#: Longest evidence list written out in full; longer ones show their first values and their length.
EVIDENCE_ITEMS = 8
#: Longest evidence text (characters) shown; the rest is cut with an ellipsis (the JSON keeps all of it).
EVIDENCE_CHARS = 400
#: Layers named per sentence about non-finite layer statistics.
NAMES_IN_WORDS = 4


def number(value: Any) -> float | None:
    """A recorded value as a float (``None`` when not measured). JSON round trips turn inf/nan into the strings
    ``"inf"``/``"nan"``; they become floats again."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt_number(value: float | int | None) -> str:
    """4 significant digits (``1.234e-05``, ``0.1234``, ``1.234e+04``); ``nan``/``inf`` spelled out."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def fmt_value(value: Any, depth: int = 0) -> str:
    """An evidence value as short text: numbers with :func:`fmt_number`, long lists shortened, text cut."""
    if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)) or value is None:
        return fmt_number(value)  # type: ignore[arg-type]
    if hasattr(value, "tolist"):  # tensors and arrays
        value = value.tolist()
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {fmt_value(v, depth + 1)}" for k, v in list(value.items())[:EVIDENCE_ITEMS])
        return text + (f", … ({len(value)} entries)" if len(value) > EVIDENCE_ITEMS else "")
    if isinstance(value, (list, tuple)):
        if depth >= 2:
            return f"[{len(value)} values]"
        shown = [fmt_value(v, depth + 1) for v in value[:EVIDENCE_ITEMS]]
        more = f", … ({len(value)} values)" if len(value) > EVIDENCE_ITEMS else ""
        return "[" + ", ".join(shown) + more + "]"
    text = str(value)
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Curve:
    """A recorded curve: ``steps`` (n,) int64 and ``values`` (n,) float64, non-finite values kept as they are."""

    label: str
    steps: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, label: str, pairs: Iterable[Sequence[Any]]) -> Curve | None:
        """From ``(step, value)`` pairs (values may be the strings ``"nan"``/``"inf"``); None when empty."""
        rows = [(int(s), number(v)) for s, v in pairs]
        rows = sorted((s, math.nan if v is None else v) for s, v in rows)
        if not rows:
            return None
        steps, values = zip(*rows, strict=True)
        return cls(label, np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))

    @property
    def bad(self) -> np.ndarray:
        """(n,) bool: the non-finite values."""
        return ~np.isfinite(self.values)


@dataclass(frozen=True)
class FindingView:
    """A finding as the page shows it: the code table's title and FAQ question next to the finding's own text."""

    code: str
    severity: str
    title: str
    where: tuple[str, ...]
    step: int | None
    explanation: str
    fix: str
    evidence: tuple[tuple[str, str], ...]
    faq: str
    faq_title: str | None
    ranks: tuple[int, ...]
    anchor: str
    when: str = ""

    @property
    def practice(self) -> bool:
        """A code from practice, with no FAQ question behind it."""
        return self.faq == PRACTICE

    @classmethod
    def of(cls, finding: Finding, anchor: str, step: int | None = None, when: str = "") -> FindingView:
        """The view of ``finding``; ``step``: its step when the finding has none (replayed), ``when`` in words."""
        row = spec(finding.code)
        step = finding.step if finding.step is not None else step
        return cls(
            code=finding.code,
            severity=finding.severity.value,
            title=row.title,
            where=tuple(str(w) for w in finding.where),
            step=step,
            explanation=finding.explanation,
            fix=finding.fix,
            evidence=tuple((str(k), fmt_value(v)) for k, v in finding.evidence.items()),
            faq=row.faq,
            faq_title=None if row.practice else question_title(row.faq),
            ranks=tuple(finding.ranks),
            anchor=anchor,
            when=when or (f"first seen at step {step}" if step is not None else "judged on the whole run"),
        )


def question_title(question: str) -> str | None:
    """The title of FAQ question ``question`` (``deepbasics faq``), or None if the FAQ table has no such id."""
    from ...faq import QUESTIONS  # the FAQ table is data at the bottom layer; read only when a report is drawn

    return next((q.title for q in QUESTIONS if q.id == question), None)


@dataclass
class RunView:
    """One watched or diagnosed run, ready for the page.

    Attributes:
        title: its heading (the model's class, "diagnosis before repair", ...). anchor: its HTML id.
        facts: ``(label, text)`` rows of its summary. trace: the records. losses, val_losses: the curves (None when
        not recorded). findings: most severe first. notes: the doctor's notes (checks skipped, observations).
        words: what the numbers say that a figure cannot (non-finite values, missing records).
        figures: filled by :mod:`.figures` (``Figure`` objects).
    """

    title: str
    anchor: str
    facts: list[tuple[str, str]]
    trace: RunTrace
    losses: Curve | None
    val_losses: Curve | None
    findings: list[FindingView]
    notes: list[str]
    words: list[str] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Findings per severity, most severe first (only severities that occur)."""
        out = {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_RANK}
        return {s: n for s, n in out.items() if n}

    def last_step(self) -> int:
        """The last step anything was recorded at (losses, validation losses, layer statistics, findings)."""
        ends = [int(c.steps[-1]) for c in (self.losses, self.val_losses) if c is not None]
        ends += [int(s) for rec in self.trace.layers.values() for s in rec.get("step", [])[-1:]]
        ends += [f.step for f in self.findings if f.step is not None]
        return max(ends, default=0)


def run_view(
    title: str,
    anchor: str,
    trace: RunTrace,
    findings: Iterable[Finding],
    notes: Iterable[str] = (),
    facts: Iterable[tuple[str, str]] = (),
    nonfinite: Mapping[str, Any] | None = None,
    before: Iterable[str] = (),
) -> RunView:
    """Build the :class:`RunView` of a run; ``nonfinite``: where ``diagnose`` located the first inf/nan; ``before``:
    the codes of the checks made before training (``diagnose``'s static findings).

    A finding without a step gets the first step at which a cut of the records shows it (:mod:`.onset`), unless
    it was found before training."""
    findings = list(findings)
    before = frozenset(before)
    replay = [i for i, f in enumerate(findings) if f.step is None and f.code not in before]
    steps = {replay[j]: s for j, s in first_seen(trace, [findings[i] for i in replay]).items()}
    views = [
        FindingView.of(f, "", steps.get(i), "found before training" if f.step is None and f.code in before else "")
        for i, f in enumerate(findings)
    ]
    views.sort(key=lambda f: (SEVERITY_RANK[f.severity], f.step if f.step is not None else -1, f.code))
    run = RunView(
        title=title,
        anchor=anchor,
        facts=list(facts),
        trace=trace,
        losses=Curve.of("training loss", trace.losses),
        val_losses=Curve.of("validation loss", trace.val_losses),
        findings=[dataclasses.replace(f, anchor=f"{anchor}-{i + 1}") for i, f in enumerate(views)],
        notes=[str(n) for n in notes],
    )
    run.words = _words(run, nonfinite)
    return run


# --- what the numbers say in words -----------------------------------------------------------------------------


def _words(run: RunView, nonfinite: Mapping[str, Any] | None) -> list[str]:
    words = []
    if run.losses is None:
        words.append(
            "No training loss was recorded, so there is no loss curve: the run called no backward pass on a scalar "
            "loss (deepbasics doctor SCRIPT) or gave no loss to session.step(loss) (watch)."
        )
    else:
        words += curve_words(run.losses)
    if run.val_losses is not None:
        words += curve_words(run.val_losses)
    if nonfinite:
        words.append(_location_words(nonfinite))
    if not any(rec.get("step") for rec in run.trace.layers.values()):
        words.append(
            "No per-layer statistics were recorded, so there are no layer panels: the run ended before the first "
            "recorded step, or the model ran no training forward pass with gradients enabled."
        )
    else:
        words += layer_words(run.trace)
    return words


def curve_words(curve: Curve) -> list[str]:
    """ "The training loss became NaN at step 37 ..." for a curve with non-finite values, else nothing."""
    bad = curve.bad
    if not bad.any():
        return []
    i = int(np.argmax(bad))
    value = float(curve.values[i])
    kind = "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    text = f"The {curve.label} became {kind} at step {int(curve.steps[i])}"
    n_bad, n = int(bad.sum()), len(bad)
    if bad[i:].all():
        text += " and stayed non-finite to the end" if n_bad > 1 else ", its last recorded value"
    text += f" ({n_bad} of {n} recorded values non-finite"
    finite_before = np.flatnonzero(~bad[:i])
    if finite_before.size:
        j = int(finite_before[-1])
        text += f"; the last finite value before it was {fmt_number(curve.values[j])} at step {int(curve.steps[j])}"
    return [text + "). Non-finite values are drawn as gaps."]


def _location_words(located: Mapping[str, Any]) -> str:
    where = f"module {located['module']}" if located.get("module") else "outside any module"
    what = "produced inf/nan from finite inputs" if located.get("kind") == "produced" else "received a non-finite input"
    text = f"The first non-finite value: {located.get('op', 'an operation')} ({located.get('phase', '?')} pass) {what}"
    text += f" in {where}"
    if located.get("backward_of"):
        text += f", while differentiating {located['backward_of']}"
    return text + (f". Hint: {located['hint']}" if located.get("hint") else ".")


#: Per-layer metrics whose non-finite values are reported in words: (metric, what it is, drawn in a panel).
WORDED_METRICS = (
    ("grad_norm", "the gradient norm", True),
    ("update_ratio", "the update-to-weight ratio", True),
    ("act_std", "the activation spread", True),
    ("weight_norm", "the weights", False),
)


def layer_words(trace: RunTrace) -> list[str]:
    """One sentence per metric whose recorded values include inf/nan: which layers, from which step."""
    words = []
    for metric, name, drawn in WORDED_METRICS:
        hit: list[tuple[int, str]] = []
        for layer in trace.order or list(trace.layers):
            rec = trace.layers.get(layer, {})
            for s, v in zip(rec.get("step", []), rec.get(metric, []), strict=False):
                x = number(v)
                if x is not None and not math.isfinite(x):
                    hit.append((int(s), layer))
                    break
        if hit:
            first = min(s for s, _ in hit)
            names = [n for _, n in hit]
            listed = ", ".join(names[:NAMES_IN_WORDS])
            if len(names) > NAMES_IN_WORDS:
                listed += f" and {len(names) - NAMES_IN_WORDS} more"
            layers = f"{len(names)} layer{'s' if len(names) != 1 else ''}"
            words.append(f"{name[0].upper()}{name[1:]} became non-finite in {layers} ({listed}), first recorded at "
                         f"step {first}" + ("; drawn as gaps." if drawn else "."))  # fmt: skip
    return words


# --- the per-layer matrices the heatmaps draw ------------------------------------------------------------------


def base_name(key: str) -> str:
    """A LayerStats key without its ``#k`` call suffix (a module called several times in one forward)."""
    return key.split("#", 1)[0]


def layer_matrix(
    trace: RunTrace, metric: str, kinds: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(rows, steps, values)`` of one metric: the layers (input side first) that recorded it, of the given
    ``kinds`` when the trace knows the kinds; the union of their recorded steps (c,); values (r, c) float64 with NaN
    where a layer did not measure it (and inf/nan as recorded)."""
    rows = []
    for name in trace.order or list(trace.layers):
        rec = trace.layers.get(name, {})
        if kinds is not None and trace.kinds and trace.kinds.get(base_name(name)) not in kinds:
            continue
        if any(number(v) is not None for v in rec.get(metric, [])):
            rows.append(name)
    steps = sorted({int(s) for name in rows for s in trace.layers[name].get("step", [])})
    col = {s: j for j, s in enumerate(steps)}
    values = np.full((len(rows), len(steps)), np.nan)
    for i, name in enumerate(rows):
        rec = trace.layers[name]
        for s, v in zip(rec.get("step", []), rec.get(metric, []), strict=False):
            x = number(v)
            if x is not None:
                values[i, col[int(s)]] = x
    return rows, np.asarray(steps, dtype=np.int64), values


def named_rows(rows: Sequence[str], findings: Sequence[FindingView]) -> dict[str, FindingView]:
    """The rows a finding names (the most severe finding per row): a row is named when a finding's ``where`` is
    the layer, one of its parameters (``layer.weight``) or one of its repeated calls (``layer#2``)."""
    out: dict[str, FindingView] = {}
    for f in findings:  # most severe first: the first one to name a row keeps it
        for row in rows:
            base = base_name(row)
            if row not in out and any(w in (row, base) or _parameter_of(w, base) for w in f.where):
                out[row] = f
    return out


def _parameter_of(where: str, module: str) -> bool:
    """``where`` names a parameter of ``module`` itself (``fc1.weight`` of ``fc1``, not ``fc1.sub.weight``)."""
    if module == "(root)":  # the root's parameter names have no prefix to tell them from module names
        return False
    rest = where[len(module) + 1 :] if where.startswith(module + ".") else ""
    return bool(rest) and "." not in rest
