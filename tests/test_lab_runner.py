"""The lab runner on test-only experiments: errors, timeouts, resume after a kill, determinism, report files.

The experiments below live in a private :class:`Registry`, so the real lab is untouched; worker processes
find them by importing this module. Each run appends its experiment ID to ``$DEEPBASICS_LAB_TEST_DIR/calls``
so a test can see which experiments really ran (and which came from the cache).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepbasics import lab
from deepbasics.lab import Registry, Result, Rule, save_figure
from deepbasics.lab._files import to_jsonable
from deepbasics.lab.figures import check_figures

REG = Registry()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REQUIRED_KEYS = {"id", "question", "claim", "verdict", "metrics", "figures", "seconds", "rule", "error"}


def _called(name: str) -> None:
    with open(Path(os.environ["DEEPBASICS_LAB_TEST_DIR"]) / "calls", "a") as fh:
        fh.write(name + "\n")


def _plot_x(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([out["x"] for out in outputs], marker="o")
    ax.set(xlabel="seed", ylabel="x (a.u.)", title="x per seed")
    return [save_figure(fig, outdir, "x_per_seed")]


@REG.experiment(
    ids=("Q7.a", "Q7.b"),
    method="A test experiment with two claims: x is positive, y is negative.",
    quick={"scale": 0.1},
    full={"scale": 0.1},
    rules={"Q7.a": Rule("x", ">", 0.0), "Q7.b": Rule("y", ">", 0.0)},
    seeds=3,
    timeout=60,
    plot=_plot_x,
)
def two_claims(params, seed):
    _called("Q7.a")
    g = torch.Generator().manual_seed(seed)
    x = 1.0 + params["scale"] * torch.randn((), generator=g).item()
    return {"x": x, "y": -1.0, "z": torch.rand(()).item(), "series": torch.arange(3.0)}


@REG.experiment(
    ids="Q7.c",
    method="A test experiment that measures a constant.",
    quick={"value": 2.0},
    full={"value": 2.0},
    rules={"Q7.c": Rule("value", ">=", 2.0, spread="value")},
    seeds=1,
    timeout=60,
)
def constant(params, seed):
    _called("Q7.c")
    return {"value": params["value"]}


@REG.experiment(
    ids="Q8.a",
    method="A test experiment that always raises.",
    quick={},
    full={},
    rules={"Q8.a": Rule("x", ">", 0.0)},
    timeout=60,
)
def boom(params, seed):
    _called("Q8.a")
    raise RuntimeError("deliberate failure for the test")


@REG.experiment(
    ids="Q8.b",
    method="A test experiment that forgets the metric its rule judges.",
    quick={},
    full={},
    rules={"Q8.b": Rule("x", ">", 0.0)},
    seeds=2,
    timeout=60,
)
def forgets_metric(params, seed):
    return {"y": np.float64(1.0), "counts": np.arange(3)}


@REG.experiment(
    ids="Q11.a",
    method="A test experiment that never finishes.",
    quick={},
    full={},
    rules={"Q11.a": Rule("x", ">", 0.0)},
    seeds=1,
    timeout=1,
)
def hangs(params, seed):
    time.sleep(60)
    return {"x": 1.0}


@REG.experiment(
    ids="Q11.b",
    method="A test experiment that interrupts the lab (Ctrl-C) the first time it runs.",
    quick={},
    full={},
    rules={"Q11.b": Rule("x", ">", 0.0)},
    seeds=1,
    timeout=60,
)
def interrupts(params, seed):
    _called("Q11.b")
    marker = Path(os.environ["DEEPBASICS_LAB_TEST_DIR"]) / "interrupted"
    if not marker.exists():
        marker.touch()
        os.kill(int(os.environ["DEEPBASICS_LAB_TEST_PARENT"]), signal.SIGINT)
        time.sleep(30)
    return {"x": 1.0}


@pytest.fixture
def calls(tmp_path, monkeypatch):
    """The list of experiment IDs that ran in worker processes, read after each lab.run."""
    monkeypatch.setenv("DEEPBASICS_LAB_TEST_DIR", str(tmp_path))
    monkeypatch.setenv("DEEPBASICS_LAB_TEST_PARENT", str(os.getpid()))
    path = tmp_path / "calls"
    return lambda: path.read_text().split() if path.exists() else []


def _run(out, only, **kwargs):
    return lab.run(only=only, quick=True, out=out, registry=REG, progress=False, **kwargs)


def test_error_is_recorded_and_the_others_finish(tmp_path, calls):
    out = tmp_path / "report"
    results = _run(out, ["Q7", "Q8"], jobs=2)
    by_id = {r.id: r for r in results}
    assert list(by_id) == ["Q7.a", "Q7.b", "Q7.c", "Q8.a", "Q8.b"]  # one Result per claim ID, in the FAQ's order
    assert by_id["Q7.a"].verdict == "holds" and by_id["Q7.b"].verdict == "does_not_hold"
    assert by_id["Q7.c"].verdict == "holds" and "value = 2 >= 2" in by_id["Q7.c"].reason
    failed = by_id["Q8.a"]
    assert failed.verdict == "error"
    assert "RuntimeError: deliberate failure for the test" in failed.reason
    assert "Traceback" in failed.error and "def boom" not in failed.reason
    assert sorted(calls()) == ["Q7.a", "Q7.a", "Q7.a", "Q7.c", "Q8.a"]  # three seeds of the first experiment
    assert by_id["Q7.a"].metrics == by_id["Q7.b"].metrics and len(by_id["Q7.a"].metrics["x"]) == 3
    assert by_id["Q7.a"].cpu_seconds > 0  # the worker's own CPU time, beside the wall-clock seconds
    assert "series" not in by_id["Q7.a"].metrics  # raw series stay in the cache, not among the metrics
    forgot = by_id["Q8.b"]  # ran fine, but its rule cannot be applied: an error of that claim, with the reason
    assert forgot.verdict == "error" and forgot.metrics == {"y": [1.0, 1.0]}
    assert forgot.error == "metric 'x': expected it in the output of seed 0, got only: counts, y. " + (
        "Return it from run() or fix the rule's metric name."
    )

    rows = json.loads((out / "results.json").read_text())
    assert [row["id"] for row in rows] == list(by_id)
    assert [Result.from_dict(row) for row in rows] == results  # results.json holds everything a Result has
    for row in rows:
        assert set(row) >= REQUIRED_KEYS, REQUIRED_KEYS - set(row)
        assert (row["error"] is None) == (row["verdict"] != "error")
        for fig in row["figures"]:
            data = (out / fig).read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert rows[0]["figures"] == ["figures/Q7.a/x_per_seed.png"]
    assert rows[0]["rule"] == "x > 0 in every seed"

    html = (out / "index.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert 'src="figures/Q7.a/x_per_seed.png"' in html
    assert "contradicts the FAQ" in html and "deliberate failure for the test" in html
    md = (out / "report.md").read_text()
    assert "| **Q7.b**" not in md or "does not hold" in md
    assert "![Q7.a, Q7.b](figures/Q7.a/x_per_seed.png)" in md


def test_timeout_kills_the_worker(tmp_path, calls):
    start = time.perf_counter()
    (result,) = _run(tmp_path / "report", "Q11.a")
    assert result.verdict == "error" and result.error == "timed out after 1 s"
    assert time.perf_counter() - start < 20


def test_interrupted_run_resumes_without_redoing_finished_work(tmp_path, calls):
    # Ctrl-C arrives as SIGINT. A process started in the background by a non-interactive shell (`cmd &` in a CI
    # script) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: give the test Python's own
    # handler, as an interactive terminal would.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_and_resume(tmp_path, calls)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_and_resume(tmp_path, calls):
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        _run(out, ["Q7", "Q11.b"], jobs=1)
    assert calls() == ["Q7.a", "Q7.a", "Q7.a", "Q7.c", "Q11.b"]
    assert sorted(p.name for p in (out / ".cache").glob("*.json")) == ["Q7.a.json", "Q7.c.json"]

    results = _run(out, ["Q7", "Q11.b"], jobs=1)
    assert calls()[5:] == ["Q11.b"]  # only the interrupted experiment ran again
    assert [r.verdict.value for r in results] == ["holds", "does_not_hold", "holds", "holds"]
    assert [r.cached for r in results] == [True, True, True, False]

    _run(out, "Q7.c", jobs=1, fresh=True)
    assert calls()[6:] == ["Q7.c"]


def test_cache_is_invalidated_by_seeds_and_missing_figures(tmp_path, calls):
    out = tmp_path / "report"
    first = _run(out, "Q7.a", jobs=1)
    assert len(calls()) == 3
    (out / first[0].figures[0]).unlink()
    again = _run(out, "Q7.a", jobs=1)
    assert len(calls()) == 6 and (out / again[0].figures[0]).is_file()
    two = _run(out, "Q7.a", jobs=1, seeds=2)
    assert len(calls()) == 8 and len(two[0].metrics["x"]) == 2
    assert two[0].metrics["x"] == first[0].metrics["x"][:2]  # same seeds -> the same numbers


def test_same_seeds_give_the_same_numbers_in_fresh_processes(tmp_path, calls):
    a = _run(tmp_path / "a", "Q7.a", jobs=2)
    b = _run(tmp_path / "b", "Q7.a", jobs=1, fresh=True)
    assert a[0].metrics == b[0].metrics
    assert len(set(a[0].metrics["x"])) == 3  # the seeds differ from each other
    assert len(set(a[0].metrics["z"])) == 3  # the global generator is seeded per seed as well


def test_run_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Valid prefixes: Q7, Q8, Q11"):
        _run(tmp_path, "Q9")
    with pytest.raises(ValueError, match="jobs"):
        _run(tmp_path, "Q7", jobs=0)
    with pytest.raises(TypeError, match="registry"):
        lab.run(only="Q7", registry=object(), out=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="a folder for the report"):
        _run(tmp_path / "file", "Q7")


def test_outputs_must_be_json_data():
    data = {"a": np.float32(0.5), "b": torch.ones(2, dtype=torch.float64, requires_grad=True), "c": (1, None, "s")}
    assert to_jsonable(data, "out") == {"a": 0.5, "b": [1.0, 1.0], "c": [1, None, "s"]}
    with pytest.raises(TypeError, match=r"out\['c'\]\[1\]: expected JSON data .* got object"):
        to_jsonable({"c": [1, object()]}, "out")
    with pytest.raises(TypeError, match="expected string keys, got 1"):
        to_jsonable({1: 2.0}, "out")


def test_plot_must_return_pngs_inside_its_folder(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG_MAGIC + b"0" * 10)
    assert check_figures([tmp_path / "a.png", "a.png"], tmp_path) == ["a.png", "a.png"]
    with pytest.raises(TypeError, match="a list of PNG paths"):
        check_figures(tmp_path / "a.png", tmp_path)
    with pytest.raises(ValueError, match=r"an existing, non-empty \.png file"):
        check_figures(["missing.png"], tmp_path)
    with pytest.raises(ValueError, match="figures inside"):
        check_figures([tmp_path.parent / "elsewhere.png"], tmp_path)


def test_check_figures_accepts_what_save_figure_returns_for_a_relative_folder(tmp_path, monkeypatch):
    """The newcomer's bug: save_figure(fig, "rep/figures/X", ...) returns a cwd-relative path, not a doubled one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    outdir = Path("rep") / "figures" / "Q7.a"
    outdir.mkdir(parents=True)
    path = save_figure(plt.figure(), outdir, "curve")
    assert not path.is_absolute()
    assert check_figures([path, "curve.png"], outdir) == ["curve.png", "curve.png"]


