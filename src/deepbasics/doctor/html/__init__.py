"""The doctor's findings as one self-contained, offline HTML page: ``render_html(result)``, ``write_html(result)``.

``result`` is any of the doctor's results, and each has a ``to_html(path)`` method that calls :func:`write_html`:

- a :class:`~deepbasics.doctor.session.DoctorSession` (``with watch(model, optimizer) as session``);
- a :class:`~deepbasics.doctor.script.ScriptResult` (``deepbasics doctor SCRIPT --html``);
- a :class:`~deepbasics.doctor.report.Report` (``diagnose``);
- a :class:`~deepbasics.doctor.repairing.RepairResult` (``repair``, ``deepbasics doctor --demo NAME --html``).

The page shows the run's summary (script, model, parameters, optimizer and learning rate, steps, wall time, exit
status), the loss over steps with each finding marked where it was first seen, per-layer heatmaps over steps
(gradient norm, update-to-weight ratio, dead and saturated units, activation spread; input side at the top; the
layers a finding names marked), then every finding with its explanation, evidence, fix and FAQ question; for a
repair, the loss before and after and the fixes tried.

It is drawn after training from what the run already recorded (:class:`~deepbasics.doctor.records.RunTrace`:
losses, ``LayerStats`` records; the findings and notes): no hook, no cost while training. The file is built with
jinja2 (autoescaped: a script or layer called ``<script>alert(1)</script>`` shows as that text) and matplotlib
(figures embedded as PNG data URIs); it has no JavaScript, loads nothing from the network (a
Content-Security-Policy forbids it) and holds no absolute local path except the script's, as given.

Modules: :mod:`.view` (records -> plain data, and what they say in words), :mod:`.onset` (the step a finding first
showed, replayed from the records), :mod:`.figures` (the curves, and the plumbing every figure shares),
:mod:`.heatmaps` (the per-layer panels), :mod:`.pages` (one page per kind of result), ``templates/report.html``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..._checks import fail
from ..._files import atomic_write
from .pages import Page

__all__ = ["Page", "page_of", "render_html", "write_html"]

#: The file name ``--html`` and ``to_html`` use when given a folder.
DEFAULT_NAME = "doctor.html"
_EXPECTED = "a DoctorSession, ScriptResult, Report (diagnose) or RepairResult (repair)"


def page_of(result: Any, *, title: str | None = None) -> Page:
    """The :class:`~.pages.Page` of a doctor result (its figures drawn); ``title`` overrides the heading.

    Each result class names its own page builder (``_html_page``, one of :mod:`.pages`' functions): this package
    depends on no result class, so the results can import it without an import cycle."""
    if title is not None and not isinstance(title, str):
        raise fail(TypeError, "title", "a string or None", type(title).__name__, 'Pass e.g. title="my run".')
    build = getattr(type(result), "_html_page", None)
    if build is None:
        raise fail(
            TypeError,
            "result",
            _EXPECTED,
            type(result).__name__,
            "Pass what watch(), deepbasics.doctor.script.run_script, diagnose() or repair() returned.",
        )
    return build(result, title)


def render_html(result: Any, *, title: str | None = None) -> str:
    """The page of ``result`` as one HTML document (a string)."""
    return _environment().get_template("report.html").render(page=page_of(result, title=title))


def write_html(result: Any, path: str | os.PathLike[str] = DEFAULT_NAME, *, title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically (``~`` expanded; a folder gets ``doctor.html`` inside it;
    parent folders created); returns the path written."""
    target = html_path(path)
    text = render_html(result, title=title)
    return atomic_write(target, lambda f: f.write(text.encode("utf-8")))


def html_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as the file to write: ``~`` expanded, an existing folder -> ``folder/doctor.html``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise fail(TypeError, "path", "a file path (str or os.PathLike)", repr(path), 'Pass e.g. "doctor.html".')
    target = Path(os.path.expanduser(os.fspath(path)))
    if target.is_dir():
        target = target / DEFAULT_NAME
    if target.suffix.lower() == ".py":
        raise fail(ValueError, "path", "an HTML file to write", str(path),
                   "That is a Python file: give the report its own name, e.g. doctor.html.")  # fmt: skip
    return target


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("deepbasics.doctor.html", "templates"),
        autoescape=True,  # every string from the user's side (names, messages, evidence) is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
