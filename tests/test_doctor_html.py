"""The doctor's HTML report: pages of a broken zoo run (diagnose, watch), a crashed script (through the CLI), a repair;
structure (figures, every finding code, FAQ links that resolve), escaping of markup in names, non-finite values and
missing records said in words, downsampling, paths; and rendering in headless Chromium without console errors.

Chromium is Debian's ``chromium`` package; without it the rendering tests skip, unless
``DEEPBASICS_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``), where they fail: CI cannot pass without them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import OrderedDict
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

from deepbasics.doctor import Report, watch, zoo
from deepbasics.doctor.case import diagnose_case
from deepbasics.doctor.detectors import run_detectors
from deepbasics.doctor.findings import Finding, Severity
from deepbasics.doctor.fixes import get_fix
from deepbasics.doctor.html import figures, heatmaps, html_path, page_of, render_html, write_html
from deepbasics.doctor.html.onset import CUTS, cut, cut_steps, first_seen
from deepbasics.doctor.html.pages import shorten_paths
from deepbasics.doctor.html.view import curve_words, fmt_number, fmt_value
from deepbasics.doctor.records import RunTrace
from deepbasics.doctor.repairing import Attempt, RepairResult

MARKUP = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SCRIPT_NAME = "<img src=x onerror=alert(1)>.py"  # a file name cannot hold '/', so no </script> here

CRASHING = f"""
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential()
model.add_module({MARKUP!r}, nn.Linear(8, 32))
model.add_module("act", nn.Tanh())
model.add_module("head$x^2$", nn.Linear(32, 2))  # '$' would start matplotlib's mathtext if not escaped
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(512, 8); y = (x[:, 0] > 0).long()
for step in range(120):
    i = (step * 32) % 512
    xb = x[i:i + 32] * (float("nan") if step == 37 else 1.0)
    loss = nn.functional.cross_entropy(model(xb), y[i:i + 32])
    opt.zero_grad(); loss.backward(); opt.step()
    if step == 80:
        raise RuntimeError("boom <b>mid-training</b> at step 80")
"""

TINY = """
import sys
import torch
from torch import nn
torch.manual_seed(0)
print("ARGV", sys.argv[1:])
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(64, 4); y = x.sum(1, keepdim=True)
for step in range(30):
    loss = nn.functional.mse_loss(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
"""


# --- what every page must be ------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Tags, ids, links and image sources of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name == "href":
                self.hrefs.append(value or "")
            if name == "src":
                self.srcs.append(value or "")
            if name.startswith("on"):
                self.handlers.append(name)


def check_page(text: str, *, drawn: bool = True) -> _Page:
    """Self-contained and inert: no script, no event handler, every image embedded, every link an anchor on the page,
    a Content-Security-Policy that forbids loading anything else; ``drawn``: it has figures."""
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and not page.handlers
    assert "default-src 'none'" in text and "img-src data:" in text
    assert bool(page.srcs) == drawn and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    for href in page.hrefs:
        assert href.startswith("#") and href[1:] in page.ids, f"dangling link {href}"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", text)
    assert "url(" not in text  # no CSS resource either
    return page


def figure_keys(text: str) -> list[str]:
    return re.findall(r'<figure id="[^"]*-([a-z_]+)"', text)


# --- a broken zoo run, diagnosed and watched --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The HTML files of the module: a zoo diagnosis, a watched run with a markup-named layer, a crashed script."""
    root = tmp_path_factory.mktemp("html pages")  # a space in the folder name
    out = {}
    out["report"] = diagnose_case(zoo.get("dead_relu_mlp").build(0), 0, None, False)
    (root / "dead relu").mkdir()
    out["diagnose"] = out["report"].to_html(root / "dead relu")  # a folder: doctor.html inside
    out["watch"] = _watched_sigmoid().to_html(root / "watch.html")
    out["crash"] = _crashed(root)
    return out


def _watched_sigmoid():
    """An 8-layer sigmoid MLP on sklearn's digits, the first layer named with markup: vanishing gradients."""
    from deepbasics.data import digits

    splits = digits()
    x, y = splits.tensors("train")
    vx, vy = splits.tensors("val")
    layers: list[tuple[str, nn.Module]] = []
    for i in range(8):
        layers += [(MARKUP if i == 0 else f"fc{i}", nn.Linear(64, 64)), (f"sig{i}", nn.Sigmoid())]
    model = nn.Sequential(OrderedDict([*layers, ("out", nn.Linear(64, 10))]))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, layer_every=5) as session:
        for step in range(120):
            rows = torch.arange(step * 32, (step + 1) * 32) % len(x)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
            loss.backward()
            opt.step()
            val = nn.functional.cross_entropy(model(vx), vy).detach() if step % 20 == 0 else None
            session.step(loss, val_loss=val)
    return session