@pytest.mark.parametrize("out", ["lab-report", "./rel/rep", "with space/rep", "~/rep", "../up"])
def test_report_folder_may_be_relative_home_or_spaced(tmp_path, monkeypatch, calls, out):
    from deepbasics.lab.report import broken_links

    cwd = tmp_path / "work dir" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result, _ = _run(out, "Q7.a", jobs=1)
    folder = Path(out).expanduser().resolve()
    assert result.verdict == "holds", result.error
    assert [(folder / f).is_file() for f in result.figures] == [True]
    assert broken_links(folder) == []
    monkeypatch.chdir(tmp_path)  # links are relative to the report itself, so it can be moved
    moved = tmp_path / "moved"
    folder.rename(moved)
    assert broken_links(moved) == []


def test_broken_links_finds_missing_files_and_skips_anchors_and_urls(tmp_path):
    from deepbasics.lab.report import broken_links

    assert broken_links(tmp_path) == [f"{tmp_path / 'index.html'}: missing"]
    (tmp_path / "a b.png").write_bytes(PNG_MAGIC)
    (tmp_path / "index.html").write_text(
        '<a href="#Q1">x</a><a href="https://example.org">y</a><img src="a%20b.png"><img src="gone.png">'
        '<img src="/etc/hostname">'
    )
    (tmp_path / "report.md").write_text("![ok](a%20b.png) and [missing](figures/x.png)")
    assert broken_links(tmp_path) == ["index.html: gone.png", "index.html: /etc/hostname", "report.md: figures/x.png"]


