"""Benchmark: how long each lab experiment takes, slowest first.

    python benchmarks/lab_time.py [--full] [--only IDS] [--jobs N] [--out DIR] [--fresh]

Runs ``python -m deepbasics lab --quick`` (or the full lab with ``--full``) in a subprocess, exactly as a user
would, then reads ``DIR/results.json`` and prints one row per experiment: its run time (all seeds and the
plot, measured inside the worker), its claims and their verdicts, sorted slowest first, with the wall time of
the whole command. Cached experiments are marked: pass ``--fresh`` to time everything. The point is to keep
``deepbasics lab --quick`` within minutes: an experiment whose quick mode takes more than about 30 s should get
smaller ``quick`` parameters.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLOW_QUICK_SECONDS = 30.0  # a quick experiment slower than this is worth shrinking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the full lab instead of --quick")
    parser.add_argument("--only", action="append", default=[], help="claim IDs or prefixes (repeatable)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary one)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="deepbasics-lab-time-"))
    cmd = [sys.executable, "-m", "deepbasics", "lab", "--out", str(out), "--no-progress"]
    cmd += [] if args.full else ["--quick"]
    cmd += ["--fresh"] if args.fresh else []
    cmd += ["--jobs", str(args.jobs)] if args.jobs else []
    for only in args.only:
        cmd += ["--only", only]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if not (out / "results.json").exists():
        sys.exit(f"no results.json (exit code {proc.returncode}):\n{proc.stderr[-2000:]}")

    experiments: dict[str, dict] = {}
    for row in json.loads((out / "results.json").read_text()):
        exp = experiments.setdefault(row["experiment"], {"seconds": row["seconds"], "cached": row["cached"]})
        exp.setdefault("claims", []).append(f"{row['id']} {row['verdict']}")
    rows = sorted(experiments.items(), key=lambda kv: -kv[1]["seconds"])
    print(f"\n{'experiment':<12} {'seconds':>9}  claims (verdict)")
    for name, exp in rows:
        flag = " (cached)" if exp["cached"] else ""
        slow = "  <- slow for --quick" if not args.full and exp["seconds"] > SLOW_QUICK_SECONDS else ""
        print(f"{name:<12} {exp['seconds']:>9.2f}  {', '.join(exp['claims'])}{flag}{slow}")
    total = sum(exp["seconds"] for exp in experiments.values())
    print(f"\n{len(rows)} experiments, {total:.1f} s of experiment time, {wall:.1f} s wall ({out / 'index.html'})")
    print(f"exit code {proc.returncode}")


if __name__ == "__main__":
    main()