def _crashed(root: Path) -> Path:
    """``deepbasics doctor '<img ...>.py' --keep-going --html`` in a folder with a space: NaN at 37, raises at 80."""
    folder = root / "my runs"
    folder.mkdir()
    (folder / SCRIPT_NAME).write_text(textwrap.dedent(CRASHING), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "deepbasics", "doctor", SCRIPT_NAME, "--keep-going", "--html"],
        cwd=folder, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the script raised: EXIT_CODES["script_error"]
    assert "wrote doctor.html" in proc.stdout and "Traceback" in proc.stderr
    return folder / "doctor.html"


@pytest.mark.slow
def test_zoo_diagnosis_page(pages):
    path = pages["diagnose"]
    assert path.name == "doctor.html" and path.parent.name == "dead relu"  # a folder gets doctor.html inside
    text = path.read_text(encoding="utf-8")
    page = check_page(text)
    report = pages["report"]
    assert {"dead_relu"} <= report.codes()
    for f in report.findings:
        assert f">{f.code}</code>" in text
        if f.faq != "practice":
            assert f'href="#faq-{f.faq}"' in text and f"faq-{f.faq}" in page.ids
    assert {"loss", "grad_norm", "update_ratio", "dead_frac"} <= set(figure_keys(text))
    assert "Marked (coloured tab, bold name): the layers named by dead_relu" in text
    assert "Model</dt><dd>Sequential" in text and "(probe run)" in text


@pytest.mark.slow
def test_watched_run_page_escapes_a_markup_layer(pages):
    text = pages["watch"].read_text(encoding="utf-8")
    check_page(text)
    assert MARKUP not in text and ESCAPED in text  # the layer's name is text, never markup
    assert ">vanishing_gradient</code>" in text
    assert "No validation loss" not in text  # the curve is drawn (its legend is in the figure)
    assert {"loss", "grad_norm", "update_ratio", "sat_frac", "act_std"} <= set(figure_keys(text))
    assert re.search(r"first seen at step \d+", text)  # a step replayed from the records for the profile finding


@pytest.mark.slow
def test_crashed_script_page_through_the_cli(pages):
    path = pages["crash"]
    text = path.read_text(encoding="utf-8")
    check_page(text)
    assert MARKUP not in text and ESCAPED in text
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;.py" in text
    assert "<b>mid-training" not in text and "boom &lt;b&gt;mid-training&lt;/b&gt; at step 80" in text
    assert "The training loss became NaN at step 37" in text and "drawn as gaps" in text
    assert "1 (the script raised an exception)" in text and "How the script ended" in text
    assert ">nonfinite</code>" in text
    assert str(path.parent) not in text and os.path.expanduser("~") + "/" not in text  # no absolute local path
    assert (path.parent / "doctor.json").is_file()


