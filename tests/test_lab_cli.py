"""``deepbasics lab`` and ``deepbasics lab list``: exit codes, messages, and the real quick lab end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepbasics import lab
from deepbasics.cli import main

REQUIRED_KEYS = {"id", "question", "claim", "verdict", "metrics", "figures", "seconds", "rule", "error"}


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code or 0


def test_list_shows_the_registered_claims_and_their_rules(capsys):
    assert _exit_code(["lab", "list"]) == 0
    out = capsys.readouterr().out
    for exp in lab.experiments():
        for cid in exp.ids:
            assert cid in out
    assert "no experiment yet" not in out


def test_list_all_shows_every_faq_claim(capsys):
    assert _exit_code(["lab", "list", "--all"]) == 0
    out = capsys.readouterr().out
    assert "Q1.a" in out and "RNN.d" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["lab", "--only", "Q99"], 1, "Valid prefixes"),
        (["lab", "--only", ""], 1, "at least one claim ID or prefix"),
        (["lab", "--jobs", "0"], 2, "--jobs"),
        (["lab", "--seeds", "-1"], 2, "--seeds"),
        (["lab", "--bogus"], 2, "No such option"),
        (["lab", "lisst"], 2, "No such command"),
    ],
)
def test_bad_arguments_exit_non_zero_without_traceback(argv, code, message, capsys, tmp_path):
    assert _exit_code([*argv, "--out", str(tmp_path)] if argv[1] != "lisst" else argv) == code
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert message in text and "Traceback" not in text


def test_python_dash_m_runs_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "deepbasics", "lab", "--only", "Q99"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "Valid prefixes" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_quick_lab_on_q2_end_to_end(tmp_path, capsys):
    """The real experiments for Q2 (Gaussian) in quick mode: every claim judged, report complete."""
    pytest.importorskip("deepbasics.gaussian")
    out = tmp_path / "report"
    assert _exit_code(["lab", "--quick", "--only", "Q2", "--out", str(out), "--jobs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" in printed and "Q2.a" in printed
    rows = json.loads((out / "results.json").read_text())
    assert [row["id"] for row in rows] == ["Q2.a", "Q2.b", "Q2.c"]
    for row in rows:
        assert set(row) >= REQUIRED_KEYS
        assert row["verdict"] in {"holds", "does_not_hold", "inconclusive"}, row["error"]
        assert row["figures"] and all((out / f).stat().st_size > 1000 for f in row["figures"])
        assert len(row["metrics"][row["metric"]]) == 3  # one value per seed
    by_id = {row["id"]: row for row in rows}
    assert all(-0.7 < s < -0.3 for s in by_id["Q2.a"]["metrics"]["worst_slope"])  # ~ -1/2
    assert all(m > 0 for m in by_id["Q2.b"]["metrics"]["margin"])
    assert max(by_id["Q2.c"]["metrics"]["max_abs_err"]) < 1e-10
    html = (out / "index.html").read_text()
    assert html.count('<img src="figures/') == 3 and "Q2.b" in html


@pytest.mark.slow
def test_newcomer_runs_the_real_command_without_out_from_a_fresh_folder(tmp_path):
    """README's main job as a stranger runs it: the console script, a fresh working directory, no --out, piped."""
    from deepbasics.lab.report import broken_links

    cwd = tmp_path / "a fresh folder"
    cwd.mkdir()
    exe = Path(sys.executable).with_name("deepbasics")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "deepbasics"]
    proc = subprocess.run(
        [*command, "lab", "--quick", "--only", "Q2.a,Q8"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    report = cwd / "lab-report"
    rows = json.loads((report / "results.json").read_text())
    assert rows and all(row["verdict"] != "error" for row in rows), [row["error"] for row in rows]
    figures = [f for row in rows for f in row["figures"]]
    assert figures and all((report / f).is_file() for f in figures)
    assert broken_links(report) == []
    progress = [line for line in proc.stdout.splitlines() if line.startswith("lab: [")]
    assert len(progress) == len({row["experiment"] for row in rows})  # one plain line per experiment when piped
    assert re.search(r"^lab: done in \d+\.\d s", proc.stdout, re.MULTILINE)