def test_progress_lines_when_output_is_not_a_terminal(tmp_path, capsys, calls):
    lab.run(only=["Q7", "Q8.a"], quick=True, out=tmp_path / "r", registry=REG, jobs=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lab: ")]
    assert lines[0] == "lab: 3 experiments to run, 0 reused"
    assert re.fullmatch(r"lab: \[1/3\] Q7\.a holds, Q7\.b does not hold \(\d+\.\d s\)", lines[1]), lines[1]
    assert re.fullmatch(r"lab: \[3/3\] Q8\.a error \(\d+\.\d s\)", lines[3]), lines[3]
    assert re.fullmatch(r"lab: done in \d+\.\d s: 4 claims \(2 holds, 1 does not hold, 1 error\)", lines[4]), lines[4]
    lab.run(only="Q7.c", quick=True, out=tmp_path / "r", registry=REG, jobs=1)
    lines = capsys.readouterr().out.splitlines()
    assert "lab: 0 experiments to run, 1 reused from" in lines[0] and lines[1] == "lab: [1/1] Q7.c holds (cached)"


def test_cache_key_covers_the_shared_helper_modules_an_experiment_imports(monkeypatch, tmp_path):
    """Editing experiments/_deepnets.py must invalidate exactly the experiments that import it (issue 15)."""
    from deepbasics.lab import runner
    from deepbasics.lab.experiments import q02_gaussian, q03_3_vanishing

    helper = "deepbasics.lab.experiments._deepnets"
    assert helper in runner.experiment_modules(q03_3_vanishing.__name__)
    assert runner.experiment_modules(q02_gaussian.__name__) == [q02_gaussian.__name__]
    users = [e for e in lab.experiments() if helper in runner.experiment_modules(e.module)]
    assert {e.id for e in users} >= {"Q3.3.a", "Q3.3.d"}

    def key(exp):
        params = {t: exp.params(True, t) for t in exp.task_names}
        return runner.cache_key(exp, params, exp.seed_list())

    before = {e.id: key(e) for e in lab.experiments()}
    edited = tmp_path / "_deepnets.py"
    real = runner._module_file(helper)
    edited.write_bytes(real.read_bytes() + b"\n# an edit\n")
    original = runner._module_file
    monkeypatch.setattr(runner, "_module_file", lambda name: edited if name == helper else original(name))
    after = {e.id: key(e) for e in lab.experiments()}
    changed = {cid for cid in before if before[cid] != after[cid]}
    assert changed == {e.id for e in users}


ORDER = Registry()


@ORDER.experiment(
    ids="Q9.a",
    method="A cheap experiment, first in FAQ order.",
    quick={},
    full={},
    rules={"Q9.a": Rule("x", ">", 0.0)},
    seeds=1,
    timeout=30,
)
def cheap(params, seed):
    _called("Q9.a")
    return {"x": 1.0}


@ORDER.experiment(
    ids="Q9.b",
    method="A costly experiment (long timeout), second in FAQ order.",
    quick={},
    full={},
    rules={"Q9.b": Rule("x", ">", 0.0)},
    seeds=1,
    timeout=90,
)
def costly(params, seed):
    _called("Q9.b")
    return {"x": 1.0}


def test_longest_declared_experiments_start_first_and_results_keep_the_faq_order(tmp_path, calls):
    """LPT scheduling: the experiment with the longest timeout starts first, so it cannot run alone at the end."""
    results = lab.run(quick=True, out=tmp_path / "r", registry=ORDER, progress=False, jobs=1)
    assert calls() == ["Q9.b", "Q9.a"]
    assert [r.id for r in results] == ["Q9.a", "Q9.b"]