@pytest.mark.slow
def test_repair_page(tmp_path):
    before = diagnose_case(zoo.get("sigmoid_deep_mlp").build(0), 0, None, False)
    after = diagnose_case(zoo.get("healthy_mlp_iris_sgd").build(0), 0, None, False)
    case = zoo.get("sigmoid_deep_mlp").build(0)
    result = RepairResult(
        before, after, [get_fix("swap_to_relu")], {"val_loss": 2.3, "val_accuracy": 0.1, "split": "val"},
        {"val_loss": 0.55, "val_accuracy": 0.83, "split": "val"}, "val_accuracy", None, case,
        "nn.init.kaiming_normal_(w)  # <escaped>", True,
        [Attempt("he_init", "vanishing_gradient", "rejected", False, True, ("vanishing_gradient",),
                 {"val_loss": 2.0}, "vanishing_gradient still found"),
         Attempt("swap_to_relu", "vanishing_gradient", "kept", True, True, (), {"val_loss": 0.55})],
    )  # fmt: skip
    text = result.to_html(tmp_path / "repair.html").read_text(encoding="utf-8")
    check_page(text)
    assert '<figure id="repair-loss">' in text and {"loss", "grad_norm"} <= set(figure_keys(text))
    assert "Before the repair" in text and "After the repair" in text and "Fixes tried" in text
    assert "# &lt;escaped&gt;" in text and "swap_to_relu" in text and "vanishing_gradient still found" in text
    assert "Repaired: " in text and "(the declared metric)" in text


# --- in the browser ---------------------------------------------------------------------------------------------

