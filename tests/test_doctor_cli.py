"""``deepbasics doctor``: unmodified scripts run in a subprocess (healthy, diverging, raising), demos, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from deepbasics.doctor.script import EXIT_CODES, run_script

HEALTHY = """
import sys
import torch
from torch import nn
torch.manual_seed(0)
print("ARGV", sys.argv[1:])
x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(int(sys.argv[2])):
    for i in range(0, 256, 32):
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad(); loss.backward(); opt.step()
"""

DIVERGING = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=1e4)
for step in range(200):
    i = (step * 32) % 256
    loss = nn.functional.cross_entropy(model(x[i:i + 32]) * 1e3, y[i:i + 32])
    opt.zero_grad(); loss.backward(); opt.step()
print("never reached")
"""

RAISES = """
import torch
from torch import nn
model = nn.Linear(4, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(20):
    loss = model(torch.randn(8, 4)).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
raise RuntimeError("boom in the script")
"""


def _doctor(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "deepbasics", "doctor", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def _script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.slow
def test_healthy_script_passes_arguments_and_writes_doctor_json(tmp_path):
    _script(tmp_path, "train.py", HEALTHY)
    proc = _doctor(tmp_path, "train.py", "--", "--epochs", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ARGV ['--epochs', '3']" in proc.stdout
    assert "no findings" in proc.stdout
    data = json.loads((tmp_path / "doctor.json").read_text())
    assert data["status"] == "ok" and data["exit_code"] == 0 and data["args"] == ["--epochs", "3"]
    assert data["losses"] == 24 and len(data["models"]) == 1
    assert data["models"][0]["meta"]["optimizer"] == "Adam"  # discovered through the global step hook
    assert data["findings"] == []


@pytest.mark.slow
def test_diverging_script_is_stopped_and_diagnosed(tmp_path):
    _script(tmp_path, "diverge.py", DIVERGING)
    proc = _doctor(tmp_path, "diverge.py", "--out", "out/report.json")
    assert proc.returncode == EXIT_CODES["nonfinite"], proc.stdout + proc.stderr
    assert "never reached" not in proc.stdout
    assert "nonfinite" in proc.stdout and "Traceback" not in proc.stderr
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    codes = {f["code"] for f in data["findings"]}
    assert {"nonfinite", "diverging_loss"} <= codes
    assert data["status"] == "nonfinite"


@pytest.mark.slow
def test_raising_script_prints_findings_and_its_traceback(tmp_path):
    _script(tmp_path, "bad.py", RAISES)
    proc = _doctor(tmp_path, "bad.py")
    assert proc.returncode == EXIT_CODES["script_error"]
    assert "deepbasics doctor: Linear" in proc.stdout and "boom in the script" in proc.stdout
    assert 'bad.py", line 7' in proc.stderr and "runpy" not in proc.stderr  # the script's frames only
    data = json.loads((tmp_path / "doctor.json").read_text())
    assert data["status"] == "script_error" and "boom in the script" in data["error"]


def _cli(*args: str):
    """In-process ``deepbasics doctor ...`` through ``main`` (no subprocess: for the paths without a script)."""
    from deepbasics.cli import main

    try:
        main(["doctor", *args])
    except SystemExit as exc:
        return exc.code
    return 0


def test_missing_script_is_one_line_and_nonzero(tmp_path, capsys):
    assert _cli(str(tmp_path / "nope.py")) == 1
    err = capsys.readouterr().err
    assert "nope.py" in err and "Traceback" not in err


def test_list_demos_and_unknown_demo(capsys):
    assert _cli("--list-demos") == 0
    out = capsys.readouterr().out
    assert "dead_relu_mlp" in out and "healthy_mlp_digits" in out
    assert _cli("--demo", "dead_relu_mpl") == 1
    err = capsys.readouterr().err
    assert "dead_relu_mlp" in err and "Traceback" not in err
    assert "deepbasics doctor --list-demos" in " ".join(err.split())  # a shell command, not a Python call
    assert _cli() == 2  # neither SCRIPT nor --demo: usage error


@pytest.mark.slow
def test_demo_diagnoses_and_repairs(tmp_path, capsys):
    assert _cli("--demo", "softmax_ce_mlp", "--out", str(tmp_path / "demo.json")) == 0
    out = capsys.readouterr().out
    assert "loss_activation_mismatch" in out and "repair: SUCCESS" in out
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["success"] and data["applied"] == ["fix_output"]


def test_run_script_in_process_restores_everything(tmp_path):
    path = _script(tmp_path, "train.py", HEALTHY)
    backward, autograd_backward, argv = torch.Tensor.backward, torch.autograd.backward, sys.argv[:]
    result = run_script(path, ["--epochs", "1"])
    assert result.status == "ok" and result.losses == 8 and result.models[0].session.num_steps == 8
    assert torch.Tensor.backward is backward and torch.autograd.backward is autograd_backward
    assert sys.argv == argv
    from torch.nn.modules import module as torch_module

    assert not torch_module._global_forward_hooks and not torch_module._global_forward_pre_hooks
    with pytest.raises(FileNotFoundError, match="existing Python file"):
        run_script(tmp_path / "missing.py")
