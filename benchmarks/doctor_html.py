"""Cost of the doctor's HTML report: nothing per step, and how long drawing it takes for a 1000-step run.

1. Per step. ``deepbasics doctor SCRIPT`` and ``deepbasics doctor SCRIPT --html`` run the same training script
   (the benchmarks' MLP 64-256-256-10 on scikit-learn's digits, batch 64, SGD with momentum, ``--steps`` steps) in
   alternating subprocesses, ``--repeats`` times each, the order swapped every repeat. Each run's training wall
   time is the ``seconds`` that ``doctor.json`` records (measured by ``run_script`` around the script, before the
   page is drawn). Reported: the median per-step time of each and the median ratio html / plain, expected 1 within
   the noise: ``--html`` installs no hook and the run is the same code path; the page is drawn after it.
2. Drawing. In this process, the same script under ``run_script``, then :func:`deepbasics.doctor.html.write_html`
   timed ``--repeats`` times (median); and a watched run of the same length with per-layer statistics at every step
   (``layer_every=1``: 1000 recorded steps per layer, the heaviest heatmaps), drawn the same way. Also reported:
   the page's size.

Run: ``python benchmarks/doctor_html.py [--steps 1000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SCRIPT = """
import sys
import torch
from sklearn.datasets import load_digits
from torch import nn
torch.manual_seed(0)
torch.set_num_threads(1)
data = load_digits()
x = torch.tensor(data.data, dtype=torch.float32) / 16.0
y = torch.tensor(data.target)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for step in range(int(sys.argv[1])):
    j = (step % (len(x) // 64)) * 64
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x[j:j + 64]), y[j:j + 64])
    loss.backward()
    opt.step()
"""


def cli_run(folder: Path, steps: int, html: bool) -> float:
    """Training seconds per step of one ``deepbasics doctor`` run (from its doctor.json)."""
    cmd = [sys.executable, "-m", "deepbasics", "doctor", "train.py", *(["--html"] if html else []), "--", str(steps)]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    if proc.returncode not in (0, 4):
        raise SystemExit(f"deepbasics doctor failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads((folder / "doctor.json").read_text())
    if html and not (folder / "doctor.html").is_file():
        raise SystemExit("--html wrote no doctor.html")
    return data["seconds"] / steps


def draw_times(result: object, out: Path, repeats: int) -> tuple[float, int]:
    from deepbasics.doctor.html import write_html

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        path = write_html(result, out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), path.stat().st_size


def dense_session(steps: int) -> object:
    """The same model and data under watch(layer_every=1): a statistics record at every step."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from deepbasics.doctor import watch

    torch.manual_seed(0)
    data = load_digits()
    x, y = torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with watch(model, opt, layer_every=1) as session:
        for step in range(steps):
            j = (step % (len(x) // 64)) * 64
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[j : j + 64]), y[j : j + 64])
            loss.backward()
            opt.step()
            session.step(loss)
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "train.py").write_text(textwrap.dedent(SCRIPT))
        plain, html = [], []
        for r in range(args.repeats):
            for with_html in (r % 2 == 0, r % 2 == 1):
                (html if with_html else plain).append(cli_run(folder, args.steps, with_html))
        ratios = [h / p for h, p in zip(html, plain, strict=True)]
        print(f"per step, deepbasics doctor train.py: {1e3 * statistics.median(plain):.3f} ms; with --html: "
              f"{1e3 * statistics.median(html):.3f} ms; median ratio html/plain {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}; {args.repeats} pairs)")  # fmt: skip

        import torch

        from deepbasics.doctor.script import run_script

        torch.set_num_threads(1)
        result = run_script(folder / "train.py", [str(args.steps)])
        seconds, size = draw_times(result, folder / "page.html", args.repeats)
        print(f"drawing the page of a {args.steps}-step script run (layer statistics every 20 steps): "
              f"{seconds:.2f} s (median of {args.repeats}), {size / 1e3:.0f} kB")  # fmt: skip
        seconds, size = draw_times(dense_session(args.steps), folder / "dense.html", args.repeats)
        print(f"drawing the page of a {args.steps}-step watched run with layer statistics at every step: "
              f"{seconds:.2f} s (median of {args.repeats}), {size / 1e3:.0f} kB")  # fmt: skip


if __name__ == "__main__":
    main()