#: What Chromium writes to stderr for a page's own problems: console messages (an uncaught exception is one),
#: Content-Security-Policy refusals, failed loads. Its start-up noise (D-Bus, GPU, sandbox) never matches.
CONSOLE_PROBLEMS = re.compile(r":CONSOLE[:(]|Uncaught|Refused to|Failed to load|net::ERR_", re.IGNORECASE)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("DEEPBASICS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("DEEPBASICS_REQUIRE_CHROMIUM=1 but chromium is not installed: CI must run these tests.")
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return exe


def open_in_chromium(path: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", *args, path.as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_console_check_catches_a_broken_page(tmp_path):
    """The check itself: a page with a script error and a failed load is caught, an empty page is not."""
    bad, good = tmp_path / "bad.html", tmp_path / "good.html"
    bad.write_text('<!DOCTYPE html><img src="missing.png"><script>undefinedFunction();</script>')
    good.write_text("<!DOCTYPE html><title>t</title><p>nothing to see</p>")
    assert CONSOLE_PROBLEMS.search(open_in_chromium(bad, tmp_path / "p1", "--dump-dom").stderr)
    assert not CONSOLE_PROBLEMS.search(open_in_chromium(good, tmp_path / "p2", "--dump-dom").stderr)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["diagnose", "watch", "crash"])
def test_pages_render_in_chromium(pages, name, tmp_path):
    path = pages[name]
    proc = open_in_chromium(path, tmp_path / "profile", "--dump-dom")
    problems = [line for line in proc.stderr.splitlines() if CONSOLE_PROBLEMS.search(line)]
    assert proc.returncode == 0 and not problems, problems
    dom = proc.stdout
    assert dom.count("data:image/png;base64,") == path.read_text(encoding="utf-8").count("data:image/png;base64,")
    assert "<script" not in dom.replace(ESCAPED, "")  # nothing became an element
    shot = tmp_path / "page.png"
    proc = open_in_chromium(path, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1400,2400",
                            "--hide-scrollbars")  # fmt: skip
    assert proc.returncode == 0 and shot.stat().st_size > 20_000  # drawn: figures and text, not a blank page
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((140, 240)).getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200  # many colours: the heatmaps and curves are there


# --- records that are odd, long or missing -----------------------------------------------------------------------


def _report(losses=(), layers=None, findings=(), **history) -> Report:
    history = {"losses": list(losses), "layers": layers or {}, "order": list(layers or {}), **history}
    return Report(findings=list(findings), history=history, meta={"model": "Net"})


def test_a_run_without_records_still_renders(tmp_path):
    text = write_html(_report(), tmp_path / "empty.html").read_text(encoding="utf-8")
    check_page(text, drawn=False)
    assert "No training loss was recorded" in text and "No per-layer statistics were recorded" in text
    assert "No findings" in text and "<figure" not in text
    only_losses = _report(losses=[(i, 1.0 / (i + 1)) for i in range(50)])
    text = render_html(only_losses)
    assert figure_keys(text) == ["loss"] and "No per-layer statistics were recorded" in text


def test_long_runs_are_downsampled_and_say_so():
    n_steps, n_layers = 12_000, 90
    losses = [(i, math.exp(-i / 3000)) for i in range(n_steps)]
    steps = list(range(0, n_steps, 20))
    layers = {f"layer{k}": {"step": steps, "grad_norm": [10.0 ** (-k / 10)] * len(steps)} for k in range(n_layers)}
    finding = Finding("vanishing_gradient", Severity.WARNING, ("layer3",), {}, "x", "y", step=100)
    page = page_of(_report(losses, layers, [finding]))
    captions = " ".join(c for f in page.runs[0].figures for c in f.caption)
    assert f"{n_steps} values drawn as {figures.LOSS_BINS} bins" in captions
    assert f"{len(steps)} recorded steps; {heatmaps.MAX_COLUMNS} evenly spaced ones drawn" in captions
    assert f"{n_layers} layers recorded this" in captions


def test_non_finite_values_are_gaps_said_in_words():
    losses = [(i, 1.0) for i in range(37)] + [(37, math.nan), (38, math.inf), (39, 0.9)]
    layers = {"fc": {"step": [0, 20], "grad_norm": [1.0, "nan"]}}  # a JSON round trip spells nan as a string
    located = {"op": "aten.log", "kind": "produced", "phase": "forward", "module": "head", "hint": "log(0)"}
    words = page_of(_report(losses, layers, nonfinite=located)).runs[0].words
    text = " ".join(words)
    assert "The training loss became NaN at step 37 (2 of 40 recorded values non-finite" in text
    assert "last finite value before it was 1 at step 36" in text
    assert "The gradient norm became non-finite in 1 layer (fc), first recorded at step 20" in text
    assert "aten.log (forward pass) produced inf/nan from finite inputs in module head" in text
    assert not curve_words(page_of(_report([(0, 1.0)])).runs[0].losses)


def test_a_diagnosis_that_hit_a_nan_says_where_and_what_was_static():
    report = diagnose_case(zoo.get("naive_softmax_mlp").build(0), 0, None, False)
    assert {"naive_softmax", "nonfinite"} <= report.codes()
    text = render_html(report)
    check_page(text)
    assert "The first non-finite value: aten." in text and "training loss became NaN at step" in text
    card = text[text.index("<h4><code>naive_softmax</code></h4>") :]
    assert card.index("found before training") < card.index("</article>")  # a static check: no step to mark


def test_first_seen_replays_a_profile_finding_on_cuts_of_the_run():
    """The vanishing profile exists only from step 400 on. The detector judges medians over the run, so the profile
    shows once it fills half the recorded steps: the replay must put the finding after 400, at a cut that shows it,
    with the cut before it not showing it."""
    steps = list(range(0, 1000, 20))
    grads = {f"l{k}": [1.0 if s < 400 else 10.0 ** (-(5 - k) * 2) for s in steps] for k in range(6)}
    trace = RunTrace(
        losses=[(s, 2.3) for s in range(1000)],
        layers={k: {"step": steps, "grad_norm": g, "update_ratio": [1e-3] * len(steps)} for k, g in grads.items()},
        order=list(grads),
        kinds=dict.fromkeys(grads, "matrix"),
    )
    final = [f for f in run_detectors(trace) if f.code == "vanishing_gradient"]
    assert final and final[0].step is None
    onset = first_seen(trace, final)[0]
    grid = cut_steps(trace)
    assert len(grid) == CUTS and grid[0] == 0 and grid[-1] == 999 and 400 < onset < 999
    before = grid[grid.index(onset) - 1]
    shows = [any(f.code == "vanishing_gradient" for f in run_detectors(cut(trace, s))) for s in (before, onset)]
    assert shows == [False, True]
    early = cut(trace, 390)
    assert early.losses[-1][0] == 390 and early.layers["l0"]["step"][-1] == 380
    assert early.layers["l0"]["grad_norm"] == [1.0] * 20 and early.curvature is None


# --- small pieces -------------------------------------------------------------------------------------------------


def test_numbers_and_evidence_as_text():
    assert [fmt_number(v) for v in (math.nan, math.inf, -math.inf, 3, 1.23456e-5, None, True)] == [
        "NaN", "+inf", "-inf", "3", "1.235e-05", "n/a", "yes"]  # fmt: skip
    assert fmt_value(list(range(20))) == "[0, 1, 2, 3, 4, 5, 6, 7, … (20 values)]"
    assert fmt_value({"fc1": 0.5, "fc2": [1, 2]}) == "fc1: 0.5, fc2: [1, 2]"
    assert fmt_value(torch.tensor([1.0, float("nan")])) == "[1, NaN]"
    assert fmt_value("x" * 1000).endswith("…") and len(fmt_value("x" * 1000)) == 400


def test_traceback_paths_are_shortened_except_the_script():
    tb = (
        'File "train me.py", line 3, in <module>\n'
        'File "/home/u/.venv/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1\n'
        'File "/opt/tools/helpers/data.py", line 9\n'
        'File "/abs/script.py", line 2\n'
    )
    out = shorten_paths(tb, keep=["/abs/script.py"])
    assert 'File "train me.py"' in out and 'File "…/torch/nn/modules/module.py"' in out
    assert 'File "…/helpers/data.py"' in out and 'File "/abs/script.py"' in out and "/home/u" not in out


def test_paths_and_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert html_path("~/reports/a b.html") == tmp_path / "reports" / "a b.html"
    assert html_path(tmp_path) == tmp_path / "doctor.html"
    with pytest.raises(ValueError, match="Python file"):
        html_path("train.py")
    with pytest.raises(TypeError, match="file path"):
        html_path(3)
    with pytest.raises(TypeError, match="DoctorSession, ScriptResult, Report"):
        render_html(object())
    with pytest.raises(TypeError, match="title"):
        render_html(_report(), title=3)
    target = tmp_path / "sub dir" / "r.html"
    target.parent.mkdir()
    target.write_text("old")
    assert write_html(_report(), "~/sub dir/r.html") == target  # replaced atomically, no temporary file left
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.html"]


def _cli(*args: str) -> int:
    from deepbasics.cli import main

    try:
        main(["doctor", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.slow
def test_cli_html_option_forms(tmp_path, monkeypatch, capsys):
    """``--html`` takes an optional PATH: bare (last, before ``--`` or before the script), or with a path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(textwrap.dedent(TINY), encoding="utf-8")
    assert _cli("train.py", "--html") == 0
    assert (tmp_path / "doctor.html").is_file() and (tmp_path / "doctor.json").is_file()
    assert _cli("--html", "train.py", "--out", "o/run.json") == 0
    assert (tmp_path / "o" / "run.html").is_file()  # next to the JSON output
    assert _cli("train.py", "--html", "--", "--epochs", "3") == 0
    assert "ARGV ['--epochs', '3']" in capsys.readouterr().out
    assert _cli("train.py", "--html", "my reports/r 1.html", "--", "-x") == 0
    assert (tmp_path / "my reports" / "r 1.html").is_file()
    capsys.readouterr()
    assert _cli("train.py", "--", "--html") == 0  # after '--' it is the script's own argument
    assert "ARGV ['--html']" in capsys.readouterr().out
